"""Concurrency: processes sharing one cache compute each artifact once and never corrupt it,
also when they find a damaged artifact at the same moment."""
from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from harness import records
from harness.cache import META, Cache

from reliability_support import TEST_PLUGIN_CELLS, TEST_PLUGIN_GRID, comparable, run_command

PROCESSES = 4
#: imports everything, says it is ready, and starts `harness run` when the test opens the gate,
#: so that both runs really overlap however long each takes to start
GATED_CLI = r"""
import os, sys, time
from harness.cli import main
import harness.runner
open(os.environ["READY"], "w").close()
while not os.path.exists(os.environ["GATE"]):
    time.sleep(0.01)
sys.exit(main(sys.argv[1:]))
"""


def _slow_build(log: str):
    def compute(tmp: Path) -> dict:
        with open(log, "a") as f:
            f.write(f"{os.getpid()}\n")
        time.sleep(0.3)  # long enough for every other process to arrive and wait
        (tmp / "data.bin").write_bytes(b"payload" * 1000)
        return {"builder": os.getpid()}
    return compute


def _get_and_read(root: str, log: str, start: float, results) -> None:
    time.sleep(max(0.0, start - time.time()))  # all processes ask at the same instant
    try:
        path, meta = Cache(root).get_or_compute("kind", "key1", _slow_build(log))
        results.put((meta["info"]["builder"], (path / "data.bin").read_bytes() == b"payload" * 1000))
    except Exception as exc:  # reported to the test instead of dying silently
        results.put(("error", repr(exc)))


def _race(root: Path, log: Path) -> list:
    context = multiprocessing.get_context("fork")  # no re-import: cheap, and nothing here uses threads
    results = context.Queue()
    start = time.time() + 0.5
    procs = [context.Process(target=_get_and_read, args=(str(root), str(log), start, results)) for _ in range(PROCESSES)]
    for p in procs:
        p.start()
    outcomes = [results.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    return outcomes


def test_processes_asking_for_one_artifact_at_once_build_it_once(tmp_path):
    outcomes = _race(tmp_path / "cache", tmp_path / "builds.log")
    builders = (tmp_path / "builds.log").read_text().split()
    assert len(builders) == 1
    assert outcomes == [(int(builders[0]), True)] * PROCESSES


def test_processes_finding_a_damaged_artifact_at_once_rebuild_it_once_and_all_read_it(tmp_path, capsys):
    root = tmp_path / "cache"
    path, _ = Cache(root).get_or_compute("kind", "key1", _slow_build(str(tmp_path / "first.log")))
    (path / "data.bin").write_bytes(b"rot")
    outcomes = _race(root, tmp_path / "builds.log")
    builders = (tmp_path / "builds.log").read_text().split()
    assert len(builders) == 1, "the damaged artifact was rebuilt more than once"
    assert outcomes == [(int(builders[0]), True)] * PROCESSES
    assert sorted(p.name for p in path.parent.iterdir()) == ["key1"]


def test_two_harness_runs_on_one_cache_at_once(tmp_path):
    """Two `harness run` processes, started together on one cache: each artifact is computed
    once, both record the same results, and the cache verifies afterwards."""
    text = TEST_PLUGIN_GRID.replace('name = "centroid"', 'name = "centroid"\nparams = { delay = 0.1 }')
    # the second run walks the scenarios in the other order, so the two meet in the middle and
    # each finds the other's artifacts (cell keys do not depend on the order)
    grids = [tmp_path / "forward.toml", tmp_path / "backward.toml"]
    grids[0].write_text(text)
    grids[1].write_text(text.replace('["natural", "cap100"]', '["cap100", "natural"]'))
    cache = tmp_path / "cache"
    env = {**os.environ, "TOY_FIT_LOG": str(tmp_path / "generator_fits.log"),
           "FAULT_FIT_LOG": str(tmp_path / "classifier_fits.log")}
    gate = tmp_path / "gate"
    procs = [subprocess.Popen(run_command(grids[i], tmp_path / f"run{i}", cache, python=[sys.executable, "-c", GATED_CLI]),
                              env={**env, "READY": str(tmp_path / f"ready{i}"), "GATE": str(gate)},
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for i in range(2)]
    deadline = time.time() + 300
    while not all((tmp_path / f"ready{i}").exists() for i in range(2)) and time.time() < deadline:
        time.sleep(0.05)
    gate.touch()
    for proc in procs:
        assert proc.wait(timeout=600) == 0, proc.stderr.read().decode()[-2000:]
    # noisy_copy: one generator per (scenario, seed); faulty_clf: one model per cell it is in
    assert (tmp_path / "generator_fits.log").read_text().count("fit") == 2 * 2
    classifier_fits = (tmp_path / "classifier_fits.log").read_text().splitlines()
    assert len(classifier_fits) == TEST_PLUGIN_CELLS // 2
    print("faulty_clf fits per process:", Counter(line.split()[1] for line in classifier_fits))
    first, second = (sorted(records.load(tmp_path / f"run{i}"), key=lambda r: r["cell_key"]) for i in range(2))
    assert len(first) == TEST_PLUGIN_CELLS and comparable(first) == comparable(second)
    artifacts = [a for a in cache.glob("*/[!.]*") if a.parent.name != "locks"]
    assert artifacts and all(Cache.verify(a)[0] is not None for a in artifacts)
    keys = [json.loads((a / META).read_text())["key"] for a in artifacts]
    assert len(keys) == len(set(keys))
    assert not list(cache.rglob(".tmp-*")) and not list(cache.rglob(".corrupt-*"))
