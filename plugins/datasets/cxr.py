"""Embedded chest-X-ray-like dataset: grayscale frontal radiographs with a sex attribute.

Offline, deterministic by seed, vectorised, one channel. A chest is drawn as dark lung fields with
rib shadows, a bright mediastinum and spine, the heart and the diaphragm. Findings: no finding,
cardiomegaly (wide heart), effusion (a bright basal fluid level), pneumonia (patchy consolidation)
and pneumothorax (an apical region without lung markings, darker, with a pleural line). Sex
changes the anatomy as on real films: female chests are narrower and carry breast shadows over
the lower lung fields, where effusion and pneumonia appear, so a classifier trained on male films
reads female films worse. Natural mix ~42% female as in CheXpert; test is sex-stratified.

`multilabel = true` gives CheXpert-style multi-hot labels (N, 5): each finding present
independently at its `finding_rates` value, several on one film, and no_finding = 1 exactly when
none is.
"""
from __future__ import annotations

from typing import ClassVar

import numpy as np

from harness import ConfigError, hookimpl
from plugins.datasets._procedural import ProceduralDataset, grid, smooth_noise, to_uint8

SEXES = ["female", "male"]
CLASSES = ["no_finding", "cardiomegaly", "effusion", "pneumonia", "pneumothorax"]


def _ellipse(x: np.ndarray, y: np.ndarray, cx, cy, rx, ry, sharpness: float = 12.0) -> np.ndarray:
    """Soft ellipse masks (n, R, R); centre and radii are (n,) arrays."""
    col = lambda v: np.asarray(v, np.float32)[:, None, None]  # noqa: E731
    u, v = (x[None] - col(cx)) / col(rx), (y[None] - col(cy)) / col(ry)
    # a linear ramp in squared distance: soft like a sigmoid edge, without sqrt and exp
    return np.clip((1 - (u * u + v * v)) * (sharpness / 4) + 0.5, 0, 1)


def render_cxr(rng: np.random.Generator, labels: np.ndarray, sexes: np.ndarray, resolution: int,
               noise: float, cue: float) -> np.ndarray:
    """Render uint8 images (n, 1, R, R) for the given finding codes (n,) or multi-hot rows (n, 5)
    and sex codes; with cue < 1 every finding is fainter (at 0, absent)."""
    n = len(labels)
    x, y = grid(resolution)
    female = (sexes == 0).astype(np.float32)
    hot = labels if labels.ndim == 2 else np.eye(len(CLASSES), dtype=np.int64)[labels]
    finding = {name: hot[:, code].astype(np.float32) * np.float32(cue) for code, name in enumerate(CLASSES)}
    width = rng.uniform(0.95, 1.05, n) * (1 - 0.15 * female)  # female chests are narrower
    side = rng.choice([-1.0, 1.0], n)  # which lung carries a one-sided finding

    body = _ellipse(x, y, np.zeros(n), np.full(n, 0.1), 0.95 * width, np.full(n, 1.2), 6.0)
    lungs = [_ellipse(x, y, s * 0.42 * width, np.full(n, -0.1), 0.3 * width, np.full(n, 0.62), 10.0) for s in (-1, 1)]
    ribs = 0.5 + 0.5 * np.cos(y[None] * (9 * np.pi) + rng.uniform(0, 2 * np.pi, (n, 1, 1)).astype(np.float32))
    markings = 0.08 * smooth_noise(rng, n, resolution, cells=10)
    lung_air = (lungs[0] + lungs[1]) * (0.55 - 0.12 * ribs + markings)

    heart_width = rng.uniform(0.25, 0.32, n) * (1 + 0.45 * finding["cardiomegaly"])  # not scaled with the chest
    heart = _ellipse(x, y, 0.12 * width, np.full(n, 0.3), heart_width, np.full(n, 0.28), 8.0)
    spine = np.exp(-(x[None] / 0.07) ** 2) * np.ones((n, 1, 1), np.float32)
    breasts = sum(_ellipse(x, y, s * 0.5 * width, np.full(n, 0.45), np.full(n, 0.3), np.full(n, 0.28), 6.0)
                  for s in (-1, 1)) * female[:, None, None]

    lung_side = np.where(side[:, None, None] < 0, lungs[0], lungs[1])
    fluid_level = rng.uniform(0.15, 0.35, (n, 1, 1)).astype(np.float32)
    effusion = lung_side * np.clip((y[None] - fluid_level) * 6 + 0.5, 0, 1) * finding["effusion"][:, None, None]
    patch = np.clip(smooth_noise(rng, n, resolution, cells=4) - 0.3, 0, None)
    pneumonia = lung_side * patch * (y[None] > -0.2) * finding["pneumonia"][:, None, None]
    apex = _ellipse(x, y, side * 0.5 * width, np.full(n, -0.45), 0.22 * width, np.full(n, 0.3), 14.0)
    pneumothorax = apex * lung_side * finding["pneumothorax"][:, None, None]

    density = (0.75 * body - lung_air + 0.5 * heart * (1 - 0.5 * lung_air) + 0.35 * spine + 0.35 * breasts
               + 0.45 * effusion + 0.3 * pneumonia)
    density = density * (1 - pneumothorax) + pneumothorax * (0.75 * body - 0.72)  # air, no markings
    image = 0.08 + 0.85 * np.clip(density, 0, 1) * rng.uniform(0.85, 1.1, (n, 1, 1)).astype(np.float32)
    image += noise * rng.standard_normal(image.shape, dtype=np.float32)
    return to_uint8(image[:, None])


