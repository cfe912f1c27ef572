"""A grid cell runs end to end on the real COVID-19 image data collection (../shared/data)."""
from __future__ import annotations

from pathlib import Path

import pytest

from harness import records
from harness.grid import apply_overrides, load_grid
from harness.runner import run_grid

COVID = Path(__file__).resolve().parents[2] / "shared" / "data" / "covid-chestxray"


@pytest.mark.skipif(not COVID.is_dir(), reason=f"the real COVID-19 collection is not at {COVID}")
def test_standard_covid_cells_run_on_the_real_images(tmp_path):
    grid = apply_overrides(load_grid("standard-covid"), [f"covid.root={COVID}", "covid.cache_dir=" + str(tmp_path / "img"),
                                                        "small_cnn.epochs=2"])
    grid.seeds = 1
    summary = run_grid(grid, tmp_path / "run", tmp_path / "cache", only={"generator": ["none", "oversample"]})
    assert summary.failed == []
    rows = records.load(summary.run_dir)
    assert {r["spec"]["generator"]["name"] for r in rows} == {"none", "oversample"}
    row = rows[0]
    assert set(row["per_group"]["sex"]) == {"F", "M"} or len(row["per_group"]["sex"]) >= 2
    assert {"age", "site"} <= set(row["per_group"])
    assert row["plugins"]["label_names"][0] == "COVID-19" and 0 <= row["metrics"]["acc"] <= 1
