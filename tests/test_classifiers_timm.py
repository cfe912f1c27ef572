"""The timm classifier plugins: learn a toy task, honour weights, select on val, stay deterministic."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from classifier_toys import square_position_set
from harness import ConfigError, DataError
from plugins.classifiers import training
from plugins.classifiers.timm_cnn import SmallCNN, TimmClassifier

FAST = {"epochs": 3}


@pytest.fixture(scope="module")
def toy():
    return square_position_set(400, 0), square_position_set(120, 1, prefix="v"), square_position_set(200, 2, prefix="t")


def test_small_cnn_beats_chance_and_returns_probabilities(toy):
    train, val, test = toy
    classifier = SmallCNN(**FAST)
    classifier.fit(train, val, seed=0)
    proba = classifier.predict_proba(test)
    assert proba.shape == (len(test), 4) and proba.dtype == np.float64
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-9)
    assert (proba.argmax(1) == test.labels).mean() > 0.6  # chance is 0.25
    assert len(classifier.history) == FAST["epochs"]


def test_same_seed_same_predictions(toy):
    train, val, test = toy
    runs = []
    for _ in range(2):
        classifier = SmallCNN(epochs=1, threads=1, augment="flip_rotate_colour")
        classifier.fit(train.subset(np.arange(200)), val, seed=3)
        runs.append(classifier.predict_proba(test))
    np.testing.assert_array_equal(runs[0], runs[1])


def test_grayscale_input_is_accepted():
    train = square_position_set(200, 0, channels=1)
    val = square_position_set(60, 1, channels=1, prefix="v")
    classifier = SmallCNN(epochs=1, threads=1)
    classifier.fit(train, val, seed=0)
    assert classifier.predict_proba(val).shape == (60, 4)


def test_zero_sample_weight_removes_a_class_from_training(toy):
    train, val, test = toy
    weights = np.where(train.labels == 0, 0.0, 1.0)
    classifier = SmallCNN(**FAST)
    classifier.fit(train, val, seed=0, sample_weight=weights)
    predicted = classifier.predict_proba(test).argmax(1)
    assert not (predicted == 0).any()  # class 0 was never sampled, so the head never learns it
    assert (predicted[test.labels != 0] == test.labels[test.labels != 0]).mean() > 0.6


def test_best_evaluation_is_chosen_on_val_accuracy(toy, monkeypatch):
    train, val, _ = toy
    classifier = SmallCNN(epochs=3, threads=1)
    classifier.fit(train, val, seed=0)
    accuracies = [h["val_acc"] for h in classifier.history]
    assert [h["step"] for h in classifier.history] == [13, 26, 39]  # one evaluation per real-data epoch (400/32)
    assert classifier.stats["best_step"] == classifier.history[int(np.argmax(accuracies))]["step"]
    assert classifier.stats["best_val_acc"] == max(accuracies)
    kept = (classifier.predict_proba(val).argmax(1) == val.labels).mean()
    assert kept == pytest.approx(max(accuracies))


def test_group_weights_come_from_the_previous_epochs_val_accuracy(toy):
    train, val, _ = toy
    classifier = SmallCNN(epochs=2, threads=1, group_reweighting="inverse_performance", loss="focal",
                          balance="class", sample_weight_mode="loss")
    classifier.fit(train, val, seed=0)
    first, second = classifier.history
    assert first["group_weights"] == [1.0, 1.0, 1.0]
    expected = training.inverse_performance_weights(np.array(first["group_val_acc"]), 3)
    np.testing.assert_allclose(second["group_weights"], expected)


def test_bad_options_and_data_say_what_to_fix(toy):
    train, val, _ = toy
    with pytest.raises(ConfigError, match="loss='hinge'"):
        SmallCNN(loss="hinge")
    with pytest.raises(ConfigError, match="list names with timm.list_models"):
        TimmClassifier(arch="no_such_net").parameter_count()
    with pytest.raises(DataError, match="non-empty val"):
        SmallCNN(**FAST).fit(train, val.empty_like(), seed=0)
    with pytest.raises(DataError, match="sample_weight"):
        SmallCNN(**FAST).fit(train, val, seed=0, sample_weight=np.ones(3))


def test_inverse_performance_weights_follow_fairgen_formula():
    # toy validation history for groups (a, b, c): epoch 0 has none; then acc after epochs 0 and 1
    assert training.inverse_performance_weights(None, 3).tolist() == [1.0, 1.0, 1.0]
    after_epoch0 = np.array([0.9, 0.5, 0.25])
    weights = training.inverse_performance_weights(after_epoch0, 3)
    inverse = 1 / (after_epoch0 + 1e-6)
    np.testing.assert_allclose(weights, inverse / inverse.sum())
    np.testing.assert_allclose(weights, [0.15625, 0.28125, 0.5625], atol=1e-6)
    after_epoch1 = np.array([0.8, 0.8, np.nan])  # group c had no val samples
    np.testing.assert_allclose(training.inverse_performance_weights(after_epoch1, 3), [1 / 3] * 3)


def test_group_weights_set_the_per_group_sampling_mass():
    groups = np.array([0, 0, 0, 1, 2, 2])  # group sizes 3, 1, 2
    labels = np.zeros(6, dtype=np.int64)
    group_weights = training.inverse_performance_weights(np.array([0.9, 0.5, 0.25]), 3)
    mass = training.sampling_mass(np.ones(6), labels, 1, "none", groups, group_weights)
    per_group = np.array([mass[groups == g].sum() for g in range(3)])
    expected = group_weights * np.array([3, 1, 2])
    np.testing.assert_allclose(per_group, expected / expected.sum())


def test_class_balance_gives_each_class_equal_mass():
    labels = np.array([0, 0, 0, 0, 1, 2])
    mass = training.sampling_mass(np.ones(6), labels, 3, "class")
    np.testing.assert_allclose([mass[labels == c].sum() for c in range(3)], [1 / 3] * 3)


def test_class_balance_over_weighted_samples_is_not_applied_twice():
    # a reweighting baseline has already given the rare class 1 twice the weight of class 0:
    # class balance on top must give each class half of the mass, not favour class 1 again
    labels = np.array([0, 0, 0, 0, 1, 1, 1])
    weights = np.array([0.25, 0.25, 0.25, 0.25, 1.0, 1.0, 0.0])
    mass = training.sampling_mass(weights, labels, 2, "class")
    np.testing.assert_allclose([mass[labels == c].sum() for c in range(2)], [0.5, 0.5])
    assert mass[6] == 0  # a row the baseline left out stays out


def test_focal_loss_matches_hand_computation():
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    targets = torch.tensor([0, 0])
    p = torch.softmax(logits, 1)[:, 0]
    expected = -((1 - p) ** 2) * torch.log(p)
    torch.testing.assert_close(training.classification_loss(logits, targets, "focal", 2.0), expected)
    torch.testing.assert_close(training.classification_loss(logits, targets, "ce", 2.0), -torch.log(p))


@pytest.mark.parametrize("config, minimum", [("paper_skindiff", 11_000_000), ("paper_fairgen", 85_000_000)])
def test_paper_configs_build_offline(config, minimum):
    count = TimmClassifier(config=config).parameter_count(num_classes=2)
    assert count > minimum


@pytest.mark.parametrize("suffix", [".safetensors", ".pt"])
def test_local_weights_load_into_the_backbone_and_keep_a_fresh_head(tmp_path, suffix):
    import timm
    from safetensors.torch import save_file

    torch.manual_seed(0)
    source = timm.create_model("test_resnet", num_classes=10).state_dict()  # a 10-class checkpoint
    path = tmp_path / f"weights{suffix}"
    save_file(source, str(path)) if suffix == ".safetensors" else torch.save({"state_dict": source}, path)
    model = TimmClassifier(arch="test_resnet", weights=str(path)).build_model(num_classes=4)
    loaded = model.state_dict()
    torch.testing.assert_close(loaded["conv1.0.weight"], source["conv1.0.weight"])
    assert loaded["fc.weight"].shape == (4, source["fc.weight"].shape[1])


def test_weights_from_another_architecture_are_refused(tmp_path):
    import timm
    from safetensors.torch import save_file

    path = tmp_path / "vit.safetensors"
    save_file(timm.create_model("test_vit", num_classes=0).state_dict(), str(path))
    with pytest.raises(ConfigError, match="does not fit this architecture"):
        TimmClassifier(arch="test_resnet", weights=str(path)).build_model(num_classes=4)
