"""A tiny learnable image set for contract checks and tests (not a benchmark dataset).

The class is a bright square in one of K positions; the group tints the background. Anything
that learns at all separates the classes, so a plugin that fails here is broken, not weak.
"""
from __future__ import annotations

import numpy as np

from harness.data import ImageSet, Splits


def toy_imageset(n: int = 120, size: int = 16, channels: int = 3, classes: int = 3, groups: int = 2,
                 seed: int = 0, prefix: str = "toy") -> ImageSet:
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % classes
    group = rng.integers(0, groups, n)
    images = rng.integers(0, 40, (n, channels, size, size)).astype(np.int16)
    images += (group * 60)[:, None, None, None].astype(np.int16)
    cell = max(2, size // (classes + 1))
    for i, y in enumerate(labels):
        top = (y * cell) % (size - cell)
        images[i, :, top:top + cell, top:top + cell] = 230
    return ImageSet(
        images=np.clip(images, 0, 255).astype(np.uint8), labels=labels,
        attributes={"group": group}, label_names=[f"class{k}" for k in range(classes)],
        attribute_vocab={"group": [f"g{g}" for g in range(groups)]},
        ids=np.array([f"{prefix}-{seed}-{i}" for i in range(n)]),
    )


def toy_splits(n_train: int = 120, size: int = 16, channels: int = 3, seed: int = 0) -> Splits:
    return Splits(train=toy_imageset(n_train, size, channels, seed=seed, prefix="train"),
                  val=toy_imageset(60, size, channels, seed=seed + 1, prefix="val"),
                  test=toy_imageset(90, size, channels, seed=seed + 2, prefix="test"))
