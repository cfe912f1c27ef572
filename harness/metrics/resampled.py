"""Prediction metrics under many bootstrap resamples at once, for the significance tests.

A resample of the test set is a vector of multiplicities w (how often each sample was drawn).
Every confusion-count metric (acc, bal_acc, worst_acc, gap_acc, dp, dp_floor, eo, eodds, essp, nar, …) is a
function of the weighted counts C[g, y, ŷ] = Σ_i w_i·1[...], which are linear in w, so the counts
of B resamples are one sparse product; the AUC family is a weighted Mann–Whitney statistic on a
sort order fixed once per class, with cumulative sums of the negatives' weights. The values are
the registered metric functions' on the resampled samples, to the last bit (tests/test_resampled.py);
a metric without a batched form here falls back to calling its function once per resample.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, replace
from typing import Callable

import numpy as np
from scipy import sparse

from harness.metrics.groupstats import GroupCounts, evaluated_classes, ratio, row_index
from harness.metrics.registry import METRICS, EvalInput, get_metric
from harness.metrics.utility import _nan_mean


def weighted_sums(columns_by_sample: np.ndarray, columns: np.ndarray, num_columns: int,
                  samples: np.ndarray | None = None) -> np.ndarray:
    """(B, num_columns): Σ_i w_bi over the samples mapped to each column, from the weights laid
    out one row per sample (n, B); one sparse product."""
    n = columns_by_sample.shape[0]
    samples = np.arange(n) if samples is None else samples
    matrix = sparse.csr_matrix((np.ones(len(columns), dtype=columns_by_sample.dtype), (columns, samples)),
                               shape=(num_columns, n))
    return np.asarray(matrix @ columns_by_sample).T


@dataclass
class Resamples:
    """B resamples of n test samples: row indices (B, n), multiplicities (B, n), and the
    multiplicities one row per sample (n, B), in float32 while every sum of counts stays exact."""
    indices: np.ndarray
    weights: np.ndarray

    def __post_init__(self):
        n = self.weights.shape[1]
        # float32 holds integers below 2^24 exactly; AUC numerators reach n²/2
        self.by_sample = np.ascontiguousarray(self.weights.T, dtype=np.float32 if n <= 5000 else np.float64)

    @property
    def b(self) -> int:
        return self.weights.shape[0]

    def scratch(self, name: str, rows: int) -> np.ndarray:
        """A reusable (rows, B) buffer of the calling thread: allocating arrays this large anew
        costs more than filling them."""
        local = self.__dict__.setdefault("_local", threading.local())
        buffers = local.__dict__.setdefault("buffers", {})
        if name not in buffers or buffers[name].shape[0] != rows:
            buffers[name] = np.empty((rows, self.b), dtype=self.by_sample.dtype)
        return buffers[name]


def counts(inp: EvalInput, resamples: Resamples) -> GroupCounts:
    """The weighted confusion counts of every resample: one sparse product per count table."""
    rows, weights = row_index(inp), resamples.by_sample
    num_rows, k = len(inp.group_names) + 1, inp.num_classes
    b = resamples.b
    n = weighted_sums(weights, rows, num_rows)
    if inp.multilabel:
        y_true, y_pred = np.asarray(inp.y_true).astype(np.intp), inp.y_pred.astype(np.intp)
        label = np.arange(k)[None, :]
        cells = ((rows[:, None] * k + label) * 2 + y_true) * 2 + y_pred  # (n, L)
        samples = np.repeat(np.arange(len(rows)), k)
        table = weighted_sums(weights, cells.ravel(), num_rows * k * 4, samples).reshape(b, num_rows, k, 2, 2)
        return GroupCounts(n, table[..., :, 1].sum(-1), table[..., 1, :].sum(-1), table[..., 1, 1])
    y_true, y_pred = np.asarray(inp.y_true).astype(np.intp), inp.y_pred.astype(np.intp)
    table = weighted_sums(weights, (rows * k + y_true) * k + y_pred, num_rows * k * k).reshape(b, num_rows, k, k)
    return GroupCounts(n, table.sum(2), table.sum(3), np.diagonal(table, axis1=2, axis2=3))


# ---- reductions over groups, NaN-aware like harness.metrics.registry.aggregate ----

def _valid_groups(inp: EvalInput, c: GroupCounts) -> np.ndarray:
    """(B, G): the group has at least min_group_n (and at least one) samples in the resample."""
    return c.n[:, :-1] >= max(inp.min_group_n, 1)


def _group_values(inp: EvalInput, c: GroupCounts, rows: np.ndarray) -> np.ndarray:
    return np.where(_valid_groups(inp, c), rows[:, :-1], np.nan)


def _reduce(groups: np.ndarray, reduce: Callable[[np.ndarray], np.ndarray], minimum: int = 2) -> np.ndarray:
    present = ~np.isnan(groups)
    with np.errstate(invalid="ignore", divide="ignore"):
        value = reduce(groups)
    return np.where(present.sum(1) >= minimum, value, np.nan)


def _worst(groups: np.ndarray) -> np.ndarray:
    return _reduce(groups, lambda g: np.where(np.isnan(g), np.inf, g).min(1), minimum=1)


def _gap(groups: np.ndarray) -> np.ndarray:
    return _reduce(groups, lambda g: np.where(np.isnan(g), -np.inf, g).max(1) - np.where(np.isnan(g), np.inf, g).min(1))


def _nar(groups: np.ndarray) -> np.ndarray:
    return _reduce(groups, lambda g: _gap(g) / (_nan_mean(g, 1) + 1e-6))


def _equity_scaled(overall: np.ndarray, groups: np.ndarray, scale: float = 1.0) -> np.ndarray:
    deviation = np.where(np.isnan(groups), 0.0, np.abs(scale * groups - scale * overall[:, None]))
    value = _reduce(groups, lambda g: scale * overall / (1 + deviation.sum(1)))
    return np.where(np.isnan(overall), np.nan, value)


def _per_class_gaps(inp: EvalInput, c: GroupCounts, rates: np.ndarray) -> np.ndarray:
    """(B, C) per-class max − min rate over valid groups where it is defined (NaN under 2)."""
    rates = np.where(_valid_groups(inp, c)[:, :, None], rates, np.nan)
    defined = ~np.isnan(rates)
    return np.where(defined.sum(1) >= 2,
                    np.where(defined, rates, -np.inf).max(1) - np.where(defined, rates, np.inf).min(1), np.nan)


def _class_gaps(inp: EvalInput, c: GroupCounts, rates: np.ndarray) -> np.ndarray:
    """The mean of the per-class gaps over classes where they are defined."""
    return _nan_mean(_per_class_gaps(inp, c, rates), 1)


# ---- rows (groups + unknown) of utility values ----

def _accuracy_rows(inp: EvalInput, c: GroupCounts) -> np.ndarray:
    if inp.multilabel:
        return ratio((c.tp + c.tn).sum(-1), c.n * inp.num_classes)
    return ratio(c.tp.sum(-1), c.n)


def _balanced_rows(inp: EvalInput, c: GroupCounts) -> np.ndarray:
    recall = ratio(c.tp, c.pos)
    if inp.multilabel:
        recall = _nan_mean(np.stack([recall, ratio(c.tn, c.neg)]), 0)
    return _nan_mean(recall, -1)


#: discordant (positive ≤ negative) pairs per sample up to which AUCs are counted pair by pair
PAIR_LIMIT = 2


def _auc_totals(score: np.ndarray, positive: np.ndarray, rows: np.ndarray, num_rows: int, resamples: Resamples,
                w_pos: np.ndarray, w_neg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Twice the weighted Mann–Whitney count Σ w_i w_j (2·[s_i > s_j] + [s_i = s_j]) over positive i
    and negative j: overall (B,) and within each row (B, R). A good classifier has few discordant
    pairs (s_i ≤ s_j), so 2·W⁺W⁻ minus those is cheapest; otherwise cumulative sums of the
    negatives' weights in score order."""
    pos_idx, neg_idx = np.flatnonzero(positive), np.flatnonzero(~positive)
    neg_order = neg_idx[np.argsort(score[neg_idx], kind="stable")]
    start = np.searchsorted(score[neg_order], score[pos_idx], "left")
    lengths = len(neg_order) - start
    if lengths.sum() > PAIR_LIMIT * len(score):
        return (_auc_cumulative(score, positive, np.zeros_like(rows), 1, resamples)[:, 0],
                _auc_cumulative(score, positive, rows, num_rows, resamples))
    weights = resamples.by_sample
    first = np.cumsum(lengths) - lengths
    offsets = np.arange(lengths.sum()) - np.repeat(first - start, lengths)
    pair_pos, pair_neg = np.repeat(pos_idx, lengths), neg_order[offsets]
    product = weights[pair_pos] * weights[pair_neg]
    product *= np.where(score[pair_pos] == score[pair_neg], 1, 2).astype(weights.dtype)[:, None]
    same_row = rows[pair_pos] == rows[pair_neg]
    within = weighted_sums(product[same_row], rows[pair_pos][same_row], num_rows)
    return 2 * w_pos.sum(1) * w_neg.sum(1) - product.sum(0), 2 * w_pos * w_neg - within


