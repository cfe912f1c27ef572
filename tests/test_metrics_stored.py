"""Every prediction metric in a run record can be recomputed from the stored per-sample predictions."""
from __future__ import annotations

import math

import numpy as np
import pytest

from harness import records, stats
from harness.grid import load_grid
from harness.metrics import compute_metrics
from harness.metrics.stored import eval_input_from_record
from harness.runner import run_grid

from conftest import TINY_GRID, TOY_PLUGINS


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("stored")
    (root / "tiny.toml").write_text(TINY_GRID)
    return run_grid(load_grid(str(root / "tiny.toml")), root / "run", root / "cache", plugin_files=[str(TOY_PLUGINS)])


def test_record_metrics_equal_metrics_of_stored_predictions(tiny_run):
    rows = records.load(tiny_run.run_dir)
    assert rows
    for row in rows:
        recomputed = compute_metrics(eval_input_from_record(tiny_run.run_dir, row))
        for name, value in recomputed.items():
            stored = row["metrics"][name]
            if stored is None or math.isnan(value.value):
                assert (stored is None or math.isnan(stored)) and math.isnan(value.value), name
            else:
                assert value.value == pytest.approx(stored, abs=1e-9), name


def test_baseline_comparisons_pair_seeds_and_correct_primary_over_the_run_the_rest_per_table(tiny_run):
    from harness.leaderboard import baseline_tests, records_frame

    rows = records.load(tiny_run.run_dir)
    frame = records_frame(rows)
    frame["record_index"] = [i for i, r in enumerate(rows) if r.get("status") == "ok"]
    result = baseline_tests(tiny_run.run_dir, rows, frame, b=200, metrics=["acc", "gap_acc", "fid"])
    assert len(result) == 4 and "fid_p" not in result  # 2 scenarios x 2 methods; fidelity has no baseline
    for entry in result.itertuples():
        table = frame[(frame.scenario == entry.scenario)]
        method = table[table.method == entry.method].set_index("seed_index")["acc"]
        base = table[table.generator == "none"].set_index("seed_index")["acc"]
        assert entry.acc_diff == pytest.approx((method - base).mean())
    for _, table in result.groupby("scenario"):  # acc is exploratory: corrected within its table
        assert table["acc_p_adj"].to_numpy() == pytest.approx(stats.holm(table["acc_p"]), nan_ok=True)
    # gap_acc is a primary endpoint: corrected over the run
    assert result["gap_acc_p_adj"].to_numpy() == pytest.approx(stats.holm(result["gap_acc_p"]), nan_ok=True)
