"""Equal training budgets: synthetic images add no optimiser steps, and FairGen's group
reweighting is a classifier option that changes the classifier's sample weights and nothing else."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from classifier_toys import square_position_set
from harness import ConfigError, records
from harness.grid import load_grid
from harness.runner import run_grid
from plugins.classifiers import training
from plugins.classifiers.timm_cnn import SmallCNN

TINY_CNN = "{ epochs = 1, batch_size = 16 }"

GRID = f"""
name = "budgets"
seeds = 1

[[dataset]]
name = "toy"
scenarios = ["cap100"]

[[generator]]
name = "none"

[[generator]]
name = "noisy_copy"

[[sampling]]
strategy = "fair"
ratio = 1.0

[[classifier]]
name = "small_cnn"
params = {TINY_CNN}

[[classifier]]
name = "small_cnn"
label = "small_cnn_gr"
params = {{ epochs = 1, batch_size = 16, group_reweighting = "inverse_performance" }}
generators = ["noisy_copy"]
"""


def _synthetic(images):
    """The same images tagged as a generator's output."""
    out = images.subset(np.arange(len(images)))
    out.provenance = np.full(len(images), "synthetic:test")
    return out


def test_the_budget_counts_real_rows_only():
    real = square_position_set(100, 0)
    augmented = real.concat(_synthetic(square_position_set(300, 1)))
    assert training.step_budget(real, 32, 2, 0, 0) == training.step_budget(augmented, 32, 2, 0, 0) \
        == training.StepBudget(steps=8, eval_every=4, epoch_steps=4)
    assert training.step_budget(augmented, 32, 2, 50, 10) == training.StepBudget(50, 10, 4)
    synthetic_only = _synthetic(square_position_set(64, 1))  # CAS: no real rows, so a pass over all
    assert training.step_budget(synthetic_only, 32, 1, 0, 0).steps == 2
    with pytest.raises(ConfigError, match="at least one step"):
        training.step_budget(real, 32, 0, 0, 0)


def test_real_only_and_augmented_classifiers_take_the_same_steps():
    real, val = square_position_set(96, 0), square_position_set(40, 1, prefix="v")
    augmented = real.concat(_synthetic(square_position_set(96, 2)))
    stats = []
    for train in (real, augmented):
        classifier = SmallCNN(epochs=2, batch_size=16, threads=1)
        classifier.fit(train, val, seed=0)
        stats.append(classifier.stats)
    assert stats[0]["steps"] == stats[1]["steps"] == 12 and stats[0]["examples_seen"] == stats[1]["examples_seen"]
    assert stats[0]["evaluations"] == stats[1]["evaluations"] == 2


def test_none_and_a_one_to_one_augmented_cell_record_the_same_steps(tmp_path, toy_plugins):
    grid = tmp_path / "grid.toml"
    grid.write_text(GRID)
    summary = run_grid(load_grid(str(grid)), tmp_path / "run", tmp_path / "cache", plugin_files=[toy_plugins])
    assert summary.failed == []
    rows = {(r["spec"]["generator"]["name"], r["spec"]["classifier"]["label"]): r for r in records.load(summary.run_dir)}
    assert set(rows) == {("none", "small_cnn"), ("noisy_copy", "small_cnn"), ("noisy_copy", "small_cnn_gr")}
    none, augmented = rows["none", "small_cnn"], rows["noisy_copy", "small_cnn"]
    assert augmented["n"]["train_synthetic"] == augmented["n"]["train_real"] == none["n"]["train_real"]
    assert none["classifier_stats"]["steps"] == augmented["classifier_stats"]["steps"] > 0
    # the reweighting option changes the classifier only: same real cut, same synthetic images, same steps
    reweighted = rows["noisy_copy", "small_cnn_gr"]
    for stage in ("train", "synthetic", "generator"):
        assert reweighted["artifacts"][stage] == augmented["artifacts"][stage]
    assert reweighted["artifacts"]["predictions"] != augmented["artifacts"]["predictions"]
    assert reweighted["classifier_stats"]["steps"] == augmented["classifier_stats"]["steps"]
    assert reweighted["plugins"]["classifier"]["params"]["group_reweighting"] == "inverse_performance"


def test_group_reweighting_changes_only_the_sample_weights(monkeypatch):
    """Same seed with the option off and on: the same batches at every step (loss-weighted mode
    draws its order without the weights) and the same budget; only the weights differ, and only
    once a val evaluation has set them (the first period trains with every group at weight 1)."""
    train, val = square_position_set(96, 0), square_position_set(60, 1, prefix="v")
    log: list[tuple[torch.Tensor, torch.Tensor]] = []
    original = training.BatchStream.loss_weights

    def logged(self, mass, index):
        weights = original(self, mass, index)
        log.append((index.clone(), weights.clone()))
        return weights

    monkeypatch.setattr(training.BatchStream, "loss_weights", logged)
    seen = {}
    for option in ("none", "inverse_performance"):
        SmallCNN(epochs=3, batch_size=16, threads=1, sample_weight_mode="loss",
                 group_reweighting=option).fit(train, val, seed=0)
        seen[option], log[:] = list(log), []
    off, on = seen["none"], seen["inverse_performance"]
    assert len(off) == len(on) == 18
    assert all(torch.equal(a[0], b[0]) for a, b in zip(off, on))  # identical batches
    first_period = 6  # 96 real rows / 16 per batch
    assert all(torch.equal(a[1], b[1]) for a, b in zip(off[:first_period], on[:first_period]))
    assert any(not torch.equal(a[1], b[1]) for a, b in zip(off[first_period:], on[first_period:]))


def test_the_standard_grid_runs_sd_and_fairgen_with_and_without_the_reweighting():
    grid = load_grid("standard")
    cells = grid.cells(lambda spec: spec.name not in ("none", "group_balanced", "group_class_reweight"))
    options = {}
    for cell in cells:
        if cell.generator.label in ("sd", "fairgen") and cell.classifier.name == "small_cnn":
            options.setdefault(cell.generator.label, set()).add(cell.classifier.params.get("group_reweighting", "none"))
    assert options == {"sd": {"none", "inverse_performance"}, "fairgen": {"none", "inverse_performance"}}
    reweighted = {c.generator.label for c in cells if c.classifier.params.get("group_reweighting") == "inverse_performance"}
    assert reweighted == {"none", "sd", "fairgen"}
