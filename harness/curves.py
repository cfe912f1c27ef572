"""Ratio sweeps: metric-vs-ratio curves of each generator, with the real-only baseline at ratio 0.

A grid sweeps the synthetic:real ratio with `ratio = [0.25, 0.5, 1, 2, 4, 8]` in a [[sampling]]
entry (harness/grid.py). `ratio_curves` turns such a run into one row per (table, generator,
sampling strategy, ratio, metric): the mean and sd over replicates and, with a significance
test, the difference from the table's real-only baseline with its 95% CI and adjusted p (the
leaderboard's test, harness/stats.py; nothing is re-estimated here). `curve_figure` draws one
metric's curves for the report. How to read them: docs/leaderboards.md ("Ratio sweeps").
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from harness import records
from harness.leaderboard import TABLE_KEYS, load_summary, metric_columns, records_frame
from harness.stats import BASELINE, BOOTSTRAP_B

CURVE_COLUMNS = TABLE_KEYS + ["generator", "strategy", "ratio", "metric", "mean", "sd", "n_seeds", "diff",
                              "ci_low", "ci_high", "p_adj"]


def ratio_curves(run_dir: Path, metrics: Sequence[str] = (), significance: str = "bootstrap",
                 b: int = BOOTSTRAP_B, seed: int = 0) -> pd.DataFrame:
    """Long-format curve data of a run (CURVE_COLUMNS); `metrics` defaults to every metric the
    records have. The real-only baseline is every curve's point at ratio 0 (strategy "real")."""
    rows = records.load(Path(run_dir))
    summary = load_summary(Path(run_dir), significance=significance, b=b, seed=seed)
    methods = _method_ratios(rows)
    table = summary.merge(methods, on=TABLE_KEYS + ["method"], how="left")
    metrics = list(metrics) or metric_columns(records_frame(rows))
    missing = [m for m in metrics if f"{m}_mean" not in table.columns]
    if missing:
        raise ValueError(f"metrics {missing} are not in the records of {run_dir}; choose from "
                         f"{metric_columns(records_frame(rows))}")
    parts = []
    for name in metrics:
        part = table[TABLE_KEYS + ["generator", "strategy", "ratio", "n_seeds"]].copy()
        part["metric"] = name
        for column, source in (("mean", "mean"), ("sd", "sd"), ("diff", "diff"), ("ci_low", "ci_low"),
                               ("ci_high", "ci_high"), ("p_adj", "p_adj")):
            part[column] = table.get(f"{name}_{source}", np.nan)
        parts.append(part)
    curves = pd.concat(parts, ignore_index=True)[CURVE_COLUMNS]
    return curves.sort_values(TABLE_KEYS + ["metric", "generator", "strategy", "ratio"], kind="stable",
                              ignore_index=True)


def _method_ratios(rows: list[dict]) -> pd.DataFrame:
    """Each leaderboard row's generator, sampling strategy and ratio (0 for real-only methods)."""
    frame = records_frame(rows)
    specs = [rows[i]["spec"]["sampling"] for i in frame["record_index"]]
    frame["strategy"] = [s["strategy"] if s else "real" for s in specs]
    frame["ratio"] = [float(s["ratio"]) if s else 0.0 for s in specs]
    return frame[TABLE_KEYS + ["method", "generator", "strategy", "ratio"]].drop_duplicates(TABLE_KEYS + ["method"])


def curve_figure(curves: pd.DataFrame, metric: str, title: str = ""):
    """One matplotlib Figure per call: `metric` against the ratio (log scale), one line per
    generator and strategy, one panel per table; the shaded band is the 95% CI of the difference
    from the real-only baseline (dashed line) shifted onto its mean, when the run has it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = curves[curves["metric"] == metric]
    tables = list(data.groupby(TABLE_KEYS, sort=False))
    fig, axes = plt.subplots(1, max(len(tables), 1), figsize=(4.5 * max(len(tables), 1), 3.4), squeeze=False)
    for ax, (keys, table) in zip(axes[0], tables):
        baseline = table[table["generator"] == BASELINE]["mean"]
        if len(baseline):
            ax.axhline(float(baseline.iloc[0]), color="grey", linestyle="--", label=f"{BASELINE} (real only)")
        for (generator, strategy), line in table[table["ratio"] > 0].groupby(["generator", "strategy"], sort=False):
            line = line.sort_values("ratio")
            shown = ax.plot(line["ratio"], line["mean"], marker="o", label=f"{generator} [{strategy}]")[0]
            if len(baseline) and line["ci_low"].notna().any():
                base = float(baseline.iloc[0])
                ax.fill_between(line["ratio"], base + line["ci_low"], base + line["ci_high"], alpha=0.2,
                                color=shown.get_color())
        ax.set_xscale("log", base=2)
        ax.set_xlabel("synthetic : real")
        ax.set_ylabel(metric)
        ax.set_title(" / ".join(str(k) for k in keys), fontsize=9)
        ax.legend(fontsize=7)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
