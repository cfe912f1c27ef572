"""Skew scenarios: seeded cuts of the training split, shared by every dataset.

A scenario only ever removes training samples; validation and test splits are untouched.
Each returns the new training set and a report of what it removed. The library (METHODS.md):
- natural: the dataset as released;
- cap (Ktena et al.): at most k training samples per under-represented group;
- minority_fraction: the smallest group subsampled to a fraction p of the training set;
- skin-diff (Wang et al.): the minority group whole, k per class, or absent;
- MeDi (Drexlin et al.): (class x attribute ...) keys held out entirely; one site per class;
- long tail (CBDM, Qin et al.; the CIFAR-LT protocol): class counts decay exponentially.
With multi-hot labels (multi-label findings) only the scenarios that look at the attribute alone
run (natural, cap, minority_fraction); the per-class ones refuse them, naming those three.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from harness.data import DataError, ImageSet


@dataclass(frozen=True)
class Scenario:
    """Base scenario: `natural` (the dataset as released).

    Subclasses override `select`, returning the indices to keep and details for the report.
    """

    attribute: str = ""

    @property
    def spec(self) -> dict[str, Any]:
        return {"type": type(self).__name__, **self.__dict__}

    def apply(self, train: ImageSet, seed: int) -> tuple[ImageSet, dict[str, Any]]:
        keep, details = self.select(train, np.random.default_rng(seed))
        keep = np.unique(np.asarray(keep, dtype=np.int64))
        return train.subset(keep), {**_report(train, keep, self.attribute), **details}

    def select(self, train: ImageSet, rng: np.random.Generator) -> tuple[np.ndarray, dict[str, Any]]:
        return np.arange(len(train)), {}


Natural = Scenario


@dataclass(frozen=True)
class Cap(Scenario):
    """Ktena et al.: at most k training samples from each under-represented group, whatever the class.

    Under-represented = every group except the largest one.
    """

    k: int = 100

    def select(self, train: ImageSet, rng: np.random.Generator) -> tuple[np.ndarray, dict[str, Any]]:
        codes = train.group_codes(self.attribute)
        values, counts = np.unique(codes, return_counts=True)
        majority = values[np.argmax(counts)]
        keep = [np.flatnonzero(codes == majority)]
        for value in values:
            if value != majority:
                keep.append(rng.permutation(np.flatnonzero(codes == value))[: self.k])
        return np.concatenate(keep), {"majority_group": _group_name(train, self.attribute, majority)}


@dataclass(frozen=True)
class MinorityFraction(Scenario):
    """Subsample the smallest known group so that it is fraction p of the training set
    (samples of unknown group are never picked as the minority)."""

    p: float = 0.05

    def select(self, train: ImageSet, rng: np.random.Generator) -> tuple[np.ndarray, dict[str, Any]]:
        codes = train.group_codes(self.attribute)
        values, counts = np.unique(codes[codes >= 0], return_counts=True)
        if len(values) == 0:
            raise DataError(f"scenario minority fraction: no training sample has a known '{self.attribute}'")
        minority = values[np.argmin(counts)]
        members = np.flatnonzero(codes == minority)
        others = np.flatnonzero(codes != minority)
        # n_min / (n_min + n_others) = p  =>  n_min = p * n_others / (1 - p)
        n_min = min(len(members), int(round(self.p * len(others) / (1 - self.p))))
        keep = np.concatenate([others, rng.permutation(members)[:n_min]])
        return keep, {"minority_group": _group_name(train, self.attribute, minority)}


@dataclass(frozen=True)
class MinorityPerClass(Scenario):
    """skin-diff (Wang et al.): keep at most k training samples per class from the minority group.

    k=None keeps the minority whole ("both groups"), k=8 is "a few minority examples", k=0 "no
    minority". The minority is `group` (a vocabulary value) or, if empty, the smallest group.
    """

    k: int | None = 8
    group: str = ""

    def select(self, train: ImageSet, rng: np.random.Generator) -> tuple[np.ndarray, dict[str, Any]]:
        _single_label(train, self)
        codes = train.group_codes(self.attribute)
        minority = self._minority_code(train, codes)
        members = codes == minority
        keep = [np.flatnonzero(~members)]
        for label in np.unique(train.labels[members]):
            in_class = np.flatnonzero(members & (train.labels == label))
            keep.append(in_class if self.k is None else rng.permutation(in_class)[: self.k])
        return np.concatenate(keep), {"minority_group": _group_name(train, self.attribute, minority)}

    def _minority_code(self, train: ImageSet, codes: np.ndarray) -> int:
        vocab = train.attribute_vocab[self.attribute]
        if self.group:
            if self.group not in vocab:
                raise DataError(f"scenario group '{self.group}' is not a value of '{self.attribute}': {vocab}")
            return vocab.index(self.group)
        values, counts = np.unique(codes[codes >= 0], return_counts=True)
        return int(values[np.argmin(counts)])


@dataclass(frozen=True)
class HoldoutKeys(Scenario):
    """MeDi (Drexlin et al.): hold out a fraction of the (class x attribute x ...) keys entirely.

    A key is a combination of class and the values of `attribute` plus `also` (e.g. site and a
    demographic). A seeded fraction of the keys present in training is removed with all of its
    samples; every class keeps at least one key, so no class disappears.
    """

    also: tuple[str, ...] = ()
    fraction: float = 0.3

    def select(self, train: ImageSet, rng: np.random.Generator) -> tuple[np.ndarray, dict[str, Any]]:
        _single_label(train, self)
        columns = [train.labels] + [train.group_codes(a) for a in (self.attribute, *self.also)]
        table = np.stack(columns, axis=1)
        keys, key_of_sample = np.unique(table, axis=0, return_inverse=True)
        key_of_sample = key_of_sample.ravel()
        n_out = int(round(self.fraction * len(keys)))
        held_out: list[int] = []
        for key in rng.permutation(len(keys)):
            if len(held_out) == n_out:
                break
            same_class = np.flatnonzero(keys[:, 0] == keys[key, 0])
            if np.setdiff1d(same_class, held_out + [key]).size:  # the class keeps another key
                held_out.append(int(key))
        keep = np.flatnonzero(~np.isin(key_of_sample, held_out))
        names = ["label", self.attribute, *self.also]
        described = [self._describe(train, names, keys[k]) for k in sorted(held_out)]
        return keep, {"keys_total": int(len(keys)), "keys_held_out": described}

    @staticmethod
    def _describe(train: ImageSet, names: list[str], key: np.ndarray) -> dict[str, str]:
        values = {"label": train.label_names[key[0]]}
        for name, code in zip(names[1:], key[1:]):
            values[name] = _group_name(train, name, int(code))
        return values


@dataclass(frozen=True)
class OneSitePerClass(Scenario):
    """MeDi: each class keeps the training samples of one site only, confounding site and label.

    Sites are drawn with the seed, a different site for each class while unused sites remain.
    `attribute` names the site attribute.
    """

    def select(self, train: ImageSet, rng: np.random.Generator) -> tuple[np.ndarray, dict[str, Any]]:
        _single_label(train, self)
        sites = train.group_codes(self.attribute)
        used: set[int] = set()
        keep, chosen = [], {}
        for label in rng.permutation(np.unique(train.labels)):
            in_class = train.labels == label
            candidates = np.unique(sites[in_class & (sites >= 0)])
            if not candidates.size:
                continue
            fresh = np.setdiff1d(candidates, list(used))
            site = int(rng.choice(fresh if fresh.size else candidates))
            used.add(site)
            keep.append(np.flatnonzero(in_class & (sites == site)))
            chosen[train.label_names[label]] = _group_name(train, self.attribute, site)
        return np.concatenate(keep), {"site_per_class": dict(sorted(chosen.items()))}


@dataclass(frozen=True)
class LongTail(Scenario):
    """CBDM's class long tail (the CIFAR-LT protocol of Cao et al. 2019): class c of C keeps
    n_head x ratio^(-c / (C - 1)) training samples, n_head the count of class 0, so the last class
    has `ratio` times fewer than the first. Each class is subsampled at random, keeping its group mix."""

    ratio: float = 100.0

    def select(self, train: ImageSet, rng: np.random.Generator) -> tuple[np.ndarray, dict[str, Any]]:
        _single_label(train, self)
        classes = len(train.label_names)
        head = int(np.sum(train.labels == 0))
        keep, targets = [], {}
        for label in range(classes):
            target = int(head * self.ratio ** (-label / max(classes - 1, 1)))
            members = np.flatnonzero(train.labels == label)
            keep.append(rng.permutation(members)[:target])
            targets[train.label_names[label]] = min(target, len(members))
        return np.concatenate(keep), {"kept_per_class": targets, "imbalance_ratio": self.ratio}


#: scenario types that never look at the class, so they cut multi-hot training sets as well
MULTILABEL_SCENARIOS = ("Scenario (natural)", "Cap (cap100, cap1000)", "MinorityFraction (minority5)")


def _single_label(train: ImageSet, scenario: Scenario) -> None:
    if train.multilabel:
        raise DataError(f"scenario {type(scenario).__name__} cuts per class code and needs single-label data, but "
                        f"this training set has multi-hot labels; on multi-label data use a scenario that only "
                        f"looks at the attribute: {', '.join(MULTILABEL_SCENARIOS)}")


def _group_name(train: ImageSet, attribute: str, code: int) -> str:
    return train.attribute_vocab[attribute][code] if code >= 0 else "unknown"


def _report(train: ImageSet, keep: np.ndarray, attribute: str) -> dict[str, Any]:
    removed = np.ones(len(train), dtype=bool)
    removed[keep] = False
    report: dict[str, Any] = {"n_before": len(train), "n_after": int(len(keep))}
    if train.multilabel:  # rows removed that carry each label
        report["removed_per_class"] = {name: int(np.sum(removed & (train.labels[:, c] == 1)))
                                       for c, name in enumerate(train.label_names)}
    else:
        report["removed_per_class"] = {
            train.label_names[c]: int(np.sum(removed & (train.labels == c))) for c in np.unique(train.labels)
        }
    if attribute:
        codes = train.group_codes(attribute)
        report["removed_per_group"] = {
            _group_name(train, attribute, c): int(np.sum(removed & (codes == c))) for c in np.unique(codes)
        }
    return report


def default_scenarios(attribute: str) -> dict[str, Scenario]:
    """The scenarios every dataset gets, on its primary attribute."""
    return {
        "natural": Scenario(attribute),
        "cap1000": Cap(attribute, k=1000),
        "cap100": Cap(attribute, k=100),
        "minority5": MinorityFraction(attribute, p=0.05),
        "skindiff_both": MinorityPerClass(attribute, k=None),
        "skindiff_few8": MinorityPerClass(attribute, k=8),
        "skindiff_none": MinorityPerClass(attribute, k=0),
        "medi_holdout30": HoldoutKeys(attribute, fraction=0.3),
        "longtail10": LongTail(attribute, ratio=10.0),
        "longtail100": LongTail(attribute, ratio=100.0),
    }


def site_scenarios(site: str, demographic: str | None = None) -> dict[str, Scenario]:
    """MeDi's site scenarios, for datasets with a site attribute (and optionally a demographic)."""
    also = (demographic,) if demographic else ()
    return {
        "medi_holdout30": HoldoutKeys(site, also=also, fraction=0.3),
        "medi_holdout19": HoldoutKeys(site, also=also, fraction=0.19),
        "one_site_per_class": OneSitePerClass(site),
    }
