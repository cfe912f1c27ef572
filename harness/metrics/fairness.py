"""Classifier-side fairness metrics over the primary attribute's groups: DP with its floor (the DP
of a perfect classifier, set by the groups' label prevalences) and the excess over it, EO,
equalized odds, equity-scaled performance (ESSP, ES-AUC, FairGen's percent ESSP) and normalized accuracy range.

Binary tasks use the positive class; multiclass and multilabel tasks average one-vs-rest gaps
over classes. Groups under min_group_n are left out, and each value says what it skipped.
Definitions and sources: docs/metrics.md.
"""
from __future__ import annotations

import math

import numpy as np

from harness.metrics.groupstats import class_aucs, counts, evaluated_classes, ratio, valid_groups
from harness.metrics.registry import HIGHER, LOWER, EvalInput, MetricValue, aggregate, register_metric
from harness.metrics.utility import accuracy_rows, auc_rows, group_accuracy, group_auc


def selection_rates(inp: EvalInput) -> np.ndarray:
    """P(ŷ=c | g) for declared groups x evaluated classes."""
    c = counts(inp)
    return ratio(c.pred, c.n[:, None])[:-1][:, evaluated_classes(inp)]


def prevalences(inp: EvalInput) -> np.ndarray:
    """P(y=c | g) for declared groups x evaluated classes: a perfect classifier's selection rates."""
    c = counts(inp)
    return ratio(c.pos, c.n[:, None])[:-1][:, evaluated_classes(inp)]


def true_positive_rates(inp: EvalInput) -> np.ndarray:
    c = counts(inp)
    return ratio(c.tp, c.pos)[:-1][:, evaluated_classes(inp)]


def false_positive_rates(inp: EvalInput) -> np.ndarray:
    c = counts(inp)
    return ratio(c.fp, c.neg)[:-1][:, evaluated_classes(inp)]


def class_gaps(inp: EvalInput, rates: np.ndarray) -> np.ndarray:
    """Per class: max minus min rate over valid groups where the rate is defined (NaN under 2 groups)."""
    rates = np.where(valid_groups(inp)[:, None], rates, np.nan)
    defined = ~np.isnan(rates)
    high = np.where(defined, rates, -np.inf).max(0)
    low = np.where(defined, rates, np.inf).min(0)
    return np.where(defined.sum(0) >= 2, high - low, np.nan)


def _mean_over_classes(inp: EvalInput, gaps: np.ndarray) -> MetricValue:
    skipped_groups = [name for name, ok in zip(inp.group_names, valid_groups(inp)) if not ok]
    notes = [f"skipped {len(skipped_groups)} group(s) under min_group_n={inp.min_group_n}: {', '.join(skipped_groups)}"] \
        if skipped_groups else []
    undefined = [int(c) for c, gap in zip(evaluated_classes(inp), gaps) if math.isnan(gap)]
    if len(undefined) == len(gaps):
        return MetricValue(math.nan, "; ".join(["fewer than 2 valid groups define the rate for any class"] + notes))
    if undefined:
        notes.append(f"skipped class(es) {undefined}: rate defined in fewer than 2 groups")
    return MetricValue(float(np.nanmean(gaps)), "; ".join(notes))


@register_metric("dp", LOWER, tolerance=0.03,
                 description="demographic parity difference: max-min P(ŷ=c|g), mean over one-vs-rest classes")
def dp(inp: EvalInput) -> MetricValue:
    return _mean_over_classes(inp, class_gaps(inp, selection_rates(inp)))


@register_metric("dp_floor", LOWER, tolerance=0.03,
                 description="DP of a perfect classifier (ŷ = y) on the same test set: max-min P(y=c|g), mean over classes")
def dp_floor(inp: EvalInput) -> MetricValue:
    return _mean_over_classes(inp, class_gaps(inp, prevalences(inp)))


@register_metric("dp_excess", LOWER, tolerance=0.03,
                 description="dp minus dp_floor: the parity gap beyond the groups' label-prevalence gap (can be < 0)")
def dp_excess(inp: EvalInput) -> MetricValue:
    return _mean_over_classes(inp, class_gaps(inp, selection_rates(inp)) - class_gaps(inp, prevalences(inp)))


@register_metric("eo", LOWER, tolerance=0.03,
                 description="equal opportunity difference: max-min TPR over groups, mean over one-vs-rest classes")
def eo(inp: EvalInput) -> MetricValue:
    return _mean_over_classes(inp, class_gaps(inp, true_positive_rates(inp)))


@register_metric("eodds", LOWER, tolerance=0.03,
                 description="equalized odds difference: max(TPR gap, FPR gap), mean over one-vs-rest classes")
def eodds(inp: EvalInput) -> MetricValue:
    gaps = np.maximum(class_gaps(inp, true_positive_rates(inp)), class_gaps(inp, false_positive_rates(inp)))
    return _mean_over_classes(inp, gaps)


@register_metric("label_auc_gap", LOWER, tolerance=0.03,
                 description="per-label AUC parity: max-min group AUC of each label (one-vs-rest class), mean over labels")
def label_auc_gap(inp: EvalInput) -> MetricValue:
    """Multilabel (Khosravi et al.'s per-finding gaps): each label's best-minus-worst group AUC,
    then the mean over labels; unlike auc_gap, which compares the groups' label-averaged AUCs.
    Binary: the positive class only, so it equals auc_gap."""
    return _mean_over_classes(inp, class_gaps(inp, class_aucs(inp)[1][:-1]))


def equity_scaled(overall: float, groups: dict[str, MetricValue], scale: float = 1.0) -> MetricValue:
    """ES(M) = M / (1 + Σ_g |M_g − M|) over valid groups (FairSeg's equity_scaled_perf)."""
    def es(values: list[float]) -> float:
        return scale * overall / (1 + sum(abs(scale * v - scale * overall) for v in values))
    if math.isnan(overall):
        return MetricValue(math.nan, "the overall metric is undefined")
    return aggregate(groups, es)


@register_metric("essp", HIGHER, tolerance=0.03, description="equity-scaled accuracy acc / (1 + Σ_g |acc_g − acc|)")
def essp(inp: EvalInput) -> MetricValue:
    return equity_scaled(float(accuracy_rows(inp, counts(inp).overall())[0]), group_accuracy(inp))


@register_metric("es_auc", HIGHER, tolerance=0.03, description="equity-scaled AUC auc / (1 + Σ_g |auc_g − auc|)")
def es_auc(inp: EvalInput) -> MetricValue:
    return equity_scaled(auc_rows(inp)[0], group_auc(inp))


@register_metric("essp_pct", HIGHER, scale_dependent=False, tolerance=3.0,
                 description="FairGen-compatible ESSP on percentages: acc% / (1 + Σ_g |acc_g% − acc%|)")
def essp_pct(inp: EvalInput) -> MetricValue:
    return equity_scaled(float(accuracy_rows(inp, counts(inp).overall())[0]), group_accuracy(inp), scale=100.0)


@register_metric("nar", LOWER, tolerance=0.05,
                 description="normalized accuracy range (max_g acc_g − min_g acc_g) / (mean_g acc_g + 1e-6)")
def nar(inp: EvalInput) -> MetricValue:
    return aggregate(group_accuracy(inp), lambda v: (max(v) - min(v)) / (float(np.mean(v)) + 1e-6))

