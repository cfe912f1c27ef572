"""`harness report RUN_DIR`: one self-contained HTML page that leads with what a run found.

Top to bottom: the findings (each primary endpoint's significant differences from the real-only
baseline, in words), a forest plot per primary endpoint (every Δ with its 95% CI, from the
leaderboard's significance test via harness.publish.forest), then per table accuracy vs fairness
gap with 95% CIs over replicates, per-group bars in the dataset's own group order, per-group FID
when the run computed fidelity, and sample grids; the full leaderboard tables, with their
markers, are collapsed at the end. A method has one colour on every plot (method_colours); a
plot whose values cannot vary (all equal, or within the metric's tolerance, as AUC at 1.0 in
every group) is left out with a note.
Plots are PNGs embedded as base64, so the page is one file; jinja2 autoescapes every label.
Reading guide: docs/leaderboards.md ("The HTML report").
"""
from __future__ import annotations

import base64
import hashlib
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import jinja2
import matplotlib
import numpy as np
import pandas as pd
from markupsafe import Markup

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from harness import coverage, records, stats  # noqa: E402
from harness.curves import curve_figure, curves_from, is_sweep  # noqa: E402
from harness.data import ImageSet  # noqa: E402
from harness.leaderboard import TABLE_KEYS, load_summary, records_frame, render, run_design  # noqa: E402
from harness.metrics import HIGHER, METRICS  # noqa: E402
from harness.publish import forest  # noqa: E402

#: distinguishable on white and from each other; grey is kept for the baseline
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#bcbd22", "#17becf",
           "#000075", "#800000", "#469990", "#f032e6", "#000000", "#b8860b", "#6a5acd")
BASELINE_COLOUR = "#7f7f7f"
#: shipped generators, each with its own palette entry in every report (tests check this covers `harness ls`)
SHIPPED_METHODS = ("oversample", "ddpm", "medi", "cbdm", "sd", "fairgen", "fairdiffusion", "skindiff", "cbrs",
                   "sqrs", "cbdm-sd", "cbcb")
#: per-group metrics drawn as bars, each where it varies
GROUP_METRICS = ("acc", "auc")


# ---- colours ------------------------------------------------------------------------------

def method_colours(methods: Iterable[str]) -> dict[str, str]:
    """One colour per method, the same on every plot of a report: the baseline grey; otherwise
    the palette entry of the method's generator (a shipped one's own, else the entry its name
    hashes to), or, when another method of the report already has that one, the next free entry.
    Shipped methods choose first, so theirs never move; then the others in sorted order, so
    equal method sets get equal colours."""
    out: dict[str, str] = {}
    taken: set[int] = set()
    for method in sorted(set(methods), key=lambda m: (m.split(" [")[0] not in SHIPPED_METHODS, m)):
        generator = method.split(" [")[0]
        if generator == stats.BASELINE:
            out[method] = BASELINE_COLOUR
            continue
        index = _preferred_index(generator)
        for step in range(len(PALETTE)):
            if (index + step) % len(PALETTE) not in taken:
                index = (index + step) % len(PALETTE)
                break  # with more methods than colours, colours repeat
        taken.add(index)
        out[method] = PALETTE[index]
    return out


def _preferred_index(generator: str) -> int:
    if generator in SHIPPED_METHODS:
        return SHIPPED_METHODS.index(generator) % len(PALETTE)
    return int(hashlib.sha256(generator.encode()).hexdigest(), 16) % len(PALETTE)


# ---- group order --------------------------------------------------------------------------

def group_order(rows: Sequence[dict], attribute: str) -> tuple[list[str], bool]:
    """The groups of `attribute` in the dataset's declared order (records store the vocabulary
    in plugins.attribute_vocab), then any other group the records report; and whether that
    order is the dataset's (False: the records carry no vocabulary, groups are alphabetical)."""
    declared = next((r["plugins"]["attribute_vocab"][attribute] for r in rows
                     if attribute in ((r.get("plugins") or {}).get("attribute_vocab") or {})), None)
    seen = {g for r in rows for g in (r.get("per_group") or {}).get(attribute, {})}
    seen |= {g for r in rows for g in ((r.get("fidelity") or {}).get("per_group") or {})}
    order = list(declared or [])
    return order + sorted(seen - set(order)), declared is not None


