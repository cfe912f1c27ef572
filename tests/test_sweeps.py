"""Ratio sweeps in grid files, Ktena's alpha chosen on val, and the metric-vs-ratio curve view."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from classifier_toys import square_position_set
from harness import ConfigError
from harness.cli import main
from harness.curves import CURVE_COLUMNS, curve_figure, ratio_curves
from harness.grid import parse_grid
from harness.report import build_report
from harness.runner import run_grid
from plugins.classifiers import training
from plugins.classifiers.timm_cnn import SmallCNN

SWEEP_GRID = """
name = "sweep"
seeds = 3

[[dataset]]
name = "toy"
scenarios = ["cap100"]

[[generator]]
name = "none"

[[generator]]
name = "noisy_copy"

[[sampling]]
strategy = "fair"
ratio = [0.5, 1, 2]

[[classifier]]
name = "centroid"
"""


def test_a_ratio_list_is_one_sampling_per_ratio():
    grid = parse_grid(SWEEP_GRID)
    assert [(s.strategy, s.ratio) for s in grid.samplings] == [("fair", 0.5), ("fair", 1.0), ("fair", 2.0)]
    cells = grid.cells(lambda spec: spec.name != "none")
    assert len(cells) == 3 * (1 + 3)  # none once, noisy_copy per ratio; 3 seeds
    for bad in ("[]", '["1"]', "[1, 1]"):
        with pytest.raises(ConfigError, match="ratio|same"):
            parse_grid(SWEEP_GRID.replace("[0.5, 1, 2]", bad))


def test_classifier_entries_can_be_limited_to_some_generators():
    grid = parse_grid(SWEEP_GRID + '\n[[classifier]]\nname = "centroid"\nlabel = "c2"\ngenerators = ["none"]\n')
    cells = grid.cells(lambda spec: spec.name != "none")
    assert {c.generator.label for c in cells if c.classifier.label == "c2"} == {"none"}
    with pytest.raises(ConfigError, match="generators = \\['nope'\\]"):
        parse_grid(SWEEP_GRID + '\n[[classifier]]\nname = "centroid"\nlabel = "c2"\ngenerators = ["nope"]\n')
    with pytest.raises(ConfigError, match="unknown key 'generator\\[0\\].generators'"):
        parse_grid(SWEEP_GRID.replace('name = "none"', 'name = "none"\ngenerators = ["none"]'))


def test_a_ratio_sweep_runs_end_to_end_into_curves(tmp_path, toy_plugins, capsys):
    grid = tmp_path / "sweep.toml"
    grid.write_text(SWEEP_GRID)
    summary = run_grid(parse_grid(SWEEP_GRID, str(grid)), tmp_path / "run", tmp_path / "cache",
                       plugin_files=[toy_plugins])
    assert summary.failed == [] and summary.cells == 12
    curves = ratio_curves(summary.run_dir, ["acc", "dp"], b=200)
    assert list(curves.columns) == CURVE_COLUMNS
    acc = curves[curves["metric"] == "acc"]
    assert sorted(acc[acc["generator"] == "noisy_copy"]["ratio"]) == [0.5, 1.0, 2.0]
    baseline = acc[acc["generator"] == "none"]
    assert list(baseline["ratio"]) == [0.0] and list(baseline["strategy"]) == ["real"]
    swept = acc[acc["generator"] == "noisy_copy"]
    assert swept["ci_low"].notna().all() and (swept["ci_low"] <= swept["diff"]).all() \
        and (swept["diff"] <= swept["ci_high"]).all()
    assert (swept["n_seeds"] == 3).all()
    figure = curve_figure(curves, "acc")
    assert len(figure.axes) == 1 and len(figure.axes[0].lines) == 2  # the baseline and one generator line
    out = tmp_path / "curves.csv"
    assert main(["curves", str(summary.run_dir), "--metric", "acc", "--bootstrap-b", "200", "--output", str(out),
                 "--figures", str(tmp_path / "figures")]) == 0
    assert len(pd.read_csv(out)) == 4 and (tmp_path / "figures" / "acc.png").stat().st_size > 0
    page = build_report(summary.run_dir, significance="bootstrap", b=200)
    assert "<h2>Ratio sweep</h2>" in page and "ratio sweep: worst_acc vs synthetic:real ratio" in page


def _synthetic(images):
    out = images.subset(np.arange(len(images)))
    out.provenance = np.full(len(images), "synthetic:test")
    return out


def test_mixed_weights_give_the_synthetic_rows_their_share():
    provenance = np.array(["real"] * 6 + ["synthetic:g"] * 2)
    weights = training.mixed_weights(np.ones(8), provenance, 0.25)
    assert weights[6:].sum() / weights.sum() == pytest.approx(0.25)
    assert np.allclose(weights[:6], weights[0]) and weights.sum() == pytest.approx(8)
    np.testing.assert_array_equal(training.mixed_weights(np.ones(8), provenance, None), np.ones(8))  # None: unchanged
    np.testing.assert_array_equal(training.mixed_weights(np.ones(6), provenance[:6], 0.5), np.ones(6))


def test_alpha_is_chosen_on_val_with_a_full_budget_per_value():
    real, val = square_position_set(64, 0), square_position_set(40, 1, prefix="v")
    augmented = real.concat(_synthetic(square_position_set(64, 2)))
    classifier = SmallCNN(epochs=1, batch_size=16, threads=1, synthetic_share=[0.0, 0.5])
    classifier.fit(augmented, val, seed=0)
    singles = []
    for share in (0.0, 0.5):
        single = SmallCNN(epochs=1, batch_size=16, threads=1, synthetic_share=[share])
        single.fit(augmented, val, seed=0)
        singles.append(single.stats["best_val_acc"])
    chosen = int(np.argmax(singles))
    assert classifier.stats["synthetic_share"] == [0.0, 0.5][chosen]
    assert classifier.stats["best_val_acc"] == max(singles)
    assert classifier.stats["steps"] == 4 and classifier.stats["share_fits"] == 2
    with pytest.raises(ConfigError, match="synthetic_share"):
        SmallCNN(synthetic_share=[1.5])
