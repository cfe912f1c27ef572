"""Skew scenarios cut only the training split, match their papers' counts, are seeded and report."""
from __future__ import annotations

import numpy as np
import pytest

from harness import ImageSet
from harness.data import DataError
from harness.groups import with_intersection
from harness.scenarios import (Cap, HoldoutKeys, LongTail, MinorityFraction, MinorityPerClass, OneSitePerClass,
                               Scenario, default_scenarios, site_scenarios)
from plugins.datasets.derm import Derm


def make_train(group_counts: dict[str, int], n_classes: int = 3, n_sites: int = 4, seed: int = 0) -> ImageSet:
    """Samples with a 'tone' attribute of the given counts, classes and sites assigned at random."""
    rng = np.random.default_rng(seed)
    tones = np.repeat(np.arange(len(group_counts)), list(group_counts.values()))
    n = len(tones)
    return ImageSet(images=np.zeros((n, 1, 2, 2), np.uint8), labels=rng.integers(0, n_classes, n),
                    attributes={"tone": tones, "site": rng.integers(0, n_sites, n)},
                    label_names=[f"c{i}" for i in range(n_classes)],
                    attribute_vocab={"tone": list(group_counts), "site": [f"s{i}" for i in range(n_sites)]},
                    ids=np.array([f"x{i}" for i in range(n)]))


def counts(train: ImageSet, attribute: str = "tone") -> list[int]:
    return np.bincount(train.attributes[attribute], minlength=len(train.attribute_vocab[attribute])).tolist()


def test_every_scenario_leaves_val_and_test_untouched_and_only_removes_training_samples():
    splits = Derm(n_train=900, n_val=60, n_test=90, resolution=16).load(0)
    for name, scenario in {**default_scenarios("skin_tone"), **site_scenarios("skin_tone")}.items():
        train, report = scenario.apply(splits.train, seed=1)
        after = splits.replace(train=train)
        assert after.test.ids.tolist() == splits.test.ids.tolist(), name
        assert after.val.ids.tolist() == splits.val.ids.tolist(), name
        assert set(train.ids) <= set(splits.train.ids), name
        assert sum(report["removed_per_group"].values()) == report["n_before"] - report["n_after"], name
        assert sum(report["removed_per_class"].values()) == report["n_before"] - report["n_after"], name


def test_cap_keeps_at_most_k_per_under_represented_group_and_the_majority_whole():
    train = make_train({"light": 3000, "medium": 1500, "dark": 60})
    capped, report = Cap("tone", k=100).apply(train, seed=0)
    assert counts(capped) == [3000, 100, 60]
    assert report["removed_per_group"] == {"light": 0, "medium": 1400, "dark": 0}
    assert counts(Cap("tone", k=1000).apply(train, 0)[0]) == [3000, 1000, 60]


def test_minority_fraction_sets_the_smallest_groups_share():
    train = make_train({"a": 900, "b": 500, "c": 400})
    cut, _ = MinorityFraction("tone", p=0.05).apply(train, 0)
    assert counts(cut)[:2] == [900, 500]
    assert counts(cut)[2] == round(0.05 * 1400 / 0.95)


def test_minority_fraction_never_picks_the_unknown_group():
    train = make_train({"a": 900, "b": 500, "c": 400})
    unknown = np.arange(len(train)) % 100 == 0  # 18 samples of unknown tone: fewer than any known group
    tones = np.where(unknown, -1, train.attributes["tone"])
    train = ImageSet(train.images, train.labels, {**train.attributes, "tone": tones}, train.label_names,
                     train.attribute_vocab, train.ids)
    cut, report = MinorityFraction("tone", p=0.05).apply(train, 0)
    assert report["minority_group"] == "c"
    assert int((cut.attributes["tone"] == -1).sum()) == int(unknown.sum())  # unknown samples are kept, not cut
    assert int((cut.attributes["tone"] == 2).sum()) < 100


def test_skin_diff_scenarios_keep_all_eight_per_class_or_none_of_the_minority():
    train = make_train({"light": 500, "dark": 120})
    dark = train.attributes["tone"] == 1
    both, _ = MinorityPerClass("tone", k=None).apply(train, 0)
    few, report = MinorityPerClass("tone", k=8).apply(train, 0)
    none, _ = MinorityPerClass("tone", k=0).apply(train, 0)
    assert both.ids.tolist() == train.ids.tolist()
    few_dark = few.attributes["tone"] == 1
    assert np.bincount(few.labels[few_dark], minlength=3).tolist() == [8, 8, 8]
    assert counts(few)[0] == 500 and report["minority_group"] == "dark"
    assert counts(none) == [500, 0]
    assert np.bincount(train.labels[dark]).min() > 8  # so the 8-per-class check above is meaningful


def test_skin_diff_minority_can_be_named():
    train = make_train({"light": 50, "dark": 120})
    few, report = MinorityPerClass("tone", k=0, group="dark").apply(train, 0)
    assert counts(few) == [50, 0] and report["minority_group"] == "dark"
    with pytest.raises(DataError, match="not a value"):
        MinorityPerClass("tone", k=0, group="purple").apply(train, 0)


