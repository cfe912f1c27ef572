"""The embedded dermatology dataset: deterministic, valid, naturally skewed, and skew hurts dark skin."""
from __future__ import annotations

import numpy as np
import pytest

from dataset_checks import skew_and_balanced_gaps
from plugins.datasets.derm import CLASSES, TONES, Derm


def small(**params) -> Derm:
    return Derm(**{"n_train": 600, "n_val": 100, "n_test": 300, "resolution": 16, **params})


def test_same_seed_same_images_other_seed_other_images():
    first, again, other = small().load(3), small().load(3), small().load(4)
    for name, split in first.items():
        assert split.fingerprint() == getattr(again, name).fingerprint()
        assert not np.array_equal(split.images, getattr(other, name).images)


def test_test_split_does_not_depend_on_train_size():
    assert small(n_train=600).load(0).test.fingerprint() == small(n_train=900).load(0).test.fingerprint()


@pytest.mark.parametrize("resolution", [16, 32])
def test_shapes_dtypes_and_vocabularies(resolution):
    splits = small(resolution=resolution).load(0)
    splits.validate()
    assert splits.train.images.shape == (600, 3, resolution, resolution)
    assert splits.train.images.dtype == np.uint8
    assert splits.test.label_names == CLASSES and len(CLASSES) >= 5
    assert splits.test.attribute_vocab == {"skin_tone": TONES}
    assert Derm().primary_attribute == "skin_tone" and Derm().high_risk_classes == ["melanoma"]
    ids = np.concatenate([s.ids for _, s in splits.items()])
    assert len(set(ids)) == len(ids)


def test_train_tones_follow_fitzpatrick_like_imbalance_and_test_is_stratified():
    splits = Derm(n_train=2000, n_val=200, n_test=900, resolution=16).load(0)
    train_share = np.bincount(splits.train.attributes["skin_tone"], minlength=3) / 2000
    np.testing.assert_allclose(train_share, [0.6, 0.3, 0.1], atol=0.001)
    assert np.bincount(splits.test.attributes["skin_tone"]).tolist() == [300, 300, 300]
    assert np.bincount(splits.train.labels, minlength=5).min() > 0


def test_images_show_tone_and_class():
    """Dark skin is darker than light skin, and a lesion differs from its surrounding skin."""
    train = small().load(0).train
    brightness = train.images.astype(float).mean(axis=(1, 2, 3))
    tones = train.attributes["skin_tone"]
    assert brightness[tones == 2].mean() < brightness[tones == 1].mean() < brightness[tones == 0].mean()
    centre = train.images[:, :, 6:10, 6:10].astype(float).mean(axis=(2, 3))
    corner = train.images[:, :, :3, :3].astype(float).mean(axis=(2, 3))
    assert np.abs(centre - corner).sum(axis=1).mean() > 20


def test_training_on_mostly_light_skin_widens_the_light_dark_gap():
    """Averaged over seeds, a skewed training set (10 dark images) leaves a wider light-vs-dark
    accuracy gap than a tone-balanced one of the same size."""
    dataset = Derm(n_train=3200, n_val=10, n_test=900, resolution=16)
    skewed, balanced = skew_and_balanced_gaps(dataset, range(3), per_group=300, minority_kept=10,
                                              majority=0, minority=2)
    assert skewed > balanced + 0.05, (skewed, balanced)


def test_render_speed(benchmark):
    """5,000 images at 32 px (the acceptance target is well under 5 s; run with --benchmark-enable)."""
    dataset = Derm(n_train=5000, n_val=1, n_test=1)
    splits = benchmark(dataset.load, 0)
    assert len(splits.train) == 5000
