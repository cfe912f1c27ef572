"""Leaderboards are queries over result records: rows = methods, columns = metrics.

One table per (dataset, scenario, classifier, split); each cell shows mean ± sd over seeds and,
for prediction metrics, ▲/▼ when the method differs significantly from the real-only baseline of
its table (a paired test on the stored per-sample predictions, corrected within the table).
Records of other runs can be merged in, so a method author's run sits inside published results.
The numeric summary (the CSV form) is also what `harness check` and `harness compare` read.
Reading guide: docs/leaderboards.md.
"""
from __future__ import annotations

import html
import math
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
from scipy import stats as sps
from tabulate import tabulate

from harness import progress, records, stats
from harness.records import load_records
from harness.metrics import HIGHER, METRICS
from harness.metrics.stored import eval_input_from_record
from harness.significance import ALPHA, BASELINE, marker, prediction_metrics

TABLE_KEYS = ["dataset", "scenario", "classifier", "split"]
ARROW = {HIGHER: "↑", "lower": "↓"}
TESTS = ("bootstrap", "paired-t", "wilcoxon", "none")
# Resamples per method for the leaderboard's bootstrap. Its p comes from the bootstrap standard
# error, not from counting resamples, so 50 estimate the SE within ~10% and keep ~50 rows at
# seconds of CPU (docs/leaderboards.md); publish with more.
LEADERBOARD_B = 50
Z_975 = float(sps.norm.ppf(0.975))
TEST_NAMES = {"bootstrap": "paired bootstrap", "paired-t": "paired t over seeds", "wilcoxon": "Wilcoxon over seeds"}


# ---- summary ----

def records_frame(rows: list[dict]) -> pd.DataFrame:
    """One row per successful (cell, seed, split) record, metric values as float columns;
    record_index is the record's position in `rows`."""
    flat = []
    for index, r in enumerate(rows):
        if r.get("status") != "ok":
            continue
        spec = r["spec"]
        fidelity = r.get("fidelity") or {}
        flat.append({
            "dataset": spec["dataset"]["label"], "scenario": spec["scenario"],
            "generator": spec["generator"]["label"],
            "sampling": records.sampling_label(spec["sampling"]),
            "classifier": spec["classifier"]["label"], "split": r["split"], "seed_index": r["seed_index"],
            "record_index": index,
            "fidelity_extractor": fidelity.get("extractor"),
            "fidelity_n": _fidelity_n(fidelity) if fidelity else None,
            **{name: (math.nan if v is None else float(v)) for name, v in r["metrics"].items()},
        })
    frame = pd.DataFrame(flat)
    if frame.empty:
        return frame
    multi = frame.groupby(TABLE_KEYS + ["generator"])["sampling"].transform("nunique") > 1
    frame["method"] = np.where(multi, frame["generator"] + " [" + frame["sampling"] + "]", frame["generator"])
    return frame


def _fidelity_n(fidelity: dict) -> str:
    """'real 90 vs synthetic 90; per group 30 (3 draws)': the sizes behind FID/KID."""
    n = fidelity.get("n", {})
    text = f"real {n.get('real')} vs synthetic {n.get('synthetic')}"
    group_n = sorted({g["n"] for g in (fidelity.get("per_group") or {}).values() if g.get("n")})
    if group_n:
        span = str(group_n[0]) if len(group_n) == 1 else f"{group_n[0]}–{group_n[-1]}"
        text += f"; per group {span}" + (f" ({fidelity['draws']} draws)" if fidelity.get("draws") else "")
    return text


def metric_columns(frame: pd.DataFrame) -> list[str]:
    return [name for name in METRICS if name in frame.columns]


def summarise(frame: pd.DataFrame) -> pd.DataFrame:
    """Mean, sd (ddof=1) and seed count per (table, method) and metric, plus the feature
    extractor and sizes behind the fidelity metrics when the records have them."""
    metrics = metric_columns(frame)
    # tables in order of first appearance, then methods: merged sources interleave like one run
    frame = frame.assign(table_order=frame.groupby(TABLE_KEYS, sort=False).ngroup())
    grouped = frame.groupby(["table_order"] + TABLE_KEYS + ["method"], sort=False)
    columns = {"n_seeds": grouped.size()}
    for name in metrics:
        columns[f"{name}_mean"] = grouped[name].mean()
        columns[f"{name}_sd"] = grouped[name].std(ddof=1)
    if frame["fidelity_extractor"].notna().any():
        for column in ("fidelity_extractor", "fidelity_n"):
            columns[column] = grouped[column].agg(lambda values: " | ".join(sorted(set(values.dropna()))) or None)
    summary = pd.concat(columns, axis=1).reset_index().sort_values("table_order", kind="stable")
    return summary.drop(columns="table_order").reset_index(drop=True).copy()  # copy: one block per dtype


