"""The leaderboard a user reads: significance markers against the real-only baseline, corrected
p-values in the CSV, the feature extractor in fidelity headers, --scale pct, and --merge of other
runs' records (a method author's run next to published results)."""
from __future__ import annotations

import io
import json
import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from harness import records, stats
from harness.cli import main
from harness.leaderboard import TABLE_KEYS, WIDTH, load_summary, render
from harness.metrics import METRICS

from leaderboard_toys import write_run
from reliability_support import builtin_entry_points

ROW_KEYS = TABLE_KEYS + ["method"]
METHODS = {"none": 0.7, "better": 0.9, "worse": 0.5, "same": 0.7}


SEEDS = 6  # enough replicates for a 0.2 accuracy difference to survive Holm over the table


@pytest.fixture(scope="module")
def hand_run(tmp_path_factory):
    return write_run(tmp_path_factory.mktemp("lb") / "run", METHODS, seeds=SEEDS, fid={"better": 30.0, "worse": 60.0})


@pytest.fixture(scope="module")
def hand_summary(hand_run):
    return load_summary(hand_run, significance="bootstrap")


@pytest.fixture(scope="module")
def hand_csv(hand_summary):
    return pd.read_csv(io.StringIO(render(hand_summary, "csv")))


@pytest.fixture(scope="module")
def hand_markdown(hand_summary):
    return render(hand_summary)


def _markdown_rows(text: str) -> dict[str, dict[str, str]]:
    """method -> {column header: cell} of a one-table markdown leaderboard."""
    lines = [line for line in text.splitlines() if line.startswith("|")]
    headers = [h.strip() for h in lines[0].strip("|").split("|")]
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in lines[2:]]
    return {row[0]: dict(zip(headers, row)) for row in rows}


def _marker(cell: str) -> str:
    return "▲" if "▲" in cell else "▼" if "▼" in cell else ""


def test_markers_flag_the_clearly_better_and_worse_methods(hand_run, hand_summary, hand_markdown, capsys):
    assert main(["leaderboard", str(hand_run), "--metrics", "all"]) == 0
    # the command's default is the two-level bootstrap
    assert capsys.readouterr().out == render(hand_summary, "md", metrics="all", width=WIDTH)
    text = hand_markdown
    assert "two-level bootstrap (replicates, then test samples), B=2000" in text
    assert f"replicates: {SEEDS} generator fits × {SEEDS} classifier seeds × {SEEDS} cuts" in text
    rows = _markdown_rows(text)
    assert _marker(rows["better"]["acc ↑"]) == "▲" and _marker(rows["worse"]["acc ↑"]) == "▼"
    assert "(Δ +0.1" in rows["better"]["acc ↑"]  # the effect (about +0.2) is shown with the marker
    assert _marker(rows["same"]["acc ↑"]) == ""
    assert not any(_marker(cell) for cell in rows["none"].values())
    assert _marker(rows["better"]["fid ↓"]) == ""  # fidelity has no baseline
    assert "†" not in text  # every variance source has enough replicates


def test_every_marker_agrees_with_the_csv_p_adj_and_the_metric_direction(hand_markdown, hand_csv):
    rows = _markdown_rows(hand_markdown)
    checked = 0
    for _, line in hand_csv[hand_csv["method"] != "none"].iterrows():
        for name in [c[:-6] for c in hand_csv.columns if c.endswith("_p_adj")]:
            cell = rows[line["method"]][f"{name} {'↑' if METRICS[name].direction == 'higher' else '↓'}"]
            significant = line[f"{name}_p_adj"] < 0.05
            better = line[f"{name}_diff"] > 0 if METRICS[name].direction == "higher" else line[f"{name}_diff"] < 0
            assert _marker(cell) == (("▲" if better else "▼") if significant else ""), (line["method"], name)
            if significant:  # the CI excludes 0 on the side of the marker
                assert line[f"{name}_ci_low"] > 0 or line[f"{name}_ci_high"] < 0, (line["method"], name)
            checked += 1
    assert checked >= 3 * 10


def _holm(p: np.ndarray) -> np.ndarray:
    """Holm by hand: sort, scale by (m - rank), running max, cap at 1."""
    order, m = np.argsort(p), len(p)
    out = np.empty(m)
    out[order] = np.minimum(np.maximum.accumulate(p[order] * (m - np.arange(m))), 1)
    return out


