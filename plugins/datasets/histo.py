"""Embedded histopathology-like dataset: H&E tissue patches whose stain depends on the hospital.

Offline, deterministic by seed, vectorised. Three tissue classes differ in their nuclei
(density, size, shape); three hospitals differ in stain colour (their own hematoxylin and eosin
optical-density vectors), stain strength and scanner blur, as in CAMELYON17 and TCGA. Images are
composed in optical density and turned into RGB by Beer-Lambert (the maths of
skimage.color.hed2rgb, with a stain matrix per site). The sensitive attribute is the site,
naturally imbalanced (50/35/15%); test is site-stratified. MeDi's site-label confounding comes
from the `one_site_per_class` scenario.
"""
from __future__ import annotations

from typing import ClassVar

import numpy as np
from scipy.ndimage import gaussian_filter

from harness import hookimpl
from harness.scenarios import Scenario, default_scenarios, site_scenarios
from plugins.datasets._procedural import ProceduralDataset, lerp, smooth_noise, to_uint8

SITES = ["hospital_a", "hospital_b", "hospital_c"]
CLASSES = ["normal", "stroma", "tumor"]
#: per site: hematoxylin and eosin optical-density directions (RGB), stain strength, scanner blur (px at 32)
STAINS = {
    "hospital_a": dict(h=(0.65, 0.70, 0.29), e=(0.07, 0.99, 0.11), strength=1.0, blur=0.0),
    "hospital_b": dict(h=(0.50, 0.80, 0.30), e=(0.20, 0.95, 0.25), strength=1.25, blur=0.6),
    "hospital_c": dict(h=(0.80, 0.55, 0.20), e=(0.02, 0.75, 0.66), strength=0.75, blur=1.0),
}
#: per class: nuclei seeds per pixel, nucleus size (px at 32), elongation, eosin density
TISSUE = {
    "normal": dict(density=0.020, size=0.9, elongation=1.0, eosin=0.55),
    "stroma": dict(density=0.030, size=0.6, elongation=3.0, eosin=0.85),
    "tumor": dict(density=0.060, size=1.3, elongation=1.0, eosin=0.35),
}


#: the class-average tissue, which every class approaches as the class cue weakens
MEAN_TISSUE = {key: float(np.mean([TISSUE[name][key] for name in CLASSES])) for key in TISSUE["normal"]}


def _unit(vector: tuple[float, float, float]) -> np.ndarray:
    v = np.asarray(vector, dtype=np.float32)
    return v / np.linalg.norm(v)


def _nuclei(rng: np.random.Generator, n: int, resolution: int, tissue: dict) -> np.ndarray:
    """Hematoxylin density (n, R, R): random seeds blurred into round or spindle-shaped nuclei."""
    scale = resolution / 32
    seeds = (rng.random((n, resolution, resolution), dtype=np.float32) < tissue["density"] / scale ** 2)
    size = tissue["size"] * scale
    sigma = (0, size, size * tissue["elongation"])
    nuclei = gaussian_filter(seeds.astype(np.float32), sigma=sigma, mode="wrap") * (2 * np.pi * size * size * tissue["elongation"])
    turned = rng.random(n) < 0.5  # spindles run horizontally or vertically
    nuclei[turned] = nuclei[turned].transpose(0, 2, 1)
    return np.clip(nuclei * 1.6, 0, 1.2)


def render_histo(rng: np.random.Generator, labels: np.ndarray, sites: np.ndarray, resolution: int,
                 noise: float, cue: float) -> np.ndarray:
    """Render uint8 images (n, 3, R, R) for the given class and site codes; with cue < 1 every
    class's nuclei and eosin move toward the class average."""
    n = len(labels)
    hematoxylin = np.zeros((n, resolution, resolution), np.float32)
    eosin = np.zeros(n, np.float32)
    for code, name in enumerate(CLASSES):
        members = np.flatnonzero(labels == code)
        tissue = {key: lerp(MEAN_TISSUE[key], value, cue) for key, value in TISSUE[name].items()}
        hematoxylin[members] = _nuclei(rng, len(members), resolution, tissue)
        eosin[members] = tissue["eosin"]
    fibres = 1 + 0.25 * smooth_noise(rng, n, resolution, cells=8)
    lumen = smooth_noise(rng, n, resolution, cells=3) > 1.2  # white gaps (fat, lumen)
    eosin_map = eosin[:, None, None] * fibres * rng.uniform(0.8, 1.2, (n, 1, 1)).astype(np.float32) * ~lumen
    hematoxylin *= ~lumen

    image = np.empty((n, 3, resolution, resolution), np.float32)
    for code, name in enumerate(SITES):
        members = np.flatnonzero(sites == code)
        stain = STAINS[name]
        density = stain["strength"] * (hematoxylin[members, None] * _unit(stain["h"])[None, :, None, None] * 1.4
                                       + eosin_map[members, None] * _unit(stain["e"])[None, :, None, None] * 0.5)
        if stain["blur"]:
            density = gaussian_filter(density, sigma=(0, 0, stain["blur"] * resolution / 32,
                                                       stain["blur"] * resolution / 32))
        image[members] = np.exp(-density)  # Beer-Lambert: optical density -> transmitted light
    image *= rng.uniform(0.92, 1.0, (n, 1, 1, 1)).astype(np.float32)
    image += noise * rng.standard_normal(image.shape, dtype=np.float32)
    return to_uint8(image)


class Histo(ProceduralDataset):
    name = "histo"
    version = "1"
    label_names: ClassVar[list[str]] = CLASSES
    sensitive_attributes: ClassVar[list[str]] = ["site"]
    high_risk_classes: ClassVar[list[str]] = ["tumor"]
    groups: ClassVar[list[str]] = SITES
    group_param = "site"
    acquisition = {"gain": (0.92, 0.96, 1.06), "gamma": 1.25, "blur": 0.8}
    render = staticmethod(render_histo)
    defaults = {
        "n_train": 3000,
        "n_val": 500,
        "n_test": 3000,  # >= 1,000 per site
        "resolution": 32,
        "site_fractions": [0.5, 0.35, 0.15],
        "test_site_fractions": [1 / 3, 1 / 3, 1 / 3],  # site-stratified so each site's accuracy is measurable
        "test_ood_site_fractions": [0.2, 0.3, 0.5],  # the other hospital of test_ood has its own mix
        "class_fractions": [0.4, 0.3, 0.3],
        "n_test_ood": 3000,
        "cue": 0.35,  # calibrated (docs/datasets.md): small CNN ~0.80 on the natural split
        "noise": 0.15,
    }
    configs = {"cpu": {"resolution": 16, "n_train": 2000}, "paper": {"resolution": 64, "n_train": 10000,
                                                                     "n_test": 3000}}

    def scenarios(self) -> dict[str, Scenario]:
        return {**default_scenarios("site"), **site_scenarios("site")}


@hookimpl
def harness_datasets() -> list[type]:
    return [Histo]