# ---- plots --------------------------------------------------------------------------------

def _png(fig, alt: str) -> Markup:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    data = base64.b64encode(buffer.getvalue()).decode()
    return Markup('<img alt="{}" src="data:image/png;base64,{}">').format(alt, data)


def _legend_outside(ax) -> None:
    """The legend right of the axes, so it never covers a bar or a point."""
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False)


def _varies(values: Iterable[float], tolerance: float = 1e-12) -> bool:
    """Whether the defined values spread by more than `tolerance`."""
    finite = [v for v in values if v is not None and not math.isnan(v)]
    return len(finite) > 1 and max(finite) - min(finite) > tolerance


def forest_plot(comparisons: pd.DataFrame, metric: str, colours: dict[str, str]) -> Markup | None:
    """Δ vs the baseline with its 95% CI, one row per (table, method); hollow where not tested."""
    rows = comparisons[comparisons["metric"] == metric].reset_index(drop=True)
    if rows.empty:
        return None
    varying = [k for k in TABLE_KEYS if rows[k].nunique() > 1]
    fig, ax = plt.subplots(figsize=(4.4, 0.9 + 0.22 * len(rows)))
    labels = []
    for y, row in rows.iterrows():
        colour = colours[row["method"]]
        tested = not (pd.isna(row["ci_low"]) or pd.isna(row["ci_high"]))
        if tested:
            ax.errorbar(row["delta"], y, xerr=[[row["delta"] - row["ci_low"]], [row["ci_high"] - row["delta"]]],
                        fmt="o", color=colour, capsize=3, markersize=5)
        else:
            ax.plot(row["delta"], y, "o", markerfacecolor="white", markeredgecolor=colour, markersize=5)
        where = "/".join(str(row[k]) for k in varying)
        labels.append(f"{where}: {row['method']}" if where else row["method"])
        note = row["marker"] or ("" if tested else "not tested")
        if note:
            ax.annotate(note, (1.01, y), xycoords=("axes fraction", "data"), va="center", fontsize=8)
    ax.axvline(0, color=BASELINE_COLOUR, linewidth=1, linestyle="--")
    ax.set_yticks(range(len(rows)), labels, fontsize=8)
    for tick, row in zip(ax.get_yticklabels(), rows.itertuples()):
        tick.set_color(colours[row.method])
    ax.set_ylim(len(rows) - 0.5, -0.5)
    better = "higher" if METRICS[metric].direction == HIGHER else "lower"
    ax.set_xlabel(f"Δ {metric} vs {stats.BASELINE}, 95% CI ({better} is better)", fontsize=9)
    ax.set_title(f"{metric}: difference from the real-only baseline", fontsize=10)
    return _png(fig, f"forest plot: Δ {metric} vs {stats.BASELINE}")


def accuracy_vs_gap(table: pd.DataFrame, utility: str, gap: str, colours: dict[str, str]) -> Markup | None:
    """Each method's mean utility against its mean fairness gap, with 95% t-intervals over replicates."""
    if not _varies(table[f"{utility}_mean"].tolist() + table[f"{gap}_mean"].tolist()):
        return None
    fig, ax = plt.subplots(figsize=(5.0, 3.6))
    for row in table.itertuples():
        mean_x, mean_y = getattr(row, f"{gap}_mean"), getattr(row, f"{utility}_mean")
        x_low, x_high = stats.mean_interval(mean_x, getattr(row, f"{gap}_sd"), row.n_seeds)
        y_low, y_high = stats.mean_interval(mean_y, getattr(row, f"{utility}_sd"), row.n_seeds)
        ax.errorbar(mean_x, mean_y, xerr=_half_widths(mean_x, x_low, x_high), yerr=_half_widths(mean_y, y_low, y_high),
                    fmt="o", color=colours[row.method], capsize=3, markersize=7, markeredgecolor="black",
                    label=row.method)
    ax.set_xlabel(f"fairness gap {gap}: best − worst group (↓)", fontsize=9)
    ax.set_ylabel(f"{utility} (↑)", fontsize=9)
    ax.set_title(f"{utility} vs {gap} (mean, 95% CI over replicates)", fontsize=9)
    _legend_outside(ax)
    return _png(fig, f"{utility} vs {gap}")


