"""A slice of the shipped standard-real grid runs on the real data in ../shared/data, found by the
loaders' default roots as in a fresh clone (no --param root): ISIC 2017 and the COVID-19 collection,
real-only, the small CNN and the frozen-feature linear probe, two classifier seeds. Slow: the image
reads and effnet-lite0 features take minutes on a loaded 2-core machine."""
from __future__ import annotations

from pathlib import Path

import pytest

from harness import records
from harness.grid import apply_overrides, load_grid
from harness.leaderboard import load_summary
from harness.runner import run_grid
from plugins.datasets import _real

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.mark.slow
@pytest.mark.skipif(not (SHARED / "isic2017").is_dir() or not (SHARED / "covid-chestxray").is_dir(),
                    reason=f"the real data (isic2017, covid-chestxray) are not under {SHARED}")
def test_standard_real_runs_on_the_shared_data_from_the_default_roots(tmp_path, monkeypatch):
    monkeypatch.delenv(_real.DATA_ENV, raising=False)
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))
    grid = apply_overrides(load_grid("standard-real"), ["small_cnn.epochs=1"])
    grid.seeds = 2
    summary = run_grid(grid, tmp_path / "run", tmp_path / "cache", only={"generator": ["none"]})
    assert summary.failed == []
    rows = records.load(summary.run_dir)
    assert {(r["spec"]["dataset"]["name"], r["spec"]["classifier"]["name"]) for r in rows} == \
        {(d, c) for d in ("isic2017", "covid") for c in ("small_cnn", "linear_probe")}
    isic = [r for r in rows if r["spec"]["dataset"]["name"] == "isic2017"]
    assert all(r["n"]["eval"] > 350 and set(r["per_group"]["sex"]) >= {"female", "male"} for r in isic)
    # the frozen ImageNet features carry melanoma signal on the real images: AUC well above chance
    probe = [r["metrics"]["auc"] for r in isic if r["spec"]["classifier"]["name"] == "linear_probe"]
    assert min(probe) > 0.6, probe
    table = load_summary(summary.run_dir)
    assert set(table["dataset"]) == {"isic2017", "covid"} and (table["n_seeds"] == 2).all()
