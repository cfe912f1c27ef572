"""Leaderboards are queries over result records: rows = methods, columns = metrics.

One table per (dataset, scenario, classifier, split); each cell shows mean ± sd over seeds.
The numeric summary (the CSV form) is also what `harness check` compares against a baseline.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
from tabulate import tabulate

from harness import records
from harness.metrics import HIGHER, METRICS

TABLE_KEYS = ["dataset", "scenario", "classifier", "split"]
ARROW = {HIGHER: "↑", "lower": "↓"}


def records_frame(rows: list[dict]) -> pd.DataFrame:
    """One row per successful (cell, seed, split) record, metric values as float columns."""
    flat = []
    for r in rows:
        if r.get("status") != "ok":
            continue
        spec = r["spec"]
        flat.append({
            "dataset": spec["dataset"]["label"], "scenario": spec["scenario"],
            "generator": spec["generator"]["label"],
            "sampling": _sampling_label(spec["sampling"]),
            "classifier": spec["classifier"]["label"], "split": r["split"], "seed_index": r["seed_index"],
            **{name: (math.nan if v is None else float(v)) for name, v in r["metrics"].items()},
        })
    frame = pd.DataFrame(flat)
    if frame.empty:
        return frame
    multi = frame.groupby(TABLE_KEYS + ["generator"])["sampling"].transform("nunique") > 1
    frame["method"] = np.where(multi, frame["generator"] + " [" + frame["sampling"] + "]", frame["generator"])
    return frame


def _sampling_label(sampling: dict | None) -> str:
    return "real" if not sampling else f"{sampling['strategy']}-{sampling['ratio']:g}"


def metric_columns(frame: pd.DataFrame) -> list[str]:
    return [name for name in METRICS if name in frame.columns]


def summarise(frame: pd.DataFrame) -> pd.DataFrame:
    """Mean, sd (ddof=1) and seed count per (table, method) and metric."""
    metrics = metric_columns(frame)
    grouped = frame.groupby(TABLE_KEYS + ["method"], sort=False)
    out = grouped.size().rename("n_seeds").to_frame()
    for name in metrics:
        out[f"{name}_mean"] = grouped[name].mean()
        out[f"{name}_sd"] = grouped[name].std(ddof=1)
    return out.reset_index()


def load_summary(run_dir: Path) -> pd.DataFrame:
    frame = records_frame(records.load(Path(run_dir)))
    if frame.empty:
        raise FileNotFoundError(f"no successful result records in {Path(run_dir) / records.RESULTS}; run `harness run` first")
    return summarise(frame)


def render(summary: pd.DataFrame, fmt: str = "md", scale: str = "fraction") -> str:
    if fmt == "csv":
        return summary.to_csv(index=False, float_format="%.6g")
    metrics = [c[:-5] for c in summary.columns if c.endswith("_mean")]
    factor = {name: 100.0 if scale == "pct" and METRICS[name].scale_dependent else 1.0 for name in metrics}
    tablefmt = {"md": "github", "html": "html"}[fmt]
    parts = []
    for keys, table in summary.groupby(TABLE_KEYS, sort=False):
        header = ", ".join(f"{k}={v}" for k, v in zip(TABLE_KEYS, keys))
        seeds = sorted(set(table["n_seeds"]))
        rows = [[row["method"]] + [_cell(row, name, factor[name]) for name in metrics] for _, row in table.iterrows()]
        headers = ["method"] + [f"{name} {ARROW[METRICS[name].direction]}" for name in metrics]
        title = f"{header} (mean ± sd over {'/'.join(map(str, seeds))} seeds{', percent' if scale == 'pct' else ''})"
        body = tabulate(rows, headers=headers, tablefmt=tablefmt, disable_numparse=True)
        parts.append(f"<h3>{title}</h3>\n{body}" if fmt == "html" else f"### {title}\n\n{body}")
    return "\n\n".join(parts) + "\n"


def _cell(row: pd.Series, name: str, factor: float) -> str:
    mean, sd = row[f"{name}_mean"], row[f"{name}_sd"]
    if pd.isna(mean):
        return "n/a"
    digits = 1 if factor == 100 else 3
    text = f"{mean * factor:.{digits}f}"
    return text if pd.isna(sd) else f"{text} ± {sd * factor:.{digits}f}"
