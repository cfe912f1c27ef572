"""Leaderboards are queries over result records: rows = methods, columns = metrics.

One table per (dataset, scenario, classifier, split); each cell shows mean ± sd over replicates
and, for prediction metrics, the difference Δ from the real-only baseline of its table with ▲/▼
where a two-level bootstrap (replicates, then test samples; harness.stats) finds it significant.
Records of other runs can be merged in, so a method author's run sits inside published results.
The numeric summary (the CSV form) is also what `harness check` and `harness compare` read.
Reading guide: docs/leaderboards.md.
"""
from __future__ import annotations

import hashlib
import html
import json
import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
from tabulate import tabulate

from harness import progress, records, stats
from harness.contracts import ConfigError
from harness.grid import parse_grid
from harness.metrics import HIGHER, METRICS
from harness.metrics.attribute_fidelity import judge_summary
from harness.metrics.registry import EvalInput
from harness.metrics.resampled import Resamples, resampled_values
from harness.metrics.stored import eval_input_from_record
from harness.records import load_records

TABLE_KEYS = ["dataset", "scenario", "classifier", "split"]
ARROW = {HIGHER: "↑", "lower": "↓"}
TESTS = ("bootstrap", "paired-t", "wilcoxon", "none")
TEST_NAMES = {"bootstrap": "two-level bootstrap (replicates, then test samples)", "paired-t": "paired t over replicates",
              "wilcoxon": "Wilcoxon over replicates"}
NOT_ESTIMATED_FLAG = "†"


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
            "fidelity_judge": judge_summary(fidelity.get("attribute_fidelity")),
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
        for column in ("fidelity_extractor", "fidelity_n", "fidelity_judge"):
            columns[column] = grouped[column].agg(lambda values: " | ".join(sorted(set(values.dropna()))) or None)
    summary = pd.concat(columns, axis=1).reset_index().sort_values("table_order", kind="stable")
    return summary.drop(columns="table_order").reset_index(drop=True).copy()  # copy: one block per dtype


def load_summary(run_dir: Path, merge: Sequence[Path] = (), significance: str = "none", correction: str = "holm",
                 b: int = stats.BOOTSTRAP_B, seed: int = 0, prefer_run: bool = False) -> pd.DataFrame:
    """The summary of a run (plus merged sources, see records.load_records); with a significance
    test, also per metric `_diff`, `_ci_low`, `_ci_high`, `_p`, `_p_adj` (and `_mde` for primary
    endpoints) against the real-only baseline of each table, with each row's replicate design."""
    rows = load_records(Path(run_dir), merge, prefer_run)
    frame = records_frame(rows)
    if frame.empty:
        raise FileNotFoundError(f"no successful result records in {Path(run_dir) / records.RESULTS}; "
                                "run `harness run` first")
    summary = summarise(frame)
    if significance == "none":
        return summary
    design = run_design(Path(run_dir))
    tests = baseline_tests(Path(run_dir), rows, frame, significance, correction, b, seed, design=design)
    summary["p_test"] = describe_test(significance, correction, b, design)
    summary["primary_endpoints"] = ",".join(design.primary)
    if tests.empty:
        return summary
    columns = [c for c in tests.columns if c not in TABLE_KEYS + ["method"]]
    return summary.merge(tests[TABLE_KEYS + ["method"] + columns], on=TABLE_KEYS + ["method"], how="left").copy()


# ---- significance against the real-only baseline ----

@dataclass(frozen=True)
class Design:
    """What the grid of a run declares about its statistics."""
    primary: tuple[str, ...] = stats.PRIMARY_ENDPOINTS
    vary_cut: bool = True


def run_design(run_dir: Path) -> Design:
    """The primary endpoints and cut setting of the run's grid (from its manifest); the defaults
    when the manifest or its grid cannot be read."""
    try:
        text = json.loads((Path(run_dir) / records.MANIFEST).read_text())["grid"]["text"]
        grid = parse_grid(text, f"{run_dir}/{records.MANIFEST}")
    except (OSError, KeyError, TypeError, ValueError, ConfigError):
        return Design()
    return Design(tuple(grid.primary_endpoints), grid.vary_cut)


