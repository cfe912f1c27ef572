"""Regression gate: compare a run's leaderboard with a committed baseline CSV.

A metric regresses when it moves past its tolerance in the bad direction (down for ↑ metrics,
up for ↓ metrics). The tolerance is the baseline's `<metric>_tol` column when present (e.g.
derived from the spread over seeds), else the metric's registered absolute tolerance.
Rows of the baseline that the run lacks are failures too: a gate must not pass by omission.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from harness.leaderboard import TABLE_KEYS, load_summary
from harness.metrics import HIGHER, METRICS

ROW_KEYS = TABLE_KEYS + ["method"]


@dataclass
class Violation:
    row: str
    metric: str
    baseline: float
    current: float
    tolerance: float
    why: str

    def __str__(self) -> str:
        return (f"{self.row}: {self.metric} {self.why} (baseline {self.baseline:.4f}, now {self.current:.4f}, "
                f"tolerance {self.tolerance:.4f})")


def check(run_dir: Path, baseline_csv: Path, overrides: dict[str, float] | None = None) -> tuple[list[Violation], int]:
    """Return (violations, number of comparisons made)."""
    if not Path(baseline_csv).is_file():
        raise FileNotFoundError(f"baseline file not found: {baseline_csv}")
    baseline = pd.read_csv(baseline_csv, dtype={k: str for k in ROW_KEYS})
    missing_keys = [k for k in ROW_KEYS if k not in baseline.columns]
    if missing_keys:
        raise ValueError(f"{baseline_csv} lacks columns {missing_keys}; write it with `harness leaderboard RUN --format csv`")
    current = load_summary(run_dir).astype({k: str for k in ROW_KEYS}).copy()
    merged = baseline.merge(current, on=ROW_KEYS, how="left", suffixes=("_base", ""), indicator=True)
    violations, compared = [], 0
    metrics = [c[:-5] for c in baseline.columns if c.endswith("_mean") and c[:-5] in METRICS]
    for _, row in merged.iterrows():
        label = "/".join(str(row[k]) for k in ROW_KEYS)
        if row["_merge"] == "left_only":
            violations.append(Violation(label, "*", math.nan, math.nan, 0.0, "missing from the run"))
            continue
        for name in metrics:
            base, now = row[f"{name}_mean_base"], row[f"{name}_mean"]
            if pd.isna(base):
                continue
            tolerance = (overrides or {}).get(name)
            if tolerance is None:
                tol_col = f"{name}_tol"
                tolerance = float(row[tol_col]) if tol_col in row and not pd.isna(row[tol_col]) else METRICS[name].tolerance
            compared += 1
            if pd.isna(now):
                violations.append(Violation(label, name, base, now, tolerance, "became undefined (NaN)"))
                continue
            delta = now - base if METRICS[name].direction == HIGHER else base - now
            if delta < -tolerance:
                worse = "dropped" if METRICS[name].direction == HIGHER else "rose"
                violations.append(Violation(label, name, base, now, tolerance, f"{worse} by {abs(now - base):.4f}"))
    return violations, compared


def baseline_table(run_dir: Path, spread_factor: float = 3.0) -> pd.DataFrame:
    """The run's leaderboard summary with a `<metric>_tol` column per metric.

    The tolerance is the larger of the metric's registered absolute tolerance and
    spread_factor × sd × sqrt(2 / n_seeds): the noise of a difference between two means of
    n_seeds replicates each, with the sd observed over this run's seeds.
    """
    summary = load_summary(run_dir)
    columns = ROW_KEYS + ["n_seeds"]
    for name in [c[:-5] for c in summary.columns if c.endswith("_mean") and c[:-5] in METRICS]:
        sd = summary[f"{name}_sd"].fillna(0.0)
        noise = spread_factor * sd * (2.0 / summary["n_seeds"].clip(lower=1)) ** 0.5
        summary[f"{name}_tol"] = noise.clip(lower=METRICS[name].tolerance)
        columns += [f"{name}_mean", f"{name}_sd", f"{name}_tol"]
    return summary[columns]