def _half_widths(mean: float, low: float, high: float) -> list[list[float]] | None:
    if math.isnan(low) or math.isnan(high):
        return None
    return [[mean - low], [high - mean]]


def group_bars(values: dict[str, dict[str, float]], groups: list[str], ylabel: str, title: str,
               colours: dict[str, str], tolerance: float = 1e-12) -> Markup | None:
    """Bars of `values` (method -> group -> value) in the order of `groups`; None when they
    spread by no more than `tolerance` (a saturated axis: nothing to compare) or there are none."""
    if not _varies((v for per_group in values.values() for v in per_group.values()), tolerance):
        return None
    methods = list(values)
    width = 0.8 / len(methods)
    fig, ax = plt.subplots(figsize=(max(4.0, 1.1 * len(groups) + 0.25 * len(methods)), 3.4))
    positions = np.arange(len(groups))
    for i, method in enumerate(methods):
        heights = [values[method].get(g, math.nan) for g in groups]
        ax.bar(positions + i * width, heights, width, label=method, color=colours[method])
    ax.set_xticks(positions + 0.4 - width / 2, groups, fontsize=8)
    ax.set_ylabel(ylabel, fontsize=9)
    ax.set_title(title, fontsize=9)
    _legend_outside(ax)
    return _png(fig, title)


def confusion_tables(rows: Sequence[dict], methods: Sequence[str], target: str) -> dict[str, tuple[np.ndarray, str]]:
    """method -> (requested × judged counts of `target` summed over its records, the primary judge),
    for the methods whose records (`rows`, aligned with `methods`) have judged synthetic images."""
    tables: dict[str, tuple[np.ndarray, str]] = {}
    for method in dict.fromkeys(methods):
        reports = [r["fidelity"]["attribute_fidelity"] for r, m in zip(rows, methods) if m == method
                   and ((r.get("fidelity") or {}).get("attribute_fidelity") or {}).get("judges")]
        counts = [np.asarray(report["judges"][report["primary"]]["confusion"][target], dtype=float)
                  for report in reports if target in report["judges"][report["primary"]]["confusion"]]
        if counts:
            tables[method] = (np.sum(counts, axis=0), reports[0]["primary"])
    return tables


def judged_confusion(rows: Sequence[dict], methods: Sequence[str], target: str, names: list[str]) -> Markup | None:
    """Requested (rows) vs judged (columns) `target` ("attribute" or "class") of each method's
    synthetic images, as shares of each request, summed over the method's records and read by
    the run's primary fidelity judge; None when no method has judged images."""
    tables = confusion_tables(rows, methods, target)
    if not tables:
        return None
    size = len(next(iter(tables.values()))[0])
    labels = names if len(names) == size else [str(i) for i in range(size)]
    fig, axes = plt.subplots(1, len(tables), figsize=(0.9 + (0.45 * size + 1.2) * len(tables), 0.45 * size + 1.4),
                             squeeze=False)
    for ax, (method, (table, judge)) in zip(axes[0], tables.items()):
        shares = table / np.maximum(table.sum(axis=1, keepdims=True), 1)
        ax.imshow(shares, vmin=0, vmax=1, cmap="Greys")
        for i, j in np.ndindex(shares.shape):
            ax.text(j, i, f"{shares[i, j]:.2f}", ha="center", va="center", fontsize=7,
                    color="white" if shares[i, j] > 0.5 else "black")
        ax.set_xticks(range(size), labels, fontsize=7, rotation=45, ha="right")
        ax.set_yticks(range(size), labels, fontsize=7)
        ax.set_title(f"{method}\n(judge: {judge})", fontsize=8)
        ax.set_xlabel("judged", fontsize=8)
    axes[0][0].set_ylabel("requested", fontsize=8)
    what = "class" if target == "class" else "group"
    return _png(fig, f"requested vs judged {what} of the synthetic images")


