"""`harness report RUN_DIR`: a static HTML page with the tables and the plots the papers show.

- accuracy vs fairness gap per method (Ktena et al. Figs. 2-4),
- per-group AUC radar per method (FairGen Fig. 5e),
- per-group FID bars (FairGen Fig. 4b), when the run computed fidelity,
- sample grids: synthetic images per (class x group) beside real training images.
Plots are PNGs embedded as base64, so the page is one self-contained file.
"""
from __future__ import annotations

import base64
import io
import json
import math
from pathlib import Path

import jinja2
import matplotlib
from markupsafe import Markup

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from harness import coverage, records  # noqa: E402
from harness.data import ImageSet  # noqa: E402
from harness.leaderboard import TABLE_KEYS, load_summary, render  # noqa: E402


def _png(fig) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return Markup(f'<img src="data:image/png;base64,{base64.b64encode(buffer.getvalue()).decode()}">')


def _table_key(row: dict) -> tuple:
    spec = row["spec"]
    return spec["dataset"]["label"], spec["scenario"], spec["classifier"]["label"], row["split"]


def _method(row: dict) -> str:
    return row["spec"]["generator"]["label"]


def _mean(values: list[float]) -> float:
    clean = [v for v in values if v is not None and not math.isnan(v)]
    return float(np.mean(clean)) if clean else math.nan


