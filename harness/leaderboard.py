"""Leaderboards are queries over result records: rows = methods, columns = metrics.

One table per (dataset, scenario, classifier, split); each cell shows mean ± sd over replicates
and, for prediction metrics, the difference Δ from the real-only baseline of its table with ▲/▼
where a two-level bootstrap (replicates, then test samples; harness.stats) finds it significant.
Records of other runs can be merged in, so a method author's run sits inside published results.
`render` writes md, csv, html, json or latex from one view model, so every format shows the same
markers; the CLI shows the headline (primary endpoints, utility, CAS, fidelity summary) in
markdown that fits 100 columns. The numeric summary (the CSV form) is also what `harness check`
and `harness compare` read.
Reading guide: docs/leaderboards.md.
"""
from __future__ import annotations

import hashlib
import html
import json
import math
import os
import textwrap
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
from harness.metrics import HIGHER, METRICS, get_metric
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
    design = run_design(Path(run_dir))
    summary["primary_endpoints"] = ",".join(design.primary)
    if significance == "none":
        return summary
    tests = baseline_tests(Path(run_dir), rows, frame, significance, correction, b, seed, design=design)
    summary["p_test"] = describe_test(significance, correction, b, design)
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
# One view model (TableView) feeds every format, so md, csv, html, json and latex show the same
# Δ and the same markers; `render` is the one entry point (the CLI, publish and report use it).

FORMATS = ("md", "csv", "html", "json", "latex")
#: terminal columns the CLI's markdown fits: wider tables are split into column blocks
WIDTH = 100
#: the headline after the run's primary endpoints: utility, CAS, then the fidelity summary
#: (the distribution distance and the judge-based fidelity metrics); names a run lacks are skipped
HEADLINE = (("utility", ("acc", "auc")), ("CAS", ("cas",)),
            ("fidelity", ("fid", "class_fidelity_adj", "attr_fidelity_adj", "worst_attr_fidelity_adj")))
METRIC_SUFFIXES = ("_mean", "_sd", "_diff", "_ci_low", "_ci_high", "_p", "_p_adj", "_mde", "_marker")
LATEX = {"▲": r"$\blacktriangle$", "▼": r"$\blacktriangledown$", NOT_ESTIMATED_FLAG: r"$^\dagger$",
         "±": r"$\pm$", "Δ": r"$\Delta$", "↑": r"$\uparrow$", "↓": r"$\downarrow$", "−": "-"}
LATEX_SPECIAL = {c: "\\" + c for c in "&%$#_{}"} | {"~": r"\textasciitilde{}", "^": r"\^{}", "\\": r"\textbackslash{}"}


@dataclass
class CellView:
    text: str
    marker: str  # ▲ better, ▼ worse than the baseline (significant), "" otherwise
    flag: str  # NOT_ESTIMATED_FLAG where the test leaves a variance source out
    values: dict[str, float]  # mean, sd, diff, ci_low, ci_high, p_adj (NaN where absent)


@dataclass
class TableView:
    keys: dict[str, str]
    notes: list[str]
    sections: list[tuple[str, list[str]]]  # (title, metric names) in column order
    rows: list[tuple[str, int, dict[str, CellView]]]  # (method, replicates, cells by metric)

    @property
    def metrics(self) -> list[str]:
        return [name for _, names in self.sections for name in names]

    @property
    def heading(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.keys.items())


def summary_metrics(summary: pd.DataFrame) -> list[str]:
    return [c[:-5] for c in summary.columns if c.endswith("_mean") and c[:-5] in METRICS]


def primary_endpoints(summary: pd.DataFrame) -> tuple[str, ...]:
    """The run's declared primary endpoints (grid key `primary_endpoints`), else the defaults."""
    if "primary_endpoints" in summary and summary["primary_endpoints"].notna().any():
        return tuple(str(summary["primary_endpoints"].dropna().iloc[0]).split(","))
    return stats.PRIMARY_ENDPOINTS


def select_metrics(summary: pd.DataFrame, metrics: str | Sequence[str] = "all") -> list[tuple[str, list[str]]]:
    """Column sections: "headline" (primary endpoints, utility, CAS, fidelity summary), "all",
    or a list (or comma-separated string) of metric names."""
    present = summary_metrics(summary)
    if metrics == "headline":
        sections, seen = [], set()
        for title, names in (("primary endpoints", primary_endpoints(summary)), *HEADLINE):
            chosen = [n for n in names if n in present and n not in seen]
            seen.update(chosen)
            if chosen:
                sections.append((title, chosen))
        return sections
    if metrics == "all":
        return [("", present)]
    names = [n.strip() for n in (metrics.split(",") if isinstance(metrics, str) else metrics) if n.strip()]
    wanted = list(dict.fromkeys(get_metric(n).name for n in names))
    missing = [n for n in wanted if n not in present]
    if missing or not wanted:
        raise ValueError(f"this leaderboard has no metric {missing or names}; choose from headline, all, or a "
                         f"comma-separated list of: {', '.join(present)}")
    return [("", wanted)]


