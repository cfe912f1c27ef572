"""Benchmark: the leaderboard's significance tests on the committed 144-cell standard run
(leaderboards/standard: 12 tables, 36 method-vs-baseline comparisons, 900–1000 test samples,
every prediction metric), per test, from records already loaded; the default is the two-level
bootstrap with B = 2000.

Run: .venv/bin/pytest tests/benchmarks/test_bench_leaderboard.py -m slow --benchmark-enable -s
The numbers go into docs/leaderboards.md.
"""
import time
from pathlib import Path

import pytest

from harness.leaderboard import baseline_tests, load_records, records_frame

BOARD = Path(__file__).parents[2] / "leaderboards" / "standard"


@pytest.mark.slow
@pytest.mark.skipif(not (BOARD / "results.jsonl").exists(), reason="no committed standard run")
@pytest.mark.parametrize("test", ["paired-t", "bootstrap"])
def test_significance_of_the_144_cell_standard_run(benchmark, test):
    rows = load_records(BOARD)
    frame = records_frame(rows)
    assert len(frame) == 144
    start_wall, start_cpu = time.perf_counter(), time.process_time()
    tests = benchmark.pedantic(baseline_tests, args=(BOARD, rows, frame, test), rounds=1, iterations=1)
    wall, cpu = time.perf_counter() - start_wall, time.process_time() - start_cpu
    assert len(tests) == 36
    print(f"\nsignificance of 144 cells, {test}: {wall:.1f} s wall, {cpu:.1f} s CPU")
