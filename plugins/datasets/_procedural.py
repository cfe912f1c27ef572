"""The base of the embedded procedural datasets and their shared pieces: seeded streams, noise
fields, blob masks.

Every embedded dataset renders a whole split at once with numpy (no per-image Python loop), so
thousands of images take well under a second. Each split draws from its own random stream
derived from (seed, split name), so changing n_train never changes the test set. A dataset is
one `render(rng, labels, groups, resolution, noise)` function plus its vocabularies: the base
draws groups and classes per split, renders, and names the samples.
"""
from __future__ import annotations

import zlib
from typing import ClassVar

import numpy as np
from scipy.ndimage import gaussian_filter

from harness.contracts import ConfigError, Dataset
from harness.data import ImageSet, Splits


class ProceduralDataset(Dataset):
    """An embedded dataset: `groups` of the one sensitive attribute, `label_names`, and `render`.

    Parameters (with each subclass's defaults): n_train / n_val / n_test / n_test_ood, resolution,
    `<group_param>_fractions` (train and val), `test_<group_param>_fractions` and
    `test_ood_<group_param>_fractions`, class_fractions, and the difficulty: `noise` (sd of the
    pixel noise on the [0, 1] scale) and `cue` (strength of the class cue: 1 as designed, 0 makes
    the classes look alike). Test splits are stratified by class x group. `test_ood` is rendered as
    another hospital would acquire it (`acquisition`: its gain, gamma and blur) with its own group mix.
    """

    #: values of the sensitive attribute (its name is sensitive_attributes[0])
    groups: ClassVar[list[str]] = []
    #: the stem of the group-mix parameters, e.g. "tone" -> tone_fractions, test_tone_fractions
    group_param: ClassVar[str] = ""
    #: how the out-of-distribution hospital acquires images: per-channel gain, gamma, blur (px at 32)
    acquisition: ClassVar[dict] = {"gain": (1.0,), "gamma": 1.0, "blur": 0.0}

    @staticmethod
    def render(rng: np.random.Generator, labels: np.ndarray, groups: np.ndarray, resolution: int,
               noise: float, cue: float) -> np.ndarray:
        """uint8 images (n, C, R, R) for class codes (or multi-hot rows) and group codes."""
        raise NotImplementedError

    def load(self, seed: int) -> Splits:
        self.check_params()
        p = self.params
        sizes = {"train": p["n_train"], "val": p["n_val"], "test": p["n_test"], "test_ood": p["n_test_ood"]}
        return make_splits(self._render_split, {k: n for k, n in sizes.items() if n or k != "test_ood"}, seed,
                           prefix=self.name)

    def check_params(self) -> None:
        stem = self.group_param
        for prefix in ("", "test_", "test_ood_"):
            check_fractions(f"{prefix}{stem}_fractions", self.params[f"{prefix}{stem}_fractions"], len(self.groups))
        check_fractions("class_fractions", self.params["class_fractions"], len(self.label_names))
        if not 0 <= self.params["cue"] <= 1 or self.params["noise"] < 0:
            raise ConfigError(f"dataset '{self.name}': cue must be in [0, 1] and noise >= 0, got cue = "
                              f"{self.params['cue']}, noise = {self.params['noise']}")

    def draw_labels(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return stratified_codes(rng, n, self.params["class_fractions"])

    def _render_split(self, rng: np.random.Generator, n: int, split: str) -> ImageSet:
        p, stem = self.params, self.group_param
        if split in ("test", "test_ood") and not p.get("multilabel"):
            groups, labels = stratified_pairs(rng, n, p[f"{split}_{stem}_fractions"], p["class_fractions"])
        else:
            groups = stratified_codes(rng, n, p[f"{split}_{stem}_fractions" if split.startswith("test") else
                                                f"{stem}_fractions"])
            labels = self.draw_labels(rng, n)
        images = self.render(rng, labels, groups, p["resolution"], p["noise"], p["cue"])
        if split == "test_ood":
            images = acquire(images, **self.acquisition, resolution=p["resolution"])
        attribute = self.sensitive_attributes[0]
        return image_set(images, labels, {attribute: groups}, self.label_names, {attribute: self.groups})


def acquire(images: np.ndarray, gain: tuple[float, ...], gamma: float, blur: float, resolution: int) -> np.ndarray:
    """uint8 images as another device records them: gamma, per-channel gain, then optical blur."""
    x = (images.astype(np.float32) / 255) ** gamma * np.asarray(gain, np.float32)[None, :, None, None]
    if blur:
        sigma = blur * resolution / 32
        x = gaussian_filter(x, sigma=(0, 0, sigma, sigma))
    return to_uint8(x)


def lerp(start: float | np.ndarray, end: float | np.ndarray, weight: float) -> float | np.ndarray:
    """start + weight (end - start), exactly `end` at weight 1 (so cue = 1 renders as designed)."""
    return start * (1 - weight) + end * weight


def split_rng(seed: int, split: str) -> np.random.Generator:
    """An independent random stream per (seed, split)."""
    return np.random.default_rng([int(seed), zlib.crc32(split.encode())])


def grid(resolution: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates in [-1, 1], shape (R, R) each (x grows right, y grows down)."""
    axis = ((np.arange(resolution) + 0.5) / resolution * 2 - 1).astype(np.float32)
    y, x = np.meshgrid(axis, axis, indexing="ij")
    return x, y


def _bilinear_matrix(resolution: int, cells: int) -> np.ndarray:
    """(R, cells + 1) weights that interpolate a coarse grid linearly onto R pixel centres."""
    position = (np.arange(resolution) + 0.5) / resolution * cells
    left = np.minimum(np.floor(position).astype(int), cells - 1)
    weight = position - left
    matrix = np.zeros((resolution, cells + 1), dtype=np.float32)
    matrix[np.arange(resolution), left] = 1 - weight
    matrix[np.arange(resolution), left + 1] = weight
    return matrix


def smooth_noise(rng: np.random.Generator, n: int, resolution: int, cells: int) -> np.ndarray:
    """Low-frequency noise (n, R, R), about unit variance: a coarse Gaussian grid upsampled bilinearly."""
    coarse = rng.standard_normal((n, cells + 1, cells + 1), dtype=np.float32)
    matrix = _bilinear_matrix(resolution, cells)
    fine = matrix @ coarse @ matrix.T
    return fine / max(float(fine.std()), 1e-6)


def blob_alpha(x: np.ndarray, y: np.ndarray, centre: np.ndarray, radii: np.ndarray, angle: np.ndarray,
               irregularity: np.ndarray, sharpness: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Soft masks (n, R, R) of rotated ellipses whose rim is perturbed by random harmonics.

    centre (n, 2), radii (n, 2), angle (n,), irregularity (n,) scales the rim harmonics,
    sharpness (n,) the edge steepness (large = well-demarcated, small = diffuse).
    """
    n = len(angle)
    column = lambda values: np.asarray(values, dtype=np.float32)[:, None, None]  # noqa: E731
    dx, dy = x[None] - column(centre[:, 0]), y[None] - column(centre[:, 1])
    cos, sin = column(np.cos(angle)), column(np.sin(angle))
    u, v = (cos * dx + sin * dy) / column(radii[:, 0]), (cos * dy - sin * dx) / column(radii[:, 1])
    distance = np.sqrt(u * u + v * v) + 1e-6
    cos1, sin1 = u / distance, v / distance  # the rim harmonics cos(k phi + p) from angle-sum identities
    cos2, sin2 = cos1 * cos1 - sin1 * sin1, 2 * sin1 * cos1
    cos3, sin3 = cos2 * cos1 - sin2 * sin1, sin2 * cos1 + cos2 * sin1
    cos5, sin5 = cos3 * cos2 - sin3 * sin2, sin3 * cos2 + cos3 * sin2
    rim = np.ones_like(distance)
    for k, cos_k, sin_k in ((2, cos2, sin2), (3, cos3, sin3), (5, cos5, sin5)):
        amplitude = irregularity * rng.uniform(0.3, 1.0, n) / k ** 0.5
        phase = rng.uniform(0, 2 * np.pi, n)
        rim += column(amplitude * np.cos(phase)) * cos_k - column(amplitude * np.sin(phase)) * sin_k
    logit = (1 - distance / np.maximum(rim, 0.2)) * column(sharpness)
    return 1 / (1 + np.exp(-np.clip(logit, -30, 30)))


def to_uint8(images: np.ndarray) -> np.ndarray:
    """Float images in [0, 1] -> uint8, clipped."""
    return np.clip(np.rint(images * 255), 0, 255).astype(np.uint8)


def stratified_codes(rng: np.random.Generator, n: int, fractions: list[float] | np.ndarray) -> np.ndarray:
    """n codes in exact proportion (largest remainder), shuffled."""
    fractions = np.asarray(fractions, dtype=float) / np.sum(fractions)
    counts = np.floor(fractions * n).astype(int)
    remainder = fractions * n - counts
    counts[np.argsort(-remainder)[: n - counts.sum()]] += 1
    return rng.permutation(np.repeat(np.arange(len(fractions)), counts))


def stratified_pairs(rng: np.random.Generator, n: int, group_fractions: list[float],
                     class_fractions: list[float]) -> tuple[np.ndarray, np.ndarray]:
    """(groups, classes) for n samples, stratified jointly: every class x group cell gets its exact
    share of n (group share x class share), so each group holds every class in the same mix."""
    groups = np.asarray(group_fractions, dtype=float) / np.sum(group_fractions)
    classes = np.asarray(class_fractions, dtype=float) / np.sum(class_fractions)
    cells = stratified_codes(rng, n, np.outer(groups, classes).ravel())
    return cells // len(classes), cells % len(classes)


def check_fractions(name: str, fractions: list[float], size: int) -> None:
    """Refuse a proportion vector of the wrong length or with negative entries."""
    if len(fractions) != size or min(fractions) < 0 or sum(fractions) <= 0:
        raise ConfigError(f"'{name}' needs {size} non-negative proportions summing to > 0, got {fractions}")


def make_splits(render, sizes: dict[str, int], seed: int, prefix: str) -> Splits:
    """Call render(rng, n, split) -> ImageSet for each split and give samples stable ids."""
    parts = {}
    for split, n in sizes.items():
        part = render(split_rng(seed, split), n, split)
        part.ids = np.array([f"{prefix}-s{seed}-{split}-{i:06d}" for i in range(n)])
        parts[split] = part
    return Splits(**parts).validate(prefix)


def image_set(images: np.ndarray, labels: np.ndarray, attributes: dict[str, np.ndarray], label_names: list[str],
              attribute_vocab: dict[str, list[str]]) -> ImageSet:
    """An ImageSet whose ids are filled in later by make_splits."""
    return ImageSet(images=images, labels=labels, attributes=attributes, label_names=list(label_names),
                    attribute_vocab={k: list(v) for k, v in attribute_vocab.items()},
                    ids=np.arange(len(images)).astype(str))
