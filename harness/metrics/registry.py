"""The one registry of metric functions the leaderboard reads.

A metric is a pure function of an EvalInput (arrays only: no torch, no plugins) that returns a
float, or a MetricValue carrying the reason when the value is NaN. Each metric declares its
name, version, direction (which way is better), whether it is scale dependent (shown ×100 in
the percent view) and the tolerance `harness check` allows by default: an absolute floor, and for
unbounded metrics (the FID family) also a fraction of the baseline value.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property
from typing import Callable

import numpy as np

HIGHER, LOWER = "higher", "lower"


@dataclass
class EvalInput:
    y_true: np.ndarray  # (N,) class codes, or (N, L) multi-hot
    proba: np.ndarray  # (N, K) predicted probabilities (multilabel: one per label)
    groups: np.ndarray  # (N,) codes of the primary sensitive attribute; -1 = unknown
    group_names: list[str]
    min_group_n: int = 10
    high_risk: tuple[int, ...] = ()
    attribute: str = ""
    # intermediate arrays shared by several metrics (group counts, AUCs), filled on first use
    _memo: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def multilabel(self) -> bool:
        return np.ndim(self.y_true) == 2

    @property
    def binary(self) -> bool:
        return not self.multilabel and self.num_classes == 2

    @cached_property
    def y_pred(self) -> np.ndarray:
        """Argmax class (N,), or for multilabel the (N, L) 0/1 matrix proba >= 0.5."""
        if self.multilabel:
            return (self.proba >= 0.5).astype(np.int64)
        return np.argmax(self.proba, axis=1)

    def memo(self, key: str, compute: Callable[[], object]) -> object:
        if key not in self._memo:
            self._memo[key] = compute()
        return self._memo[key]

    @property
    def num_classes(self) -> int:
        return int(self.proba.shape[1])

    def group_masks(self) -> dict[str, np.ndarray]:
        """One boolean mask per declared group (unknown -1 excluded)."""
        return {name: self.groups == code for code, name in enumerate(self.group_names)}


@dataclass
class MetricValue:
    value: float
    reason: str = ""  # why the value is NaN, or how many groups an aggregate skipped
    details: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Metric:
    name: str
    fn: Callable[[EvalInput], "float | MetricValue"]
    direction: str
    version: str = "1"
    scale_dependent: bool = True
    tolerance: float = 0.02
    description: str = ""
    #: what the metric is computed from: "predictions" (the augmented classifier on real test
    #: images), "cas" (the classifier trained on synthetic images only) or "fidelity" (images)
    source: str = "predictions"
    #: > 0 for unbounded metrics, whose noise grows with their value (the FID family):
    #: `harness check` then allows max(tolerance, relative_tolerance × |baseline|)
    relative_tolerance: float = 0.0

    @property
    def tolerance_kind(self) -> str:
        return "relative" if self.relative_tolerance > 0 else "absolute"

    def floor(self, baseline: float) -> float:
        """The change from `baseline` that `harness check` tolerates whatever the spread."""
        return max(self.tolerance, self.relative_tolerance * abs(baseline))

    def __call__(self, inp: EvalInput) -> MetricValue:
        result = self.fn(inp)
        if not isinstance(result, MetricValue):
            result = MetricValue(float(result))
        result.value = float(result.value)
        if math.isnan(result.value) and not result.reason:
            result.reason = "undefined"
        return result


METRICS: dict[str, Metric] = {}
# older names that get_metric still resolves, without a second leaderboard column
ALIASES: dict[str, str] = {"worst_group_acc": "worst_acc", "gap_auc": "auc_gap"}


def register_metric(name: str, direction: str, version: str = "1", scale_dependent: bool = True,
                    tolerance: float = 0.02, description: str = "", source: str = "predictions",
                    relative_tolerance: float = 0.0) -> Callable:
    if direction not in (HIGHER, LOWER):
        raise ValueError(f"metric '{name}': direction must be '{HIGHER}' or '{LOWER}'")

    def decorate(fn: Callable) -> Callable:
        if name in METRICS:
            raise ValueError(f"metric '{name}' is registered twice ({METRICS[name].fn.__module__} and {fn.__module__})")
        doc_line = ((fn.__doc__ or "").strip().splitlines() or [""])[0]
        METRICS[name] = Metric(name, fn, direction, version, scale_dependent, tolerance, description or doc_line, source,
                               relative_tolerance)
        return fn

    return decorate


def get_metric(name: str) -> Metric:
    name = ALIASES.get(name, name)
    if name not in METRICS:
        import difflib

        close = difflib.get_close_matches(name, list(METRICS), n=3)
        raise KeyError(f"unknown metric '{name}'" + (f"; did you mean {close}?" if close else f"; known: {sorted(METRICS)}"))
    return METRICS[name]


def per_group(inp: EvalInput, value_fn: Callable[[np.ndarray], float]) -> dict[str, MetricValue]:
    """Evaluate value_fn(mask) per group; groups under min_group_n are NaN with the reason."""
    out: dict[str, MetricValue] = {}
    for name, mask in inp.group_masks().items():
        n = int(mask.sum())
        if n == 0:
            out[name] = MetricValue(math.nan, "empty group", {"n": 0})
        elif n < inp.min_group_n:
            out[name] = MetricValue(math.nan, f"n={n} < min_group_n={inp.min_group_n}", {"n": n})
        else:
            value = float(value_fn(mask))
            out[name] = MetricValue(value, "" if not math.isnan(value) else "undefined in group", {"n": n})
    return out


def aggregate(values: dict[str, MetricValue], reduce: Callable[[list[float]], float]) -> MetricValue:
    """Reduce group values, skipping NaN groups and saying how many were skipped."""
    valid = [v.value for v in values.values() if not math.isnan(v.value)]
    skipped = [name for name, v in values.items() if math.isnan(v.value)]
    note = f"skipped {len(skipped)} group(s): {', '.join(skipped)}" if skipped else ""
    if len(valid) < 2 and reduce is not min:
        return MetricValue(math.nan, f"needs at least 2 valid groups, got {len(valid)}" + (f"; {note}" if note else ""))
    if not valid:
        return MetricValue(math.nan, "no valid group" + (f"; {note}" if note else ""))
    return MetricValue(float(reduce(valid)), note)


def compute_metrics(inp: EvalInput, source: str = "predictions") -> dict[str, MetricValue]:
    """Every registered metric of that source, evaluated on one set of predictions."""
    return {name: metric(inp) for name, metric in METRICS.items() if metric.source == source}
