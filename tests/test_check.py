"""The regression gate: partial runs, completeness, relative tolerances for the FID family, the
cross-ISA drift term of a baseline, and whether a failing change is noise or a regression.

Runs are hand-written record folders (tests/leaderboard_toys.py), so every expected value is
known and no grid is trained."""
from __future__ import annotations

import pandas as pd
import pytest
from leaderboard_toys import write_run

from harness.check import NOISE, REGRESSION, baseline_table, check
from harness.cli import main
from harness.leaderboard import load_records, records_frame
from harness.metrics import METRICS

METHODS = {"none": 0.80, "oversample": 0.85}


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
    """Two tables (scenarios s0, s1) x two methods x three seeds."""
    return write_run(tmp_path_factory.mktemp("full") / "run", METHODS, tables=2)


@pytest.fixture(scope="module")
def full_baseline(full_run, tmp_path_factory):
    path = tmp_path_factory.mktemp("baseline") / "baseline.csv"
    assert main(["baseline", str(full_run), "--output", str(path)]) == 0
    return path


def test_a_partial_run_is_checked_on_the_cells_it_has(full_baseline, tmp_path, capsys):
    partial = write_run(tmp_path / "partial", METHODS, tables=1)  # scenario s0 only, same values
    assert main(["check", str(partial), "--baseline", str(full_baseline)]) == 0
    captured = capsys.readouterr()
    assert "REGRESSION" not in captured.out and "MISSING" not in captured.out
    assert "OK: 0 metric(s) past tolerance" in captured.err
    assert "2 baseline cell(s) missing from the run, not compared (--complete makes them fail)" in captured.err

    # completeness asked for: the missing cells fail, each listed once (not once per metric)
    assert main(["check", str(partial), "--baseline", str(full_baseline), "--complete"]) == 1
    out = capsys.readouterr().out
    assert out.count("MISSING") == 1 and "REGRESSION" not in out
    assert "toy/s1/clf/test/none" in out and "toy/s1/clf/test/oversample" in out and "toy/s0/" not in out


def test_an_only_run_passes_against_the_full_grids_baseline(tiny_grid, toy_plugins, tmp_path, capsys):
    cache, full, part = tmp_path / "cache", tmp_path / "full", tmp_path / "part"
    assert main(["run", str(tiny_grid), "--out", str(full), "--cache", str(cache), "--plugins", toy_plugins,
                 "--quiet"]) == 0
    baseline = tmp_path / "baseline.csv"
    assert main(["baseline", str(full), "--output", str(baseline)]) == 0
    assert main(["run", str(tiny_grid), "--out", str(part), "--cache", str(cache), "--plugins", toy_plugins,
                 "--only", "scenario=natural", "--quiet"]) == 0
    capsys.readouterr()
    assert main(["check", str(part), "--baseline", str(baseline)]) == 0
    assert "3 baseline cell(s) missing from the run, not compared" in capsys.readouterr().err
    assert main(["check", str(part), "--baseline", str(baseline), "--complete"]) == 1
    out = capsys.readouterr().out
    assert out.count("MISSING") == 1 and out.count("toy/cap100/") == 3 and "toy/natural/" not in out


def test_a_run_sharing_no_cell_is_an_error_not_a_pass(full_baseline, tmp_path, capsys):
    other = write_run(tmp_path / "other", {"flipcopy": 0.9}, tables=1)
    assert main(["check", str(other), "--baseline", str(full_baseline)]) == 2
    assert "shares no (dataset, scenario, classifier, split, method) cell" in capsys.readouterr().err


def test_the_fid_family_gets_a_tolerance_relative_to_its_value(tmp_path):
    base = write_run(tmp_path / "base", METHODS, tables=1, fid={"oversample": 1e5})
    baseline = tmp_path / "baseline.csv"
    assert main(["baseline", str(base), "--output", str(baseline)]) == 0
    table = pd.read_csv(baseline)
    fid_tol = table.loc[table["method"] == "oversample", "fid_tol"].item()
    assert fid_tol == pytest.approx(METRICS["fid"].relative_tolerance * (1e5 + 1))  # seeds add 0, 1, 2
    assert (table["fid_tol_kind"].dropna() == "relative").all() and (table["acc_tol_kind"] == "absolute").all()

    # 0.2 % higher on a value of 1e5 is inside the tolerance (an absolute 2.0 would fail it)
    slightly = write_run(tmp_path / "slightly", METHODS, tables=1, fid={"oversample": 1e5 + 200})
    assert not check(slightly, baseline).failed
    much = write_run(tmp_path / "much", METHODS, tables=1, fid={"oversample": 1.3e5})
    [violation] = check(much, baseline).violations
    assert violation.metric == "fid" and violation.why.startswith("rose") and violation.kind == REGRESSION


def test_the_drift_term_covers_a_rerun_under_another_isa(tmp_path, capsys):
    base = write_run(tmp_path / "base", METHODS, tables=1)
    # the "other ISA" run moved only the real-only cell; a third machine moves the other one
    drift_run = write_run(tmp_path / "drift", {**METHODS, "none": 0.75}, tables=1)
    elsewhere = write_run(tmp_path / "elsewhere", {**METHODS, "oversample": 0.80}, tables=1)

    no_drift, with_drift = tmp_path / "no-drift.csv", tmp_path / "drift.csv"
    assert main(["baseline", str(base), "--output", str(no_drift)]) == 0
    assert main(["baseline", str(base), "--output", str(with_drift), "--drift-run", str(drift_run)]) == 0
    assert "drift against" in capsys.readouterr().err

    table = pd.read_csv(with_drift)
    measured = (record_acc(drift_run) - record_acc(base)).abs().max()  # the largest move of one record
    assert measured > METRICS["acc"].tolerance
    # pooled over cells: the unmoved cell gets the drift measured on the moved one
    assert table["acc_drift"].tolist() == pytest.approx([measured, measured], rel=1e-5)
    assert (table["acc_tol"] >= table["acc_drift"] - 1e-9).all()
    assert (pd.read_csv(no_drift)["acc_drift"] == 0).all()

    assert check(drift_run, no_drift).failed and check(elsewhere, no_drift).failed
    assert not check(drift_run, with_drift).failed
    assert not check(elsewhere, with_drift).failed


