"""`harness report`: one self-contained HTML page that leads with the findings.

Built from one small real run (procedural derm at 16 px, three replicates so the two-level
bootstrap tests, the toy centroid classifier) shared by the module's tests.
"""
from __future__ import annotations

import base64
import io
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from harness import records
from harness.cli import main
from harness.leaderboard import load_summary, records_frame, render
from harness.registry import Registry
from harness.report import (BASELINE_COLOUR, PALETTE, build_report, confusion_tables, findings, group_bars,
                            group_order, method_colours)
from report_toys import GRID, TOY_PLUGINS


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("report")
    grid = root / "tiny.toml"
    grid.write_text(GRID)
    out = root / "tiny-run"
    assert main(["run", str(grid), "--out", str(out), "--cache", str(root / "cache"), "--plugins", TOY_PLUGINS,
                 "--quiet"]) == 0
    return out


@pytest.fixture(scope="module")
def page(run) -> str:
    assert main(["report", str(run)]) == 0
    return (run / "report.html").read_text()


def _images(html: str) -> dict[str, list[np.ndarray]]:
    """alt text -> the decoded images with it."""
    out: dict[str, list[np.ndarray]] = {}
    for alt, data in re.findall(r'<img alt="([^"]*)" src="data:image/png;base64,([^"]+)"', html):
        out.setdefault(alt, []).append(np.asarray(Image.open(io.BytesIO(base64.b64decode(data))).convert("RGB")))
    return out


def _has_colour(image: np.ndarray, colour: str) -> bool:
    rgb = np.array([int(colour[i:i + 2], 16) for i in (1, 3, 5)])
    return bool((np.abs(image.astype(int) - rgb).max(-1) <= 2).sum() >= 10)


def test_report_leads_with_findings_and_a_forest_plot_and_ends_with_collapsed_tables(page):
    assert page.startswith("<!doctype html>")
    assert page.index("<h2>Findings</h2>") < page.index("forest plot") < page.index("<h2>dataset=")
    assert page.index("<h2>dataset=") < page.index("<details>") < page.index("<table>")
    findings = page[page.index("<h2>Findings</h2>"):page.index('<ul class="legend">')]
    assert "than none on" in findings or "No method differs significantly from none" in findings
    images = _images(page)
    assert sorted(alt for alt in images if alt.startswith("forest")) == [
        f"forest plot: Δ {m} vs none" for m in ("auc_gap", "gap_acc", "worst_acc")]  # the primary endpoints
    assert page.count("<h2>dataset=derm") == 2
    for alt in ("acc vs gap_acc", "per-group acc (skin_tone)", "per-group auc (skin_tone)"):
        assert len(images[alt]) == 2  # one per table
    assert "Samples: noisy_copy" in page and "Samples: oversample" in page
    assert "Sample grids unavailable" not in page


def test_report_tables_carry_the_leaderboard_markers(run, page):
    """The collapsed tables are `harness leaderboard --format html` with the same test: same Δ and ▲/▼."""
    assert render(load_summary(run, significance="bootstrap"), "html") in page


def test_title_is_the_run_name_not_a_path(run, page):
    assert re.search(r"<title>(.*)</title>", page).group(1) == "tiny-run"
    assert str(run.parent) not in page.split("</head>")[0]


def test_every_shipped_generator_has_its_own_colour_and_colours_do_not_depend_on_the_plot():
    shipped = sorted(Registry().plugins["generator"])
    colours = method_colours(shipped)
    assert colours["none"] == BASELINE_COLOUR
    assert len(set(colours.values())) == len(shipped) >= 12
    assert len(set(PALETTE) | {BASELINE_COLOUR}) >= 14
    # a shipped method's colour is its own, whichever other methods a report holds
    assert method_colours(["none", "fairgen"])["fairgen"] == colours["fairgen"] == method_colours(shipped[::-1])["fairgen"]
    others = [f"m{i}" for i in range(40)]  # some hash to a shipped method's colour, and sort before it
    assert all(method_colours(shipped + [name])[m] == colours[m] for name in others for m in shipped)
    # methods unknown to the harness never share a colour with another method of the report
    mixed = method_colours(shipped[:8] + ["my_method", "my_method [proportions-1]", "another"])
    assert len(set(mixed.values())) == len(mixed)
    assert method_colours(["another", "my_method"]) == method_colours(["my_method", "another"])


