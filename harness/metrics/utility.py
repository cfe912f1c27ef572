"""Utility metrics over predictions: accuracy overall, per group and for the worst group."""
from __future__ import annotations

import math

import numpy as np

from harness.metrics.registry import HIGHER, LOWER, EvalInput, MetricValue, aggregate, per_group, register_metric


def accuracy(inp: EvalInput, mask: np.ndarray | None = None) -> float:
    if mask is None:
        mask = np.ones(len(inp.y_true), dtype=bool)
    if not mask.any():
        return math.nan
    return float(np.mean(inp.y_pred[mask] == inp.y_true[mask]))


def group_accuracy(inp: EvalInput) -> dict[str, MetricValue]:
    return per_group(inp, lambda mask: accuracy(inp, mask))


@register_metric("acc", HIGHER, description="top-1 accuracy on the real test split")
def acc(inp: EvalInput) -> float:
    return accuracy(inp)


@register_metric("worst_group_acc", HIGHER, description="accuracy of the worst group of the primary attribute")
def worst_group_acc(inp: EvalInput) -> MetricValue:
    return aggregate(group_accuracy(inp), min)


@register_metric("gap_acc", LOWER, description="best minus worst group accuracy (Ktena's fairness gap)")
def gap_acc(inp: EvalInput) -> MetricValue:
    return aggregate(group_accuracy(inp), lambda v: max(v) - min(v))


@register_metric("cas", HIGHER, source="cas",
                 description="classification accuracy score: acc of a classifier trained on synthetic images only")
def cas(inp: EvalInput) -> float:
    return accuracy(inp)
