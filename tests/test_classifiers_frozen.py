"""Frozen-feature classifiers: cached features, three heads, weights, val selection, determinism."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from classifier_toys import square_position_set
from harness import ConfigError
from plugins.classifiers import training
from plugins.classifiers.frozen import KNN, HistGradientBoosting, LinearProbe

HEADS = [LinearProbe, KNN, HistGradientBoosting]
#: keeps the suite fast on a shared CPU; the heads' own defaults are measured in docs/classifiers.md
FAST = {"hgb": {"max_iter": 20}, "linear_probe": {"l2": [1e-3, 1e-1]}}


@pytest.fixture(scope="module")
def toy():
    return square_position_set(300, 0), square_position_set(100, 1, prefix="v"), square_position_set(150, 2, prefix="t")


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return str(tmp_path_factory.mktemp("features"))


@pytest.mark.parametrize("head", HEADS, ids=lambda c: c.name)
def test_head_beats_chance_with_probability_rows(head, toy, cache):
    train, val, test = toy
    classifier = head(feature_cache=cache, **FAST.get(head.name, {}))
    classifier.fit(train, val, seed=0)
    proba = classifier.predict_proba(test)
    assert proba.shape == (len(test), 4)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-9)
    assert (proba.argmax(1) == test.labels).mean() > 0.5  # chance is 0.25


@pytest.mark.parametrize("head", HEADS, ids=lambda c: c.name)
def test_same_seed_same_predictions(head, toy, cache):
    train, val, test = toy
    runs = []
    for _ in range(2):
        classifier = head(feature_cache=cache, group_reweighting="inverse_performance", rounds=2,
                          **FAST.get(head.name, {}))
        classifier.fit(train, val, seed=1)
        runs.append(classifier.predict_proba(test))
    np.testing.assert_array_equal(runs[0], runs[1])


def test_features_are_computed_once_per_image_set(toy, tmp_path, monkeypatch):
    from harness.metrics import features as feature_lib

    train, val, _ = toy
    extracted = []
    real_get = feature_lib.get_extractor
    monkeypatch.setattr(feature_lib, "get_extractor", lambda name: extracted.append(name) or real_get(name))
    LinearProbe(feature_cache=str(tmp_path), l2=[1e-2]).fit(train, val, seed=0)
    KNN(feature_cache=str(tmp_path)).fit(train, val, seed=1)
    assert extracted == ["effnet-lite0@64", "effnet-lite0@64"]  # train and val once; the second head reads npz
    assert len(list((tmp_path / "features").iterdir())) == 2


def test_knn_votes_follow_sample_weights(toy, cache):
    train, val, test = toy
    weights = np.where(train.labels == 1, 0.0, 1.0)
    classifier = KNN(feature_cache=cache)
    classifier.fit(train, val, seed=0, sample_weight=weights)
    proba = classifier.predict_proba(test)
    assert np.all(proba[:, 1] == 0.0)  # a neighbour with weight 0 casts no vote


def test_group_reweighting_rounds_follow_the_formula(toy, cache):
    train, val, _ = toy
    classifier = LinearProbe(feature_cache=cache, group_reweighting="inverse_performance", rounds=3, l2=[1e-2])
    classifier.fit(train, val, seed=0)
    history = classifier.history
    assert len(history) == 3 and history[0]["group_weights"] == [1.0, 1.0, 1.0]
    for previous, current in zip(history, history[1:]):
        expected = training.inverse_performance_weights(np.array(previous["group_val_acc"]), 3)
        np.testing.assert_allclose(current["group_weights"], expected)
    assert classifier.stats["best_val_acc"] == max(h["val_acc"] for h in classifier.history)


def test_focal_loss_is_refused_where_there_is_no_loss():
    with pytest.raises(ConfigError, match="no training loss"):
        KNN(loss="focal")
    LinearProbe(loss="focal")  # the linear probe trains with a loss, so it accepts it


def test_unknown_extractor_says_what_exists(toy, cache):
    train, val, _ = toy
    with pytest.raises(ConfigError, match="effnet-lite0@64"):
        KNN(extractor="dinov9", feature_cache=cache).fit(train, val, seed=0)


def test_local_timm_checkpoint_as_extractor(toy, tmp_path):
    import timm
    from safetensors.torch import save_file

    train, val, test = toy
    torch.manual_seed(0)
    weights = tmp_path / "test_resnet.safetensors"
    save_file(timm.create_model("test_resnet", num_classes=0).state_dict(), str(weights))
    classifier = KNN(extractor="timm:test_resnet", weights=str(weights), feature_size=32, feature_cache=str(tmp_path))
    classifier.fit(train, val, seed=0)
    assert classifier.predict_proba(test).shape == (len(test), 4)
    assert any("timm:test_resnet" in p.read_text() for p in (tmp_path / "features").glob("*/meta.json"))
