"""Class and attribute fidelity read by the fixed judge: golden generators, the correction for the
judge's own errors, independence, disagreement between judges and the judge's cache key."""
from __future__ import annotations

import math

import numpy as np
import pytest

from harness.metrics import judge as judge_lib
from harness.metrics.attribute_fidelity import (attribute_fidelity_report, corrected_rates, judge_fidelity,
                                                judge_summary)
from harness.metrics.judge import cached_judge, fit_judges, requested_set
from harness.toydata import toy_imageset

NOISE = 0.15  # share of images whose group tint contradicts their recorded group


def noisy_toy(n: int, seed: int, prefix: str):
    """The toy set with NOISE of the group codes swapped, so a judge is right about 85% of the time."""
    images = toy_imageset(n, seed=seed, prefix=prefix)
    flip = np.random.default_rng(seed + 100).random(n) < NOISE
    images.attributes["group"] = np.where(flip, 1 - images.attributes["group"], images.attributes["group"])
    return images


@pytest.fixture(scope="module")
def world():
    train, test, pool = noisy_toy(300, 0, "train"), noisy_toy(300, 2, "test"), noisy_toy(600, 5, "pool")
    judges = fit_judges(train, test, "group", ("pixels",), seed=0)
    labels = np.repeat(np.arange(3), 80)
    groups = np.tile(np.arange(2), 120)
    return judges, pool, labels, groups


def generate(pool, labels, groups, seed=0):
    """Real pool images of the given (class, group) rows: a generator that copies real images."""
    rng = np.random.default_rng(seed)
    pool_groups = pool.attributes["group"]
    return pool.images[[rng.choice(np.flatnonzero((pool.labels == y) & (pool_groups == g)))
                        for y, g in zip(labels, groups)]]


def report_for(world, made_groups, seed=0):
    judges, pool, labels, groups = world
    synthetic = requested_set(generate(pool, labels, made_groups, seed), labels, {"group": groups}, pool)
    return attribute_fidelity_report(judges, synthetic, None)


def test_a_generator_copying_real_images_scores_the_judges_real_accuracy(world):
    judges, _, _, groups = world
    report = report_for(world, groups)
    real = judges[0].real["group"]
    assert 0.75 < real["accuracy"] < 0.95  # the noise makes the judge imperfect, as on real data
    metrics = report["metrics"]
    assert metrics["attr_fidelity"] == pytest.approx(real["accuracy"], abs=0.06)
    for name, group in report["judges"]["pixels"]["per_group"].items():
        low, high = group["attr"]["ci"]
        assert low <= group["attr"]["value"] <= high
        assert group["attr"]["value"] == pytest.approx(real["per_group"][name]["accuracy"], abs=0.1)
    # corrected for the judge's errors on real images, the copies are what was asked for
    assert metrics["attr_fidelity_adj"] > 0.9 and metrics["worst_attr_fidelity_adj"] > 0.85
    assert metrics["class_fidelity"] > 0.95
    assert report["judges"]["pixels"]["independence"]["depends_on_request"]


def test_a_generator_ignoring_the_attribute_scores_chance_and_fails_independence(world):
    _, _, _, groups = world
    made = np.random.default_rng(7).integers(0, 2, len(groups))  # any group, whatever was requested
    report = report_for(world, made)
    assert report["metrics"]["attr_fidelity"] == pytest.approx(0.5, abs=0.08)
    assert report["metrics"]["attr_fidelity_adj"] == pytest.approx(0.5, abs=0.12)
    independence = report["judges"]["pixels"]["independence"]
    assert independence["p"] > 0.05 and not independence["depends_on_request"]
    assert report["metrics"]["class_fidelity"] > 0.95  # the class is still honoured


def test_a_generator_swapping_two_groups_scores_zero_for_them(world):
    _, _, _, groups = world
    report = report_for(world, 1 - groups)
    per_group = report["judges"]["pixels"]["per_group"]
    assert all(per_group[g]["attr"]["value"] < 0.25 for g in ("g0", "g1"))
    # corrected for the judge's errors on real images: none of the images is of the requested group
    assert all(per_group[g]["attr"]["adj"] == pytest.approx(0.0, abs=0.1) for g in ("g0", "g1"))
    assert report["metrics"]["worst_attr_fidelity_adj"] == pytest.approx(0.0, abs=0.1)
    # swapping is dependence on the request, just the wrong one: fidelity, not the test, says so
    assert report["judges"]["pixels"]["independence"]["depends_on_request"]


def test_the_correction_is_rogan_gladen_for_two_values():
    # judge: sensitivity 0.8 (true 1 read as 1), specificity 0.9 (true 0 read as 0)
    real = np.array([[90, 10], [20, 80]])
    requested = np.ones(100, dtype=int)
    judged = np.r_[np.ones(62, dtype=int), np.zeros(38, dtype=int)]  # 62% read as requested
    rate = corrected_rates(requested, judged, real)[1]
    assert rate == pytest.approx((0.62 + 0.9 - 1) / (0.8 + 0.9 - 1))
    # a judge at chance cannot be corrected for: NaN, not a number made up
    assert math.isnan(corrected_rates(requested, judged, np.array([[50, 50], [50, 50]]))[1])


