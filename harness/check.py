"""Regression gate: compare a run's leaderboard with a committed baseline CSV.

A metric regresses when it moves past its tolerance in the bad direction (down for ↑ metrics,
up for ↓ metrics). Only the cells the run contains are compared, so a run of part of a grid
(`--only`) can be gated; `complete=True` makes baseline cells the run lacks fail too.

The baseline CSV (written by `baseline_table`) holds, per cell and metric, `<metric>_mean`,
`<metric>_sd`, `<metric>_tol` (the tolerance, in the metric's units), `<metric>_drift` (the
largest change of one record when the same grid ran under another oneDNN ISA and thread count;
`measure_drift`) and `<metric>_tol_kind` (`absolute` or `relative`), plus the `spread_factor` k.
The tolerance is

    max(floor, k × sd × √(2/n_seeds), drift)

where floor is the metric's registered tolerance, for unbounded metrics (the FID family) the
larger of it and a fraction of |mean| (`Metric.floor`). The check never allows less than the
floor, so baselines written before drift columns and relative floors existed still work (their
drift counts as 0).

For every metric past its tolerance the gate also says whether the change is inside the
replicate spread of the two runs, k × √(sd_base²/n_base + sd_run²/n_run) (noise), or beyond it
(a regression).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from harness import records
from harness.compare import CSV_PRECISION
from harness.leaderboard import TABLE_KEYS, load_records, load_summary, records_frame
from harness.metrics import HIGHER, METRICS

ROW_KEYS = TABLE_KEYS + ["method"]
SPREAD_FACTOR = 3.0
NOISE, REGRESSION, UNDEFINED = "noise", "regression", "undefined"


@dataclass
class Violation:
    row: str
    metric: str
    baseline: float
    current: float
    tolerance: float
    why: str
    #: the replicate spread of the difference, k × √(sd_base²/n_base + sd_run²/n_run)
    spread: float = 0.0
    #: NOISE (|Δ| inside the spread), REGRESSION (beyond it) or UNDEFINED (the value became NaN)
    kind: str = REGRESSION

    def __str__(self) -> str:
        text = (f"{self.row}: {self.metric} {self.why} (baseline {self.baseline:.4g}, now {self.current:.4g}, "
                f"tolerance {self.tolerance:.4g})")
        if self.kind == NOISE:
            return text + f"; inside the replicate spread ±{self.spread:.4g}: noise"
        if self.kind == REGRESSION:
            return text + f"; beyond the replicate spread ±{self.spread:.4g}: a regression"
        return text


@dataclass
class CheckResult:
    violations: list[Violation] = field(default_factory=list)
    compared: int = 0
    #: baseline cells (row labels) the run lacks; failures only when completeness was asked for
    missing: list[str] = field(default_factory=list)
    complete: bool = False

    @property
    def failed(self) -> bool:
        return bool(self.violations) or (self.complete and bool(self.missing))


def check(run_dir: Path, baseline_csv: Path, overrides: dict[str, float] | None = None,
          complete: bool = False) -> CheckResult:
    """Compare the cells of `run_dir` with `baseline_csv`. `overrides` replaces a metric's
    tolerance (in its units) for every cell; `complete` asks that every baseline cell was run."""
    records.refuse_limited(run_dir, "checked against a baseline")
    baseline = read_baseline(baseline_csv)
    metrics = _metrics(baseline)
    merged = baseline.merge(_current(run_dir, metrics), on=ROW_KEYS, how="left")
    result = CheckResult(complete=complete)
    factor = _spread_factor(baseline)
    for _, row in merged.iterrows():
        label = "/".join(str(row[k]) for k in ROW_KEYS)
        if pd.isna(row["n_seeds_now"]):  # the run has no such cell
            result.missing.append(label)
            continue
        for name in metrics:
            base = row[f"{name}_mean"]
            if pd.isna(base):
                continue
            result.compared += 1
            violation = _compare(row, name, label, factor, (overrides or {}).get(name))
            if violation:
                result.violations.append(violation)
    if result.compared == 0 and len(result.missing) == len(baseline):
        raise ValueError(f"{run_dir} shares no (dataset, scenario, classifier, split, method) cell with "
                         f"{baseline_csv}; run the baseline's grid (or part of it with --only)")
    if result.compared == 0:
        raise ValueError(f"{baseline_csv} has no metric value for the cells of {run_dir}; nothing was compared")
    return result


def _current(run_dir: Path, metrics: list[str]) -> pd.DataFrame:
    """The run's summary as `<metric>_now`, `<metric>_now_sd` and `n_seeds_now` columns (NaN for a
    metric the run lacks), so no name clashes with the baseline's."""
    summary = load_summary(run_dir).astype({k: str for k in ROW_KEYS})
    columns = {**{k: summary[k] for k in ROW_KEYS}, "n_seeds_now": summary["n_seeds"]}
    for name in metrics:
        columns[f"{name}_now"] = summary.get(f"{name}_mean", math.nan)
        columns[f"{name}_now_sd"] = summary.get(f"{name}_sd", math.nan)
    return pd.DataFrame(columns, index=summary.index)