def test_medi_holdout_removes_whole_keys_and_keeps_every_class():
    train = make_train({"f": 400, "m": 400}, n_classes=3, n_sites=4)
    cut, report = HoldoutKeys("site", also=("tone",), fraction=0.3).apply(train, seed=2)
    assert report["keys_total"] == 3 * 4 * 2
    held = report["keys_held_out"]
    assert len(held) == round(0.3 * 24)
    for key in held:
        match = ((cut.labels == cut.label_names.index(key["label"]))
                 & (cut.attributes["site"] == cut.attribute_vocab["site"].index(key["site"]))
                 & (cut.attributes["tone"] == cut.attribute_vocab["tone"].index(key["tone"])))
        assert not match.any()
    kept_keys = {(int(l), int(s), int(t)) for l, s, t in zip(cut.labels, cut.attributes["site"], cut.attributes["tone"])}
    assert len(kept_keys) == 24 - len(held)
    all_rows = np.stack([train.labels, train.attributes["site"], train.attributes["tone"]], 1)
    kept_rows = {tuple(r) for r in np.stack([cut.labels, cut.attributes["site"], cut.attributes["tone"]], 1)}
    assert len(cut) == sum(tuple(r) in kept_rows for r in all_rows)  # kept keys keep all their samples
    assert set(cut.labels.tolist()) == {0, 1, 2}


def test_medi_holdout_never_removes_a_class_even_with_one_key_per_class():
    train = make_train({"a": 60}, n_classes=3, n_sites=1)
    cut, report = HoldoutKeys("site", fraction=0.9).apply(train, 0)
    assert report["keys_held_out"] == [] and len(cut) == len(train)


def test_one_site_per_class_confounds_site_and_label():
    train = make_train({"a": 1000}, n_classes=3, n_sites=5)
    cut, report = OneSitePerClass("site").apply(train, seed=4)
    sites_of_class = [set(cut.attributes["site"][cut.labels == c].tolist()) for c in range(3)]
    assert all(len(s) == 1 for s in sites_of_class)
    assert len(set.union(*sites_of_class)) == 3  # a different site per class while sites remain
    assert set(report["site_per_class"]) == {"c0", "c1", "c2"}
    for c in range(3):  # the chosen site keeps all of that class's samples
        site = sites_of_class[c].pop()
        assert (cut.labels == c).sum() == ((train.labels == c) & (train.attributes["site"] == site)).sum()


@pytest.mark.parametrize("scenario", [Cap("tone", k=50), MinorityFraction("tone", p=0.1),
                                      MinorityPerClass("tone", k=8), HoldoutKeys("site", fraction=0.3),
                                      OneSitePerClass("site")], ids=lambda s: type(s).__name__)
def test_scenarios_are_seeded(scenario):
    train = make_train({"a": 400, "b": 200})
    first, again, other = (scenario.apply(train, seed)[0].ids.tolist() for seed in (0, 0, 1))
    assert first == again
    assert first != other


def test_natural_keeps_everything():
    train = make_train({"a": 10, "b": 5})
    kept, report = Scenario("tone").apply(train, 0)
    assert kept.ids.tolist() == train.ids.tolist() and report["n_after"] == 15


def test_class_cuts_refuse_multilabel_data():
    train = make_train({"a": 10})
    train.labels = np.zeros((10, 3), dtype=np.int64)
    with pytest.raises(DataError, match="single-label"):
        MinorityPerClass("tone").apply(train, 0)


def test_intersection_combines_attributes_and_propagates_unknown():
    train = make_train({"light": 3, "dark": 3}, n_sites=2)
    train.attributes["site"] = np.array([0, 1, -1, 0, 1, 0])
    combined = with_intersection(train, ["tone", "site"])
    assert combined.attribute_vocab["tone*site"] == ["light|s0", "light|s1", "dark|s0", "dark|s1"]
    assert combined.attributes["tone*site"].tolist() == [0, 1, -1, 2, 3, 2]
    combined.validate()
    capped, _ = Cap("tone*site", k=0).apply(combined, 0)  # scenarios work on intersections too
    assert capped.attributes["tone*site"].tolist() == [2, 2]
    assert "tone*site" not in train.attributes  # the input is not modified


def test_long_tail_keeps_an_exponential_class_profile_and_each_class_group_mix():
    train = make_train({"light": 3000, "dark": 1000}, n_classes=5)
    head = int((train.labels == 0).sum())
    cut, report = LongTail("tone", ratio=100).apply(train, seed=0)
    kept = np.bincount(cut.labels, minlength=5)
    assert kept.tolist() == [int(head * 100 ** (-c / 4)) for c in range(5)]
    assert kept[0] / kept[4] == pytest.approx(100, rel=0.1) and report["imbalance_ratio"] == 100
    for label in range(3):  # the dark share of a class survives the cut (about 1 in 4)
        members = cut.labels == label
        assert abs((cut.attributes["tone"][members] == 1).mean() - 0.25) < 0.1
    assert set(default_scenarios("tone")) >= {"longtail10", "longtail100"}
