"""Skew scenarios: seeded cuts of the training split, shared by every dataset.

A scenario only ever removes training samples; validation and test splits are untouched.
Each returns the new training set and a report of what it removed.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from harness.data import ImageSet


@dataclass(frozen=True)
class Scenario:
    """Base scenario: `natural` (the dataset as released)."""

    attribute: str = ""

    @property
    def spec(self) -> dict[str, Any]:
        return {"type": type(self).__name__, **self.__dict__}

    def apply(self, train: ImageSet, seed: int) -> tuple[ImageSet, dict[str, Any]]:
        keep = self.keep(train, np.random.default_rng(seed))
        keep = np.sort(np.asarray(keep, dtype=np.int64))
        return train.subset(keep), _report(train, keep, self.attribute)

    def keep(self, train: ImageSet, rng: np.random.Generator) -> np.ndarray:
        return np.arange(len(train))


Natural = Scenario


@dataclass(frozen=True)
class Cap(Scenario):
    """Ktena et al.: at most k training samples from each under-represented group.

    Under-represented = every group except the largest one.
    """

    k: int = 100

    def keep(self, train: ImageSet, rng: np.random.Generator) -> np.ndarray:
        codes = train.group_codes(self.attribute)
        values, counts = np.unique(codes, return_counts=True)
        majority = values[np.argmax(counts)]
        keep = [np.flatnonzero(codes == majority)]
        for value in values:
            if value != majority:
                members = np.flatnonzero(codes == value)
                keep.append(rng.permutation(members)[: self.k])
        return np.concatenate(keep)


@dataclass(frozen=True)
class MinorityFraction(Scenario):
    """Subsample the smallest group so that it is fraction p of the training set."""

    p: float = 0.05

    def keep(self, train: ImageSet, rng: np.random.Generator) -> np.ndarray:
        codes = train.group_codes(self.attribute)
        values, counts = np.unique(codes, return_counts=True)
        minority = values[np.argmin(counts)]
        members = np.flatnonzero(codes == minority)
        others = np.flatnonzero(codes != minority)
        # n_min / (n_min + n_others) = p  =>  n_min = p * n_others / (1 - p)
        n_min = min(len(members), int(round(self.p * len(others) / (1 - self.p))))
        return np.concatenate([others, rng.permutation(members)[:n_min]])


def _report(train: ImageSet, keep: np.ndarray, attribute: str) -> dict[str, Any]:
    report: dict[str, Any] = {"n_before": len(train), "n_after": int(len(keep))}
    if attribute:
        vocab = train.attribute_vocab[attribute]
        codes = train.group_codes(attribute)
        removed = np.ones(len(train), dtype=bool)
        removed[keep] = False
        report["removed_per_group"] = {
            vocab[c] if c >= 0 else "unknown": int(np.sum(removed & (codes == c))) for c in np.unique(codes)
        }
    return report


def default_scenarios(attribute: str) -> dict[str, Scenario]:
    return {
        "natural": Scenario(attribute),
        "cap1000": Cap(attribute, k=1000),
        "cap100": Cap(attribute, k=100),
        "minority5": MinorityFraction(attribute, p=0.05),
    }