def read_baseline(baseline_csv: Path) -> pd.DataFrame:
    if not Path(baseline_csv).is_file():
        raise FileNotFoundError(f"baseline file not found: {baseline_csv}")
    baseline = pd.read_csv(baseline_csv, dtype={k: str for k in ROW_KEYS})
    missing_keys = [k for k in ROW_KEYS if k not in baseline.columns]
    if missing_keys:
        raise ValueError(f"{baseline_csv} lacks columns {missing_keys}; write it with `harness baseline RUN`")
    return baseline


def _spread_factor(baseline: pd.DataFrame) -> float:
    if "spread_factor" in baseline.columns and baseline["spread_factor"].notna().any():
        return float(baseline["spread_factor"].dropna().iloc[0])
    return SPREAD_FACTOR


def _compare(row: pd.Series, name: str, label: str, factor: float, override: float | None) -> Violation | None:
    metric = METRICS[name]
    base, now = float(row[f"{name}_mean"]), float(row[f"{name}_now"])
    tolerance = override if override is not None else _tolerance(row, name, base)
    spread = factor * math.hypot(_sem(row, f"{name}_sd", "n_seeds"), _sem(row, f"{name}_now_sd", "n_seeds_now"))
    if math.isnan(now):
        return Violation(label, name, base, now, tolerance, "became undefined (NaN)", spread, UNDEFINED)
    delta = now - base if metric.direction == HIGHER else base - now
    # the baseline's means and tolerances carry CSV precision: a change at the edge is within it
    if delta >= -(tolerance * (1 + CSV_PRECISION) + CSV_PRECISION * abs(base)):
        return None
    worse = "dropped" if metric.direction == HIGHER else "rose"
    kind = NOISE if abs(now - base) <= spread else REGRESSION
    return Violation(label, name, base, now, tolerance, f"{worse} by {abs(now - base):.4g}", spread, kind)


def _tolerance(row: pd.Series, name: str, base: float) -> float:
    """The largest of the baseline's `<metric>_tol` and `<metric>_drift` (when it has them) and
    the metric's floor, so a baseline written before a floor existed gets it too."""
    stored = [float(row[c]) for c in (f"{name}_tol", f"{name}_drift") if c in row and not pd.isna(row[c])]
    return max([METRICS[name].floor(base), *stored])


def _sem(row: pd.Series, sd_column: str, n_column: str) -> float:
    """sd/√n of one side's mean; 0 when the side has one seed (no spread observed)."""
    sd, n = row.get(sd_column), row.get(n_column)
    if sd is None or n is None or pd.isna(sd) or pd.isna(n) or n < 1:
        return 0.0
    return float(sd) / math.sqrt(float(n))


