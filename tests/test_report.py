"""`harness report`: one self-contained HTML page with the leaderboard, plots and samples."""
from __future__ import annotations

from harness.cli import main


def test_report_has_tables_plots_and_sample_grids(tiny_grid, tmp_path, toy_plugins):
    out = tmp_path / "run"
    assert main(["run", str(tiny_grid), "--out", str(out), "--cache", str(tmp_path / "cache"),
                 "--plugins", toy_plugins, "--quiet"]) == 0
    assert main(["report", str(out)]) == 0
    page = (out / "report.html").read_text()
    assert page.startswith("<!doctype html>") and "<table>" in page
    assert page.count("data:image/png;base64,") >= 2 + 2  # a scatter per table, sample grids
    assert "Samples: noisy_copy" in page and "Samples: oversample" in page
