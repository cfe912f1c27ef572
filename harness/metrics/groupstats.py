"""Per-group confusion counts and ROC-AUCs, computed once per EvalInput and shared by metrics.

Everything is vectorised over samples: one bincount per count table and one sort per class for
the AUCs, so 10^6 predictions cost well under a second. Rows are the declared groups followed
by one row for unknown (-1) samples, which count in overall values but never in group values.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from harness.metrics.registry import EvalInput, MetricValue


@dataclass
class GroupCounts:
    """Confusion counts per row (declared groups, then unknown). Leading axes are allowed: the
    significance tests hold one table per bootstrap resample, n (B, G+1) and the others (B, G+1, K)."""
    n: np.ndarray  # (..., G+1) samples per row
    pred: np.ndarray  # (..., G+1, K) predicted positive for class c (one-vs-rest)
    pos: np.ndarray  # (..., G+1, K) true positive-class members
    tp: np.ndarray  # (..., G+1, K) both

    @property
    def neg(self) -> np.ndarray:
        return self.n[..., None] - self.pos

    @property
    def fp(self) -> np.ndarray:
        return self.pred - self.tp

    @property
    def tn(self) -> np.ndarray:
        return self.neg - self.fp

    def overall(self) -> "GroupCounts":
        return GroupCounts(self.n.sum(-1, keepdims=True), self.pred.sum(-2, keepdims=True),
                           self.pos.sum(-2, keepdims=True), self.tp.sum(-2, keepdims=True))


def ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den with NaN where den == 0 (an undefined rate, never 0)."""
    num, den = np.asarray(num, dtype=float), np.asarray(den, dtype=float)
    return np.divide(num, den, out=np.full(np.broadcast(num, den).shape, np.nan), where=den > 0)


def row_index(inp: EvalInput) -> np.ndarray:
    """Row of each sample: its group code, or G for unknown / out-of-vocabulary codes."""
    groups = np.asarray(inp.groups)
    num_groups = len(inp.group_names)
    return np.where((groups >= 0) & (groups < num_groups), groups, num_groups).astype(np.intp)


def _compute_counts(inp: EvalInput) -> GroupCounts:
    rows = row_index(inp)
    num_rows, k = len(inp.group_names) + 1, inp.num_classes
    n = np.bincount(rows, minlength=num_rows)
    if inp.multilabel:
        y_true, y_pred = np.asarray(inp.y_true).astype(bool), inp.y_pred.astype(bool)
        per_label = lambda m: np.stack([np.bincount(rows, weights=m[:, c], minlength=num_rows) for c in range(k)], 1)
        return GroupCounts(n, per_label(y_pred), per_label(y_true), per_label(y_true & y_pred))
    y_true, y_pred = np.asarray(inp.y_true), inp.y_pred
    cell_true, cell_pred = rows * k + y_true, rows * k + y_pred
    table = lambda cells: np.bincount(cells, minlength=num_rows * k).reshape(num_rows, k)
    return GroupCounts(n, table(cell_pred), table(cell_true), table(cell_true[y_true == y_pred]))


def counts(inp: EvalInput) -> GroupCounts:
    return inp.memo("counts", lambda: _compute_counts(inp))  # type: ignore[return-value]


def group_reasons(inp: EvalInput) -> list[str]:
    """Per declared group: "" when it is large enough, else why its values are NaN."""
    return inp.memo("group_reasons", lambda: [_size_reason(int(size), inp.min_group_n) for size in counts(inp).n[:-1]])  # type: ignore[return-value]


def _size_reason(size: int, min_group_n: int) -> str:
    if size == 0:
        return "empty group"
    return f"n={size} < min_group_n={min_group_n}" if size < min_group_n else ""


def valid_groups(inp: EvalInput) -> np.ndarray:
    return np.array([not r for r in group_reasons(inp)], dtype=bool)


def as_group_values(inp: EvalInput, values: np.ndarray, undefined: str = "undefined in group") -> dict[str, MetricValue]:
    """Wrap a (G,) array as named MetricValues carrying n; small groups become NaN with the reason."""
    out = {}
    for name, size, reason, value in zip(inp.group_names, counts(inp).n, group_reasons(inp), values):
        value = math.nan if reason else float(value)
        out[name] = MetricValue(value, reason or (undefined if math.isnan(value) else ""), {"n": int(size)})
    return out


def evaluated_classes(inp: EvalInput) -> np.ndarray:
    """Class columns a one-vs-rest fairness metric averages over: the positive class when binary."""
    return np.array([1]) if inp.binary else np.arange(inp.num_classes)


# ---- ROC-AUC as the Mann-Whitney statistic (equals sklearn's trapezoidal AUC, ties count 1/2) ----

def mann_whitney_auc(negative_scores: np.ndarray, positive_scores: np.ndarray) -> float:
    """P(score of a positive > score of a negative) + ½ P(equal); NaN when a side is empty."""
    if len(negative_scores) == 0 or len(positive_scores) == 0:
        return math.nan
    negatives, positives = np.sort(negative_scores), np.sort(positive_scores)  # sorted queries search faster
    below = np.searchsorted(negatives, positives, side="left").sum()
    below_or_tied = np.searchsorted(negatives, positives, side="right").sum()
    return float(below + below_or_tied) / 2 / (len(positives) * len(negatives))


def _compute_aucs(inp: EvalInput) -> tuple[np.ndarray, np.ndarray]:
    """Samples are grouped by row once (radix sort); each class then needs only value sorts."""
    rows = row_index(inp)
    num_rows = len(inp.group_names) + 1
    by_row = np.argsort(rows.astype(np.int16 if num_rows < 2**15 else np.intp), kind="stable")
    bounds = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=num_rows))])
    columns = evaluated_classes(inp)
    scores = np.ascontiguousarray(np.asarray(inp.proba)[by_row][:, columns].T)  # (C, N) in row order
    y_true = np.asarray(inp.y_true)[by_row]
    overall, per_row = np.empty(len(columns)), np.empty((num_rows, len(columns)))
    for j, c in enumerate(columns):
        positive = y_true[:, c].astype(bool) if inp.multilabel else y_true == c
        score = scores[j]
        overall[j] = mann_whitney_auc(score[~positive], score[positive])
        for r in range(num_rows):
            segment = slice(bounds[r], bounds[r + 1])
            per_row[r, j] = mann_whitney_auc(score[segment][~positive[segment]], score[segment][positive[segment]])
    return overall, per_row


def class_aucs(inp: EvalInput) -> tuple[np.ndarray, np.ndarray]:
    """One-vs-rest AUC per evaluated class: (overall (C,), per row (G+1, C)); NaN if a side is absent."""
    return inp.memo("aucs", lambda: _compute_aucs(inp))  # type: ignore[return-value]
