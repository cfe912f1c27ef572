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


def summary_of(scores: dict[tuple[str, str], dict[str, float]]) -> pd.DataFrame:
    rows = [{"dataset": d, "scenario": s, "classifier": "clf", "split": "test", "method": m, "n_seeds": 3,
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
    assert list(blocks.index) == ["derm__cap100__clf__test", "derm__natural__clf__test", "histo__site__clf__test"]
    text, table = ranking(summary, metrics=("acc",))
    ranks = sps.rankdata(-blocks.to_numpy(), axis=1).mean(0)
    expected = dict(zip(methods, ranks))
    assert dict(zip(table["method"], table["average_rank"])) == pytest.approx(expected)
    assert table["friedman_p"].iloc[0] == pytest.approx(sps.friedmanchisquare(*blocks.to_numpy().T).pvalue)
    assert "Friedman χ²" in text and "only_derm" not in text


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
