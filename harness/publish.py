"""Publish a run as a leaderboard folder: one markdown and one CSV table per (dataset, scenario,
classifier, split), a cross-dataset ranking (Friedman test + Nemenyi critical difference on
average ranks), an index, and the run's manifest and result records, so that every number in
the folder can be recomputed from what sits beside it (`harness leaderboard` on the records).
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd

from harness import coverage, records, stats
from harness.cache import write_bytes_atomic
from harness.contracts import ConfigError
from harness.leaderboard import TABLE_KEYS, render
from harness.metrics import HIGHER, METRICS

#: names the files a publish wrote into its folder; only a folder holding it is written into again
MARKER = ".harness-publish.json"
#: the metrics the ranking is computed on (each where the run has it)
RANKING_METRICS = ("acc", "worst_acc", "gap_acc", "auc_gap", "dp", "eo", "cas", "fid")


def write_text_atomic(path: Path, text: str) -> None:
    write_bytes_atomic(path, text.encode())


def table_name(keys: tuple) -> str:
    return "__".join(re.sub(r"[^A-Za-z0-9_.-]+", "-", str(k)) for k in keys)


#: one independent block of the ranking: a dataset and scenario (its classifiers are averaged)
BLOCK_KEYS = ["dataset", "scenario", "split"]


def ranking_blocks(summary: pd.DataFrame, metric: str) -> tuple[pd.DataFrame, list[str]]:
    """A complete (blocks x methods) table of `metric` for a Friedman test. A block is one dataset
    x scenario: the tables of its classifiers share the training data and test set, so they are
    not independent; a method's value in a block is its mean over those classifiers, which also
    counts a classifier-independent metric (the FID family) once per block. Methods: those that
    appear in blocks of at least two datasets; blocks: those where each of them has a value in
    every classifier's table."""
    column = f"{metric}_mean"
    if column not in summary:
        return pd.DataFrame(), []
    have = summary[summary[column].notna()]
    datasets_of = have.groupby("method")["dataset"].nunique()
    methods = [m for m in have["method"].drop_duplicates() if datasets_of[m] >= 2]
    blocks = []
    for keys, block in summary.groupby(BLOCK_KEYS, sort=False):
        values = block.pivot_table(index="method", columns="classifier", values=column, aggfunc="mean", dropna=False)
        if methods and all(m in values.index for m in methods) and values.loc[methods].notna().all().all():
            blocks.append(pd.Series(values.loc[methods].mean(1).to_numpy(), index=methods, name=table_name(keys)))
    return (pd.DataFrame(blocks), methods) if blocks else (pd.DataFrame(), methods)


def ranking(summary: pd.DataFrame, metrics=RANKING_METRICS, alpha: float = 0.05) -> tuple[str, pd.DataFrame]:
    """Markdown and a long table of average ranks (1 = best) with Friedman's p and Nemenyi's CD."""
    lines, rows = [], []
    for metric in metrics:
        scores, methods = ranking_blocks(summary, metric)
        if metric not in METRICS or scores.empty:
            continue
        higher = METRICS[metric].direction == HIGHER
        lines.append(f"### {metric} ({'higher' if higher else 'lower'} is better; {len(scores)} blocks: "
                     f"{', '.join(scores.index)})\n")
        if scores.shape[0] < 3 or scores.shape[1] < 3:
            lines.append(f"No Friedman test: it needs >= 3 independent blocks (dataset x scenario) and >= 3 methods; "
                         f"have {scores.shape[0]} x {scores.shape[1]}.\n")
            continue
        result = stats.friedman_nemenyi(scores.to_numpy(), higher_is_better=higher, alpha=alpha)
        order = np.argsort(result.average_ranks)
        best = result.average_ranks[order[0]]
        lines.append("| method | average rank | differs from the best (Nemenyi) |\n|---|---|---|")
        for i in order:
            differs = result.average_ranks[i] - best > result.critical_difference
            lines.append(f"| {methods[i]} | {result.average_ranks[i]:.2f} | {'yes' if differs else 'no'} |")
            rows.append({"metric": metric, "method": methods[i], "average_rank": result.average_ranks[i],
                         "blocks": len(scores), "friedman_chi2": result.statistic, "friedman_p": result.p,
                         "nemenyi_cd": result.critical_difference})
        lines.append(f"\nFriedman χ² = {result.statistic:.2f}, p = {result.p:.3g}; Nemenyi critical difference "
                     f"at α = {alpha:g}: {result.critical_difference:.2f} ranks.\n")
    return "\n".join(lines), pd.DataFrame(rows)


