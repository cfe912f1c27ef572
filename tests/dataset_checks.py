"""Shared checks for the embedded datasets: the subgroup gap that training skew creates.

A fast classifier (logistic regression on block-averaged pixels) is trained twice per seed on
training sets of the same size: one where the minority group is nearly absent, one balanced over
groups. Each is scored per group on the test split.
"""
from __future__ import annotations

import numpy as np
from sklearn.linear_model import LogisticRegression

from harness import Dataset, ImageSet


def pooled_pixels(images: ImageSet, block: int = 4) -> np.ndarray:
    x = images.images.astype(np.float32) / 255
    n, c, h, w = x.shape
    return x.reshape(n, c, h // block, block, w // block, block).mean((3, 5)).reshape(n, -1)


def group_accuracy(train: ImageSet, test: ImageSet, attribute: str) -> np.ndarray:
    model = LogisticRegression(max_iter=300).fit(pooled_pixels(train), train.labels)
    correct = model.predict(pooled_pixels(test)) == test.labels
    groups = test.group_codes(attribute)
    return np.array([correct[groups == g].mean() for g in range(len(test.attribute_vocab[attribute]))])


def skew_and_balanced_gaps(dataset: Dataset, seeds: range, per_group: int, minority_kept: int,
                           majority: int, minority: int) -> tuple[float, float]:
    """Mean over seeds of acc[majority] - acc[minority] for a skewed and a balanced training set."""
    attribute = dataset.primary_attribute
    skewed_gaps, balanced_gaps = [], []
    for seed in seeds:
        splits = dataset.load(seed)
        codes = splits.train.group_codes(attribute)
        groups = len(splits.train.attribute_vocab[attribute])
        rng = np.random.default_rng(seed)
        members = [rng.permutation(np.flatnonzero(codes == g)) for g in range(groups)]
        balanced = np.concatenate([m[:per_group] for m in members])
        # the same total size: the minority keeps a handful, the others share the rest
        spare = (per_group - minority_kept) // (groups - 1)
        skewed = np.concatenate([m[:minority_kept] if g == minority else m[:per_group + spare]
                                 for g, m in enumerate(members)])
        for keep, gaps in ((skewed, skewed_gaps), (balanced, balanced_gaps)):
            accuracy = group_accuracy(splits.train.subset(keep), splits.test, attribute)
            gaps.append(accuracy[majority] - accuracy[minority])
    return float(np.mean(skewed_gaps)), float(np.mean(balanced_gaps))
