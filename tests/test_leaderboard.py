"""The leaderboard a user reads: significance markers against the real-only baseline, corrected
p-values in the CSV, the feature extractor in fidelity headers, --scale pct, and --merge of other
runs' records (a method author's run next to published results)."""
from __future__ import annotations

import io
import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from harness import records, stats
from harness.cli import main
from harness.leaderboard import TABLE_KEYS, load_summary, render
from harness.metrics import METRICS

from leaderboard_toys import write_run
from reliability_support import builtin_entry_points

ROW_KEYS = TABLE_KEYS + ["method"]
METHODS = {"none": 0.7, "better": 0.9, "worse": 0.5, "same": 0.7}


@pytest.fixture(scope="module")
def hand_run(tmp_path_factory):
    return write_run(tmp_path_factory.mktemp("lb") / "run", METHODS, fid={"better": 30.0, "worse": 60.0})


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


def test_markers_flag_the_clearly_better_and_worse_methods(hand_run, hand_markdown, capsys):
    assert main(["leaderboard", str(hand_run)]) == 0
    text = capsys.readouterr().out
    assert text == hand_markdown  # the command's default is the bootstrap
    assert "▲/▼ better/worse than none at α=0.05: paired bootstrap, B=50, holm-corrected" in text
    rows = _markdown_rows(text)
    assert rows["better"]["acc ↑"].endswith("▲") and rows["worse"]["acc ↑"].endswith("▼")
    assert not rows["same"]["acc ↑"].endswith(("▲", "▼"))
    assert not any(cell.endswith(("▲", "▼")) for cell in rows["none"].values())
    assert not rows["better"]["fid ↓"].endswith(("▲", "▼"))  # fidelity has no baseline


def test_every_marker_agrees_with_the_csv_p_adj_and_the_metric_direction(hand_markdown, hand_csv):
    rows = _markdown_rows(hand_markdown)
    checked = 0
    for _, line in hand_csv.iterrows():
        for name in [c[:-6] for c in hand_csv.columns if c.endswith("_p_adj")]:
            cell = rows[line["method"]][f"{name} {'↑' if METRICS[name].direction == 'higher' else '↓'}"]
            significant = line[f"{name}_p_adj"] < 0.05
            better = line[f"{name}_diff"] > 0 if METRICS[name].direction == "higher" else line[f"{name}_diff"] < 0
            expected = ("▲" if better else "▼") if significant else ""
            assert cell.endswith(expected) and (expected or not cell.endswith(("▲", "▼"))), (line["method"], name)
            checked += 1
    assert checked >= 3 * 10


def test_p_adj_is_holm_over_all_p_values_of_the_table(hand_csv, hand_run):
    methods = hand_csv[hand_csv["method"] != "none"]
    names = [c[:-2] for c in hand_csv.columns if c.endswith("_p") and f"{c}_adj" in hand_csv]
    raw = methods[[f"{n}_p" for n in names]].to_numpy().ravel()
    tested = ~np.isnan(raw)
    order = np.argsort(raw[tested])  # Holm by hand: sort, scale by (m - rank), running max, cap at 1
    m = tested.sum()
    holm = np.empty(m)
    holm[order] = np.minimum(np.maximum.accumulate(raw[tested][order] * (m - np.arange(m))), 1)
    assert methods[[f"{n}_p_adj" for n in names]].to_numpy().ravel()[tested] == pytest.approx(holm, rel=1e-4)
    assert hand_csv.loc[hand_csv["method"] == "none", "acc_p_adj"].isna().all()

    bonferroni = load_summary(hand_run, significance="bootstrap", correction="bonferroni")
    raw_p = bonferroni.loc[bonferroni["method"] != "none", [f"{n}_p" for n in names]].to_numpy().ravel()
    adjusted = bonferroni.loc[bonferroni["method"] != "none", [f"{n}_p_adj" for n in names]].to_numpy().ravel()
    assert adjusted[tested] == pytest.approx(np.minimum(raw_p[tested] * m, 1))


def _seed_values(run_dir, generator: str, metric: str) -> list[float]:
    rows = sorted((r for r in records.load(run_dir) if r["spec"]["generator"]["label"] == generator),
                  key=lambda r: r["seed_index"])
    return [r["metrics"][metric] for r in rows]


def test_bootstrap_p_equals_an_independent_paired_bootstrap_of_accuracy(hand_run, hand_summary):
    summary = hand_summary.set_index("method")

    def accuracy_runs(generator):
        rows = sorted((r for r in records.load(hand_run) if r["spec"]["generator"]["label"] == generator),
                      key=lambda r: r["seed_index"])
        frames = [pd.read_parquet(hand_run / r["predictions_file"]) for r in rows]
        return np.stack([(f[["p_0", "p_1", "p_2"]].to_numpy().argmax(1) == f["y_true"].to_numpy()) for f in frames])

    method, base = accuracy_runs("worse"), accuracy_runs("none")  # (seeds, n) correct/incorrect
    index = stats.bootstrap_indices(method.shape[1], 50, 0)
    diffs = np.array([method[:, i].mean() - base[:, i].mean() for i in index])
    observed = method.mean() - base.mean()
    assert summary.loc["worse", "acc_diff"] == pytest.approx(observed)
    assert summary.loc["worse", "acc_p"] == pytest.approx(2 * sps.norm.sf(abs(observed) / diffs.std(ddof=1)))


def test_paired_t_p_equals_scipy_on_the_seed_values(hand_run):
    summary = load_summary(hand_run, significance="paired-t").set_index("method")
    expected = sps.ttest_rel(_seed_values(hand_run, "better", "acc"), _seed_values(hand_run, "none", "acc")).pvalue
    assert summary.loc["better", "acc_p"] == pytest.approx(expected)
    assert "p_test" in summary and summary["p_test"].iloc[0].startswith("paired t over seeds")


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
        assert summary.loc["worse", "acc_p_adj"] < 0.05  # predictions read from the published folder
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
