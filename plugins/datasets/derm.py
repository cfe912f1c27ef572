"""The embedded default dataset: procedural dermatology images with a skin-tone attribute.

Offline, deterministic by seed and fast (vectorised numpy). Five lesion classes on skin of three
tone groups, naturally imbalanced like Fitzpatrick17k (light 60%, medium 30%, dark 10%). A lesion's
appearance depends on tone, as FairGen and the dermatology literature describe: redness is masked
by melanin, so psoriasis and eczema look violaceous or grey-brown rather than pink on dark skin,
pigmented lesions lose contrast, and vitiligo gains it. A classifier that has seen mostly light
skin therefore does worse on dark skin, while dark-skin images stay learnable from dark examples.

Splits: train and val follow the natural tone mix; test is tone-stratified (equal thirds by
default) so that each tone group has enough test samples for its accuracy gap to be measurable.
"""
from __future__ import annotations

from typing import ClassVar

import numpy as np

from harness import hookimpl
from plugins.datasets._procedural import ProceduralDataset, blob_alpha, grid, lerp, smooth_noise, to_uint8

TONES = ["light", "medium", "dark"]
CLASSES = ["psoriasis", "melanoma", "nevus", "eczema", "vitiligo"]
#: each tone group spans a range of the continuous tone t in [0, 1] (Fitzpatrick I-II, III-IV, V-VI)
TONE_RANGE = np.array([[0.0, 0.3], [0.35, 0.65], [0.7, 1.0]])
#: RGB colours at tone anchors t = 0, 0.5, 1; interpolated for the sample's t
SKIN = np.array([[0.95, 0.80, 0.70], [0.78, 0.58, 0.42], [0.36, 0.23, 0.16]])
LESION = {
    "psoriasis": np.array([[0.90, 0.42, 0.45], [0.66, 0.34, 0.36], [0.36, 0.22, 0.34]]),  # pink -> violaceous
    "melanoma": np.array([[0.30, 0.17, 0.12], [0.22, 0.12, 0.09], [0.13, 0.08, 0.07]]),   # dark brown -> near skin
    "nevus": np.array([[0.62, 0.40, 0.26], [0.50, 0.32, 0.21], [0.27, 0.16, 0.11]]),
    "eczema": np.array([[0.90, 0.48, 0.44], [0.66, 0.40, 0.34], [0.27, 0.21, 0.24]]),    # red -> ashen grey-violet
    "vitiligo": np.array([[0.99, 0.90, 0.84], [0.97, 0.87, 0.80], [0.93, 0.83, 0.76]]),  # depigmented
}
#: per class: radius range, irregularity of the rim, edge sharpness, patchiness, scale speckle
SHAPE = {
    "psoriasis": dict(radius=(0.40, 0.62), irregularity=0.15, sharpness=14.0, patchy=0.0, scale=0.35),
    "melanoma": dict(radius=(0.28, 0.45), irregularity=0.55, sharpness=10.0, patchy=0.0, scale=0.0),
    "nevus": dict(radius=(0.14, 0.26), irregularity=0.05, sharpness=16.0, patchy=0.0, scale=0.0),
    "eczema": dict(radius=(0.45, 0.70), irregularity=0.30, sharpness=4.0, patchy=0.6, scale=0.0),
    "vitiligo": dict(radius=(0.30, 0.55), irregularity=0.45, sharpness=12.0, patchy=0.0, scale=0.0),
}


#: lesion texture: melanoma is strongly variegated, the others nearly uniform
VARIEGATION = {name: 0.35 if name == "melanoma" else 0.08 for name in CLASSES}
#: the class-average lesion, which every class approaches as the class cue weakens
MEAN_LESION = np.mean([LESION[name] for name in CLASSES], axis=0)
MEAN_SHAPE = {key: np.mean([np.asarray(SHAPE[name][key], dtype=float) for name in CLASSES], axis=0)
              for key in SHAPE["psoriasis"]}
MEAN_VARIEGATION = float(np.mean(list(VARIEGATION.values())))


def interpolate_colour(anchors: np.ndarray, tone: np.ndarray) -> np.ndarray:
    """(3 anchors, 3 channels) at t = 0, 0.5, 1 -> (n, 3) colours for tones t (n,)."""
    return np.stack([np.interp(tone, [0.0, 0.5, 1.0], anchors[:, c]) for c in range(3)], axis=1)


