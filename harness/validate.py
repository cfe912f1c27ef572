"""Conformance check: run one plugin against its contract on tiny data, list what is wrong.

Beyond shapes and types it checks behaviour: a generator's samples must show the requested class
and attribute to the fixed judge of harness.metrics.judge (trained on the real toy images); a
classifier's fit must change with `sample_weight`. An outcome is "ok", a problem (the plugin
fails), or a WARNING-prefixed note (reported, does not fail: a declared class-only generator
that ignores the attributes).
"""
from __future__ import annotations

import tempfile
import traceback
from pathlib import Path
from typing import Any, Callable

import numpy as np

from harness.contracts import check_sample_weight
from harness.data import ImageSet, Splits
from harness.metrics.attribute_fidelity import attribute_fidelity_report
from harness.metrics.judge import fit_judges, requested_set
from harness.registry import Registry
from harness.sampling import SamplingSpec, plan_requests
from harness.toydata import toy_splits

WARNING = "warning: "
#: requests per (class, group) cell of the toy set: enough for the independence test to see a
#: generator that ignores the group (3 classes x 2 groups x 30 = 180 images)
REQUESTS_RATIO = 1.5
#: the judge for validation: fast, no pretrained weights, and the toy set separates by colour and layout
PROBE_FAMILY = "pixels"


class Problem(AssertionError):
    """A contract check that failed; the message says what was returned and what to do."""


class Warned(Exception):
    """A check's note that does not fail the plugin."""


def validate_plugin(registry: Registry, name: str, params: dict | None = None, kind: str | None = None) -> list[tuple[str, str]]:
    """Return (check, "ok" | WARNING + note | problem) pairs for the plugin called `name`."""
    kinds = [kind] if kind else [k for k in registry.plugins if name in registry.plugins[k]]
    if not kinds:
        registry.get("generator" if kind is None else kind, name)  # raises with did-you-mean
    info = registry.get(kinds[0], name)
    checks = {"dataset": _dataset_checks, "generator": _generator_checks, "classifier": _classifier_checks}[info.kind]
    results: list[tuple[str, str]] = []

    def step(label: str, fn: Callable[[], object]) -> object:
        try:
            value = fn()
            results.append((label, "ok"))
            return value
        except Warned as note:
            results.append((label, WARNING + str(note)))
            return None
        except Problem as exc:
            results.append((label, str(exc)))
            return None
        except Exception as exc:
            results.append((label, f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=3)}"))
            return None

    plugin = step("construct with parameters", lambda: info.cls(**(params or {})))
    if plugin is not None:
        checks(plugin, step)
    return results


def _dataset_checks(dataset, step) -> None:
    splits = step("load(seed=0) returns valid Splits", lambda: dataset.load(0).validate(dataset.name))
    if splits is None:
        return
    step("declares label names and sensitive attributes", lambda: _require(
        dataset.label_names == splits.train.label_names and dataset.sensitive_attributes
        and all(a in splits.train.attributes for a in dataset.sensitive_attributes),
        "label_names must equal the splits' and every sensitive attribute must be an attribute of the splits"))
    again = step("load is deterministic", lambda: dataset.load(0))
    if again is not None:
        step("same seed gives identical splits", lambda: _require(
            all(a.fingerprint() == b.fingerprint() for (_, a), (_, b) in zip(splits.items(), again.items())),
            "two load(0) calls gave different data"))
    for name, scenario in dataset.scenarios().items():
        step(f"scenario '{name}' only cuts train", lambda s=scenario: _require(
            set(s.apply(splits.train, 0)[0].ids) <= set(splits.train.ids), "scenario added training samples"))