def table_views(summary: pd.DataFrame, metrics: str | Sequence[str] = "all", scale: str = "fraction") -> list[TableView]:
    """One view per (dataset, scenario, classifier, split). The headline's cells are compact
    (mean and Δ with its marker); every other selection shows mean ± sd as well."""
    sections = select_metrics(summary, metrics)
    names = [name for _, group in sections for name in group]
    compact = metrics == "headline"
    views = []
    for keys, table in summary.groupby(TABLE_KEYS, sort=False):
        notes = _notes(table, names, scale, compact)
        rows = [(row["method"], int(row["n_seeds"]),
                 {name: cell_view(row, name, _factor(name, scale), compact) for name in names})
                for _, row in table.iterrows()]
        views.append(TableView(dict(zip(TABLE_KEYS, map(str, keys))), notes, sections, rows))
    return views


def render(summary: pd.DataFrame, fmt: str = "md", scale: str = "fraction", metrics: str | Sequence[str] = "all",
           width: int | None = None) -> str:
    """The leaderboard as md, csv, html, json or latex with the columns of `metrics` (see
    select_metrics). md with a `width` splits each table into column blocks that fit it and
    lists the notes under the heading; without, one table per heading (the published form)."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format '{fmt}'; choose one of {', '.join(FORMATS)}")
    if fmt == "csv":
        return _csv(summary, metrics)
    views = table_views(summary, metrics, scale)
    if fmt == "json":
        return json.dumps({"scale": scale, "tables": [_json_table(v) for v in views]}, indent=1,
                          ensure_ascii=False) + "\n"
    if fmt == "latex":
        return "\n\n".join(_latex_table(v) for v in views) + "\n"
    if fmt == "html":
        return "\n\n".join(_html_table(v) for v in views) + "\n"
    if width is None:
        return "\n\n".join(f"### {_title(v)}\n\n{_grid(v, v.metrics, 'github')}" for v in views) + "\n"
    return "\n\n".join(_fitted_markdown(v, width) for v in views) + "\n"


def run_markdown(summary: pd.DataFrame, title: str, scale: str = "fraction") -> str:
    """A run folder's leaderboard.md: the headline tables, then every metric, all fitting WIDTH."""
    return (f"# {title}\n\n## Headline\n\n{render(summary, 'md', scale, 'headline', WIDTH)}"
            f"\n## All metrics\n\n{render(summary, 'md', scale, 'all', WIDTH)}")


def _factor(name: str, scale: str) -> float:
    return 100.0 if scale == "pct" and METRICS[name].scale_dependent else 1.0


def _header(name: str) -> str:
    return f"{name} {ARROW[METRICS[name].direction]}"


def _grid(view: TableView, names: list[str], tablefmt: str) -> str:
    rows = [[method] + [cells[n].text for n in names] for method, _, cells in view.rows]
    return tabulate(rows, headers=["method"] + [_header(n) for n in names], tablefmt=tablefmt, disable_numparse=True)


def _title(view: TableView) -> str:
    return f"{view.heading} ({'; '.join(view.notes)})"


def _fitted_markdown(view: TableView, width: int) -> str:
    """Heading, notes wrapped to `width`, then the columns in blocks (each repeating the method
    column) that fit `width`; a section is kept in one block where it fits in one."""
    heading = f"### {view.heading}"
    notes = [textwrap.fill(note, width, initial_indent="- ", subsequent_indent="  ", break_on_hyphens=False)
             for note in view.notes]

    def fits(names: list[str]) -> bool:
        return max(map(len, _grid(view, names, "github").splitlines())) <= width

    blocks: list[list[str]] = [[]]
    for _, names in view.sections:
        if blocks[-1] and not fits(blocks[-1] + names):
            blocks.append([])
        for name in names:
            if blocks[-1] and not fits(blocks[-1] + [name]):
                blocks.append([])
            blocks[-1].append(name)
    tables = [_grid(view, names, "github") for names in blocks if names]
    return "\n\n".join([heading, "\n".join(notes), *tables])


def _html_table(view: TableView) -> str:
    heading = html.escape(view.heading)
    notes = "".join(f"<li>{html.escape(note)}</li>" for note in view.notes)
    return f"<h3>{heading}</h3>\n<ul class=\"notes\">{notes}</ul>\n{_grid(view, view.metrics, 'html')}"


def _json_table(view: TableView) -> dict:
    def number(value: float) -> float | None:
        return None if pd.isna(value) else float(value)

    return {**view.keys, "notes": view.notes,
            "metrics": [{"name": n, "direction": METRICS[n].direction, "section": title}
                        for title, names in view.sections for n in names],
            "rows": [{"method": method, "n_seeds": n,
                      "cells": {name: {"text": c.text, "marker": c.marker, "not_estimated": bool(c.flag),
                                       **{k: number(v) for k, v in c.values.items()}} for name, c in cells.items()}}
                     for method, n, cells in view.rows]}


