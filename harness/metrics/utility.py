"""Utility metrics over predictions: accuracy, balanced accuracy, ROC-AUC, high-risk sensitivity,
each overall, per group (with n) and as worst-group and best-minus-worst gap values.

Definitions and sources: docs/metrics.md. Multilabel inputs use per-label 0/1 predictions
(proba >= 0.5): acc is the element-wise accuracy, bal_acc and auc are means over labels.
"""
from __future__ import annotations

import math

import numpy as np

from harness.metrics.groupstats import (GroupCounts, as_group_values, class_aucs, counts, evaluated_classes, ratio,
                                       row_index)
from harness.metrics.registry import HIGHER, LOWER, EvalInput, MetricValue, aggregate, register_metric


# ---- arrays over rows of a GroupCounts (declared groups + unknown, or the overall row) ----

def accuracy_rows(inp: EvalInput, c: GroupCounts) -> np.ndarray:
    if inp.multilabel:
        return ratio((c.tp + c.tn).sum(1), c.n * inp.num_classes)
    return ratio(c.tp.sum(1), c.n)


def balanced_accuracy_rows(inp: EvalInput, c: GroupCounts) -> np.ndarray:
    """Mean recall over the classes present in each row (sklearn's balanced_accuracy_score)."""
    recall = ratio(c.tp, c.pos)
    if inp.multilabel:  # per label: mean of TPR and TNR over the sides present
        recall = _nan_mean([recall, ratio(c.tn, c.neg)], axis=0)
    return _nan_mean(recall, axis=1)


def _nan_mean(values: np.ndarray | list, axis: int) -> np.ndarray:
    """Mean ignoring NaN, NaN (not a warning) where all are NaN."""
    values = np.asarray(values, dtype=float)
    present = ~np.isnan(values)
    return ratio(np.where(present, values, 0).sum(axis), present.sum(axis))


def high_risk_rows(inp: EvalInput) -> np.ndarray:
    """Per row (groups + unknown, then overall): share of high-risk cases predicted high-risk."""
    high = np.asarray(inp.high_risk, dtype=np.intp)
    if inp.multilabel:
        is_high = np.asarray(inp.y_true)[:, high].any(1)
        called_high = inp.y_pred[:, high].any(1)
    else:
        is_high, called_high = np.isin(inp.y_true, high), np.isin(inp.y_pred, high)
    rows, num_rows = row_index(inp), len(inp.group_names) + 1
    hits = np.bincount(rows, weights=is_high & called_high, minlength=num_rows)
    cases = np.bincount(rows, weights=is_high, minlength=num_rows)
    return ratio(np.append(hits, hits.sum()), np.append(cases, cases.sum()))


def auc_rows(inp: EvalInput) -> tuple[float, np.ndarray]:
    """(overall AUC, per-row AUC): mean of one-vs-rest AUCs, NaN if any evaluated class lacks a side."""
    overall, per_row = class_aucs(inp)
    return float(np.mean(overall)), per_row.mean(1)


def _auc_reason(inp: EvalInput) -> str:
    overall, _ = class_aucs(inp)
    missing = [int(c) for c, v in zip(evaluated_classes(inp), overall) if math.isnan(v)]
    return f"class(es) {missing} absent (or the only class) in the evaluated samples" if missing else ""


# ---- group views used by the metrics below and by group_report ----

def group_accuracy(inp: EvalInput) -> dict[str, MetricValue]:
    return as_group_values(inp, accuracy_rows(inp, counts(inp))[:-1])


def group_balanced_accuracy(inp: EvalInput) -> dict[str, MetricValue]:
    return as_group_values(inp, balanced_accuracy_rows(inp, counts(inp))[:-1])


def group_auc(inp: EvalInput) -> dict[str, MetricValue]:
    return as_group_values(inp, auc_rows(inp)[1][:-1], undefined="a class is absent in the group")


def group_high_risk_sens(inp: EvalInput) -> dict[str, MetricValue]:
    return as_group_values(inp, high_risk_rows(inp)[:-2], undefined="no high-risk case in the group")


def _gap(values: list[float]) -> float:
    return max(values) - min(values)


# ---- registered metrics ----

@register_metric("acc", HIGHER, tolerance=0.02, description="top-1 accuracy on the real test split")
def acc(inp: EvalInput) -> float:
    return float(accuracy_rows(inp, counts(inp).overall())[0])


@register_metric("bal_acc", HIGHER, tolerance=0.02, description="balanced accuracy: mean recall over classes present")
def bal_acc(inp: EvalInput) -> float:
    return float(balanced_accuracy_rows(inp, counts(inp).overall())[0])


@register_metric("auc", HIGHER, tolerance=0.02,
                 description="ROC-AUC: binary positive class, multiclass macro one-vs-rest, multilabel mean over labels")
def auc(inp: EvalInput) -> MetricValue:
    return MetricValue(auc_rows(inp)[0], _auc_reason(inp))


@register_metric("high_risk_sens", HIGHER, tolerance=0.03,
                 description="sensitivity for the declared high-risk classes (any high-risk class predicted)")
def high_risk_sens(inp: EvalInput) -> MetricValue:
    if not len(inp.high_risk):
        return MetricValue(math.nan, "the dataset declares no high-risk classes")
    value = float(high_risk_rows(inp)[-1])
    return MetricValue(value, "no high-risk case in the test set" if math.isnan(value) else "")


@register_metric("worst_acc", HIGHER, tolerance=0.03, description="accuracy of the worst group of the primary attribute")
def worst_acc(inp: EvalInput) -> MetricValue:
    return aggregate(group_accuracy(inp), min)


@register_metric("worst_auc", HIGHER, tolerance=0.03, description="AUC of the worst group of the primary attribute")
def worst_auc(inp: EvalInput) -> MetricValue:
    return aggregate(group_auc(inp), min)


@register_metric("gap_acc", LOWER, tolerance=0.03, description="best minus worst group accuracy (Ktena's fairness gap)")
def gap_acc(inp: EvalInput) -> MetricValue:
    return aggregate(group_accuracy(inp), _gap)


@register_metric("gap_bal_acc", LOWER, tolerance=0.03, description="best minus worst group balanced accuracy")
def gap_bal_acc(inp: EvalInput) -> MetricValue:
    return aggregate(group_balanced_accuracy(inp), _gap)


@register_metric("auc_gap", LOWER, tolerance=0.03, description="best minus worst group AUC (AUC parity, MEDFAIR's AUC gap)")
def auc_gap(inp: EvalInput) -> MetricValue:
    return aggregate(group_auc(inp), _gap)


def gap_metric_name(primary_metric: str) -> str:
    """The registered name of the best-minus-worst gap for a dataset's primary metric."""
    return "auc_gap" if primary_metric == "auc" else f"gap_{primary_metric}"


@register_metric("cas", HIGHER, source="cas", tolerance=0.02,
                 description="classification accuracy score: acc of a classifier trained on synthetic images only")
def cas(inp: EvalInput) -> float:
    return acc(inp)