def sample_grid(row: dict, cache_dir: Path, per_cell: int = 4) -> Markup | None:
    """Synthetic images per (class x group) beside real training images of the same cell, as one
    mosaic; None when the cache no longer holds them."""
    synthetic_key, train_key = row["artifacts"].get("synthetic"), row["artifacts"].get("train")
    synthetic_path = cache_dir / "synthetic" / str(synthetic_key) / "synthetic.npz"
    train_path = cache_dir / "train" / str(train_key) / "train.npz"
    if not synthetic_key or not synthetic_path.is_file() or not train_path.is_file():
        return None
    synthetic, real = ImageSet.load(synthetic_path), ImageSet.load(train_path)
    attribute = row["plugins"]["attribute"]
    groups, classes = real.attribute_vocab[attribute], real.label_names
    channels, height, width = real.images.shape[1:]
    gap = max(2, height // 4)
    block = (height + gap, per_cell * width + gap)  # one (class, group, real|synthetic) strip and its margin
    mosaic = np.full((len(classes) * block[0], 2 * len(groups) * block[1], channels), 255, dtype=np.uint8)
    for c in range(len(classes)):
        for g in range(len(groups)):
            for side, source in enumerate((real, synthetic)):
                picked = np.flatnonzero((source.labels == c) & (source.group_codes(attribute) == g))[:per_cell]
                for i, image in enumerate(source.images[picked]):
                    top, left = c * block[0], (2 * g + side) * block[1] + i * width
                    mosaic[top:top + height, left:left + width] = image.transpose(1, 2, 0)
    fig, ax = plt.subplots(figsize=(min(12.0, 0.35 * mosaic.shape[1] / height + 1.5), 0.45 * len(classes) + 0.9))
    ax.imshow(mosaic[..., 0] if channels == 1 else mosaic, cmap="gray" if channels == 1 else None,
              interpolation="nearest")
    ax.set_xticks([k * block[1] + (block[1] - gap) / 2 for k in range(2 * len(groups))],
                  [f"{groups[k // 2]}\n{'real' if k % 2 == 0 else 'synthetic'}" for k in range(2 * len(groups))],
                  fontsize=7)
    ax.set_yticks([c * block[0] + (block[0] - gap) / 2 for c in range(len(classes))], classes, fontsize=7)
    ax.tick_params(length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)
    ax.set_title(f"{row['cell_id']} seed {row['seed_index']}", fontsize=8)
    return _png(fig, f"sample grid: {row['cell_id']} seed {row['seed_index']}")


# ---- findings -----------------------------------------------------------------------------

def findings(comparisons: pd.DataFrame, primary: Sequence[str]) -> list[str]:
    """The primary endpoints' significant differences from the baseline, one sentence each, and
    what could not be tested."""
    rows = comparisons[comparisons["metric"].isin(primary)]
    if rows.empty:
        return [f"No comparison with the '{stats.BASELINE}' baseline on {', '.join(primary)}: the tables "
                "have no baseline rows sharing replicates with a method."]
    lines = []
    for row in rows[rows["marker"] != ""].itertuples():
        verdict = "better" if row.marker == "▲" else "worse"
        lines.append(f"{row.marker} {row.method} is {verdict} than {stats.BASELINE} on {row.metric} in "
                     f"{'/'.join(str(getattr(row, k)) for k in TABLE_KEYS)}: Δ {row.delta:+.3f} "
                     f"(95% CI {row.ci_low:+.3f} to {row.ci_high:+.3f}, adjusted p {row.p_adj:.2g}).")
    tested = rows[rows["ci_low"].notna()]
    if not lines and len(tested):
        lines.append(f"No method differs significantly from {stats.BASELINE} on {', '.join(primary)} "
                     f"({len(tested)} tested comparison{'s' * (len(tested) != 1)}, α = {stats.ALPHA:g} after correction).")
    untested = len(rows) - len(tested)
    if untested:
        lines.append(f"{untested} comparison{'s' * (untested != 1)} not tested: fewer than {stats.MIN_REPLICATES} "
                     "distinct replicates (run more seeds); their forest rows are hollow and have no CI.")
    return lines


def ratio_sweep_plots(rows: list[dict], summary: pd.DataFrame, primary: Sequence[str],
                      colours: dict[str, str]) -> list[Markup]:
    """Metric-vs-ratio curves of the primary endpoints, when the run sweeps the ratio."""
    endpoints = [m for m in primary if f"{m}_mean" in summary.columns]
    if not endpoints:
        return []
    data = curves_from(rows, summary, endpoints)
    if not is_sweep(data):
        return []
    by_generator = {method.split(" [")[0]: colour for method, colour in colours.items()}
    return [_png(curve_figure(data, metric, f"{metric} vs synthetic : real", by_generator),
                 f"ratio sweep: {metric} vs synthetic:real ratio") for metric in endpoints]


# ---- the page -----------------------------------------------------------------------------

@dataclass
class Section:
    title: str
    plots: list[Markup] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    samples: list[tuple[str, Markup]] = field(default_factory=list)
    unordered: str = ""  # the attribute whose group order the records do not carry


def build_report(run_dir: Path, cache_dir: Path | None = None, merge: Sequence[Path] = (),
                 significance: str = "bootstrap", b: int = stats.BOOTSTRAP_B) -> str:
    """The page for a run folder, with the records of `merge` (published run folders or results
    files, as `harness leaderboard --merge`) beside its own."""
    run_dir = Path(run_dir)
    manifest_path = run_dir / records.MANIFEST
    manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}
    cache_dir = Path(cache_dir) if cache_dir else _run_cache(manifest)
    rows = records.load_records(run_dir, merge)
    frame = records_frame(rows)
    summary = load_summary(run_dir, merge, significance, b=b)
    comparisons = forest(summary) if significance != "none" else pd.DataFrame(columns=["metric"])
    primary = run_design(run_dir).primary
    colours = method_colours(summary["method"])
    colours = {method: colours[method] for method in summary["method"].drop_duplicates()}  # the tables' order
    # labels come from grid files and plugins: text, never mathtext
    with matplotlib.rc_context({"text.parse_math": False}):
        forests = [plot for plot in (forest_plot(comparisons, m, colours) for m in primary) if plot]
        sweeps = ratio_sweep_plots(rows, summary, primary, colours)
        sections = [_table_section(keys, table, summary, rows, cache_dir, colours)
                    for keys, table in frame.groupby(TABLE_KEYS, sort=False)]
    name = run_dir.resolve().name
    return _template().render(
        title=" + ".join([name, *(Path(m).resolve().name for m in merge)]), run_name=name,
        merged=[str(m) for m in merge], grid=manifest.get("grid", {}).get("source", "?"),
        git=manifest.get("git", "?"), torch=manifest.get("versions", {}).get("torch", "?"),
        test=summary["p_test"].iloc[0] if "p_test" in summary else "none (no Δ, no markers)",
        findings=findings(comparisons, primary) if significance != "none" else [],
        forests=forests, sweeps=sweeps, colours=colours, sections=sections,
        unordered=sorted({s.unordered for s in sections if s.unordered}),
        tables=Markup(render(summary, "html")), n_tables=len(sections), gaps=coverage.gaps(run_dir))


