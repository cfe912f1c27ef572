"""The `harness` command end to end on a tiny grid, including kill-and-resume."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from harness import records
from harness.cli import main

HARNESS = str(Path(sys.executable).parent / "harness")


def _comparable(rows):
    return [{k: v for k, v in r.items() if k not in ("cost", "generator_stats")} for r in rows]


def test_run_leaderboard_and_check(tiny_grid, tmp_path, toy_plugins, capsys):
    out, cache = tmp_path / "run", tmp_path / "cache"
    assert main(["run", str(tiny_grid), "--out", str(out), "--cache", str(cache), "--plugins", toy_plugins]) == 0
    printed = capsys.readouterr().out
    assert "dataset=toy, scenario=natural, classifier=centroid" in printed and "acc ↑" in printed

    baseline = tmp_path / "baseline.csv"
    assert main(["leaderboard", str(out), "--format", "csv", "--output", str(baseline)]) == 0
    table = pd.read_csv(baseline)
    table = table.astype({c: float for c in table.columns if c.endswith(("_mean", "_sd"))})
    assert set(table["method"]) == {"none", "noisy_copy", "oversample"} and (table["n_seeds"] == 2).all()
    assert main(["leaderboard", str(out), "--format", "html"]) == 0
    assert "<table>" in capsys.readouterr().out

    assert main(["check", str(out), "--baseline", str(baseline)]) == 0

    # a baseline that was better than this run by more than the tolerance: the gate fails
    better = table.copy()
    better.loc[better["method"] == "oversample", "acc_mean"] += 0.2
    better.to_csv(baseline, index=False)
    capsys.readouterr()
    assert main(["check", str(out), "--baseline", str(baseline)]) == 1
    report = capsys.readouterr().out
    assert "REGRESSION" in report and "oversample" in report and "acc dropped" in report

    # a gap metric (lower is better) that rose past its tolerance also fails
    worse_gap = table.copy()
    worse_gap.loc[worse_gap["method"] == "none", "gap_acc_mean"] -= 0.3
    worse_gap.to_csv(baseline, index=False)
    assert main(["check", str(out), "--baseline", str(baseline)]) == 1
    assert "gap_acc rose" in capsys.readouterr().out


def test_dry_run_lists_cells(tiny_grid, toy_plugins, capsys):
    assert main(["run", str(tiny_grid), "--dry-run", "--plugins", toy_plugins]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 12 and lines[0] == "toy/natural/none/real/centroid #s0"


def test_config_errors_are_one_line_and_exit_2(tiny_grid, tmp_path, toy_plugins, capsys):
    tiny_grid.write_text(tiny_grid.read_text().replace('name = "centroid"', 'name = "centriod"'))
    assert main(["run", str(tiny_grid), "--out", str(tmp_path / "r"), "--plugins", toy_plugins]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "did you mean 'centroid'" in err.lower() and str(tiny_grid) in err
    tiny_grid.write_text(tiny_grid.read_text().replace('"cap100"', '"cap10O"'))
    assert main(["run", str(tiny_grid), "--plugins", toy_plugins, "--out", str(tmp_path / "r")]) == 2


def test_validate_plugin_reports_pass_and_fail(toy_plugins, capsys):
    assert main(["validate-plugin", "centroid", "--plugins", toy_plugins]) == 0
    assert "0 failed" in capsys.readouterr().out
    assert main(["validate-plugin", "wrong_shape", "--plugins", toy_plugins]) == 1
    out = capsys.readouterr().out
    assert "FAIL  samples are uint8 (N, C, H, W)" in out
    assert main(["validate-plugin", "toy", "--plugins", toy_plugins]) == 0


def test_a_killed_run_resumes_to_the_same_records(tiny_grid, tmp_path, toy_plugins):
    slow = tiny_grid.read_text().replace('name = "centroid"', 'name = "centroid"\nparams = { delay = 0.4 }')
    tiny_grid.write_text(slow)
    reference = tmp_path / "reference"
    assert main(["run", str(tiny_grid), "--out", str(reference), "--cache", str(tmp_path / "cache-ref"),
                 "--plugins", toy_plugins, "--quiet"]) == 0

    out, cache = tmp_path / "run", tmp_path / "cache"
    command = [HARNESS, "run", str(tiny_grid), "--out", str(out), "--cache", str(cache), "--plugins", toy_plugins,
               "--quiet"]
    for kill_after_lines in (2, 5):
        proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 120
        while time.time() < deadline and len(records.load(out)) < kill_after_lines and proc.poll() is None:
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    partial = len(records.load(out))
    assert 0 < partial < 12
    assert subprocess.run(command, capture_output=True).returncode == 0
    assert _comparable(records.load(out)) == _comparable(records.load(reference))


def test_baseline_tolerances_follow_the_seed_spread(tiny_grid, tmp_path, toy_plugins):
    out = tmp_path / "run"
    assert main(["run", str(tiny_grid), "--out", str(out), "--cache", str(tmp_path / "cache"),
                 "--plugins", toy_plugins, "--quiet"]) == 0
    baseline = tmp_path / "baseline.csv"
    assert main(["baseline", str(out), "--output", str(baseline)]) == 0
    table = pd.read_csv(baseline)
    from harness.metrics import METRICS

    expected = (3 * table["acc_sd"].fillna(0) * (2 / table["n_seeds"]) ** 0.5).clip(lower=METRICS["acc"].tolerance)
    assert (table["acc_tol"] - expected).abs().max() < 1e-6
    assert main(["check", str(out), "--baseline", str(baseline)]) == 0