def accuracy_vs_gap(rows: list[dict], title: str) -> str:
    fig, ax = plt.subplots(figsize=(4.6, 3.6))
    for method in sorted({_method(r) for r in rows}):
        mine = [r for r in rows if _method(r) == method]
        x = [records.metric(r, "gap_acc") for r in mine]
        y = [records.metric(r, "acc") for r in mine]
        points = ax.scatter(x, y, alpha=0.35, s=14)
        ax.scatter([_mean(x)], [_mean(y)], color=points.get_facecolor()[0][:3], s=70, edgecolor="black",
                   label=method)
    ax.set_xlabel("fairness gap: best - worst group acc (↓)")
    ax.set_ylabel("accuracy (↑)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc="best")
    return _png(fig)


def group_radar(rows: list[dict], attribute: str, metric: str, title: str) -> str | None:
    groups = sorted({g for r in rows for g in r.get("per_group", {}).get(attribute, {})})
    if len(groups) < 3:
        return None  # a radar needs at least three axes; bars say the same for two groups
    angles = np.linspace(0, 2 * np.pi, len(groups), endpoint=False).tolist()
    fig, ax = plt.subplots(figsize=(4.2, 4.2), subplot_kw={"polar": True})
    for method in sorted({_method(r) for r in rows}):
        mine = [r for r in rows if _method(r) == method]
        values = [_mean([r["per_group"][attribute].get(g, {}).get(metric) for r in mine]) for g in groups]
        ax.plot(angles + angles[:1], values + values[:1], label=method)
    ax.set_xticks(angles)
    ax.set_xticklabels(groups, fontsize=8)
    ax.set_title(f"{title}\nper-group {metric} ({attribute})", fontsize=9)
    ax.legend(fontsize=7, loc="upper right", bbox_to_anchor=(1.35, 1.1))
    return _png(fig)


def fid_bars(rows: list[dict], title: str) -> str | None:
    with_fid = [r for r in rows if r.get("fidelity")]
    if not with_fid:
        return None
    groups = sorted({g for r in with_fid for g in r["fidelity"]["per_group"]})
    methods = sorted({_method(r) for r in with_fid})
    fig, ax = plt.subplots(figsize=(4.8, 3.4))
    width = 0.8 / len(methods)
    for i, method in enumerate(methods):
        mine = [r for r in with_fid if _method(r) == method]
        values = [_mean([r["fidelity"]["per_group"].get(g, {}).get("fid") for r in mine]) for g in groups]
        ax.bar(np.arange(len(groups)) + i * width, values, width, label=method)
    ax.set_xticks(np.arange(len(groups)) + 0.4 - width / 2)
    ax.set_xticklabels(groups, fontsize=8)
    ax.set_ylabel(f"FID per group ({with_fid[0]['fidelity']['extractor']}) ↓")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    return _png(fig)


def sample_grid(row: dict, cache_dir: Path, per_cell: int = 4) -> str | None:
    """Synthetic images per (class x group) beside real training images of the same cell."""
    synthetic_key, train_key = row["artifacts"].get("synthetic"), row["artifacts"].get("train")
    synthetic_path = cache_dir / "synthetic" / str(synthetic_key) / "synthetic.npz"
    train_path = cache_dir / "train" / str(train_key) / "train.npz"
    if not synthetic_key or not synthetic_path.is_file() or not train_path.is_file():
        return None
    synthetic, real = ImageSet.load(synthetic_path), ImageSet.load(train_path)
    attribute = row["plugins"]["attribute"]
    groups, classes = real.attribute_vocab[attribute], real.label_names
    fig, axes = plt.subplots(len(classes), 2 * len(groups), figsize=(1.1 * 2 * len(groups) * per_cell / 2, 1.1 * len(classes)),
                             squeeze=False)
    for c in range(len(classes)):
        for g in range(len(groups)):
            for side, source in enumerate((real, synthetic)):
                ax = axes[c, 2 * g + side]
                mask = np.flatnonzero((source.labels == c) & (source.group_codes(attribute) == g))[:per_cell]
                ax.imshow(_tile(source.images[mask], per_cell), cmap="gray" if source.images.shape[1] == 1 else None)
                ax.set_xticks([]), ax.set_yticks([])
                if c == 0:
                    ax.set_title(f"{groups[g]}\n{'real' if side == 0 else 'synthetic'}", fontsize=7)
                if g == 0 and side == 0:
                    ax.set_ylabel(classes[c], fontsize=7)
    fig.suptitle(f"{row['cell_id']} seed {row['seed_index']}", fontsize=8)
    return _png(fig)


def _tile(images: np.ndarray, n: int) -> np.ndarray:
    if len(images) == 0:
        return np.full((8, 8 * n), 255, dtype=np.uint8)
    tiles = [img.transpose(1, 2, 0) for img in images]
    tiles += [np.full_like(tiles[0], 255)] * (n - len(tiles))
    strip = np.concatenate(tiles, axis=1)
    return strip[..., 0] if strip.shape[-1] == 1 else strip


def build_report(run_dir: Path, cache_dir: Path | None = None) -> str:
    run_dir = Path(run_dir)
    manifest = json.loads((run_dir / records.MANIFEST).read_text()) if (run_dir / records.MANIFEST).is_file() else {}
    cache_dir = Path(cache_dir or manifest.get("options", {}).get("cache", ""))
    rows = [r for r in records.load(run_dir) if r.get("status") == "ok"]
    if not rows:
        raise FileNotFoundError(f"no successful result records in {run_dir / records.RESULTS}")
    tables: dict[tuple, list[dict]] = {}
    for row in rows:
        tables.setdefault(_table_key(row), []).append(row)
    # labels and error messages come from grid files and plugins: text, never markup or mathtext
    with matplotlib.rc_context({"text.parse_math": False}):
        sections = [_table_section(key, table_rows, cache_dir) for key, table_rows in tables.items()]
    return PAGE.render(run_dir=str(run_dir), grid=manifest.get("grid", {}).get("source", "?"),
                       git=manifest.get("git", "?"), torch=manifest.get("versions", {}).get("torch", "?"),
                       leaderboard=Markup(render(load_summary(run_dir), "html")), sections=sections,
                       gaps=coverage.gaps(run_dir))


def _table_section(key: tuple, rows: list[dict], cache_dir: Path) -> dict:
    title = ", ".join(f"{k}={v}" for k, v in zip(TABLE_KEYS, key))
    attribute = rows[0]["plugins"]["attribute"]
    plots = [accuracy_vs_gap(rows, title), group_radar(rows, attribute, "auc", title), fid_bars(rows, title)]
    samples, shown = [], set()
    for row in rows:
        method = _method(row)
        if row["seed_index"] == 0 and method not in shown and row["artifacts"].get("synthetic"):
            grid = sample_grid(row, cache_dir)
            if grid:
                samples.append((method, grid))
                shown.add(method)
    return {"title": title, "plots": [p for p in plots if p], "samples": samples}


#: autoescape: every value is escaped unless it is Markup (the PNGs and the leaderboard's own HTML)
PAGE = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined).from_string("""<!doctype html>
<html><head><meta charset='utf-8'><title>harness report</title>
<style>body{font-family:sans-serif;margin:2em} table{border-collapse:collapse} td,th{border:1px solid #ccc;padding:3px 6px}</style>
</head><body>
<h1>Run report: {{ run_dir }}</h1>
<p>grid {{ grid }}, git {{ git }}, torch {{ torch }}</p>
{% if gaps %}<h2>Failed and missing cells</h2>
<p>{{ gaps | length }} cell(s) have no complete result; the tables and plots leave them out.</p>
<ul>{% for gap in gaps %}<li>{{ gap.line() }}</li>{% endfor %}</ul>
{% endif %}<h2>Leaderboard</h2>
{{ leaderboard }}
{% for section in sections %}<h2>{{ section.title }}</h2>
<div>{% for plot in section.plots %}{{ plot }}{% endfor %}</div>
{% for method, grid in section.samples %}<h3>Samples: {{ method }}</h3>{{ grid }}
{% endfor %}{% endfor %}</body></html>
""")