def test_a_method_has_the_same_colour_in_the_legend_forest_scatter_and_bars(page):
    colours = method_colours(["none", "noisy_copy", "oversample"])
    for method in ("none", "noisy_copy", "oversample"):
        assert f'background: {colours[method]}"></span>{method}' in page  # the page's legend
    images = _images(page)
    forest, scatter, bars = images["forest plot: Δ gap_acc vs none"][0], images["acc vs gap_acc"][0], \
        images["per-group acc (skin_tone)"][0]
    for method in ("noisy_copy", "oversample"):
        assert _has_colour(forest, colours[method]) and _has_colour(scatter, colours[method])
        assert _has_colour(bars, colours[method])
    assert _has_colour(scatter, colours["none"]) and _has_colour(bars, colours["none"])


def test_groups_come_in_the_datasets_order(run):
    rows = records.load(run)
    assert group_order(rows, "skin_tone") == (["light", "medium", "dark"], True)
    # records that carry no vocabulary: alphabetical, and the report says so
    bare = [{**r, "plugins": {k: v for k, v in r["plugins"].items() if k != "attribute_vocab"}} for r in rows]
    assert group_order(bare, "skin_tone") == (["dark", "light", "medium"], False)


def test_records_without_a_group_order_get_one_note_on_the_page(run, tmp_path):
    old = tmp_path / "old"
    shutil.copytree(run, old)
    rows = records.load(old)
    for r in rows:
        r["plugins"].pop("attribute_vocab")
    records.rewrite(old, rows)
    page = build_report(old, significance="none")
    assert page.count("The records carry no group order for skin_tone") == 1


def test_a_saturated_axis_is_not_drawn_and_the_page_says_why(run, tmp_path):
    saturated = tmp_path / "saturated"
    shutil.copytree(run, saturated)
    rows = records.load(saturated)
    for r in rows:  # AUC at its ceiling: spread 0.01, inside auc's tolerance 0.02
        for group, auc in zip(("light", "medium", "dark"), (1.0, 0.995, 0.99)):
            r["per_group"]["skin_tone"][group]["auc"] = auc
    records.rewrite(saturated, rows)
    page = build_report(saturated, significance="none")
    assert page.count("per-group auc not drawn: every value lies in 0.990–1.000, within the auc tolerance 0.02") == 2
    images = _images(page)
    assert "per-group auc (skin_tone)" not in images and len(images["per-group acc (skin_tone)"]) == 2
    colours = {"a": "#000000", "b": "#111111"}
    assert group_bars({"a": {"x": 1.0, "y": 1.0}, "b": {"x": 1.0}}, ["x", "y"], "auc", "t", colours) is None
    assert group_bars({"a": {"x": 1.0, "y": 0.9}, "b": {"x": 1.0}}, ["x", "y"], "auc", "t", colours, 0.02)


def test_missing_sample_grids_are_named_with_what_to_do(run, tmp_path):
    page = build_report(run, cache_dir=tmp_path / "emptied-cache", significance="none")
    assert "Samples:" not in page
    assert page.count("Sample grids unavailable for noisy_copy, oversample") == 2
    assert "Pass --cache DIR, or rerun the same `harness run` command" in page


