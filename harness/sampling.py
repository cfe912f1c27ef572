"""Sampling strategies: which (label, attribute) rows a generator is asked to synthesise.

Strategies live in the core so that every generator is asked for the same rows (METHODS.md):
- fair (Ktena et al.): primary attribute uniform, label from the training label prior;
- fill (MeDi): uniform over every (label x attribute) combination, missing ones included;
- replicate (Khosravi et al.): the training set's own rows, repeated;
- proportions (FairGen): attribute drawn from a given proportion vector, label uniform.
The amount is `ratio` x the size of the training split. Attributes other than the primary one
are copied from a random training row with the same label and primary value, else unknown (-1).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from harness.contracts import ConfigError
from harness.data import ImageSet

STRATEGIES = ("fair", "fill", "replicate", "proportions")


@dataclass(frozen=True)
class SamplingSpec:
    strategy: str = "fair"
    ratio: float = 1.0
    proportions: tuple[float, ...] = field(default=())

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise ConfigError(f"unknown sampling strategy '{self.strategy}'; choose one of {STRATEGIES}")
        if not self.ratio > 0:
            raise ConfigError(f"sampling ratio must be > 0, got {self.ratio}")
        if self.proportions and self.strategy != "proportions":
            raise ConfigError(f"`proportions` only applies to strategy 'proportions', not '{self.strategy}'; "
                              "drop it or set strategy = \"proportions\"")
        if self.strategy == "proportions" and not self.proportions:
            raise ConfigError("sampling strategy 'proportions' needs `proportions = [...]`, one value per group")

    @property
    def label(self) -> str:
        return f"{self.strategy}-{self.ratio:g}"

    def as_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"strategy": self.strategy, "ratio": self.ratio}
        if self.proportions:
            d["proportions"] = list(self.proportions)
        return d


def plan_requests(train: ImageSet, attribute: str, spec: SamplingSpec, seed: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Return the requested labels (n,) and attribute codes {name: (n,)} for a generator."""
    rng = np.random.default_rng(seed)
    n = max(1, int(round(spec.ratio * len(train))))
    codes = train.group_codes(attribute)
    n_groups = len(train.attribute_vocab[attribute])
    if spec.strategy == "replicate":  # ratio k: the training rows k times over (multi-hot labels too)
        rows = np.resize(np.arange(len(train)), n)
        return train.labels[rows].copy(), {k: v[rows].copy() for k, v in train.attributes.items()}
    if train.multilabel:
        raise ConfigError(f"sampling strategy '{spec.strategy}' draws one class per row; with multi-hot labels use "
                          "strategy = \"replicate\" (Khosravi et al.)")
    if spec.strategy == "fair":
        groups = rng.integers(0, n_groups, n)
        prior = np.bincount(train.labels, minlength=train.num_classes) / len(train)
        labels = rng.choice(train.num_classes, size=n, p=prior)
    elif spec.strategy == "fill":
        combos = np.array([(y, g) for y in range(train.num_classes) for g in range(n_groups)])
        picks = np.resize(rng.permutation(len(combos)), n)
        labels, groups = combos[picks, 0], combos[picks, 1]
    else:  # proportions
        p = np.asarray(spec.proportions, dtype=float)
        if len(p) != n_groups or np.any(p < 0) or p.sum() <= 0:
            raise ConfigError(f"`proportions` needs {n_groups} non-negative values (one per {attribute} group), got {list(p)}")
        groups = rng.choice(n_groups, size=n, p=p / p.sum())
        labels = rng.integers(0, train.num_classes, n)
    attributes = {attribute: groups.astype(np.int64)}
    for other, values in train.attributes.items():
        if other != attribute:
            attributes[other] = _copy_from_matching_rows(rng, train.labels, codes, values, labels, groups)
    return labels.astype(np.int64), attributes


def _copy_from_matching_rows(rng, train_labels, train_groups, values, labels, groups) -> np.ndarray:
    out = np.full(len(labels), -1, dtype=np.int64)
    for y, g in {(int(a), int(b)) for a, b in zip(labels, groups)}:
        want = (labels == y) & (groups == g)
        pool = values[(train_labels == y) & (train_groups == g)]
        if len(pool):
            out[want] = rng.choice(pool, size=int(want.sum()))
    return out
