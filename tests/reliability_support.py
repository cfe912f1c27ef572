"""Shared pieces of the reliability tests: a grid made only of test plugins, and the command
line that runs it with every built-in entry point blocked (so a subprocess starts quickly and
the tests do not depend on which built-in methods exist)."""
from __future__ import annotations

import importlib.metadata
import sys
from pathlib import Path

from harness.hookspecs import ENTRY_POINT_GROUP

from conftest import FIXTURES, TOY_PLUGINS

FAULT_PLUGINS = FIXTURES / "fault_plugins.py"
PLUGIN_FILES = [str(TOY_PLUGINS), str(FAULT_PLUGINS)]

#: 2 scenarios x 2 generators x 2 classifiers x 2 seeds = 16 cells, all test plugins
TEST_PLUGIN_GRID = """
name = "test-plugins"
seeds = 2

[[dataset]]
name = "toy"
scenarios = ["natural", "cap100"]

[[generator]]
name = "noisy_copy"

[[generator]]
name = "faulty_gen"
label = "copy"

[[sampling]]
strategy = "fair"
ratio = 1.0

[[classifier]]
name = "centroid"

[[classifier]]
name = "faulty_clf"
label = "prior"
"""
TEST_PLUGIN_CELLS = 16


def builtin_entry_points() -> list[str]:
    return sorted({ep.name for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)})


def run_command(grid: Path, out: Path, cache: Path, python: list[str] | None = None) -> list[str]:
    """`harness run` on the test plugins alone; `python` replaces the interpreter part (e.g. a driver)."""
    head = python or [str(Path(sys.executable).parent / "harness")]
    plugins = [arg for path in PLUGIN_FILES for arg in ("--plugins", path)]
    blocks = [arg for name in builtin_entry_points() for arg in ("--block", name)]
    return [*head, "run", str(grid), "--out", str(out), "--cache", str(cache), "--quiet", *plugins, *blocks]


def comparable(rows: list[dict]) -> list[dict]:
    """Records minus wall-clock costs, which differ between two independent computations."""
    return [{k: v for k, v in r.items() if k not in ("cost", "generator_stats")} for r in rows]