def _auc_cumulative(score: np.ndarray, positive: np.ndarray, rows: np.ndarray, num_rows: int,
                    resamples: Resamples) -> np.ndarray:
    order = np.lexsort((score, rows))
    s, r, pos = score[order], rows[order], positive[order]
    n = len(s)
    new_block = np.r_[True, (s[1:] != s[:-1]) | (r[1:] != r[:-1])]
    block_start = np.flatnonzero(new_block)
    block_of = np.cumsum(new_block) - 1
    block_end = np.r_[block_start[1:], n]
    weights, cum_neg = resamples.scratch("sorted", n), resamples.scratch("cumulative", n + 1)
    np.take(resamples.by_sample, order, axis=0, out=weights)
    cum_neg[0] = 0
    np.multiply(weights, (~pos)[:, None], out=cum_neg[1:])
    if resamples.b < 256:
        np.cumsum(cum_neg[1:], axis=0, out=cum_neg[1:])
    else:  # row by row: with many resamples several times faster than np.cumsum along axis 0
        for i in range(2, n + 1):
            np.add(cum_neg[i - 1], cum_neg[i], out=cum_neg[i])
    where = np.flatnonzero(pos)
    counted = cum_neg[block_start[block_of[where]]]
    counted += cum_neg[block_end[block_of[where]]]
    counted -= 2 * cum_neg[np.searchsorted(r, np.arange(num_rows))[r[where]]]
    counted *= weights[where]
    return weighted_sums(counted, r[where], num_rows)


