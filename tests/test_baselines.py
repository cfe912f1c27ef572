"""Generator-free debiasing baselines: their weights, their conformance, their place in the grids."""
from __future__ import annotations

import json

import numpy as np
import pytest

from harness import records
from harness.cli import main
from harness.grid import load_grid
from harness.runner import run_grid
from harness.toydata import toy_imageset
from plugins.generators.real_only import (GroupBalanced, GroupClassReweight, balanced_copy_counts,
                                          inverse_cell_frequency)

BASELINES = ("group_balanced", "group_class_reweight")

WEIGHT_LOGGER = '''
import json, os
import numpy as np
from harness import Classifier, hookimpl

class WeightLogger(Classifier):
    """Predicts the weighted class prior and logs the weights fit() was given."""
    name = "weight_logger"
    version = "1"

    def fit(self, train, val, seed, sample_weight=None):
        w = np.ones(len(train)) if sample_weight is None else np.asarray(sample_weight)
        with open(os.environ["WEIGHT_LOG"], "a") as f:
            f.write(json.dumps({"ids": train.ids.tolist(), "w": w.tolist()}) + "\\n")
        self.prior = np.bincount(train.labels, weights=w, minlength=train.num_classes) / w.sum()

    def predict_proba(self, images):
        return np.tile(self.prior, (len(images), 1))

@hookimpl
def harness_classifiers():
    return [WeightLogger]
'''


def test_group_balanced_draws_n_rows_an_equal_share_per_group():
    groups = np.array([0] * 90 + [1] * 10 + [-1] * 5)  # unknown group (-1) is a group of its own
    counts = balanced_copy_counts(groups, np.random.default_rng(0))
    assert counts.sum() == len(groups) and np.all(counts == np.round(counts))
    per_group = [counts[groups == g].sum() for g in (0, 1, -1)]
    assert per_group == [35, 35, 35]
    again = balanced_copy_counts(groups, np.random.default_rng(0))
    assert np.array_equal(counts, again)


def test_group_class_reweight_gives_every_group_class_cell_the_same_total_weight():
    groups = np.array([0, 0, 0, 0, 0, 0, 1, 1, 1, 0])
    classes = np.array([0, 0, 0, 0, 1, 1, 0, 1, 1, 1])
    weights = inverse_cell_frequency(groups, classes)
    # cells (0,0): 4 rows, (0,1): 3, (1,0): 1, (1,1): 2 -> each cell totals N / 4 = 2.5
    totals = {(g, c): weights[(groups == g) & (classes == c)].sum() for g in (0, 1) for c in (0, 1)}
    assert totals == pytest.approx({cell: 2.5 for cell in totals})
    assert weights.mean() == pytest.approx(1.0)
    assert weights[6] == pytest.approx(2.5)  # the lone (1, 0) row


def test_baselines_weight_the_real_training_set_of_the_toy_data():
    train = toy_imageset(120, 8, seed=0)
    counts = GroupBalanced().sample_weight(train, seed=3)
    groups = train.group_codes("group")
    assert counts.sum() == len(train)
    assert counts[groups == 0].sum() == counts[groups == 1].sum()
    weights = GroupClassReweight().sample_weight(train, seed=3)
    assert weights.shape == (len(train),) and weights.min() > 0


@pytest.mark.parametrize("name", BASELINES)
def test_baselines_pass_validate_plugin(name, capsys):
    assert main(["validate-plugin", name]) == 0
    out = capsys.readouterr().out
    assert "sample_weight(train, seed)" in out and "same seed gives the same weights" in out


def test_the_runner_hands_the_baseline_weights_to_the_classifier(tmp_path, toy_plugins, monkeypatch):
    log = tmp_path / "weights.jsonl"
    monkeypatch.setenv("WEIGHT_LOG", str(log))
    plugin = tmp_path / "weight_logger.py"
    plugin.write_text(WEIGHT_LOGGER)
    grid = tmp_path / "grid.toml"
    grid.write_text('name = "b"\nseeds = 1\n[[dataset]]\nname = "toy"\nscenarios = ["cap100"]\n'
                    + "".join(f'[[generator]]\nname = "{g}"\n' for g in ("none", *BASELINES))
                    + '[[classifier]]\nname = "weight_logger"\n')
    summary = run_grid(load_grid(str(grid)), tmp_path / "run", tmp_path / "cache",
                       plugin_files=[toy_plugins, str(plugin)])
    assert summary.failed == []
    fits = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(fits) == 3
    by_generator = dict(zip(("none", *BASELINES), fits))  # grid order, all computed cold
    assert set(by_generator["none"]["w"]) == {1.0}
    for name in BASELINES:
        assert by_generator[name]["ids"] == by_generator["none"]["ids"]  # the same real rows, reweighted
        assert len(set(by_generator[name]["w"])) > 1
    # the weights key the predictions: a baseline never reuses the real-only classifier
    keys = {r["artifacts"]["predictions"] for r in records.load(summary.run_dir)}
    assert len(keys) == 3


@pytest.mark.parametrize("name", ["smoke", "standard", "standard-covid", "paper", "sd-family", "ratio-sweep"])
def test_shipped_grids_run_the_baselines_in_every_scenario(name):
    grid = load_grid(name)
    specs = {spec.name: spec for spec in grid.generators}
    for dataset, scenarios in grid.datasets:
        for scenario in scenarios:
            for baseline in BASELINES:
                assert baseline in specs and specs[baseline].runs_on(dataset.label, scenario), (name, scenario)
