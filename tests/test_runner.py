"""The runner: caching, resume, failure isolation and the records it writes."""
from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from harness import records
from harness.grid import load_grid
from harness.runner import run_grid


def _run(grid_path, tmp_path, toy_plugins, out="run", **kwargs):
    return run_grid(load_grid(str(grid_path)), tmp_path / out, tmp_path / "cache", plugin_files=[toy_plugins], **kwargs)


def _comparable(rows):
    """Records minus wall-clock costs, which differ between two independent computations."""
    return [{k: v for k, v in r.items() if k not in ("cost", "generator_stats")} for r in rows]


def test_a_grid_runs_and_writes_one_record_per_cell_seed_split(tiny_grid, tmp_path, toy_plugins):
    summary = _run(tiny_grid, tmp_path, toy_plugins)
    rows = records.load(summary.run_dir)
    assert summary.failed == [] and len(rows) == summary.cells == 12
    row = rows[0]
    assert row["status"] == "ok" and row["split"] == "test"
    assert 0 <= row["metrics"]["acc"] <= 1
    assert set(row["per_group"]["group"]) == {"g0", "g1"}
    assert row["per_group"]["group"]["g0"]["n"] > 0
    manifest = json.loads((summary.run_dir / records.MANIFEST).read_text())
    assert manifest["versions"]["torch"] and "toy" in manifest["grid"]["text"]


def test_predictions_are_stored_per_sample_and_reproduce_acc(tiny_grid, tmp_path, toy_plugins):
    summary = _run(tiny_grid, tmp_path, toy_plugins)
    for row in records.load(summary.run_dir):
        frame = pd.read_parquet(summary.run_dir / row["predictions_file"])
        proba = frame[[c for c in frame.columns if c.startswith("p_")]].to_numpy()
        assert set(frame.columns) >= {"sample_id", "y_true", "group", "provenance"}
        assert math.isclose((proba.argmax(1) == frame["y_true"]).mean(), row["metrics"]["acc"])


def test_second_run_computes_nothing(tiny_grid, tmp_path, toy_plugins, monkeypatch):
    fit_log = tmp_path / "fits.log"
    monkeypatch.setenv("TOY_FIT_LOG", str(fit_log))
    _run(tiny_grid, tmp_path, toy_plugins)
    fits_first = fit_log.read_text().count("fit")
    # noisy_copy: 2 scenarios x 2 seeds, trained once each and shared by every downstream stage
    assert fits_first == 4
    again = _run(tiny_grid, tmp_path, toy_plugins)
    assert again.computed == 0 and again.reused == again.cells
    fresh_dir = _run(tiny_grid, tmp_path, toy_plugins, out="run2")  # new run folder, warm cache
    assert fresh_dir.computed == fresh_dir.cells and fit_log.read_text().count("fit") == fits_first
    assert _comparable(records.load(fresh_dir.run_dir)) == _comparable(records.load(tmp_path / "run"))


def test_a_failing_plugin_fails_only_its_cells(tiny_grid, tmp_path, toy_plugins):
    grid = tiny_grid.read_text().replace('name = "noisy_copy"', 'name = "boom"')
    tiny_grid.write_text(grid + '\n[[generator]]\nname = "wrong_shape"\n')
    summary = _run(tiny_grid, tmp_path, toy_plugins)
    failed = {f["spec"]["generator"]["name"] for f in summary.failed}
    assert failed == {"boom", "wrong_shape"}
    messages = {f["spec"]["generator"]["name"]: f["error"] for f in summary.failed}
    assert "generator 'boom' failed in stage 'generator fit'" in messages["boom"]
    assert "deliberate failure" in messages["boom"]
    assert "shape (" in messages["wrong_shape"] and "expected" in messages["wrong_shape"]
    ok = [r for r in records.load(summary.run_dir) if r["status"] == "ok"]
    assert {r["spec"]["generator"]["name"] for r in ok} == {"none", "oversample"}


def test_exit_on_error_stops_at_the_first_failure(tiny_grid, tmp_path, toy_plugins):
    tiny_grid.write_text(tiny_grid.read_text().replace('name = "noisy_copy"', 'name = "boom"'))
    summary = _run(tiny_grid, tmp_path, toy_plugins, exit_on_error=True)
    assert len(summary.failed) == 1 and summary.computed < summary.cells


def test_failed_cells_are_retried_on_the_next_run(tiny_grid, tmp_path, toy_plugins):
    tiny_grid.write_text(tiny_grid.read_text().replace('name = "noisy_copy"', 'name = "boom"'))
    first = _run(tiny_grid, tmp_path, toy_plugins)
    second = _run(tiny_grid, tmp_path, toy_plugins)
    assert second.computed == len(first.failed)


