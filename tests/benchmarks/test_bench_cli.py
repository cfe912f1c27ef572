"""Benchmark: start-up of the `harness` command as a ratio to `python -c "import torch"`, measured
in one run with the commands interleaved, so load on the machine hits all of them alike. The
targets: `harness --help` ≤ 0.5×, `harness ls` ≤ 1.5× (recorded, not asserted: a timing
assertion would fail on a busy machine, not on slow code).

Run: .venv/bin/pytest tests/benchmarks/test_bench_cli.py -m slow --benchmark-enable -s -p no:cacheprovider
The figures go into docs/performance.md.
"""
from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest

HARNESS = str(Path(sys.executable).parent / "harness")
COMMANDS = {"import torch": [sys.executable, "-c", "import torch"], "harness --help": [HARNESS, "--help"],
            "harness ls": [HARNESS, "ls"]}
ROUNDS = 7


@pytest.mark.slow
def test_cli_start_up_as_a_ratio_to_import_torch(benchmark):
    times: dict[str, list[float]] = {name: [] for name in COMMANDS}

    def every_command_once() -> None:
        for name, command in COMMANDS.items():
            start = time.perf_counter()
            subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
            times[name].append(time.perf_counter() - start)

    benchmark.pedantic(every_command_once, rounds=ROUNDS, iterations=1, warmup_rounds=1)
    median = {name: statistics.median(values[-ROUNDS:]) for name, values in times.items()}
    torch_s = median["import torch"]
    print()
    for name, seconds in median.items():
        print(f"{name:>15}: {seconds:.3f} s median of {len(times[name][-ROUNDS:])}, {seconds / torch_s:.2f}x import torch")
    benchmark.extra_info.update({f"{name} s": s for name, s in median.items()})
    benchmark.extra_info.update({f"{name} / import torch": s / torch_s for name, s in median.items()})