def test_primary_endpoints_are_corrected_over_the_run_and_the_rest_within_each_table(tmp_path):
    run = write_run(tmp_path / "two", {"none": 0.7, "better": 0.8, "same": 0.7}, seeds=4, tables=2)
    summary = load_summary(run, significance="bootstrap")
    tested = summary[summary["method"] != "none"]
    primary = [m for m in stats.PRIMARY_ENDPOINTS if f"{m}_p" in tested]
    raw = tested[[f"{m}_p" for m in primary]].to_numpy().ravel()
    assert tested[[f"{m}_p_adj" for m in primary]].to_numpy().ravel() == pytest.approx(_holm(raw), rel=1e-9)
    exploratory = [m for m in stats.prediction_metrics(METRICS) if f"{m}_p" in tested and m not in primary]
    for _, table in tested.groupby("scenario"):
        raw = table[[f"{m}_p" for m in exploratory]].to_numpy().ravel()
        keep = ~np.isnan(raw)
        adjusted = table[[f"{m}_p_adj" for m in exploratory]].to_numpy().ravel()
        assert adjusted[keep] == pytest.approx(_holm(raw[keep]), rel=1e-9)
    assert {f"{m}_mde" for m in primary} <= set(summary.columns) and "acc_mde" not in summary
    assert "minimum detectable effect (80% power" in render(summary)
    bonferroni = load_summary(run, significance="bootstrap", correction="bonferroni")
    tested = bonferroni[bonferroni["method"] != "none"]
    raw = tested[[f"{m}_p" for m in primary]].to_numpy().ravel()
    assert tested[[f"{m}_p_adj" for m in primary]].to_numpy().ravel() == pytest.approx(np.minimum(raw * len(raw), 1))


def _correct_matrix(run_dir, generator: str) -> np.ndarray:
    rows = sorted((r for r in records.load(run_dir) if r["spec"]["generator"]["label"] == generator),
                  key=lambda r: r["seed_index"])
    frames = [pd.read_parquet(run_dir / r["predictions_file"]) for r in rows]
    return np.stack([(f[["p_0", "p_1", "p_2"]].to_numpy().argmax(1) == f["y_true"].to_numpy()) for f in frames])


def test_bootstrap_p_is_the_two_level_bootstrap_of_accuracy_computed_independently(hand_run, hand_summary):
    """Accuracy on each shared resample, by hand from the prediction files, fed to the one test."""
    summary = hand_summary.set_index("method")
    method, base = _correct_matrix(hand_run, "worse"), _correct_matrix(hand_run, "none")  # (seeds, n)
    indices = stats.resample_test_set(method.shape[1], stats.BOOTSTRAP_B, 0, with_all=True).indices
    differences = (method[:, indices].mean(-1) - base[:, indices].mean(-1))[:, :, None]
    expected = stats.hierarchical_bootstrap(differences)[0]
    assert summary.loc["worse", "acc_diff"] == pytest.approx(method.mean() - base.mean())
    assert summary.loc["worse", "acc_p"] == pytest.approx(expected.p, rel=1e-9)
    assert (summary.loc["worse", "acc_ci_low"], summary.loc["worse", "acc_ci_high"]) == pytest.approx(
        (expected.ci_low, expected.ci_high), rel=1e-9)


def _seed_values(run_dir, generator: str, metric: str) -> list[float]:
    rows = sorted((r for r in records.load(run_dir) if r["spec"]["generator"]["label"] == generator),
                  key=lambda r: r["seed_index"])
    return [r["metrics"][metric] for r in rows]


def test_paired_t_p_equals_scipy_on_the_seed_values(hand_run):
    summary = load_summary(hand_run, significance="paired-t").set_index("method")
    expected = sps.ttest_rel(_seed_values(hand_run, "better", "acc"), _seed_values(hand_run, "none", "acc")).pvalue
    assert summary.loc["better", "acc_p"] == pytest.approx(expected)
    assert "p_test" in summary and summary["p_test"].iloc[0].startswith("paired t over replicates")


