"""`harness compare A B`: diff two leaderboards cell by cell.

A and B are run folders or leaderboard CSVs. For every (table, method, metric) in both, the
change B − A, whether that is better or worse given the metric's direction, and whether it is
significant: Welch's t-test on the seed means and sds (scipy's ttest_ind_from_stats), Holm-
corrected over all comparisons made. With one seed per side no test is possible ("n/a").
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from harness.leaderboard import TABLE_KEYS, load_summary
from harness.metrics import HIGHER, METRICS
from harness.stats import holm, welch_from_summaries

ROW_KEYS = TABLE_KEYS + ["method"]
CSV_PRECISION = 1e-5  # relative; leaderboard CSVs are written with float_format "%.6g"


def read_summary(source: Path) -> pd.DataFrame:
    source = Path(source)
    if source.is_dir():
        return load_summary(source)
    if not source.is_file():
        raise FileNotFoundError(f"{source} is neither a run folder nor a leaderboard CSV")
    return pd.read_csv(source, dtype={k: str for k in ROW_KEYS})


def compare(a: Path, b: Path, alpha: float = 0.05) -> pd.DataFrame:
    left, right = read_summary(a), read_summary(b)
    for frame in (left, right):
        frame[ROW_KEYS] = frame[ROW_KEYS].astype(str)
    merged = left.merge(right, on=ROW_KEYS, suffixes=("_a", "_b"))
    rows = []
    for _, row in merged.iterrows():
        for name in METRICS:
            if f"{name}_mean_a" not in row or f"{name}_mean_b" not in row:
                continue
            mean_a, mean_b = row[f"{name}_mean_a"], row[f"{name}_mean_b"]
            if pd.isna(mean_a) or pd.isna(mean_b):
                continue
            # CSV leaderboards keep 6 significant digits: closer than that is the same value
            same = math.isclose(mean_a, mean_b, rel_tol=CSV_PRECISION, abs_tol=1e-12)
            delta = 0.0 if same else mean_b - mean_a
            better = delta > 0 if METRICS[name].direction == HIGHER else delta < 0
            p = welch_from_summaries(mean_a, row[f"{name}_sd_a"], row["n_seeds_a"],
                       mean_a if same else mean_b, row[f"{name}_sd_b"], row["n_seeds_b"])
            rows.append({**{k: row[k] for k in ROW_KEYS}, "metric": name, "a": mean_a, "b": mean_b, "delta": delta,
                         "change": "same" if delta == 0 else ("better" if better else "worse"), "p": p})
    table = pd.DataFrame(rows)
    if table.empty:
        raise ValueError(f"{a} and {b} share no (dataset, scenario, classifier, split, method) rows to compare")
    tested = table["p"].notna()
    table["p_holm"] = np.nan
    if tested.any():
        table.loc[tested, "p_holm"] = holm(table.loc[tested, "p"].to_numpy())
    table["significant"] = table["p_holm"] < alpha
    return table
