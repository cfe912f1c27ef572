"""`harness compare`: direction-aware, Holm-corrected diffs between leaderboards."""
from __future__ import annotations

import pandas as pd

from harness.compare import compare


def _summary(path, acc_mean, gap_mean, sd=0.01, n=3):
    pd.DataFrame([{"dataset": "d", "scenario": "natural", "classifier": "c", "split": "test", "method": "m",
                   "n_seeds": n, "acc_mean": acc_mean, "acc_sd": sd, "gap_acc_mean": gap_mean, "gap_acc_sd": sd}]
                 ).to_csv(path, index=False)
    return path


def test_direction_and_significance(tmp_path):
    a = _summary(tmp_path / "a.csv", 0.80, 0.10)
    b = _summary(tmp_path / "b.csv", 0.70, 0.05)
    table = compare(a, b).set_index("metric")
    assert table.loc["acc", "change"] == "worse" and table.loc["gap_acc", "change"] == "better"
    assert round(table.loc["acc", "delta"], 6) == -0.10
    assert table.loc["acc", "significant"]  # 10 sds apart over 3 seeds


def test_noise_is_not_significant_and_one_seed_cannot_be_tested(tmp_path):
    a = _summary(tmp_path / "a.csv", 0.80, 0.10, sd=0.05)
    b = _summary(tmp_path / "b.csv", 0.79, 0.10, sd=0.05)
    assert not compare(a, b).set_index("metric").loc["acc", "significant"]
    one = compare(_summary(tmp_path / "c.csv", 0.8, 0.1, n=1), _summary(tmp_path / "d.csv", 0.7, 0.1, n=1))
    assert one["p"].isna().all() and not one["significant"].any()


def test_a_run_compared_with_its_own_published_csv_has_no_changes(tmp_path):
    from harness.leaderboard import load_summary, render
    from leaderboard_toys import write_run

    run = write_run(tmp_path / "run", {"none": 0.7, "better": 0.9}, seeds=3)
    csv = tmp_path / "board.csv"
    csv.write_text(render(load_summary(run), "csv"))  # 6 significant digits, as published
    table = compare(csv, run)
    assert len(table) > 0
    assert set(table["change"]) == {"same"} and not table["significant"].any()