class ChestXray(ProceduralDataset):
    name = "cxr"
    version = "1"
    label_names: ClassVar[list[str]] = CLASSES
    sensitive_attributes: ClassVar[list[str]] = ["sex"]
    high_risk_classes: ClassVar[list[str]] = ["pneumothorax"]
    groups: ClassVar[list[str]] = SEXES
    group_param = "sex"
    acquisition = {"gain": (1.0,), "gamma": 0.75, "blur": 0.6}
    render = staticmethod(render_cxr)
    defaults = {
        "n_train": 3000,
        "n_val": 500,
        "n_test": 2000,  # >= 1,000 per sex
        "resolution": 32,
        "sex_fractions": [0.42, 0.58],
        "test_sex_fractions": [0.5, 0.5],
        "test_ood_sex_fractions": [0.65, 0.35],  # the other hospital of test_ood has its own mix
        "class_fractions": [0.3, 0.2, 0.2, 0.15, 0.15],
        "multilabel": False,  # true: multi-hot findings (N, 5), each finding drawn independently
        "finding_rates": [0.25, 0.25, 0.2, 0.15],  # multilabel: P(finding) for cardiomegaly..pneumothorax
        "n_test_ood": 2000,
        "cue": 0.9,  # calibrated (docs/datasets.md): small CNN ~0.81 on the natural split
        "noise": 0.06,
    }
    configs = {"cpu": {"resolution": 16, "n_train": 2000}, "paper": {"resolution": 64, "n_train": 10000,
                                                                     "n_test": 3000}}

    def check_params(self) -> None:
        super().check_params()
        rates = np.asarray(self.params["finding_rates"], dtype=float)
        if len(rates) != len(CLASSES) - 1 or np.any((rates < 0) | (rates > 1)):
            raise ConfigError(f"dataset '{self.name}': finding_rates needs {len(CLASSES) - 1} probabilities in [0, 1] "
                              f"(one per finding {CLASSES[1:]}), got {self.params['finding_rates']}")

    def draw_labels(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """Class codes, or with `multilabel` multi-hot rows: each finding at its rate, no_finding when none."""
        if not self.params["multilabel"]:
            return super().draw_labels(rng, n)
        findings = (rng.random((n, len(CLASSES) - 1)) < np.asarray(self.params["finding_rates"])).astype(np.int64)
        return np.concatenate([(findings.sum(1, keepdims=True) == 0).astype(np.int64), findings], axis=1)


@hookimpl
def harness_datasets() -> list[type]:
    return [ChestXray]