def test_one_generator_fit_flags_markers_and_says_the_generator_variance_is_not_estimated(tmp_path):
    run = write_run(tmp_path / "fits", {"none": 0.7, "better": 0.9}, seeds=6, generator_fits=1)
    text = render(load_summary(run, significance="bootstrap"))
    assert "replicates: 1 generator fit × 6 classifier seeds × 1 cut" in text
    assert "† not estimated, so not in the test: generator variance (1 fit); cut variance (1 cut)" in text
    assert "▲†" in _markdown_rows(text)["better"]["acc ↑"]


def test_a_deterministic_classifier_gets_no_markers_and_says_why(tmp_path):
    run = write_run(tmp_path / "probe", {"none": 0.7, "better": 0.9}, seeds=3, deterministic=True)
    summary = load_summary(run, significance="bootstrap")
    text = render(summary)
    assert "3 classifier seeds (deterministic)" in text
    assert ("no markers for better: fewer than 3 distinct replicates, so not estimated: classifier spread "
            "(identical predictions in every replicate)") in text
    assert not any(_marker(cell) for cell in _markdown_rows(text)["better"].values())
    better = summary.set_index("method").loc["better"]
    assert np.isnan(better["acc_p"]) and better["acc_diff"] == pytest.approx(0.2, abs=0.1)  # Δ still shown


def test_header_names_the_feature_extractor_and_n_of_fid(hand_run, tmp_path):
    text = render(load_summary(hand_run))
    assert "FID/KID features: small-cnn@16; n: real 300 vs synthetic 300; per group 140–150 (3 draws)" in text
    no_fidelity = render(load_summary(write_run(tmp_path / "plain", {"none": 0.7, "better": 0.9}, seeds=2)))
    assert "FID" not in no_fidelity and "fid" not in no_fidelity


def test_scale_pct_multiplies_scale_dependent_metrics_only(hand_run):
    summary = load_summary(hand_run)
    fraction, percent = _markdown_rows(render(summary)), _markdown_rows(render(summary, scale="pct"))
    mean = lambda cell: float(cell.split(" ")[0])  # noqa: E731
    for header, cell in fraction["better"].items():
        if header == "method" or cell == "n/a":
            continue
        name = header.split(" ")[0]
        factor = 100 if METRICS[name].scale_dependent else 1
        tolerance = 0.1 if factor == 100 else 1e-3  # rounding of the printed digits
        assert mean(percent["better"][header]) == pytest.approx(mean(cell) * factor, abs=tolerance), name
    assert not METRICS["fid"].scale_dependent and fraction["better"]["fid ↓"] == percent["better"]["fid ↓"]


def test_check_and_compare_read_the_csv_with_p_columns(hand_run, tmp_path, capsys):
    board = tmp_path / "board.csv"
    assert main(["leaderboard", str(hand_run), "--format", "csv", "--output", str(board)]) == 0
    assert main(["check", str(hand_run), "--baseline", str(board)]) == 0
    # against a run where one method really improved (the same run would have no changes)
    improved = write_run(tmp_path / "improved", {**METHODS, "better": 0.97}, fid={"better": 30.0, "worse": 60.0})
    capsys.readouterr()
    assert main(["compare", str(board), str(improved)]) == 0
    assert "better" in capsys.readouterr().out


def test_merge_keeps_the_published_rows_of_a_shared_method_and_warns_when_they_differ(tmp_path, capsys):
    own = write_run(tmp_path / "own", {"none": 0.7, "better": 0.9}, seeds=2)
    published = write_run(tmp_path / "published", {"none": 0.7, "worse": 0.5}, seeds=2)
    shifted = [dict(r, metrics={**r["metrics"], "acc": r["metrics"]["acc"] - 0.05})
               if r["spec"]["generator"]["label"] == "none" else r for r in records.load(published)]
    records.rewrite(published, shifted)  # as the published 'none' computed on another CPU
    published_none = np.mean(_seed_values(published, "none", "acc"))
    for source in (published, published / records.RESULTS):  # a folder or its results file
        capsys.readouterr()
        summary = load_summary(own, merge=[source], significance="bootstrap").set_index("method")
        assert list(summary.index) == ["none", "better", "worse"]
        assert summary.loc["none", "acc_mean"] == pytest.approx(published_none)
        # predictions read from the published folder, against the published baseline that was kept
        expected = _correct_matrix(published, "worse").mean() - _correct_matrix(published, "none").mean()
        assert summary.loc["worse", "acc_diff"] == pytest.approx(expected)
        warning = capsys.readouterr().err
        assert "toy/s0/clf/test/none [real]: recomputed acc" in warning and "keeping the published" in warning
    preferred = load_summary(own, merge=[published], prefer_run=True).set_index("method")
    assert preferred.loc["none", "acc_mean"] == pytest.approx(np.mean(_seed_values(own, "none", "acc")))
    assert list(preferred.index) == ["none", "better", "worse"]


