"""Process-executor workers belong to their run: they die with it when it is killed, Ctrl-C stops
the cells in flight within seconds and says how to resume, and a `harness` folder in the working
directory does not replace the installed package in the workers."""
from __future__ import annotations

import os
import signal
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

from harness import records

from reliability_support import run_command

SLEEPY_GRID = """
name = "sleepy"
seeds = 2

[[dataset]]
name = "toy"
scenarios = ["natural"]

[[generator]]
name = "faulty_gen"
params = { fault = "sleep" }

[[sampling]]
strategy = "fair"

[[classifier]]
name = "centroid"
"""


def _alive(pid: int) -> bool:
    """Running, not a zombie waiting for a parent (in a container, init may never reap it)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _wait(condition, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return condition()


@contextmanager
def sleepy_run(tmp_path: Path, executor: str):
    """`harness run` of two cells, each inside a 10-minute fit (both at once with two process
    workers); yields (process, pids of the processes in a fit). Whatever the test does, none of
    them outlives it."""
    grid, pids = tmp_path / "sleepy.toml", tmp_path / "pids"
    grid.write_text(SLEEPY_GRID)
    pids.mkdir()
    sleepers = 2 if executor == "process" else 1
    command = run_command(grid, tmp_path / "run", tmp_path / "cache") + ["--executor", executor, "--workers", "2"]
    # Ctrl-C as a terminal sends it: SIGINT at its default disposition in the run, even when this test
    # itself was started where SIGINT is ignored (a background job of a non-interactive shell)
    proc = subprocess.Popen(command, env={**os.environ, "FAULT_PID_DIR": str(pids)}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    workers: list[int] = []
    try:
        assert _wait(lambda: len(list(pids.iterdir())) == sleepers or proc.poll() is not None, 120), "no cell started"
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        workers = [int(p.name) for p in pids.iterdir()]
        yield proc, workers
    finally:
        for pid in workers:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


def test_workers_die_when_the_run_is_killed(tmp_path):
    with sleepy_run(tmp_path, "process") as (proc, workers):
        proc.kill()
        proc.wait()
        assert _wait(lambda: not any(_alive(pid) for pid in workers), 10), "workers outlived their run"


@pytest.mark.parametrize("executor", ["process", "serial"])
def test_ctrl_c_stops_the_cells_in_flight_and_says_how_to_resume(tmp_path, executor):
    with sleepy_run(tmp_path, executor) as (proc, workers):
        proc.send_signal(signal.SIGINT)
        try:
            _, err = proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            pytest.fail("the run was still waiting for its cells 20 s after Ctrl-C")
        assert proc.returncode == 130, err[-2000:]
        assert "0 of 2 cells are done" in err and "To resume, run the same command again: harness run" in err
        assert _wait(lambda: not any(_alive(pid) for pid in workers), 10)


def test_a_harness_folder_in_the_working_directory_is_not_imported_by_workers(tmp_path):
    (tmp_path / "harness").mkdir()  # e.g. another checkout, or a folder of outputs
    grid = tmp_path / "grid.toml"
    grid.write_text(SLEEPY_GRID.replace('params = { fault = "sleep" }', "").replace("seeds = 2", "seeds = 1"))
    command = run_command(grid, tmp_path / "run", tmp_path / "cache") + ["--executor", "process", "--workers", "1"]
    proc = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert [r["status"] for r in records.load(tmp_path / "run")] == ["ok"]