def baseline_table(run_dir: Path, spread_factor: float = SPREAD_FACTOR, drift_run: Path | None = None) -> pd.DataFrame:
    """The run's leaderboard summary with the gate's columns per metric (module docstring).

    The spread term k × sd × √(2/n_seeds) is the noise of a difference between two means of
    n_seeds replicates each, with the sd observed over this run's seeds. The drift comes from
    `drift_run`, the same grid run under another ISA (`measure_drift`); without one it is 0.
    """
    records.refuse_limited(run_dir, "used as a baseline")
    summary = load_summary(run_dir)
    drift = measure_drift(run_dir, drift_run, summary) if drift_run is not None else {}
    columns = {**{k: summary[k] for k in ROW_KEYS + ["n_seeds"]}, "spread_factor": spread_factor}
    for name in _metrics(summary):
        metric = METRICS[name]
        mean, sd = summary[f"{name}_mean"], summary[f"{name}_sd"].fillna(0.0)
        noise = spread_factor * sd * (2.0 / summary["n_seeds"].clip(lower=1)) ** 0.5
        floor = mean.abs().fillna(0.0).map(metric.floor)
        drift_term = drift.get(name, pd.Series(0.0, index=summary.index))
        columns.update({f"{name}_mean": mean, f"{name}_sd": summary[f"{name}_sd"],
                        f"{name}_tol": np.maximum.reduce([floor, noise, drift_term]),
                        f"{name}_drift": drift_term, f"{name}_tol_kind": metric.tolerance_kind})
    return pd.DataFrame(columns, index=summary.index)


def measure_drift(run_dir: Path, drift_run: Path, summary: pd.DataFrame) -> dict[str, pd.Series]:
    """Per metric, the drift term of each cell of `summary` (the summary of `run_dir`), measured
    against `drift_run`: the same grid run under another ISA and thread count, own cache.

    Another ISA perturbs each seed's training on its own, so a cell's mean can move as far as
    one record does (one seed diverging, the other not), and any cell can move, not only those
    that moved in this one comparison. The drift is therefore pooled over every record (cell,
    seed) both runs have: for absolute metrics the largest |Δ|; for relative ones the largest
    |Δ|/|value| over records where the relative floor applies, times the cell's |mean| (and at
    least the largest |Δ| of the cell's own records).
    """
    keys = ROW_KEYS + ["seed_index"]
    mine, theirs = (records_frame(load_records(Path(d))) for d in (run_dir, drift_run))
    if mine.empty or theirs.empty:
        raise ValueError(f"no successful records in {run_dir if mine.empty else drift_run}")
    pairs = mine.astype({k: str for k in keys}).merge(theirs.astype({k: str for k in keys}), on=keys,
                                                       suffixes=("", "_other"))
    if pairs.empty:
        raise ValueError(f"{drift_run} shares no (cell, seed) with {run_dir}; run the same grid for both")
    cells = summary[ROW_KEYS].astype(str)
    drift = {}
    for name in _metrics(summary):
        if name not in pairs or f"{name}_other" not in pairs:
            continue
        metric = METRICS[name]
        delta = (pairs[f"{name}_other"] - pairs[name]).abs()
        own = cells.merge(pairs.assign(delta=delta).groupby(ROW_KEYS)["delta"].max().reset_index(),
                          on=ROW_KEYS, how="left")["delta"].fillna(0.0).to_numpy()
        if metric.tolerance_kind == "absolute":
            pooled = np.full(len(cells), delta.max(skipna=True) if delta.notna().any() else 0.0)
        else:
            value = pairs[name].abs()
            ratio = (delta / value)[value * metric.relative_tolerance >= metric.tolerance]
            fraction = ratio.max(skipna=True) if ratio.notna().any() else 0.0
            pooled = (fraction * summary[f"{name}_mean"].abs()).fillna(0.0).to_numpy()
        drift[name] = pd.Series(np.fmax(pooled, own), index=summary.index)
    return drift


def _metrics(summary: pd.DataFrame) -> list[str]:
    return [c[:-5] for c in summary.columns if c.endswith("_mean") and c[:-5] in METRICS]


def drift_report(baseline: pd.DataFrame) -> pd.DataFrame:
    """Per metric of a baseline table: tolerance kind, the largest drift and the largest
    tolerance over its cells (what docs/reliability.md reports)."""
    rows = []
    for name in _metrics(baseline):
        if f"{name}_drift" not in baseline:
            continue
        rows.append({"metric": name, "kind": METRICS[name].tolerance_kind, "floor": METRICS[name].tolerance,
                     "max_drift": baseline[f"{name}_drift"].max(), "max_tol": baseline[f"{name}_tol"].max()})
    return pd.DataFrame(rows)