def load_summary(run_dir: Path, merge: Sequence[Path] = (), significance: str = "none", correction: str = "holm",
                 b: int = LEADERBOARD_B, seed: int = 0, prefer_run: bool = False) -> pd.DataFrame:
    """The summary of a run (plus merged sources, see records.load_records); with a significance
    test, also `<metric>_p` and `<metric>_p_adj` against the real-only baseline of each table."""
    rows = load_records(Path(run_dir), merge, prefer_run)
    frame = records_frame(rows)
    if frame.empty:
        raise FileNotFoundError(f"no successful result records in {Path(run_dir) / records.RESULTS}; "
                                "run `harness run` first")
    summary = summarise(frame)
    if significance == "none":
        return summary
    tests = baseline_tests(Path(run_dir), rows, frame, significance, correction, b, seed)
    summary["p_test"] = TEST_NAMES[significance] + (f", B={b}" if significance == "bootstrap" else "") + \
        f", {correction}-corrected within the table"
    if tests.empty:
        return summary
    columns = [c for c in tests.columns if c.endswith(("_diff", "_p", "_p_adj"))]
    return summary.merge(tests[TABLE_KEYS + ["method"] + columns], on=TABLE_KEYS + ["method"], how="left")


# ---- significance against the real-only baseline ----

def baseline_tests(run_dir: Path, rows: list[dict], frame: pd.DataFrame, test: str = "bootstrap",
                   correction: str = "holm", b: int = LEADERBOARD_B, seed: int = 0,
                   baseline: str = BASELINE, metrics: Sequence[str] | None = None) -> pd.DataFrame:
    """Per (table, non-baseline method) and prediction metric: `_diff` (method − baseline, over
    paired seeds), `_p` (two-sided) and `_p_adj` (corrected over every p of its table).
    `metrics` limits the tests (default: every prediction metric in `frame`).

    bootstrap: the paired resamples of harness.stats.bootstrap_table (the baseline's shared by
    all methods of a table); p = 2·Φ(−|diff| / sd of the resampled diffs). The normal form
    keeps p resolvable below 2/(B+1), which a whole table's Holm correction needs.
    paired-t / wilcoxon: harness.stats.compare_to_baseline over the seed values.
    """
    if test not in TESTS[:-1]:
        raise ValueError(f"unknown significance test '{test}'; choose one of {TESTS}")
    metrics = prediction_metrics(metric_columns(frame) if metrics is None else metrics)
    out = []
    for keys, table in frame.groupby(TABLE_KEYS, sort=False):
        base_rows = table[table["generator"] == baseline]
        if base_rows.empty or not metrics:
            continue
        base_runs, shared_resamples = _seed_runs(run_dir, rows, base_rows), {}
        entries = []
        for method, method_rows in table[table["generator"] != baseline].groupby("method", sort=False):
            runs = _seed_runs(run_dir, rows, method_rows)
            seeds = sorted(set(runs) & set(base_runs))
            label = "/".join(map(str, keys)) + f"/{method}"
            result = _compare(metrics, [runs[s] for s in seeds], [base_runs[s] for s in seeds], test, b, seed,
                              shared_resamples, tuple(seeds), label)
            entry = dict(zip(TABLE_KEYS, keys), method=method, n_pairs=len(seeds))
            for m in metrics:
                paired = result.get(m, stats.Paired(math.nan, math.nan))
                entry[f"{m}_diff"], entry[f"{m}_p"] = paired.diff, paired.p
            entries.append(entry)
        if entries:
            raw = np.array([[e[f"{m}_p"] for m in metrics] for e in entries], dtype=float)
            adjusted = stats.correct(raw.ravel(), correction).reshape(raw.shape)
            for entry, row in zip(entries, adjusted):
                entry.update({f"{m}_p_adj": float(v) for m, v in zip(metrics, row)})
            out.extend(entries)
    return pd.DataFrame(out)


def _seed_runs(run_dir: Path, rows: list[dict], table: pd.DataFrame) -> dict[int, object]:
    return {int(r.seed_index): eval_input_from_record(run_dir, rows[int(r.record_index)]) for r in table.itertuples()}


