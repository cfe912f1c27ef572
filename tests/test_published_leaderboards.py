"""The committed leaderboards are what their records say: every mean and sd in
leaderboards/{standard,real}/*.csv is recomputed from the results.jsonl beside it, and the folder's
manifest names the grid that produced it."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from harness.leaderboard import TABLE_KEYS, load_summary
from harness.publish import table_name

BOARDS = Path(__file__).parents[1] / "leaderboards"
BOARD = BOARDS / "standard"
#: published folder -> the grid that produces it
GRIDS = {"standard": "standard", "real": "standard-real"}


@pytest.mark.parametrize("folder", sorted(GRIDS))
def test_every_published_number_is_recomputed_from_the_records(folder):
    board = BOARDS / folder
    if not (board / "results.jsonl").exists():
        pytest.skip(f"no published {folder} leaderboard")
    summary = load_summary(board)  # reads board/results.jsonl; no significance (that needs the bootstrap)
    tables = list(summary.groupby(TABLE_KEYS, sort=False))
    assert {f"{table_name(keys)}.csv" for keys, _ in tables} == \
        {p.name for p in board.glob("*.csv")} - {"ranking.csv", "baseline.csv", "forest.csv"}
    for keys, table in tables:
        published = pd.read_csv(board / f"{table_name(keys)}.csv")
        assert list(published["method"]) == list(table["method"])
        columns = [c for c in published.columns if c.endswith(("_mean", "_sd"))]
        assert columns
        np.testing.assert_allclose(published[columns].to_numpy(float), table[columns].to_numpy(float),
                                   rtol=1e-5, atol=1e-9, err_msg=str(keys))
    manifest = json.loads((board / "manifest.json").read_text())
    assert f"name = \"{GRIDS[folder]}\"" in manifest["grid"]["text"]


@pytest.mark.skipif(not (BOARD / "results.jsonl").exists(), reason="no published standard leaderboard")
def test_each_published_table_names_the_sizes_behind_it():
    text = (BOARD / "derm__cap100__small_cnn__test.md").read_text()
    # the sizes come from the records alone: these schema-1 records carry the generators' steps but
    # not their resolved parameters, so no generator resolution is claimed
    assert "Sizes: images 32 px; ddpm, medi, cbdm: 500 training steps" in text