def test_small_groups_are_nan_with_the_reason():
    real = {"groups": ["a", "b"], "label": {"confusion": [[5, 0], [0, 5]],
                                            "per_group": {"a": {"confusion": [[5, 0], [0, 5]]},
                                                          "b": {"confusion": [[5, 0], [0, 5]]}}},
            "g": {"confusion": [[5, 0], [0, 5]]}}
    groups = np.r_[np.zeros(20, dtype=int), np.ones(3, dtype=int)]
    labels = np.zeros(23, dtype=int)
    out = judge_fidelity(labels, groups, labels, groups, real, "g", min_group_n=10)
    assert "min_group_n" in out["per_group"]["b"]["reason"]
    assert out["metrics"]["worst_attr_fidelity"] == 1.0 and "skipped 1 group(s) under min_group_n: b" in out["reasons"]["worst_attr_fidelity"]


def test_judges_that_disagree_are_reported_not_averaged(world, monkeypatch):
    judges, pool, labels, groups = world
    # a second family that sees only the image's top-left corner: blind to the group tint there half the time
    monkeypatch.setitem(judge_lib.FAMILIES, "corner",
                        lambda images, cache_dir: images.images[:, :, :2, :2].reshape(len(images), -1).astype(float))
    train, test = noisy_toy(300, 0, "train"), noisy_toy(300, 2, "test")
    corner = judge_lib.fit_judge(train, test, "group", "corner", seed=0)
    synthetic = requested_set(generate(pool, labels, groups), labels, {"group": groups}, pool)
    report = attribute_fidelity_report([judges[0], corner], synthetic, None, tolerance=0.02)
    names = {d["metric"] for d in report["disagreements"]}
    assert "class_fidelity" in names  # the corner judge cannot see where the square is
    assert report["metrics"]["class_fidelity"] == report["judges"]["pixels"]["metrics"]["class_fidelity"]
    assert "judges disagree" in report["reasons"]["class_fidelity"]
    assert "pixels: class" in judge_summary(report) and "corner:" in judge_summary(report)


def test_the_judge_is_cached_under_the_data_and_settings(tmp_path, monkeypatch):
    train, test = noisy_toy(120, 0, "train"), noisy_toy(90, 2, "test")
    fits = []
    original = judge_lib.fit_judge
    monkeypatch.setattr(judge_lib, "fit_judge", lambda *a, **k: fits.append(1) or original(*a, **k))
    first = cached_judge(tmp_path, train, test, "group", "pixels")
    again = cached_judge(tmp_path, train, test, "group", "pixels")
    assert len(fits) == 1 and again.real == first.real
    assert np.array_equal(first.read(test)["group"], again.read(test)["group"])
    changed = noisy_toy(120, 1, "train")  # other training data: another judge
    cached_judge(tmp_path, changed, test, "group", "pixels")
    monkeypatch.setattr(judge_lib, "HEAD_C", 0.1)  # other head settings: another judge
    cached_judge(tmp_path, train, test, "group", "pixels")
    assert len(fits) == 3


def test_a_group_the_judge_cannot_correct_for_makes_the_overall_corrected_value_nan():
    good, chance = [[9, 1], [1, 9]], [[5, 5], [5, 5]]
    real = {"groups": ["a", "b"], "label": {"confusion": good, "per_group": {"a": {"confusion": good},
                                                                              "b": {"confusion": chance}}},
            "g": {"confusion": good}}
    groups = np.r_[np.zeros(20, dtype=int), np.ones(20, dtype=int), -np.ones(5, dtype=int)]
    labels = np.tile([0, 1], 45)[:45]
    out = judge_fidelity(labels, groups, labels, groups, real, "g")
    assert out["metrics"]["class_fidelity"] == 1.0  # images of unknown group count in the class value
    assert math.isnan(out["metrics"]["class_fidelity_adj"]) and "not correctable for b" in out["reasons"]["class_fidelity_adj"]
    assert out["metrics"]["worst_class_fidelity_adj"] == pytest.approx(1.0)  # a's value; b skipped, and said so
    assert "not correctable for b" in out["reasons"]["worst_class_fidelity_adj"]


def test_data_that_cannot_train_a_judge_says_so():
    train, test = noisy_toy(60, 0, "train"), noisy_toy(60, 2, "test")
    train.attributes["group"][:] = 0  # one group only
    with pytest.raises(judge_lib.JudgeError, match="1 distinct value"):
        judge_lib.fit_judge(train, test, "group", "pixels")


def test_a_generator_cell_without_a_judge_keeps_its_other_fidelity_values(tmp_path):
    from harness.data import Splits
    from harness.runner import RunContext, _add_attribute_fidelity

    train, test = noisy_toy(60, 0, "train"), noisy_toy(60, 2, "test")
    train.attributes["group"][:] = 0
    fidelity = {"test": {"metrics": {"fid": 1.5}, "reasons": {}}}
    _add_attribute_fidelity(fidelity, RunContext(str(tmp_path), str(tmp_path)), Splits(train, test, test), test,
                            "group", True)
    assert fidelity["test"]["metrics"]["fid"] == 1.5 and math.isnan(fidelity["test"]["metrics"]["attr_fidelity"])
    assert "no judge for 'group'" in fidelity["test"]["reasons"]["attr_fidelity"]