# -- generators ------------------------------------------------------------------------------
def image_problems(images: Any, n: int, shape: tuple[int, ...]) -> list[str]:
    """What is wrong with sample()'s output, with the values seen; [] when it is valid."""
    if not isinstance(images, np.ndarray):
        return [f"sample() must return a numpy array, got {type(images).__name__}"]
    problems = []
    if np.issubdtype(images.dtype, np.floating) and not np.all(np.isfinite(images)):
        problems.append(f"sample() returned {int(np.sum(~np.isfinite(images)))} NaN/inf pixel values "
                        f"({images.dtype}); return uint8 images in 0..255")
    if images.dtype != np.uint8:
        problems.append(f"sample() must return uint8 images, got dtype {images.dtype}"
                        + (f" (values {np.nanmin(images):.3g}..{np.nanmax(images):.3g})" if images.size
                           and np.issubdtype(images.dtype, np.number) and np.isfinite(images).any() else ""))
    if images.shape != (n, *shape):
        problems.append(f"sample() returned images of shape {images.shape}; expected {(n, *shape)} "
                        f"({n} requested rows, training images {shape})")
    return problems


def _generator_checks(generator, step) -> None:
    splits: Splits = toy_splits()
    train = splits.train
    if not generator.produces_images:
        weights = step("sample_weight(train, seed)", lambda: generator.sample_weight(train, 0))
        if weights is not None:
            step("weights are one finite non-negative number per training row", lambda: check_sample_weight(
                weights, len(train), generator.name))
            step("same seed gives the same weights", lambda: _require(
                np.array_equal(weights, generator.sample_weight(train, 0)), "weights are not deterministic in the seed"))
        return
    step("fit(train, seed)", lambda: generator.fit(train, 0, None))
    with tempfile.TemporaryDirectory() as tmp:
        step("save(directory)", lambda: generator.save(Path(tmp)))
        fresh = type(generator)(**generator.params)
        step("load(directory) into a fresh instance", lambda: fresh.load(Path(tmp)))
        labels, attributes = plan_requests(train, "group", SamplingSpec("fill", REQUESTS_RATIO), seed=0)
        images = step("sample(labels, attributes, seed)", lambda: fresh.sample(labels, attributes, 0))
        if images is None:
            return
        valid = step("samples are uint8 (N, C, H, W) like the training images",
                     lambda: _require(not image_problems(images, len(labels), train.image_shape),
                                      "; ".join(image_problems(images, len(labels), train.image_shape))) or True)
        if not valid:
            return
        step("same seed gives the same samples", lambda: _require(
            np.array_equal(images, fresh.sample(labels, attributes, 0)),
            "two sample() calls with seed 0 gave different images; derive all randomness from the seed"))
        report = step("a probe trained on real images judges the samples",
                      lambda: _judge(splits, images, labels, attributes))
        if report is not None:
            step("samples show the requested class", lambda: _class_honoured(report))
            step("samples show the requested attribute 'group'",
                 lambda: _attribute_honoured(report, getattr(generator, "conditions_on_attributes", True)))


def _judge(splits: Splits, images: np.ndarray, labels: np.ndarray, attributes: dict) -> dict:
    judges = fit_judges(splits.train, splits.test, "group", (PROBE_FAMILY,), seed=0)
    report = attribute_fidelity_report(judges, requested_set(images, labels, attributes, splits.train), None)
    return report["judges"][PROBE_FAMILY]


def _per_group(report: dict, target: str) -> str:
    return ", ".join(f"{g} {v[target]['value']:.0%}" for g, v in report["per_group"].items() if target in v)


def _class_honoured(report: dict) -> None:
    fidelity, chance = report["metrics"]["class_fidelity"], report["chance"]["class"]
    _require(fidelity > 1.5 * chance,
             f"the probe read the requested class on {fidelity:.0%} of the samples (chance {chance:.0%}; per "
             f"requested group: {_per_group(report, 'class')}); sample() must return images of the requested labels")


def _attribute_honoured(report: dict, declared: bool) -> None:
    fidelity, chance = report["metrics"]["attr_fidelity"], report["chance"]["attr"]
    p = report["independence"]["p"]
    if report["independence"]["depends_on_request"] and fidelity > chance:
        return
    seen = (f"the probe read the requested group on {fidelity:.0%} of the samples (chance {chance:.0%}; per "
            f"requested group: {_per_group(report, 'attr')}); chi-square test of judged vs requested group p = {p:.2g}")
    if not declared:
        raise Warned(f"does not condition on attribute 'group', as declared (conditions_on_attributes = False): {seen}")
    what = "ignores" if not report["independence"]["depends_on_request"] else "does not follow"
    raise Problem(f"{what} the requested attribute 'group': {seen}. Condition sample() on attributes['group'], or "
                  f"set conditions_on_attributes = False on a class-only generator")