def test_a_corrupted_cache_artifact_is_detected_and_recomputed(tiny_grid, tmp_path, toy_plugins, capsys):
    _run(tiny_grid, tmp_path, toy_plugins)
    target = next((tmp_path / "cache" / "synthetic").rglob("synthetic.npz"))
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0xFF
    target.write_bytes(bytes(data))
    again = _run(tiny_grid, tmp_path, toy_plugins, out="run2")
    assert "corrupted" in capsys.readouterr().err
    assert again.failed == []
    assert _comparable(records.load(again.run_dir)) == _comparable(records.load(tmp_path / "run"))


def test_process_executor_gives_the_same_records(tiny_grid, tmp_path, toy_plugins):
    serial = _run(tiny_grid, tmp_path, toy_plugins, out="serial")
    parallel = run_grid(load_grid(str(tiny_grid)), tmp_path / "process", tmp_path / "cache2", executor="process",
                        workers=2, plugin_files=[toy_plugins])
    assert parallel.failed == []
    assert _comparable(records.load(parallel.run_dir)) == _comparable(records.load(serial.run_dir))


def test_fidelity_metrics_are_recorded_per_group_with_the_judges_reading(tiny_grid, tmp_path, toy_plugins):
    grid = tiny_grid.read_text().replace("seeds = 2", "seeds = 1").replace('"natural", "cap100"', '"natural"')
    tiny_grid.write_text('fidelity = true\nfid_draws = 1\nfeature_extractor = "effnet-lite0@64"\n' + grid)
    summary = _run(tiny_grid, tmp_path, toy_plugins)
    assert summary.failed == []
    rows = records.load(summary.run_dir)
    synthetic = [r for r in rows if r["spec"]["generator"]["name"] == "noisy_copy"]
    real_only = [r for r in rows if r["spec"]["generator"]["name"] == "none"]
    assert synthetic and all(r["metrics"]["fid"] is not None and r["metrics"]["fid"] >= 0 for r in synthetic)
    assert set(synthetic[0]["fidelity"]["per_group"]) == {"g0", "g1"}
    assert synthetic[0]["fidelity"]["extractor"] == "effnet-lite0@64"
    assert all("fid" not in r["metrics"] for r in real_only)
    # noisy_copy copies a training image of the requested class, whatever the requested group
    assert all(r["metrics"]["class_fidelity"] > 0.9 for r in synthetic)
    judged = synthetic[0]["fidelity"]["attribute_fidelity"]
    assert set(judged["judges"]) == {"effnet", "pixels"} and judged["primary"] in judged["judges"]
    assert not any(j["independence"]["depends_on_request"] for j in judged["judges"].values())
    assert judged["conditions_on_attributes"]  # noisy_copy does not declare itself class-only
    from harness.leaderboard import load_summary, render

    board = render(load_summary(summary.run_dir))
    assert "attr_fidelity ↑" in board and "fid ↓" in board  # fidelity beside FID
    header = board.splitlines()[0]
    assert "fidelity judges' accuracy on real test: effnet: class " in header and "; pixels: class " in header
    real = judged["judges"]["effnet"]["real_test"]
    assert set(real) == {"label", "group"} and set(real["group"]) == {"overall", "g0", "g1"}
    assert all("class_fidelity" not in r["metrics"] for r in real_only)


def test_two_runs_cannot_write_one_run_folder(tiny_grid, tmp_path, toy_plugins):
    from filelock import FileLock

    from harness.contracts import ConfigError

    (tmp_path / "run").mkdir()
    with FileLock(str(tmp_path / "run" / ".run.lock")):  # as a concurrent `harness run` holds it
        with pytest.raises(ConfigError, match="another `harness run` is writing"):
            _run(tiny_grid, tmp_path, toy_plugins)


def test_a_method_can_ask_the_classifier_for_a_parameter(tiny_grid, tmp_path, toy_plugins):
    """As FairGen asks for inverse-performance reweighting: applied only where the classifier
    takes the parameter, and never over what the grid set."""
    tiny_grid.write_text(tiny_grid.read_text().replace('name = "noisy_copy"', 'name = "asks_classifier"'))
    summary = _run(tiny_grid, tmp_path, toy_plugins)
    assert summary.failed == []
    rows = records.load(summary.run_dir)
    asked = [r for r in rows if r["spec"]["generator"]["name"] == "asks_classifier"]
    others = [r for r in rows if r["spec"]["generator"]["name"] != "asks_classifier"]
    assert {r["plugins"]["classifier"]["params"]["temperature"] for r in asked} == {5.0}
    assert {r["plugins"]["classifier"]["params"]["temperature"] for r in others} == {50.0}
    tiny_grid.write_text(tiny_grid.read_text().replace('name = "centroid"', 'name = "centroid"\nparams = { temperature = 7.0 }'))
    rows = records.load(_run(tiny_grid, tmp_path, toy_plugins, out="run2").run_dir)
    assert {r["plugins"]["classifier"]["params"]["temperature"] for r in rows} == {7.0}