def test_merge_shows_ones_method_beside_a_published_run(run, tmp_path):
    grid = tmp_path / "mine.toml"
    grid.write_text(GRID.replace('name = "noisy_copy"', 'name = "noisy_copy"\nlabel = "my_method"\n'
                                 'params = { noise = 40 }').replace('[[generator]]\nname = "oversample"\n', ""))
    mine = tmp_path / "mine"
    assert main(["run", str(grid), "--out", str(mine), "--cache", str(tmp_path / "cache"), "--plugins", TOY_PLUGINS,
                 "--quiet"]) == 0
    assert main(["report", str(mine), "--merge", str(run), "--significance", "none"]) == 0
    page = (mine / "report.html").read_text()
    assert re.search(r"<title>(.*)</title>", page).group(1) == "mine + tiny-run"
    legend = page[page.index('<ul class="legend">'):page.index("</ul>", page.index('<ul class="legend">'))]
    assert all(f"</span>{m}</li>" in legend for m in ("none", "my_method", "noisy_copy", "oversample"))
    assert f"beside published records from {run}" in page
    table = page[page.index("<details>"):]
    assert table.count("<td>my_method") == 2 and table.count("<td>oversample") == 2


def test_findings_state_each_significant_primary_difference_and_what_was_not_tested():
    table = {"dataset": "derm", "scenario": "cap100", "classifier": "cnn", "split": "test"}
    comparisons = pd.DataFrame([
        {**table, "method": "fairgen", "metric": "gap_acc", "delta": -0.041, "ci_low": -0.07, "ci_high": -0.012,
         "p_adj": 0.004, "marker": "▲"},
        {**table, "method": "sd", "metric": "gap_acc", "delta": 0.01, "ci_low": -0.02, "ci_high": 0.04,
         "p_adj": 0.6, "marker": ""},
        {**table, "method": "ddpm", "metric": "worst_acc", "delta": 0.02, "ci_low": float("nan"),
         "ci_high": float("nan"), "p_adj": float("nan"), "marker": ""},
        {**table, "method": "sd", "metric": "acc", "delta": -0.1, "ci_low": -0.2, "ci_high": -0.05, "p_adj": 0.001,
         "marker": "▼"},  # exploratory: not a finding
    ])
    assert findings(comparisons, ["worst_acc", "gap_acc"]) == [
        "▲ fairgen is better than none on gap_acc in derm/cap100/cnn/test: Δ -0.041 (95% CI -0.070 to -0.012, "
        "adjusted p 0.004).",
        "1 comparison not tested: fewer than 3 distinct replicates (run more seeds); their forest rows are hollow "
        "and have no CI."]
    assert findings(comparisons[comparisons["method"] == "ddpm"], ["worst_acc"])[0].startswith("1 comparison not")


def test_fidelity_runs_show_requested_vs_judged_confusion_per_method(tmp_path):
    grid = tmp_path / "judged.toml"
    grid.write_text('fidelity = true\nfid_draws = 1\nfeature_extractor = "effnet-lite0@64"\n'
                    + GRID.replace("seeds = 3", "seeds = 1").replace('"natural", "cap100"', '"natural"')
                    .replace('name = "report-tiny"', 'name = "judged"'))
    out = tmp_path / "judged-run"
    assert main(["run", str(grid), "--out", str(out), "--cache", str(tmp_path / "cache"), "--plugins", TOY_PLUGINS,
                 "--quiet"]) == 0
    assert main(["report", str(out)]) == 0
    page = (out / "report.html").read_text()
    shown = re.findall(r'alt="(requested vs judged [^"]*)"', page)
    assert shown == ["requested vs judged group of the synthetic images",
                     "requested vs judged class of the synthetic images"]
    rows = records.load(out)
    methods = records_frame(rows)["method"].tolist()
    tables = confusion_tables(rows, methods, "attribute")
    assert set(tables) == {"noisy_copy", "oversample"}  # real-only methods: nothing to judge
    counts, judge = tables["noisy_copy"]
    assert counts.shape == (3, 3) and judge in ("effnet", "pixels")  # derm: light, medium, dark
    # each request row counts that method's synthetic images of the requested group
    synthetic = sum(r["n"]["train_synthetic"] for r, m in zip(rows, methods) if m == "noisy_copy")
    assert counts.sum() == synthetic