def _class_aucs(inp: EvalInput, resamples: Resamples, c: GroupCounts) -> tuple[np.ndarray, np.ndarray]:
    """(overall (B, C), per row (B, R, C)) one-vs-rest AUCs of the evaluated classes."""
    rows, num_rows = row_index(inp), len(inp.group_names) + 1
    y_true, proba = np.asarray(inp.y_true), np.asarray(inp.proba)
    overall, per_row = [], []
    for k in evaluated_classes(inp):
        positive = y_true[:, k].astype(bool) if inp.multilabel else y_true == k
        w_pos, w_neg = c.pos[:, :, k], c.neg[:, :, k]
        twice_overall, twice_rows = _auc_totals(proba[:, k], positive, rows, num_rows, resamples, w_pos, w_neg)
        overall.append(ratio(np.asarray(twice_overall, dtype=float) / 2,
                             np.asarray(w_pos.sum(1), dtype=float) * np.asarray(w_neg.sum(1), dtype=float)))
        per_row.append(ratio(np.asarray(twice_rows, dtype=float) / 2,
                             np.asarray(w_pos, dtype=float) * np.asarray(w_neg, dtype=float)))
    return np.stack(overall, -1), np.stack(per_row, -1)


def _high_risk(inp: EvalInput, resamples: Resamples) -> np.ndarray:
    if not len(inp.high_risk):
        return np.full(resamples.b, np.nan)
    high = np.asarray(inp.high_risk, dtype=np.intp)
    if inp.multilabel:
        is_high, called_high = np.asarray(inp.y_true)[:, high].any(1), inp.y_pred[:, high].any(1)
    else:
        is_high, called_high = np.isin(inp.y_true, high), np.isin(inp.y_pred, high)
    hits = weighted_sums(resamples.by_sample, np.zeros(int((is_high & called_high).sum()), dtype=np.intp), 1,
                         np.flatnonzero(is_high & called_high))[:, 0]
    cases = weighted_sums(resamples.by_sample, np.zeros(int(is_high.sum()), dtype=np.intp), 1, np.flatnonzero(is_high))[:, 0]
    return ratio(hits, cases)