def _latex_table(view: TableView) -> str:
    def tex(text: str) -> str:
        out = "".join(LATEX_SPECIAL.get(ch, ch) for ch in text)
        for symbol, command in LATEX.items():
            out = out.replace(symbol, command)
        return out

    names = view.metrics
    lines = [f"% {tex(note)}" for note in view.notes]
    lines += [f"\\begin{{tabular}}{{l{'r' * len(names)}}}", r"\toprule",
              " & ".join(["method"] + [tex(_header(n)) for n in names]) + r" \\", r"\midrule"]
    lines += [" & ".join([tex(method)] + [tex(cells[n].text) for n in names]) + r" \\"
              for method, _, cells in view.rows]
    lines += [r"\bottomrule", r"\end{tabular}"]
    caption = tex(view.heading)
    return "\n".join([r"\begin{table}", r"\centering", f"\\caption{{{caption}}}", *lines, r"\end{table}"])


def _csv(summary: pd.DataFrame, metrics: str | Sequence[str]) -> str:
    """The numeric summary (what `harness check` and `compare` read) with a `<metric>_marker`
    column per tested metric; a metric selection keeps only those metrics' columns."""
    names = [name for _, group in select_metrics(summary, metrics) for name in group]
    markers = {f"{name}_marker": [marker_of(row, name)[0] for _, row in summary.iterrows()]
               for name in summary_metrics(summary) if f"{name}_diff" in summary}
    frame = pd.concat([summary, pd.DataFrame(markers, index=summary.index)], axis=1)
    if metrics != "all":
        per_metric = {f"{m}{s}" for m in summary_metrics(summary) for s in METRIC_SUFFIXES}
        wanted = {f"{m}{s}" for m in names for s in METRIC_SUFFIXES}
        frame = frame[[c for c in frame.columns if c not in per_metric or c in wanted]]
    return frame.to_csv(index=False, float_format="%.6g")


def _notes(table: pd.DataFrame, metrics: list[str], scale: str, compact: bool = False) -> list[str]:
    seeds = "/".join(map(str, sorted(set(table["n_seeds"]))))
    percent = ", percent" if scale == "pct" else ""
    if compact:
        tested = any(f"{name}_diff" in table for name in metrics)
        notes = [f"mean over {seeds} replicates{percent}" + (f" (Δ vs {stats.BASELINE}, ▲/▼)" if tested else "")
                 + "; ± sd in the full table"]
    else:
        notes = [f"mean ± sd over {seeds} replicates{percent}"]
    notes += _significance_notes(table, metrics)
    fidelity_shown = any(METRICS[m].source == "fidelity" and table[f"{m}_mean"].notna().any() for m in metrics)
    if fidelity_shown:
        for column, what in (("fidelity_extractor", "FID/KID features"), ("fidelity_n", "n")):
            values = sorted(set(table[column].dropna())) if column in table else []
            notes.append(f"{what}: {' | '.join(values) if values else 'not recorded'}")
        judges = sorted(set(table["fidelity_judge"].dropna())) if "fidelity_judge" in table else []
        if judges:
            notes.append(f"fidelity judges' accuracy on real test: {' | '.join(judges)}")
    return notes


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


def marker_of(row: pd.Series, name: str) -> tuple[str, str]:
    """(▲/▼/"", † or ""): the one place a row's significance marker is decided."""
    diff = row.get(f"{name}_diff", math.nan)
    if pd.isna(diff):
        return "", ""
    sign = stats.marker(float(diff), float(row.get(f"{name}_p_adj", math.nan)), METRICS[name].direction)
    flagged = sign and isinstance(row.get("not_estimated"), str) and row["not_estimated"]
    return sign, NOT_ESTIMATED_FLAG if flagged else ""


def cell_view(row: pd.Series, name: str, factor: float, compact: bool = False) -> CellView:
    values = {k: float(row.get(f"{name}_{k}", math.nan)) for k in ("mean", "sd", "diff", "ci_low", "ci_high", "p_adj")}
    sign, flag = marker_of(row, name)
    mean, sd, diff = values["mean"], values["sd"], values["diff"]
    if pd.isna(mean):
        return CellView("n/a", "", "", values)
    digits = 1 if factor == 100 else 3
    text = f"{mean * factor:.{digits}f}"
    if not pd.isna(sd) and not compact:
        text += f" ± {sd * factor:.{digits}f}"
    if not pd.isna(diff):
        delta = f"{diff * factor:+.{digits}f}" if compact else f"Δ {diff * factor:+.{digits}f}"
        text += f" ({delta}{' ' + sign + flag if sign else ''})"
    return CellView(text, sign, flag, values)