def render_derm(rng: np.random.Generator, labels: np.ndarray, tone_groups: np.ndarray, resolution: int,
                noise: float, cue: float) -> np.ndarray:
    """Render uint8 images (n, 3, R, R) for the given class and tone-group codes; with cue < 1 every
    class's colour, shape and texture move toward the class average."""
    n = len(labels)
    x, y = grid(resolution)
    tone = rng.uniform(TONE_RANGE[tone_groups, 0], TONE_RANGE[tone_groups, 1])
    skin = interpolate_colour(SKIN, tone) * rng.uniform(0.93, 1.07, (n, 1))
    lesion = np.zeros((n, 3))
    params = {key: np.zeros(n) for key in ("irregularity", "sharpness", "patchy", "scale", "r_low", "r_high")}
    for code, name in enumerate(CLASSES):
        members = labels == code
        lesion[members] = interpolate_colour(lerp(MEAN_LESION, LESION[name], cue), tone[members])
        shape = {key: lerp(MEAN_SHAPE[key], np.asarray(value, dtype=float), cue) for key, value in SHAPE[name].items()}
        params["r_low"][members], params["r_high"][members] = shape["radius"]
        for key in ("irregularity", "sharpness", "patchy", "scale"):
            params[key][members] = shape[key]
    lesion = np.clip(lesion * rng.uniform(0.88, 1.12, (n, 1)) * rng.uniform(0.96, 1.04, (n, 3)), 0, 1).astype(np.float32)
    skin = skin.astype(np.float32)
    f32 = {key: value.astype(np.float32)[:, None, None] for key, value in params.items()}

    radius = rng.uniform(params["r_low"], params["r_high"])
    radii = np.stack([radius, radius * rng.uniform(0.7, 1.0, n)], axis=1)
    centre = rng.uniform(-0.2, 0.2, (n, 2))
    alpha = blob_alpha(x, y, centre, radii, rng.uniform(0, np.pi, n), params["irregularity"], params["sharpness"], rng)
    patches = smooth_noise(rng, n, resolution, cells=4)
    alpha *= 1 - f32["patchy"] * (patches < 0)

    # skin: shading gradient and mottling; lesion: variegation (strong for melanoma), scale speckle
    tilt = rng.uniform(-0.08, 0.08, (n, 2, 1, 1)).astype(np.float32)
    shading = 1 + x[None] * tilt[:, 0] + y[None] * tilt[:, 1] + 0.03 * smooth_noise(rng, n, resolution, cells=8)
    background = skin[:, :, None, None] * shading[:, None]
    class_variegation = np.array([lerp(MEAN_VARIEGATION, VARIEGATION[name], cue) for name in CLASSES])
    variegation = class_variegation[labels].astype(np.float32)[:, None, None]
    texture = 1 + variegation * smooth_noise(rng, n, resolution, cells=6)
    foreground = lesion[:, :, None, None] * texture[:, None]
    speckle = (rng.random((n, resolution, resolution), dtype=np.float32) < 0.25) * f32["scale"] * alpha
    image = background + (foreground - background) * alpha[:, None] + 0.6 * speckle[:, None]
    image += noise * rng.standard_normal(image.shape, dtype=np.float32)
    return to_uint8(image)


class Derm(ProceduralDataset):
    name = "derm"
    version = "1"
    label_names: ClassVar[list[str]] = CLASSES
    sensitive_attributes: ClassVar[list[str]] = ["skin_tone"]
    high_risk_classes: ClassVar[list[str]] = ["melanoma"]
    groups: ClassVar[list[str]] = TONES
    group_param = "tone"
    acquisition = {"gain": (1.06, 0.97, 0.88), "gamma": 0.85, "blur": 0.6}
    render = staticmethod(render_derm)
    defaults = {
        "n_train": 3000,
        "n_val": 500,
        "n_test": 3000,  # >= 1,000 per tone group
        "resolution": 32,
        "tone_fractions": [0.6, 0.3, 0.1],  # train/val: Fitzpatrick17k-like, darkest ~10%
        "test_tone_fractions": [1 / 3, 1 / 3, 1 / 3],  # tone-stratified so each group's accuracy is measurable
        "test_ood_tone_fractions": [0.2, 0.3, 0.5],  # the other hospital of test_ood has its own mix
        "class_fractions": [0.25, 0.15, 0.25, 0.2, 0.15],
        "n_test_ood": 3000,
        "cue": 0.75,  # calibrated (docs/datasets.md): small CNN ~0.87 on the natural split
        "noise": 0.1,
    }
    configs = {"cpu": {"resolution": 16, "n_train": 2000}, "paper": {"resolution": 64, "n_train": 10000,
                                                                     "n_test": 3000}}


@hookimpl
def harness_datasets() -> list[type]:
    return [Derm]
