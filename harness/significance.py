"""Significance of every method against the real-only baseline of its leaderboard table.

Within one table (dataset, scenario, classifier, split) each method's runs are paired with the
baseline's by seed, read back from the stored per-sample predictions, and compared on each
prediction metric (paired bootstrap over shared test samples by default). The p-values of one
table are corrected together (Holm by default). Fidelity and CAS values have no baseline.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from harness import stats
from harness.metrics import METRICS
from harness.metrics.stored import eval_input_from_record

BASELINE = "none"
ALPHA = 0.05


def prediction_metrics(columns: Sequence[str]) -> list[str]:
    return [name for name in columns if name in METRICS and METRICS[name].source == "predictions"]


def _seed_runs(run_dir: Path, rows: list[dict], table: pd.DataFrame) -> dict[int, object]:
    return {int(r.seed_index): eval_input_from_record(run_dir, rows[int(r.record_index)]) for r in table.itertuples()}


def _paired(metrics: list[str], method: dict[int, object], baseline: dict[int, object], test: str, b: int,
            seed: int, baseline_table: dict) -> dict[str, stats.Paired]:
    shared = sorted(set(method) & set(baseline))
    method_runs, baseline_runs = [method[s] for s in shared], [baseline[s] for s in shared]
    if not shared:
        return {}
    if test != "bootstrap":
        return {m: stats.compare_to_baseline(m, method_runs, baseline_runs, test=test) for m in metrics}
    key = tuple(shared)
    if key not in baseline_table:  # the baseline's resamples serve every method with these seeds
        baseline_table[key] = stats.bootstrap_table(metrics, baseline_runs, b, seed)
    return stats.compare_tables(metrics, method_runs, baseline_runs, baseline_table[key], b, seed)


def baseline_comparisons(run_dir: Path, rows: list[dict], frame: pd.DataFrame, table_keys: list[str],
                         metrics: list[str] | None = None, baseline: str = BASELINE, test: str = "bootstrap",
                         correction: str = "holm", b: int = stats.BOOTSTRAP_B, seed: int = 0) -> pd.DataFrame:
    """One row per (table, non-baseline method): {metric}_diff (method − baseline, mean over
    paired seeds), {metric}_p (uncorrected) and {metric}_p_adj (corrected within the table).

    `frame` has one row per ok record with the table keys, "generator", "method", "seed_index"
    and "record_index" (the record's position in `rows`).
    """
    metrics = prediction_metrics(metrics if metrics is not None else list(frame.columns))
    out = []
    for keys, table in frame.groupby(table_keys, sort=False):
        base_rows = table[table["generator"] == baseline]
        if base_rows.empty or not metrics:
            continue
        base_runs, cache = _seed_runs(run_dir, rows, base_rows), {}
        table_out = []
        for method, method_rows in table[table["generator"] != baseline].groupby("method", sort=False):
            result = _paired(metrics, _seed_runs(run_dir, rows, method_rows), base_runs, test, b, seed, cache)
            entry = dict(zip(table_keys, keys), method=method, n_pairs=len(set(method_rows.seed_index) & set(base_rows.seed_index)))
            for m in metrics:
                entry[f"{m}_diff"] = result[m].diff if m in result else np.nan
                entry[f"{m}_p"] = result[m].p if m in result else np.nan
            table_out.append(entry)
        if table_out:
            p_columns = [f"{m}_p" for m in metrics]
            raw = np.array([[e[c] for c in p_columns] for e in table_out], dtype=float)
            adjusted = stats.correct(raw.ravel(), correction).reshape(raw.shape)
            for entry, row in zip(table_out, adjusted):
                entry.update({f"{m}_p_adj": float(v) for m, v in zip(metrics, row)})
            out.extend(table_out)
    return pd.DataFrame(out)


def marker(diff: float, p_adj: float, direction: str, alpha: float = ALPHA) -> str:
    """▲ significantly better than the baseline, ▼ significantly worse, "" otherwise."""
    if not (p_adj < alpha) or diff == 0 or np.isnan(diff):
        return ""
    better = diff > 0 if direction == "higher" else diff < 0
    return "▲" if better else "▼"
