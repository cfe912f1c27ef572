"""`oversample`: Ktena et al.'s oversampling baseline, as a generator.

Asked for a (label, attribute) row it returns a copy of a random real training image with that
label and primary-attribute value, so with the `fair` sampling strategy the augmented training
set is balanced across attribute groups. When the training split has no such image (a scenario
removed the whole group), it falls back to an image with the same attribute value, then to one
with the same label; the number of fallbacks is reported in `stats`. With multi-hot labels a
"label" is the whole set of findings on the row (e.g. with the `replicate` strategy).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from harness import Generator, ImageSet, hookimpl


class Oversample(Generator):
    name = "oversample"
    version = "1"
    defaults = {"attribute": ""}  # "" = the first attribute of the training set

    def fit(self, train: ImageSet, seed: int, unlabeled: ImageSet | None = None) -> None:
        self.train = train
        self.attribute = self.params["attribute"] or next(iter(train.attributes))
        self.stats = {"n_source": len(train)}

    def sample(self, labels: np.ndarray, attributes: dict[str, np.ndarray], seed: int) -> np.ndarray:
        rng = np.random.default_rng(seed)
        source_labels, labels = label_keys(self.train.labels, np.asarray(labels))
        source_groups = self.train.group_codes(self.attribute)
        picks = np.empty(len(labels), dtype=np.int64)
        fallbacks = 0
        wanted_groups = attributes[self.attribute]
        for y, g in sorted({(int(a), int(b)) for a, b in zip(labels, wanted_groups)}):
            rows = np.flatnonzero((labels == y) & (wanted_groups == g))
            for level, pool in enumerate(((source_labels == y) & (source_groups == g), source_groups == g,
                                          source_labels == y, np.ones(len(source_labels), dtype=bool))):
                candidates = np.flatnonzero(pool)
                if len(candidates):
                    break
            fallbacks += len(rows) if level else 0
            picks[rows] = rng.choice(candidates, size=len(rows))
        self.stats = {**self.stats, "fallback_rows": fallbacks}
        return self.train.images[picks].copy()

    def save(self, directory: Path) -> None:
        self.train.save(Path(directory) / "train.npz")
        (Path(directory) / "config.json").write_text(json.dumps({"attribute": self.attribute}))

    def load(self, directory: Path) -> None:
        self.train = ImageSet.load(Path(directory) / "train.npz")
        self.attribute = json.loads((Path(directory) / "config.json").read_text())["attribute"]
        self.stats = {"n_source": len(self.train)}


def label_keys(source: np.ndarray, wanted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Class codes as they are; multi-hot rows as one shared code per distinct label set."""
    if source.ndim == 1:
        return source, wanted
    _, codes = np.unique(np.concatenate([source, wanted.reshape(-1, source.shape[1])]), axis=0, return_inverse=True)
    codes = codes.ravel()
    return codes[:len(source)], codes[len(source):]


@hookimpl
def harness_generators() -> list[type]:
    return [Oversample]
