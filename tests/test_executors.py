"""Executors and devices without Ray: retry policy, device injection, clear errors."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from harness import records
from harness.contracts import ConfigError, Generator
from harness.devices import autocast, grad_scaler, resolve_device, wants_gpu, with_device
from harness.executors import make_executor
from harness.grid import load_grid
from harness.runner import run_grid

SCALE_PLUGINS = str(Path(__file__).parent / "fixtures" / "scale_plugins.py")


def _flaky_grid(tmp_path: Path, tiny_grid: Path, **params) -> Path:
    """The tiny grid on one scenario and seed, with the flaky generator instead of noisy_copy."""
    inline = ", ".join(f'{k} = "{v}"' for k, v in params.items())
    text = tiny_grid.read_text().replace("seeds = 2", "seeds = 1").replace('["natural", "cap100"]', '["natural"]')
    tiny_grid.write_text(text.replace('name = "noisy_copy"', f'name = "flaky"\nparams = {{ {inline} }}'))
    return tiny_grid


def _run(grid_path: Path, tmp_path: Path, toy_plugins: str, out: str = "run", **kwargs):
    return run_grid(load_grid(str(grid_path)), tmp_path / out, tmp_path / "cache",
                    plugin_files=[toy_plugins, SCALE_PLUGINS], **kwargs)


def _flaky_rows(run_dir: Path) -> list[dict]:
    return [r for r in records.load(run_dir) if r["spec"]["generator"]["name"] == "flaky"]


def test_a_failed_cell_is_rerun_up_to_retries_times(tiny_grid, tmp_path, toy_plugins):
    grid = _flaky_grid(tmp_path, tiny_grid, marker=tmp_path / "raised", failure="raise")
    summary = _run(grid, tmp_path, toy_plugins, retries=1)
    assert summary.failed == [] and (tmp_path / "raised").exists()
    [row] = _flaky_rows(summary.run_dir)
    assert row["status"] == "ok" and row["attempts"] == 2


def test_without_retries_the_failure_is_recorded(tiny_grid, tmp_path, toy_plugins):
    grid = _flaky_grid(tmp_path, tiny_grid, marker=tmp_path / "raised", failure="raise")
    summary = _run(grid, tmp_path, toy_plugins)
    [row] = _flaky_rows(summary.run_dir)
    assert row["status"] == "failed" and "first fit fails" in row["error"]
    assert [f["cell_key"] for f in summary.failed] == [row["cell_key"]]


def test_the_run_device_reaches_plugins_that_declare_one(tiny_grid, tmp_path, toy_plugins):
    grid = _flaky_grid(tmp_path, tiny_grid)
    summary = _run(grid, tmp_path, toy_plugins, device="cpu")
    [row] = _flaky_rows(summary.run_dir)
    assert row["generator_stats"]["device_param"] == "cpu" and row["generator_stats"]["device"] == "cpu"


def test_a_device_set_in_the_grid_wins_over_the_run_device():
    class Takes(Generator):
        name, defaults = "takes", {"device": "auto", "steps": 1}

    class Ignores(Generator):
        name, defaults = "ignores", {"steps": 1}

    assert with_device(Takes, {"steps": 2}, "cpu") == {"steps": 2, "device": "cpu"}
    assert with_device(Takes, {"device": "auto"}, "cpu") == {"device": "auto"}
    assert with_device(Ignores, {"steps": 2}, "cpu") == {"steps": 2}
    assert wants_gpu([Ignores, Takes], "auto") and not wants_gpu([Ignores, Takes], "cpu")
    assert not wants_gpu([Ignores], "cuda")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on a machine without CUDA")
def test_asking_for_cuda_without_a_gpu_fails_before_the_run(tiny_grid, tmp_path, toy_plugins):
    with pytest.raises(ConfigError, match="sees no CUDA GPU.*--device cpu"):
        _run(tiny_grid, tmp_path, toy_plugins, device="cuda")
    assert not (tmp_path / "run").exists()
    assert resolve_device("auto") == torch.device("cpu")


def test_resolve_device_refuses_unknown_names_and_makes_cpu_deterministic():
    with pytest.raises(ConfigError, match="unknown device 'gpu'"):
        resolve_device("gpu")
    before = torch.are_deterministic_algorithms_enabled()
    try:
        assert resolve_device("cpu") == torch.device("cpu")
        assert torch.are_deterministic_algorithms_enabled()
    finally:
        torch.use_deterministic_algorithms(before)


def test_mixed_precision_is_off_on_cpu_and_checks_its_name():
    cpu = torch.device("cpu")
    with autocast(cpu, "bf16"):
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.float32
    assert not grad_scaler(cpu, "fp16").is_enabled()
    with pytest.raises(ConfigError, match="unknown precision 'half'"):
        autocast(cpu, "half")


def test_executor_options_fail_with_what_to_do(monkeypatch):
    with pytest.raises(ConfigError, match="unknown executor 'dask'"):
        make_executor("dask", 2)
    with pytest.raises(ConfigError, match="--address .* needs --executor ray"):
        make_executor("process", 2, address="auto")
    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    with pytest.raises(ConfigError, match=r"pip install 'fairgen-harness\[ray\]'"):
        make_executor("ray", 2)