def forest(summary: pd.DataFrame) -> pd.DataFrame:
    """One row per comparison with the baseline (table, method, metric): Δ, its 95% CI, p, p_adj,
    whether the metric is a primary endpoint, and what the test could not estimate; the long
    form a forest plot reads."""
    metrics = [c[:-5] for c in summary.columns if c.endswith("_diff") and c[:-5] in METRICS]
    primary = set()
    if "primary_endpoints" in summary:
        primary = {m for text in summary["primary_endpoints"].dropna() for m in text.split(",")}
    rows = []
    for _, row in summary.iterrows():
        for m in metrics:
            if pd.isna(row[f"{m}_diff"]):
                continue
            rows.append({**{k: row[k] for k in TABLE_KEYS}, "method": row["method"], "metric": m,
                         "endpoint": "primary" if m in primary else "exploratory", "delta": row[f"{m}_diff"],
                         "ci_low": row[f"{m}_ci_low"], "ci_high": row[f"{m}_ci_high"], "p": row[f"{m}_p"],
                         "p_adj": row[f"{m}_p_adj"],
                         "marker": stats.marker(row[f"{m}_diff"], row[f"{m}_p_adj"], METRICS[m].direction),
                         "not_estimated": row.get("not_estimated") or ""})
    return pd.DataFrame(rows, columns=[*TABLE_KEYS, "method", "metric", "endpoint", "delta", "ci_low", "ci_high", "p",
                                       "p_adj", "marker", "not_estimated"])


def table_sizes(rows: list[dict]) -> dict[tuple, str]:
    """Per table, the sizes its numbers were made at: image resolution, and each generator's
    training resolution and steps (steps as recorded by the generator; resolution from the
    generator's resolved parameters in the record; left out where the record has none)."""
    sizes: dict[tuple, str] = {}
    by_table: dict[tuple, dict] = {}
    for r in rows:
        if r.get("status") != "ok":
            continue
        spec = r["spec"]
        keys = (spec["dataset"]["label"], spec["scenario"], spec["classifier"]["label"], r["split"])
        plugins = r.get("plugins") or {}
        image = ((plugins.get("dataset") or {}).get("params") or {}).get("resolution")
        entry = by_table.setdefault(keys, {"image": image, "gens": {}})
        steps = (r.get("generator_stats") or {}).get("train_steps")
        if steps:
            resolution = ((plugins.get("generator") or {}).get("params") or {}).get("resolution")
            where = f"{resolution} px, " if resolution else ""
            entry["gens"].setdefault(f"{where}{int(steps)} training steps", []).append(spec["generator"]["label"])
    for keys, entry in by_table.items():
        parts = [f"images {entry['image']} px"] if entry["image"] else []
        parts += [f"{', '.join(dict.fromkeys(labels))}: {size}" for size, labels in entry["gens"].items()]
        sizes[keys] = "; ".join(parts)
    return sizes


