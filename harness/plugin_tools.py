"""Helpers for plugin authors: the device to run on and conversion between the harness's images
and float tensors for a model, in one place.

The harness hands plugins images as uint8 arrays (N, C, H, W) with C = 1 (grayscale) or 3 (RGB),
and expects uint8 arrays of the training set's shape back from `Generator.sample`. Models want
float tensors in [0, 1] (classifiers, feature extractors) or [-1, 1] (diffusion models):

    from harness.plugin_tools import resolve_device, to_float, to_uint8, as_rgb, resize

    device = resolve_device(self.params["device"])          # "auto" | "cpu" | "cuda[:N]"
    x = resize(as_rgb(to_float(images, (-1, 1))), 64)      # uint8 -> float (N, 3, 64, 64)
    images = to_uint8(model(x), (-1, 1)).cpu().numpy()     # float -> uint8

`resolve_device`, `autocast` and `grad_scaler` live in `harness.devices` and are re-exported here.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from harness.devices import autocast, grad_scaler, resolve_device

__all__ = ["resolve_device", "autocast", "grad_scaler", "to_float", "to_uint8", "as_rgb", "resize",
           "VALUE_RANGES"]

#: the float ranges images are converted to and from
VALUE_RANGES = ((0, 1), (-1, 1))


def to_float(images: np.ndarray | torch.Tensor, value_range: tuple[int, int] = (0, 1),
             device: torch.device | str | None = None) -> torch.Tensor:
    """uint8 images (array or tensor, any shape) -> float32 tensor in `value_range`, on `device`
    (default: where the tensor is; arrays start on the CPU)."""
    value_range = _checked(value_range)
    x = images if isinstance(images, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(images))
    x = x.to(device, dtype=torch.float32) if device is not None else x.float()
    return x / 255.0 if value_range == (0, 1) else x / 127.5 - 1.0


def to_uint8(x: torch.Tensor, value_range: tuple[int, int] = (0, 1)) -> torch.Tensor:
    """Float images in `value_range` -> uint8, clamped to the range and rounded to the nearest
    level. The tensor stays on its device; call `.cpu().numpy()` for `Generator.sample`."""
    if _checked(value_range) == (0, 1):
        return (x.clamp(0, 1) * 255).round().to(torch.uint8)
    return ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


def as_rgb(images: torch.Tensor) -> torch.Tensor:
    """(N, 1, H, W) grayscale repeated to 3 channels (a view, no copy); RGB is returned as is."""
    return images.expand(-1, 3, -1, -1) if images.shape[1] == 1 else images


def resize(x: torch.Tensor, size: int | tuple[int, int]) -> torch.Tensor:
    """Float (N, C, H, W) resized to `size` (an int: square) with antialiased bilinear
    interpolation; returned unchanged when it already has that size."""
    size = (size, size) if isinstance(size, int) else tuple(size)
    if tuple(x.shape[-2:]) == size:
        return x
    return F.interpolate(x, size=size, mode="bilinear", antialias=True, align_corners=False)


def _checked(value_range: tuple[int, int]) -> tuple[int, int]:
    if tuple(value_range) not in VALUE_RANGES:
        raise ValueError(f"value_range {value_range!r} is not supported; use one of {list(VALUE_RANGES)}")
    return tuple(value_range)