class _Batch:
    """Shared intermediate arrays of one EvalInput under one set of resample weights."""

    def __init__(self, inp: EvalInput, resamples: Resamples):
        self.inp, self.resamples = inp, resamples
        self._memo: dict[str, object] = {}

    def get(self, key: str, compute: Callable[[], object]):
        if key not in self._memo:
            self._memo[key] = compute()
        return self._memo[key]

    @property
    def c(self) -> GroupCounts:
        return self.get("counts", lambda: counts(self.inp, self.resamples))

    def overall(self, rows_fn) -> np.ndarray:
        return rows_fn(self.inp, self.c.overall())[:, 0]

    def groups(self, rows_fn) -> np.ndarray:
        return self.get(rows_fn.__name__, lambda: _group_values(self.inp, self.c, rows_fn(self.inp, self.c)))

    @property
    def aucs(self) -> tuple[np.ndarray, np.ndarray]:
        return self.get("aucs", lambda: _class_aucs(self.inp, self.resamples, self.c))

    def auc(self) -> np.ndarray:
        return self.aucs[0].mean(-1)

    def group_auc(self) -> np.ndarray:
        return _group_values(self.inp, self.c, self.aucs[1].mean(-1))

    def rates(self, kind: str) -> np.ndarray:
        c, classes = self.c, evaluated_classes(self.inp)
        num, den = {"selection": (c.pred, c.n[..., None]), "prevalence": (c.pos, c.n[..., None]),
                    "tpr": (c.tp, c.pos), "fpr": (c.fp, c.neg)}[kind]
        return ratio(num, den)[:, :-1][:, :, classes]


def _eodds(b: _Batch) -> np.ndarray:
    gaps = np.maximum(_per_class_gaps(b.inp, b.c, b.rates("tpr")), _per_class_gaps(b.inp, b.c, b.rates("fpr")))
    return _nan_mean(gaps, 1)


BATCHED: dict[str, Callable[[_Batch], np.ndarray]] = {
    "acc": lambda b: b.overall(_accuracy_rows),
    "bal_acc": lambda b: b.overall(_balanced_rows),
    "auc": lambda b: b.auc(),
    "high_risk_sens": lambda b: _high_risk(b.inp, b.resamples),
    "worst_acc": lambda b: _worst(b.groups(_accuracy_rows)),
    "worst_auc": lambda b: _worst(b.group_auc()),
    "gap_acc": lambda b: _gap(b.groups(_accuracy_rows)),
    "gap_bal_acc": lambda b: _gap(b.groups(_balanced_rows)),
    "auc_gap": lambda b: _gap(b.group_auc()),
    "dp": lambda b: _class_gaps(b.inp, b.c, b.rates("selection")),
    "dp_floor": lambda b: _class_gaps(b.inp, b.c, b.rates("prevalence")),
    "dp_excess": lambda b: _nan_mean(_per_class_gaps(b.inp, b.c, b.rates("selection"))
                                     - _per_class_gaps(b.inp, b.c, b.rates("prevalence")), 1),
    "eo": lambda b: _class_gaps(b.inp, b.c, b.rates("tpr")),
    "eodds": _eodds,
    "label_auc_gap": lambda b: _class_gaps(b.inp, b.c, b.aucs[1][:, :-1]),
    "essp": lambda b: _equity_scaled(b.overall(_accuracy_rows), b.groups(_accuracy_rows)),
    "es_auc": lambda b: _equity_scaled(b.auc(), b.group_auc()),
    "essp_pct": lambda b: _equity_scaled(b.overall(_accuracy_rows), b.groups(_accuracy_rows), 100.0),
    "nar": lambda b: _nar(b.groups(_accuracy_rows)),
}


def resampled_values(inp: EvalInput, metrics: list[str], resamples: Resamples) -> np.ndarray:
    """(B, M): each metric on each resample. Registered metrics without a batched form here (a
    plugin's own) are called once per resample, which is slow at large B."""
    batch = _Batch(inp, resamples)
    out = np.empty((resamples.b, len(metrics)))
    for j, name in enumerate(metrics):
        if name in BATCHED and METRICS[name].fn.__module__.startswith("harness.metrics."):
            out[:, j] = BATCHED[name](batch)
        else:
            fn = get_metric(name)
            out[:, j] = [fn(subset(inp, index)).value for index in resamples.indices]
    return out


def subset(inp: EvalInput, index: np.ndarray) -> EvalInput:
    """The EvalInput of the samples at `index` (repeats allowed): what a resample evaluates."""
    return replace(inp, y_true=np.asarray(inp.y_true)[index], proba=np.asarray(inp.proba)[index],
                   groups=np.asarray(inp.groups)[index], _memo={})