# -- classifiers -----------------------------------------------------------------------------
def proba_problems(proba: Any, n: int, k: int, multilabel: bool = False) -> list[str]:
    """What is wrong with predict_proba()'s output, with the values seen; [] when it is valid."""
    if not isinstance(proba, np.ndarray):
        return [f"predict_proba() must return a numpy array, got {type(proba).__name__}"]
    if proba.shape != (n, k):
        return [f"predict_proba() returned shape {proba.shape}; expected {(n, k)} ({n} images, {k} classes)"]
    if not np.issubdtype(proba.dtype, np.number):
        return [f"predict_proba() must return numbers, got dtype {proba.dtype}"]
    problems = []
    bad = ~np.isfinite(proba)
    if bad.any():
        rows = np.flatnonzero(bad.any(1))
        problems.append(f"predict_proba() returned {int(bad.sum())} NaN/inf values in {len(rows)} rows "
                        f"(first: row {rows[0]})")
    finite = proba[np.isfinite(proba)]
    if finite.size and (finite.min() < -1e-6 or finite.max() > 1 + 1e-6):
        problems.append(f"predict_proba() values must be probabilities in [0, 1], got {finite.min():.3g}..{finite.max():.3g}")
    if not multilabel:
        sums = proba.sum(axis=1)
        off = np.flatnonzero(~(np.abs(sums - 1) <= 1e-3))
        if len(off):
            problems.append(f"predict_proba() rows must sum to 1: {len(off)} of {n} do not (row {off[0]} sums to "
                            f"{sums[off[0]]:.4g}); normalise, e.g. with a softmax")
    return problems


def _classifier_checks(classifier, step) -> None:
    splits = toy_splits()
    test: ImageSet = splits.test
    step("fit(train, val, seed)", lambda: classifier.fit(splits.train, splits.val, 0, None))
    proba = step("predict_proba(test)", lambda: classifier.predict_proba(test))
    if proba is None:
        return
    valid = step("probabilities are (N, K) rows summing to 1", lambda: _require(
        not proba_problems(proba, len(test), test.num_classes),
        "; ".join(proba_problems(proba, len(test), test.num_classes))) or True)
    if not valid:
        return
    step("beats chance on the toy set", lambda: _require(
        np.mean(proba.argmax(1) == test.labels) > 1.5 / test.num_classes,
        f"accuracy {np.mean(proba.argmax(1) == test.labels):.2f} on a set any learner separates"))
    step("sample_weight changes the fit", lambda: _weights_matter(type(classifier)(**classifier.params), splits, proba))


def _weights_matter(classifier, splits: Splits, unweighted: np.ndarray) -> None:
    """Refit with the same seed (must reproduce the predictions), then with one group weighted 10x."""
    classifier.fit(splits.train, splits.val, 0, None)
    again = classifier.predict_proba(splits.test)
    if not np.allclose(again, unweighted, rtol=0, atol=1e-9):
        raise Warned(f"cannot tell: two fits with seed 0 differ (max |Δp| = {np.max(np.abs(again - unweighted)):.2g}); "
                     f"derive all randomness from the seed")
    weights = np.where(splits.train.attributes["group"] == 0, 10.0, 1.0)
    classifier.fit(splits.train, splits.val, 0, weights / weights.mean())
    weighted = classifier.predict_proba(splits.test)
    change = float(np.max(np.abs(weighted - unweighted)))
    _require(change > 1e-9, f"fitting with sample_weight (10x on group g0) gave the same probabilities as without "
                            f"(max |Δp| = {change:.2g}); honour sample_weight in the loss or the sampler")


def _require(condition: object, message: str) -> None:
    if not condition:
        raise Problem(message)
