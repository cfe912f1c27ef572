"""`harness leaderboard RUN --publish DIR`: one table per (dataset, scenario, classifier, split),
a Friedman/Nemenyi ranking across datasets, and the run's records beside them."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from harness import records
from harness.cli import main
from harness.publish import MARKER, ranking, ranking_blocks

from leaderboard_toys import write_run


def summary_of(scores: dict[tuple[str, str], dict[str, float]], classifier: str = "clf") -> pd.DataFrame:
    rows = [{"dataset": d, "scenario": s, "classifier": classifier, "split": "test", "method": m, "n_seeds": 3,
             "acc_mean": v, "acc_sd": 0.0} for (d, s), methods in scores.items() for m, v in methods.items()]
    return pd.DataFrame(rows)


def test_ranking_uses_methods_on_two_datasets_and_the_tables_that_have_them_all():
    scores = {("derm", "cap100"): {"none": 0.80, "a": 0.90, "b": 0.85, "only_derm": 0.99},
              ("derm", "natural"): {"none": 0.91, "a": 0.90, "b": 0.70},
              ("histo", "site"): {"none": 0.70, "a": 0.75, "b": 0.72},
              ("cxr", "cap100"): {"none": 0.60, "a": 0.65}}  # lacks b: left out of the ranking
    summary = summary_of(scores)
    blocks, methods = ranking_blocks(summary, "acc")
    assert methods == ["none", "a", "b"]
    assert list(blocks.index) == ["derm__cap100__test", "derm__natural__test", "histo__site__test"]
    text, table = ranking(summary, metrics=("acc",))
    ranks = sps.rankdata(-blocks.to_numpy(), axis=1).mean(0)
    expected = dict(zip(methods, ranks))
    assert dict(zip(table["method"], table["average_rank"])) == pytest.approx(expected)
    assert table["friedman_p"].iloc[0] == pytest.approx(sps.friedmanchisquare(*blocks.to_numpy().T).pvalue)
    assert "Friedman χ²" in text and "only_derm" not in text


def test_a_block_is_a_dataset_and_scenario_with_its_classifiers_averaged():
    """Two classifiers on the same data are not independent evidence: 3 blocks, not 6; a metric
    that does not depend on the classifier (FID) therefore counts once per block too."""
    scores = {("derm", "cap100"): {"none": 0.80, "a": 0.90, "b": 0.85},
              ("derm", "natural"): {"none": 0.91, "a": 0.90, "b": 0.70},
              ("histo", "site"): {"none": 0.70, "a": 0.75, "b": 0.72}}
    probe = {key: {m: v - 0.1 * i for i, (m, v) in enumerate(methods.items())} for key, methods in scores.items()}
    summary = pd.concat([summary_of(scores, "cnn"), summary_of(probe, "probe")], ignore_index=True)
    summary["fid_mean"] = summary["method"].map({"none": np.nan, "a": 30.0, "b": 40.0})
    blocks, methods = ranking_blocks(summary, "acc")
    assert blocks.shape == (3, 3)
    assert blocks.loc["derm__cap100__test", "b"] == pytest.approx((0.85 + 0.85 - 0.2) / 2)
    fid_blocks, fid_methods = ranking_blocks(summary, "fid")
    assert fid_methods == ["a", "b"] and fid_blocks.shape == (3, 2)
    assert (fid_blocks["a"] == 30.0).all()


def test_the_ranking_refuses_below_three_blocks():
    scores = {("derm", "cap100"): {"none": 0.80, "a": 0.90, "b": 0.85},
              ("histo", "site"): {"none": 0.70, "a": 0.75, "b": 0.72}}
    text, table = ranking(summary_of(scores), metrics=("acc",))
    assert "No Friedman test: it needs >= 3 independent blocks" in text and table.empty


def test_publish_writes_a_forest_csv_of_every_comparison(tmp_path):
    run = write_run(tmp_path / "run", {"none": 0.7, "better": 0.9}, seeds=4)
    (run / records.MANIFEST).write_text(json.dumps({"git": "abc"}))
    out = tmp_path / "board"
    assert main(["leaderboard", str(run), "--publish", str(out), "--bootstrap-b", "200"]) == 0
    forest = pd.read_csv(out / "forest.csv")
    assert list(forest.columns[5:12]) == ["metric", "endpoint", "delta", "ci_low", "ci_high", "p", "p_adj"]
    acc = forest[(forest["method"] == "better") & (forest["metric"] == "acc")].iloc[0]
    assert acc["endpoint"] == "exploratory" and acc["ci_low"] < acc["delta"] < acc["ci_high"]
    assert set(forest.loc[forest["endpoint"] == "primary", "metric"]) <= {"worst_acc", "gap_acc", "auc_gap"}
    assert "none" not in set(forest["method"]) and "fid" not in set(forest["metric"])
    table = pd.read_csv(out / "toy__s0__clf__test.csv").set_index("method")
    assert acc["delta"] == pytest.approx(table.loc["better", "acc_diff"])


def test_publish_writes_a_table_per_scenario_and_the_records(tmp_path, capsys):
    run = write_run(tmp_path / "run", {"none": 0.7, "better": 0.9}, tables=2)
    (run / records.MANIFEST).write_text(json.dumps({"git": "abc"}))
    out = tmp_path / "board"
    assert main(["leaderboard", str(run), "--publish", str(out), "--significance", "none"]) == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(["toy__s0__clf__test.md", "toy__s0__clf__test.csv", "toy__s1__clf__test.md",
                            "toy__s1__clf__test.csv", "ranking.md", "ranking.csv", "README.md",
                            records.MANIFEST, records.RESULTS, MARKER])
    table = pd.read_csv(out / "toy__s1__clf__test.csv")
    assert set(table["method"]) == {"none", "better"} and set(table["scenario"]) == {"s1"}
    assert (out / records.RESULTS).read_bytes() == (run / records.RESULTS).read_bytes()
    # one dataset only: the ranking says why there is no test instead of inventing one
    assert "Friedman χ²" not in (out / "ranking.md").read_text()
    assert np.isclose(table.loc[table["method"] == "better", "acc_mean"].iloc[0],
                      np.mean([r["metrics"]["acc"] for r in records.load(run)
                               if r["spec"]["generator"]["name"] == "better" and r["spec"]["scenario"] == "s1"]))