def test_fid_drift_is_pooled_as_a_fraction_of_the_value(tmp_path):
    fid = {"oversample": 1e5, "noisy_copy": 2e5}
    methods = {**METHODS, "noisy_copy": 0.85}
    base = write_run(tmp_path / "base", methods, tables=1, fid=fid)
    # under the other ISA only oversample's FID moved, by 8 %
    drift_run = write_run(tmp_path / "drift", methods, tables=1, fid={**fid, "oversample": 1.08e5})
    table = baseline_table(base, drift_run=drift_run).set_index("method")
    assert table.loc["oversample", "fid_drift"] == pytest.approx(8e3, rel=1e-4)
    # the unmoved cell gets 8 % of its own value, not 8,000
    assert table.loc["noisy_copy", "fid_drift"] == pytest.approx(0.08 * table.loc["noisy_copy", "fid_mean"], rel=1e-3)
    assert table.loc["noisy_copy", "fid_tol"] == pytest.approx(table.loc["noisy_copy", "fid_drift"])


def record_acc(run) -> pd.Series:
    return records_frame(load_records(run)).set_index(["method", "seed_index"])["acc"]


def test_a_baseline_without_drift_columns_still_gates(tmp_path, capsys):
    base = write_run(tmp_path / "base", METHODS, tables=1)
    table = baseline_table(base)
    old_style = table.drop(columns=[c for c in table if c.endswith(("_drift", "_tol_kind")) or c == "spread_factor"])
    path = tmp_path / "old.csv"
    old_style.to_csv(path, index=False)
    assert not check(base, path).failed
    worse = write_run(tmp_path / "worse", {**METHODS, "oversample": 0.70}, tables=1)
    assert main(["check", str(worse), "--baseline", str(path)]) == 1
    assert "oversample: acc dropped by" in capsys.readouterr().out


def test_each_failure_says_whether_it_is_inside_the_replicate_spread(full_run, full_baseline, tmp_path, capsys):
    # a tolerance tightened below the seed noise: a 0.01 move is past it but inside the spread
    nudged = write_run(tmp_path / "nudged", {**METHODS, "none": 0.79}, tables=2)
    moved = [v for v in check(nudged, full_baseline, {"acc": 0.001}).violations if v.metric == "acc"]
    assert len(moved) == 2 and all(v.kind == NOISE and abs(v.current - v.baseline) <= v.spread for v in moved)
    # a real drop is beyond it
    dropped = write_run(tmp_path / "dropped", {**METHODS, "none": 0.55}, tables=2)
    assert main(["check", str(dropped), "--baseline", str(full_baseline)]) == 1
    captured = capsys.readouterr()
    acc_lines = [line for line in captured.out.splitlines() if ": acc dropped" in line]
    assert len(acc_lines) == 2 and all(line.startswith("REGRESSION toy/s") for line in acc_lines)
    assert all("beyond the replicate spread" in line for line in acc_lines)
    assert "beyond the replicate spread" in captured.err

    assert main(["check", str(nudged), "--baseline", str(full_baseline), "--tolerance", "acc=0.001"]) == 1
    out = capsys.readouterr().out
    assert "NOISE toy/s0/clf/test/none: acc dropped by" in out and "inside the replicate spread" in out


def test_the_committed_smoke_baseline_carries_a_measured_drift():
    from pathlib import Path

    table = pd.read_csv(Path(__file__).parents[1] / "leaderboards" / "smoke.csv")
    metrics = [c[:-5] for c in table if c.endswith("_mean") and c[:-5] in METRICS]
    assert metrics and all(f"{m}_drift" in table and f"{m}_tol_kind" in table for m in metrics)
    assert table[[f"{m}_drift" for m in metrics]].to_numpy().max() > 0  # made with a drift run
    for m in metrics:
        noise = table["spread_factor"] * table[f"{m}_sd"].fillna(0) * (2 / table["n_seeds"]) ** 0.5
        floor = table[f"{m}_mean"].abs().map(METRICS[m].floor)
        expected = pd.concat([floor, noise, table[f"{m}_drift"]], axis=1).max(axis=1)
        assert table[f"{m}_tol"].to_numpy() == pytest.approx(expected.to_numpy(), rel=1e-4), m


def test_an_older_baseline_gets_the_relative_fid_floor(tmp_path):
    base = write_run(tmp_path / "base", METHODS, tables=1, fid={"oversample": 1e5})
    table = baseline_table(base)
    table["fid_tol"] = 5.0  # absolute, as in a baseline written without the relative floor
    old = tmp_path / "old.csv"
    table.drop(columns=[c for c in table if c.endswith(("_drift", "_tol_kind"))]).to_csv(old, index=False)
    moved = write_run(tmp_path / "moved", METHODS, tables=1, fid={"oversample": 1e5 + 300})
    assert not check(moved, old).failed
