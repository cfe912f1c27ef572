"""Real-only baselines: methods that synthesise nothing and train on the real data alone.

- `none`: the plain real-only baseline; every leaderboard compares methods against this row
  (same data, scenario and classifier).
- `group_balanced`: group-balanced resampling of the real training set (MEDFAIR's resampling
  ERM variant): N rows drawn with replacement, N/G from each of the G groups of the primary
  attribute, handed to the classifier as per-row copy counts (0 = not drawn).
- `group_class_reweight`: group x class reweighting of the real training set (MEDFAIR's
  reweighting): row i weighs N / (C n_{g(i),y(i)}), C the number of non-empty (group, class)
  cells, so every cell carries the same total weight and the weights average 1.

Both hand their weights to the cell's classifier as `sample_weight`, which every classifier
honours (a sampler or a weighted loss, its choice); rows of unknown group form a group of their
own. With multi-hot labels a "class" is the row's whole set of findings.
"""
from __future__ import annotations

import numpy as np

from harness import Generator, ImageSet, hookimpl
from plugins.generators.oversample import label_keys


class RealOnly(Generator):
    name = "none"
    version = "1"
    produces_images = False


class GroupBalanced(Generator):
    name = "group_balanced"
    version = "1"
    produces_images = False
    defaults = {"attribute": ""}  # "" = the first attribute of the training set

    def sample_weight(self, train: ImageSet, seed: int) -> np.ndarray:
        groups = train.group_codes(self.params["attribute"] or next(iter(train.attributes)))
        return balanced_copy_counts(groups, np.random.default_rng(seed))


class GroupClassReweight(Generator):
    name = "group_class_reweight"
    version = "1"
    produces_images = False
    defaults = {"attribute": ""}  # "" = the first attribute of the training set

    def sample_weight(self, train: ImageSet, seed: int) -> np.ndarray:
        groups = train.group_codes(self.params["attribute"] or next(iter(train.attributes)))
        classes, _ = label_keys(train.labels, train.labels[:0])
        return inverse_cell_frequency(groups, classes)


def balanced_copy_counts(groups: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """How often each row is drawn when N rows are drawn with replacement, an equal share from
    each present group (the N mod G leftover draws go to randomly chosen groups)."""
    present = np.unique(groups)
    quota = np.full(len(present), len(groups) // len(present))
    quota[rng.choice(len(present), size=len(groups) % len(present), replace=False)] += 1
    counts = np.zeros(len(groups))
    for group, size in zip(present, quota):
        np.add.at(counts, rng.choice(np.flatnonzero(groups == group), size=size), 1.0)
    return counts


def inverse_cell_frequency(groups: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """N / (C n_cell) per row: every non-empty (group, class) cell gets total weight N / C."""
    _, cell, counts = np.unique(np.stack([groups, classes]), axis=1, return_inverse=True, return_counts=True)
    cell = cell.ravel()
    return len(groups) / (len(counts) * counts[cell].astype(np.float64))


@hookimpl
def harness_generators() -> list[type]:
    return [RealOnly, GroupBalanced, GroupClassReweight]