def _run_cache(manifest: dict) -> Path | None:
    cache = manifest.get("options", {}).get("cache")
    return Path(cache) if cache else None


def _table_section(keys: tuple, table: pd.DataFrame, summary: pd.DataFrame, rows: list[dict],
                   cache_dir: Path | None, colours: dict[str, str]) -> Section:
    section = Section(", ".join(f"{k}={v}" for k, v in zip(TABLE_KEYS, keys)))
    table_rows = [rows[i] for i in table["record_index"]]
    methods = table["method"].tolist()
    means = summary[(summary[TABLE_KEYS] == pd.Series(keys, index=TABLE_KEYS)).all(axis=1)]
    utility, gap = ("acc", "gap_acc") if means["acc_mean"].notna().any() else ("auc", "auc_gap")
    _add(section, accuracy_vs_gap(means, utility, gap, colours), f"{utility} vs {gap}: every method has the same values")
    attribute = table_rows[0]["plugins"]["attribute"]
    groups, declared = group_order(table_rows, attribute)
    if not declared:
        section.unordered = attribute
    for metric in GROUP_METRICS:
        values = _group_means(table_rows, methods, lambda r, g: ((r.get("per_group") or {}).get(attribute, {})
                                                                  .get(g) or {}).get(metric))
        tolerance = METRICS[metric].tolerance
        _add(section, group_bars(values, groups, f"{metric} per group", f"per-group {metric} ({attribute})", colours,
                                 tolerance), f"per-group {metric} not drawn: {_flat(values, metric, tolerance)}")
    fid = _group_means(table_rows, methods, lambda r, g: (((r.get("fidelity") or {}).get("per_group") or {})
                                                          .get(g) or {}).get("fid"))
    if any(fid.values()):
        extractor = next(r["fidelity"]["extractor"] for r in table_rows if r.get("fidelity"))
        _add(section, group_bars(fid, groups, f"FID per group ({extractor}) ↓", f"per-group FID ({attribute})",
                                 colours), f"per-group FID not drawn: {_flat(fid, 'fid', 0.0)}")
    vocab = next(((r.get("plugins") or {}).get("attribute_vocab") or {}).get(attribute) for r in table_rows)
    for target, names in (("attribute", list(vocab or [])), ("class", list(table_rows[0]["plugins"].get("label_names") or []))):
        plot = judged_confusion(table_rows, methods, target, names)
        if plot:
            section.plots.append(plot)
    _add_samples(section, table_rows, methods, cache_dir)
    return section


