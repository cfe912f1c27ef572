"""The ray executor on a local Ray instance with 2 CPUs, started once for the module (Ray's
start-up takes seconds): the same records as serial; and (slow, a fresh worker must start) a
worker that dies is retried."""
from __future__ import annotations

from pathlib import Path

import pytest

from harness import records
from harness.cli import main
from harness.grid import load_grid
from harness.runner import run_grid

ray = pytest.importorskip("ray", reason="the ray executor needs Ray: pip install 'fairgen-harness[ray]'")

SCALE_PLUGINS = str(Path(__file__).parent / "fixtures" / "scale_plugins.py")


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    yield
    ray.shutdown()


def _comparable(rows):
    return [{k: v for k, v in r.items() if k not in ("cost", "generator_stats")} for r in rows]


def test_ray_gives_the_same_records_as_serial(local_ray, tiny_grid, tmp_path, toy_plugins):
    serial = run_grid(load_grid(str(tiny_grid)), tmp_path / "serial", tmp_path / "cache-serial",
                      plugin_files=[toy_plugins])
    assert main(["run", str(tiny_grid), "--executor", "ray", "--workers", "2", "--out", str(tmp_path / "ray"),
                 "--cache", str(tmp_path / "cache-ray"), "--plugins", toy_plugins, "--quiet"]) == 0
    rows = records.load(tmp_path / "ray")
    assert len(rows) == 12 and all(r["status"] == "ok" for r in rows)
    assert _comparable(rows) == _comparable(records.load(serial.run_dir))
    assert len(list((tmp_path / "ray" / records.PREDICTIONS).glob("*.parquet"))) == 12


@pytest.mark.slow
def test_ray_reruns_a_cell_whose_worker_died(local_ray, tiny_grid, tmp_path, toy_plugins):
    text = tiny_grid.read_text().replace("seeds = 2", "seeds = 1").replace('["natural", "cap100"]', '["natural"]')
    marker = tmp_path / "died"
    tiny_grid.write_text(text.replace('name = "noisy_copy"',
                                      f'name = "flaky"\nparams = {{ marker = "{marker}", failure = "exit" }}'))
    grid = load_grid(str(tiny_grid))
    summary = run_grid(grid, tmp_path / "run", tmp_path / "cache", executor="ray", retries=1,
                       plugin_files=[toy_plugins, SCALE_PLUGINS])
    assert marker.exists(), "the first fit should have killed its worker"
    assert summary.failed == [] and all(r["status"] == "ok" for r in records.load(summary.run_dir))

    marker.unlink()  # without retries, the dead worker fails its cell and the grid goes on
    summary = run_grid(grid, tmp_path / "run0", tmp_path / "cache0", executor="ray", retries=0,
                       plugin_files=[toy_plugins, SCALE_PLUGINS])
    [failure] = summary.failed
    assert failure["stage"] == "worker" and failure["spec"]["generator"]["name"] == "flaky"
    assert "died" in failure["error"] or "crashed" in failure["error"].lower()
    assert len(records.load(summary.run_dir)) == 3