def test_merge_within_tolerance_is_silent(tmp_path, capsys):
    own = write_run(tmp_path / "own", {"none": 0.7, "better": 0.9}, seeds=2)
    published = write_run(tmp_path / "published", {"none": 0.7, "worse": 0.5}, seeds=2)
    capsys.readouterr()
    load_summary(own, merge=[published])
    assert "beyond tolerance" not in capsys.readouterr().err


def test_merge_refuses_a_label_that_means_another_method(tmp_path, capsys):
    own = write_run(tmp_path / "own", {"none": 0.7, "better": 0.9}, seeds=2)
    other = write_run(tmp_path / "other", {"none": 0.7, "better": 0.9}, seeds=2, label_params={"better": {"steps": 5}})
    assert main(["leaderboard", str(own), "--merge", str(other)]) == 2
    assert "generator label 'better'" in capsys.readouterr().err
    assert main(["leaderboard", str(own), "--merge", str(tmp_path / "nowhere")]) == 2


def test_partial_runs_merged_give_the_full_runs_table(tiny_grid, toy_plugins, tmp_path, capsys):
    cache = tmp_path / "cache"

    unused = [a for name in builtin_entry_points() if name not in ("real_only", "oversample") for a in ("--block", name)]

    def run(out, *only):
        args = ["run", str(tiny_grid), "--out", str(tmp_path / out), "--cache", str(cache), "--plugins", toy_plugins,
                "--quiet", *unused]  # loading only the plugins the grid uses keeps the three runs quick
        assert main(args + [a for o in only for a in ("--only", o)]) == 0

    run("full")
    run("builtin", "generator=none,noisy_copy")
    run("author", "generator=none,oversample")
    capsys.readouterr()
    for fmt in ("md", "csv"):
        assert main(["leaderboard", str(tmp_path / "full"), "--format", fmt]) == 0
        full = capsys.readouterr().out
        merged = ["leaderboard", str(tmp_path / "builtin"), "--merge", str(tmp_path / "author"), "--format", fmt]
        assert main(merged) == 0
        assert capsys.readouterr().out == full
    assert "oversample" in full
    assert main(["leaderboard", str(tmp_path / "builtin")]) == 0
    assert "oversample" not in capsys.readouterr().out  # the row came from the merged run


def test_the_runs_grid_declares_the_primary_endpoints(tmp_path):
    from conftest import TINY_GRID

    run = write_run(tmp_path / "declared", {"none": 0.7, "better": 0.9}, seeds=3)
    grid = 'primary_endpoints = ["acc"]\n' + TINY_GRID
    (run / records.MANIFEST).write_text(json.dumps({"grid": {"source": "test", "text": grid}}))
    summary = load_summary(run, significance="bootstrap", b=200)
    assert set(summary["primary_endpoints"]) == {"acc"} and "acc_mde" in summary and "worst_acc_mde" not in summary
    assert "primary endpoints (acc) holm-corrected over the run" in render(summary)


def test_records_without_stage_seeds_are_tested_but_flagged(tmp_path):
    run = write_run(tmp_path / "old", {"none": 0.7, "better": 0.9}, seeds=6)
    records.rewrite(run, [{k: v for k, v in r.items() if k != "seeds"} for r in records.load(run)])
    text = render(load_summary(run, significance="bootstrap", b=200))
    assert "replicates: replicate sources not recorded" in text
    assert "† not estimated, so not in the test: replicate sources (not recorded)" in text
    assert "▲†" in _markdown_rows(text)["better"]["acc ↑"]