def describe_test(test: str, correction: str, b: int, design: Design) -> str:
    what = TEST_NAMES[test] + (f", B={b}" if test == "bootstrap" else "")
    return (f"{what}; primary endpoints ({', '.join(design.primary)}) {correction}-corrected over the run, "
            f"other metrics exploratory, {correction}-corrected within the table")


@dataclass
class Replicate:
    inp: EvalInput
    seeds: dict | None  # the record's stage seeds
    fingerprint: str  # hash of the predicted probabilities


def _replicates(run_dir: Path, rows: list[dict], table: pd.DataFrame) -> dict[int, Replicate]:
    out = {}
    for r in table.itertuples():
        record = rows[int(r.record_index)]
        inp = eval_input_from_record(run_dir, record)
        out[int(r.seed_index)] = Replicate(inp, record.get("seeds"),
                                           hashlib.sha256(np.ascontiguousarray(inp.proba).tobytes()).hexdigest())
    return out


def replicate_design(method: dict[int, Replicate], base: dict[int, Replicate], vary_cut: bool) -> tuple[str, list[str], int]:
    """("k generator fits × m classifier seeds × n cuts", variance sources not estimated, number
    of distinct paired replicates). Sources come from the records' stage seeds; a classifier
    whose predictions are identical in every replicate has no classifier spread to estimate."""
    pairs = sorted(set(method) & set(base))
    distinct = len({(method[s].fingerprint, base[s].fingerprint) for s in pairs})
    seeds = [method[s].seeds for s in pairs]
    if not pairs or any(not s for s in seeds):
        return "replicate sources not recorded", ["replicate sources (not recorded)"], distinct
    fits = len({(s["generator"], s["sampling"]) for s in seeds})
    classifier = len({s["classifier"] for s in seeds})
    cuts = len({s["scenario"] for s in seeds})
    deterministic = len(pairs) > 1 and (len({method[s].fingerprint for s in pairs}) == 1
                                        or len({base[s].fingerprint for s in pairs}) == 1)
    text = (f"{fits} generator fit{'s' * (fits != 1)} × {classifier} classifier seed{'s' * (classifier != 1)}"
            + (" (deterministic)" if deterministic else "") + f" × {cuts} cut{'s' * (cuts != 1)}")
    missing = []
    if deterministic:
        missing.append("classifier spread (identical predictions in every replicate)")
    if fits < stats.MIN_REPLICATES:
        missing.append(f"generator variance ({fits} fit{'s' * (fits != 1)})")
    if vary_cut and cuts < stats.MIN_REPLICATES:
        missing.append(f"cut variance ({cuts} cut{'s' * (cuts != 1)})")
    return text, missing, distinct