def _compare(metrics: list[str], method_runs: list, base_runs: list, test: str, b: int, seed: int,
             shared_resamples: dict, seeds: tuple, label: str) -> dict[str, stats.Paired]:
    if not seeds:
        progress.warn(f"{label}: no seed in common with the baseline; no significance test")
        return {}
    sizes = {len(run.y_true) for run in [*method_runs, *base_runs]}
    if len(sizes) > 1:
        progress.warn(f"{label}: evaluated on {sorted(sizes)} test samples vs the baseline; no paired test possible")
        return {}
    if test != "bootstrap":
        return {m: stats.compare_to_baseline(m, method_runs, base_runs, test=test) for m in metrics}
    if seeds not in shared_resamples:
        shared_resamples[seeds] = stats.bootstrap_table(metrics, base_runs, b, seed)
    base_observed, base_resampled = shared_resamples[seeds]
    observed, resampled = stats.bootstrap_table(metrics, method_runs, b, seed)
    return {m: bootstrap_z(float(observed[j] - base_observed[j]), resampled[:, j] - base_resampled[:, j])
            for j, m in enumerate(metrics)}


def bootstrap_z(observed: float, diffs: np.ndarray) -> stats.Paired:
    """Two-sided p of a paired difference from its bootstrap standard error (normal approximation)."""
    diffs = diffs[~np.isnan(diffs)]
    if math.isnan(observed) or len(diffs) < 2:
        return stats.Paired(math.nan, math.nan, test="bootstrap-z")
    se = float(diffs.std(ddof=1))
    if se == 0:
        p = 1.0 if observed == 0 else 0.0
    else:
        p = float(2 * sps.norm.sf(abs(observed) / se))
    return stats.Paired(observed, p, observed - Z_975 * se, observed + Z_975 * se, "bootstrap-z")


# ---- rendering ----

def render(summary: pd.DataFrame, fmt: str = "md", scale: str = "fraction") -> str:
    if fmt == "csv":
        return summary.to_csv(index=False, float_format="%.6g")
    metrics = [c[:-5] for c in summary.columns if c.endswith("_mean") and c[:-5] in METRICS]
    factor = {name: 100.0 if scale == "pct" and METRICS[name].scale_dependent else 1.0 for name in metrics}
    tablefmt = {"md": "github", "html": "html"}[fmt]
    parts = []
    for keys, table in summary.groupby(TABLE_KEYS, sort=False):
        title = _title(keys, table, metrics, scale)
        rows = [[row["method"]] + [_cell(row, name, factor[name]) for name in metrics] for _, row in table.iterrows()]
        headers = ["method"] + [f"{name} {ARROW[METRICS[name].direction]}" for name in metrics]
        body = tabulate(rows, headers=headers, tablefmt=tablefmt, disable_numparse=True)
        parts.append(f"<h3>{html.escape(title)}</h3>\n{body}" if fmt == "html" else f"### {title}\n\n{body}")
    return "\n\n".join(parts) + "\n"


def _title(keys: tuple, table: pd.DataFrame, metrics: list[str], scale: str) -> str:
    seeds = "/".join(map(str, sorted(set(table["n_seeds"]))))
    notes = [f"mean ± sd over {seeds} seeds" + (", percent" if scale == "pct" else "")]
    if "p_test" in table and any(table.get(f"{m}_p_adj", pd.Series(dtype=float)).notna().any() for m in metrics):
        notes.append(f"▲/▼ better/worse than {BASELINE} at α={ALPHA:g}: {table['p_test'].iloc[0]}")
    elif "p_test" in table:
        notes.append(f"no significance markers: no '{BASELINE}' baseline with shared seeds in this table")
    fidelity_shown = any(METRICS[m].source == "fidelity" and table[f"{m}_mean"].notna().any() for m in metrics)
    if fidelity_shown:
        for column, what in (("fidelity_extractor", "FID/KID features"), ("fidelity_n", "n")):
            values = sorted(set(table[column].dropna())) if column in table else []
            notes.append(f"{what}: {' | '.join(values) if values else 'not recorded'}")
    header = ", ".join(f"{k}={v}" for k, v in zip(TABLE_KEYS, keys))
    return f"{header} ({'; '.join(notes)})"


def _cell(row: pd.Series, name: str, factor: float) -> str:
    mean, sd = row[f"{name}_mean"], row[f"{name}_sd"]
    if pd.isna(mean):
        return "n/a"
    digits = 1 if factor == 100 else 3
    text = f"{mean * factor:.{digits}f}"
    if not pd.isna(sd):
        text += f" ± {sd * factor:.{digits}f}"
    if f"{name}_p_adj" in row and not pd.isna(row[f"{name}_p_adj"]):
        diff = row[f"{name}_diff"] if f"{name}_diff" in row else math.nan
        sign = marker(float(diff), float(row[f"{name}_p_adj"]), METRICS[name].direction)
        text += f" {sign}" if sign else ""
    return text
