"""What the three embedded datasets share: class x group stratified test splits of at least 1,000
images per group, an out-of-distribution test split from another "hospital", and a difficulty that
the class cue and the pixel noise set."""
from __future__ import annotations

import numpy as np
import pytest

from dataset_checks import group_accuracy
from harness import ConfigError
from plugins.datasets.cxr import ChestXray
from plugins.datasets.derm import Derm
from plugins.datasets.histo import Histo

DATASETS = [Derm, Histo, ChestXray]
SMALL = {"n_train": 600, "n_val": 30, "resolution": 16}


@pytest.mark.parametrize("cls", DATASETS)
def test_default_test_splits_hold_1000_per_group_stratified_by_class_and_group(cls):
    dataset = cls(resolution=8, n_train=30, n_val=30)  # the default test sizes, rendered small
    splits = dataset.load(0)
    attribute = dataset.primary_attribute
    for name in ("test", "test_ood"):
        split = getattr(splits, name)
        groups, labels = split.attributes[attribute], split.labels
        fractions = np.asarray(dataset.params[f"{name}_{dataset.group_param}_fractions"])
        classes = np.asarray(dataset.params["class_fractions"])
        expected = len(split) * np.outer(fractions / fractions.sum(), classes / classes.sum())
        observed = np.array([[np.sum((groups == g) & (labels == c)) for c in range(len(classes))]
                             for g in range(len(fractions))])
        assert np.abs(observed - expected).max() < 1, name
        if name == "test":
            assert observed.sum(axis=1).min() >= 1000


@pytest.mark.parametrize("cls", DATASETS)
def test_the_ood_split_is_acquired_differently_with_its_own_group_mix(cls):
    dataset = cls(**SMALL, n_test=600, n_test_ood=600)
    splits = dataset.load(0)
    attribute = dataset.primary_attribute
    test, ood = splits.test, splits.test_ood
    assert not np.allclose(np.bincount(test.attributes[attribute]), np.bincount(ood.attributes[attribute]))
    # same class and group, other device: the images' colour or contrast differ beyond sampling noise
    same = (test.attributes[attribute] == 0) & (test.labels == 0)
    same_ood = (ood.attributes[attribute] == 0) & (ood.labels == 0)
    mean = lambda images: images.astype(float).mean(axis=(0, 2, 3))  # noqa: E731
    assert np.abs(mean(test.images[same]) - mean(ood.images[same_ood])).max() > 5
    assert "test_ood" not in dict(cls(**SMALL, n_test=60, n_test_ood=0).load(0).items())


@pytest.mark.parametrize("cls", DATASETS)
def test_the_class_cue_sets_how_learnable_the_classes_are(cls):
    """A weak cue leaves a simple classifier near chance; the full cue lets it learn the classes."""
    accuracy = {}
    for cue in (0.0, 1.0):
        splits = cls(**SMALL, n_test=300, cue=cue, noise=0.02).load(0)
        accuracy[cue] = group_accuracy(splits.train, splits.test, cls().primary_attribute).mean()
    chance = 1 / len(cls.label_names)
    assert accuracy[0.0] < chance + 0.12 < accuracy[1.0], accuracy


@pytest.mark.parametrize("params", [{"cue": 1.5}, {"noise": -0.1}, {"test_ood_tone_fractions": [1, 2]}])
def test_bad_difficulty_or_mix_parameters_are_config_errors(params):
    with pytest.raises(ConfigError):
        Derm(**SMALL, **params).load(0)
