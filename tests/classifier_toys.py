"""A learnable toy image set for classifier tests: the class is where a bright square sits."""
from __future__ import annotations

import numpy as np

from harness import ImageSet

LABELS = ["top_left", "top_right", "bottom_left", "bottom_right"]
TONES = ["light", "mid", "dark"]


def square_position_set(n: int, seed: int, channels: int = 3, size: int = 32, prefix: str = "s") -> ImageSet:
    """Class = quadrant of a 6x6 bright square; attribute 'tone' = background level; noisy pixels."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, len(LABELS), n)
    tone = rng.integers(0, len(TONES), n)
    images = rng.integers(0, 60, (n, channels, size, size)).astype(np.uint8)
    images += (40 + 50 * tone).astype(np.uint8)[:, None, None, None]
    half = size // 2
    for i in range(n):
        row, col = divmod(int(labels[i]), 2)
        y = row * half + rng.integers(0, half - 6)
        x = col * half + rng.integers(0, half - 6)
        images[i, :, y:y + 6, x:x + 6] = 250
    return ImageSet(images=images, labels=labels, attributes={"tone": tone}, label_names=list(LABELS),
                    attribute_vocab={"tone": list(TONES)}, ids=np.array([f"{prefix}{i}" for i in range(n)]))
