"""Conformance check: run one plugin against its contract on tiny data, list what is wrong."""
from __future__ import annotations

import tempfile
import traceback
from pathlib import Path
from typing import Callable

import numpy as np

from harness.contracts import check_sample_weight
from harness.data import ImageSet, Splits
from harness.registry import Registry
from harness.sampling import SamplingSpec, plan_requests
from harness.toydata import toy_splits


def validate_plugin(registry: Registry, name: str, params: dict | None = None, kind: str | None = None) -> list[tuple[str, str]]:
    """Return (check, "ok" | problem) pairs for the plugin called `name`."""
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
        labels, attributes = plan_requests(train, "group", SamplingSpec("fill", 0.25), seed=0)
        images = step("sample(labels, attributes, seed)", lambda: fresh.sample(labels, attributes, 0))
        if images is not None:
            step("samples are uint8 (N, C, H, W) like the training images", lambda: _require(
                isinstance(images, np.ndarray) and images.dtype == np.uint8
                and images.shape == (len(labels), *train.image_shape),
                f"got {getattr(images, 'dtype', type(images))} {getattr(images, 'shape', '')}, "
                f"expected uint8 {(len(labels), *train.image_shape)}"))
            step("same seed gives the same samples", lambda: _require(
                np.array_equal(images, fresh.sample(labels, attributes, 0)), "sampling is not deterministic in the seed"))


def _classifier_checks(classifier, step) -> None:
    splits = toy_splits()
    step("fit(train, val, seed)", lambda: classifier.fit(splits.train, splits.val, 0, None))
    proba = step("predict_proba(test)", lambda: classifier.predict_proba(splits.test))
    if proba is None:
        return
    test: ImageSet = splits.test
    step("probabilities are (N, K) rows summing to 1", lambda: _require(
        isinstance(proba, np.ndarray) and proba.shape == (len(test), test.num_classes) and np.all(np.isfinite(proba))
        and np.allclose(proba.sum(1), 1, atol=1e-3), f"got {getattr(proba, 'shape', type(proba))}"))
    step("beats chance on the toy set", lambda: _require(
        np.mean(proba.argmax(1) == test.labels) > 1.5 / test.num_classes,
        f"accuracy {np.mean(proba.argmax(1) == test.labels):.2f} on a set any learner separates"))


def _require(condition: object, message: str) -> None:
    if not condition:
        raise AssertionError(message)