def publish(run_dir: Path, out_dir: Path, summary: pd.DataFrame, title: str, scale: str = "fraction") -> list[Path]:
    """Write the folder; returns the files written. `out_dir` must be new, empty, or a folder
    this function wrote before (it holds MARKER): then the files of that earlier publish are
    replaced or removed, so the folder holds exactly this run, and no other file is touched."""
    run_dir, out_dir = Path(run_dir), Path(out_dir)
    records.refuse_limited(run_dir, "published")
    tables = list(summary.groupby(TABLE_KEYS, sort=False))
    names = [f"{table_name(keys)}{suffix}" for keys, _ in tables for suffix in (".md", ".csv")]
    names += ["ranking.csv", "ranking.md", "README.md", records.MANIFEST, records.RESULTS]
    with_forest = any(c.endswith("_diff") for c in summary.columns)  # only when significance was computed
    names += ["forest.csv"] if with_forest else []
    earlier = _claim_folder(out_dir, names)
    sizes = table_sizes(records.load(run_dir))
    for keys, table in tables:
        stem = out_dir / table_name(keys)
        size_line = f"Sizes: {sizes[tuple(keys)]}.\n\n" if sizes.get(tuple(keys)) else ""
        write_text_atomic(stem.with_suffix(".md"), render(table, "md", scale).replace("\n\n", f"\n\n{size_line}", 1))
        write_text_atomic(stem.with_suffix(".csv"), render(table, "csv", scale))
    rank_md, rank_rows = ranking(summary)
    write_text_atomic(out_dir / "ranking.csv", rank_rows.to_csv(index=False, float_format="%.6g"))
    if with_forest:
        write_text_atomic(out_dir / "forest.csv", forest(summary).to_csv(index=False, float_format="%.6g"))
    write_text_atomic(out_dir / "ranking.md", "# Cross-dataset ranking\n\n" + RANKING_NOTE + "\n\n" + rank_md)
    index = [f"# {title}\n", INDEX_NOTE, "\n## Tables\n"]
    index += [f"- [{'/'.join(map(str, keys))}]({table_name(keys)}.md) ({sizes.get(tuple(keys), '')})"
              for keys, _ in tables]
    missing = coverage.markdown(coverage.gaps(run_dir), Path(run_dir.name))
    index += ["\n" + missing] if missing else []
    index += ["\n## Cross-dataset ranking\n", RANKING_NOTE + "\n", rank_md, "\n## All tables\n", render(summary, "md", scale)]
    write_text_atomic(out_dir / "README.md", "\n".join(index))
    for name in (records.MANIFEST, records.RESULTS):
        write_bytes_atomic(out_dir / name, (run_dir / name).read_bytes())
    for name in sorted(set(earlier) - set(names)):  # tables of the earlier publish that this run lacks
        (out_dir / name).unlink(missing_ok=True)
    write_text_atomic(out_dir / MARKER, json.dumps({"files": names}, indent=1) + "\n")
    return [out_dir / name for name in names]


def _claim_folder(out_dir: Path, names: list[str]) -> list[str]:
    """Make sure publishing may write into `out_dir`; the files an earlier publish wrote there.
    The marker is written first with both lists, so an interrupted publish can be rerun."""
    if out_dir.exists() and not out_dir.is_dir():
        raise ConfigError(f"--publish {out_dir}: that is a file, not a folder")
    marker = out_dir / MARKER
    if out_dir.is_dir() and any(out_dir.iterdir()) and not marker.is_file():
        raise ConfigError(f"--publish {out_dir}: the folder is not empty and was not written by --publish "
                          f"(no {MARKER}); publishing replaces files, so give a new or empty folder, "
                          "or move this folder's files away first")
    earlier = []
    if marker.is_file():
        try:
            earlier = [n for n in json.loads(marker.read_text())["files"] if n == Path(n).name and n != MARKER]
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise ConfigError(f"--publish {out_dir}: {marker} is damaged ({exc}); move the folder away and "
                              "publish into a new one") from exc
    out_dir.mkdir(parents=True, exist_ok=True)
    write_text_atomic(marker, json.dumps({"files": sorted(set(earlier) | set(names))}, indent=1) + "\n")
    return earlier


INDEX_NOTE = ("Written by `harness leaderboard RUN --publish DIR` from the run whose manifest.json and "
              "results.jsonl sit in this folder; never edited by hand. Each table: methods x metrics, mean ± sd "
              "over replicates, Δ from the real-only baseline `none`, and ▲/▼ where a two-level bootstrap "
              "(replicates, then test samples) finds the difference significant: primary endpoints Holm-corrected "
              "over the whole run, other metrics exploratory, Holm-corrected within their table. Each header says "
              "which variance sources the replicates cover and which are not estimated (†), and the minimum "
              "detectable effect. forest.csv lists every Δ with its 95% CI, p and p_adj. How to read it: "
              "docs/metrics.md and docs/leaderboards.md.")
RANKING_NOTE = ("Methods are ranked within each independent block (dataset x scenario, the classifiers' tables "
                "averaged, so a classifier-independent metric such as FID counts once) on a metric's mean, then "
                "ranks are averaged over blocks. Only methods that run on at least two datasets take part, and "
                "only the blocks that have all of them. Friedman's test asks whether any method ranks differently "
                "from the others; Nemenyi's critical difference says which gaps in average rank are significant "
                "(Demšar 2006). Below 3 blocks there is no test. Few blocks make a weak test: read p, not just "
                "the order.")
