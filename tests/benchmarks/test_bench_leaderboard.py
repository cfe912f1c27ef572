"""Benchmark: `harness leaderboard` significance on a 48-row run (8 tables x 6 methods x 3 seeds,
500 test samples each), per test, against the summary without significance.

Run: .venv/bin/pytest tests/benchmarks/test_bench_leaderboard.py -m slow --benchmark-enable -s
The numbers go into docs/leaderboards.md.
"""
import sys
import time
from pathlib import Path

import pytest

from harness.leaderboard import load_summary

sys.path.insert(0, str(Path(__file__).parents[1]))
from leaderboard_toys import write_run  # noqa: E402

METHODS = {"none": 0.7, "a": 0.85, "b": 0.5, "c": 0.7, "d": 0.72, "e": 0.68}


@pytest.fixture(scope="module")
def big_run(tmp_path_factory):
    return write_run(tmp_path_factory.mktemp("bench") / "run", METHODS, seeds=3, n=500, tables=8)


@pytest.mark.slow
@pytest.mark.parametrize("test", ["none", "paired-t", "bootstrap"])
def test_leaderboard_significance_cost(benchmark, big_run, test):
    start_wall, start_cpu = time.perf_counter(), time.process_time()
    summary = benchmark.pedantic(load_summary, args=(big_run,), kwargs={"significance": test}, rounds=1, iterations=1)
    wall, cpu = time.perf_counter() - start_wall, time.process_time() - start_cpu
    assert len(summary) == 48
    print(f"\nleaderboard of 48 rows, significance={test}: {wall:.1f} s wall, {cpu:.1f} s CPU")