def _add(section: Section, plot: Markup | None, why_not: str) -> None:
    if plot:
        section.plots.append(plot)
    else:
        section.notes.append(why_not)


def _group_means(rows: list[dict], methods: list[str], value) -> dict[str, dict[str, float]]:
    """method -> group -> mean over the method's records of value(record, group), where defined."""
    out: dict[str, dict[str, float]] = {}
    for method in dict.fromkeys(methods):
        mine = [r for r, m in zip(rows, methods) if m == method]
        groups = {g for r in mine for g in (r.get("per_group") or {}).get(r["plugins"]["attribute"], {})}
        groups |= {g for r in mine for g in ((r.get("fidelity") or {}).get("per_group") or {})}
        means = {}
        for g in groups:
            found = [float(v) for v in (value(r, g) for r in mine) if v is not None and not math.isnan(float(v))]
            if found:
                means[g] = float(np.mean(found))
        if means:
            out[method] = means
    return out


def _flat(values: dict[str, dict[str, float]], metric: str, tolerance: float) -> str:
    """Why bars of `values` would show nothing."""
    found = [v for per_group in values.values() for v in per_group.values()]
    if not found:
        return "no values"
    if max(found) - min(found) <= 1e-12:
        return f"every method has {found[0]:.3f} in every group"
    return (f"every value lies in {min(found):.3f}–{max(found):.3f}, within the {metric} tolerance {tolerance:g} "
            "(differences `harness check` counts as noise)")


def _add_samples(section: Section, rows: list[dict], methods: list[str], cache_dir: Path | None) -> None:
    wanted = list(dict.fromkeys(m for r, m in zip(rows, methods) if (r.get("artifacts") or {}).get("synthetic")))
    missing = []
    for method in wanted:
        first = next(r for r, m in zip(rows, methods) if m == method and (r.get("artifacts") or {}).get("synthetic"))
        grid = sample_grid(first, cache_dir) if cache_dir else None
        if grid:
            section.samples.append((method, grid))
        else:
            missing.append(method)
    if missing:
        where = f"the artifact cache {cache_dir}" if cache_dir else "no artifact cache (the run's manifest names none)"
        section.notes.append(f"Sample grids unavailable for {', '.join(missing)}: {where} no longer holds their "
                             "synthetic and training sets. Pass --cache DIR, or rerun the same `harness run` "
                             "command to rebuild them.")


def _template() -> jinja2.Template:
    #: autoescape: every value is escaped unless it is Markup (the PNGs and the leaderboard's own HTML)
    environment = jinja2.Environment(loader=jinja2.PackageLoader("harness", "templates"), autoescape=True,
                                     undefined=jinja2.StrictUndefined)
    return environment.get_template("report.html.j2")