def baseline_tests(run_dir: Path, rows: list[dict], frame: pd.DataFrame, test: str = "bootstrap",
                   correction: str = "holm", b: int = stats.BOOTSTRAP_B, seed: int = 0,
                   baseline: str = stats.BASELINE, metrics: Sequence[str] | None = None,
                   design: Design = Design()) -> pd.DataFrame:
    """Per (table, non-baseline method): its replicate design, what it leaves unestimated, and per
    prediction metric `_diff` (method − baseline over paired replicates), `_ci_low`/`_ci_high`,
    `_p` (two-sided), `_p_adj` and, for primary endpoints, `_mde`.

    bootstrap: harness.stats.hierarchical_bootstrap on the metric values of every replicate under
    shared test-sample resamples (harness.metrics.resampled). paired-t / wilcoxon: over the
    replicate values. With fewer than 3 distinct paired replicates nothing is tested (p is NaN).
    Primary endpoints are corrected together over every table, other metrics within their table.
    """
    if test not in TESTS[:-1]:
        raise ValueError(f"unknown significance test '{test}'; choose one of {TESTS}")
    if test == "bootstrap" and b < 2:
        raise ValueError(f"--bootstrap-b must be at least 2 (default {stats.BOOTSTRAP_B}), got {b}")
    metrics = stats.prediction_metrics(metric_columns(frame) if metrics is None else metrics)
    if not metrics:
        return pd.DataFrame()
    resamples: dict[tuple[int, int], Resamples] = {}  # by (test-set size, B), shared by the tables of a run

    def table_tests(item: tuple[tuple, pd.DataFrame]) -> list[dict]:
        keys, table = item
        base_rows = table[table["generator"] == baseline]
        if base_rows.empty:
            return []
        base = _replicates(run_dir, rows, base_rows)
        values = _TableValues(metrics, b if test == "bootstrap" else 0, seed, resamples)
        entries = []
        for method, method_rows in table[table["generator"] != baseline].groupby("method", sort=False):
            runs = _replicates(run_dir, rows, method_rows)
            text, missing, distinct = replicate_design(runs, base, design.vary_cut)
            seeds = sorted(set(runs) & set(base))
            tested = distinct >= stats.MIN_REPLICATES
            entry = dict(zip(TABLE_KEYS, keys), method=method, n_pairs=len(seeds), replicates=text,
                         not_estimated="; ".join(missing), tested=tested)
            label = "/".join(map(str, keys)) + f"/{method}"
            results = _compare(values, [runs[s] for s in seeds], [base[s] for s in seeds], test, seed, label, tested)
            for m, result in zip(metrics, results):
                entry.update({f"{m}_diff": result.diff, f"{m}_ci_low": result.ci_low if tested else math.nan,
                              f"{m}_ci_high": result.ci_high if tested else math.nan,
                              f"{m}_p": result.p if tested else math.nan})
                if m in design.primary:
                    entry[f"{m}_mde"] = result.mde if tested else math.nan
            entries.append(entry)
        return entries

    # numpy releases the GIL in the large array operations, so two tables run at once on 2 cores
    with ThreadPoolExecutor(max_workers=min(2, os.cpu_count() or 1)) as pool:
        out = [entry for entries in pool.map(table_tests, frame.groupby(TABLE_KEYS, sort=False)) for entry in entries]
    tests = pd.DataFrame(out)
    if not tests.empty:
        _correct(tests, metrics, design.primary, correction)
    return tests


def _correct(tests: pd.DataFrame, metrics: list[str], primary: Sequence[str], correction: str) -> None:
    """Primary endpoints: one family over the whole run; every other metric: one family per table."""
    families = [([m for m in metrics if m in primary], [tests.index])]
    exploratory = [m for m in metrics if m not in primary]
    families.append((exploratory, [index for _, index in tests.groupby(TABLE_KEYS, sort=False).groups.items()]))
    for names, groups in families:
        for index in groups:
            if not names:
                continue
            raw = tests.loc[index, [f"{m}_p" for m in names]].to_numpy(dtype=float)
            adjusted = stats.correct(raw.ravel(), correction).reshape(raw.shape)
            for j, m in enumerate(names):
                tests.loc[index, f"{m}_p_adj"] = adjusted[:, j]


class _TableValues:
    """Metric values of each replicate of one table on all test samples (row 0) and on the
    table's shared resamples (rows 1..B), computed once per distinct replicate; only row 0 where
    no test will be made."""

    def __init__(self, metrics: list[str], b: int, seed: int, resamples: dict[tuple[int, int], Resamples]):
        self.metrics, self.b, self.seed = metrics, b, seed
        self._resamples = resamples  # two threads may both create one: equal seeds give equal resamples
        self._values: dict[tuple[str, bool], np.ndarray] = {}

    def __call__(self, replicate: Replicate, observed_only: bool = False) -> np.ndarray:
        key = (replicate.fingerprint, observed_only)  # identical predictions have identical values
        if key not in self._values:
            n, b = len(replicate.inp.y_true), 0 if observed_only else self.b
            if (n, b) not in self._resamples:
                self._resamples[(n, b)] = stats.resample_test_set(n, b, self.seed, with_all=True)
            self._values[key] = resampled_values(replicate.inp, self.metrics, self._resamples[(n, b)])
        return self._values[key]


def _compare(values: _TableValues, method_runs: list[Replicate], base_runs: list[Replicate], test: str, seed: int,
             label: str, tested: bool = True) -> list[stats.Comparison]:
    nothing = [stats.Comparison(math.nan, math.nan) for _ in values.metrics]
    if not method_runs:
        progress.warn(f"{label}: no seed in common with the baseline; no significance test")
        return nothing
    sizes = {len(run.inp.y_true) for run in [*method_runs, *base_runs]}
    if len(sizes) > 1:
        progress.warn(f"{label}: evaluated on {sorted(sizes)} test samples vs the baseline; no paired test possible")
        return nothing
    observed_only = not tested or test != "bootstrap"
    differences = np.stack([values(m, observed_only) - values(base, observed_only)
                            for m, base in zip(method_runs, base_runs)])
    if not tested or len(method_runs) < 2:
        return [stats.Comparison(float(d), math.nan) for d in differences[:, 0].mean(0)]
    if test == "bootstrap":
        return stats.hierarchical_bootstrap(differences, seed=seed)
    method_values, base_values = (np.stack([values(r, True)[0] for r in runs]) for runs in (method_runs, base_runs))
    paired = stats.paired_t if test == "paired-t" else stats.paired_wilcoxon
    return [paired(method_values[:, j], base_values[:, j]) for j in range(len(values.metrics))]


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
    notes = [f"mean ± sd over {seeds} replicates" + (", percent" if scale == "pct" else "")]
    notes += _significance_notes(table, metrics)
    fidelity_shown = any(METRICS[m].source == "fidelity" and table[f"{m}_mean"].notna().any() for m in metrics)
    if fidelity_shown:
        for column, what in (("fidelity_extractor", "FID/KID features"), ("fidelity_n", "n")):
            values = sorted(set(table[column].dropna())) if column in table else []
            notes.append(f"{what}: {' | '.join(values) if values else 'not recorded'}")
        judges = sorted(set(table["fidelity_judge"].dropna())) if "fidelity_judge" in table else []
        if judges:
            notes.append(f"fidelity judges' accuracy on real test: {' | '.join(judges)}")
    header = ", ".join(f"{k}={v}" for k, v in zip(TABLE_KEYS, keys))
    return f"{header} ({'; '.join(notes)})"


def _values(table: pd.DataFrame, column: str) -> list[str]:
    return list(dict.fromkeys(v for v in table[column] if isinstance(v, str) and v)) if column in table else []


def _significance_notes(table: pd.DataFrame, metrics: list[str]) -> list[str]:
    """The replicate design, what the test covers and leaves out, and its power."""
    if "p_test" not in table:
        return []
    if "tested" not in table or not table["tested"].notna().any():
        return [f"no significance markers: no '{stats.BASELINE}' baseline with shared replicates in this table"]
    notes = [f"replicates: {' | '.join(_values(table, 'replicates'))}",
             f"(Δ vs {stats.BASELINE}) ▲/▼ better/worse at α={stats.ALPHA:g}: {table['p_test'].iloc[0]}"]
    untested = table[table["tested"].eq(False)]  # the baseline's rows are NaN
    if not untested.empty:
        missing = " | ".join(_values(untested, "not_estimated")) or "replicate spread"
        notes.append(f"no markers for {', '.join(untested['method'])}: fewer than {stats.MIN_REPLICATES} distinct "
                     f"replicates, so not estimated: {missing}")
    missing = _values(table[table["tested"].eq(True)], "not_estimated")
    if missing:
        notes.append(f"{NOT_ESTIMATED_FLAG} not estimated, so not in the test: {' | '.join(missing)}")
    mde = [f"{m} {table[f'{m}_mde'].median():.3g}" for m in metrics
           if f"{m}_mde" in table and table[f"{m}_mde"].notna().any()]
    if mde:
        notes.append(f"minimum detectable effect (80% power, α={stats.ALPHA:g}, median over methods): {', '.join(mde)}")
    return notes


def _cell(row: pd.Series, name: str, factor: float) -> str:
    mean, sd = row[f"{name}_mean"], row[f"{name}_sd"]
    if pd.isna(mean):
        return "n/a"
    digits = 1 if factor == 100 else 3
    text = f"{mean * factor:.{digits}f}"
    if not pd.isna(sd):
        text += f" ± {sd * factor:.{digits}f}"
    diff = row.get(f"{name}_diff", math.nan)
    if not pd.isna(diff):
        sign = stats.marker(float(diff), float(row.get(f"{name}_p_adj", math.nan)), METRICS[name].direction)
        flag = NOT_ESTIMATED_FLAG if sign and isinstance(row.get("not_estimated"), str) and row["not_estimated"] else ""
        text += f" (Δ {diff * factor:+.{digits}f}{' ' + sign + flag if sign else ''})"
    return text
