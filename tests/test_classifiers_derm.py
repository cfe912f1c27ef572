"""Acceptance on the embedded default: every classifier plugin, in its CPU config, beats chance
clearly on the real test split of `derm` (CPU config). Slow: minutes on a shared CPU."""
from __future__ import annotations

import numpy as np
import pytest

from harness.registry import Registry

CLASSIFIERS = ["small_cnn", "timm", "linear_probe", "knn", "hgb"]


@pytest.fixture(scope="module")
def derm_splits():
    return Registry().create("dataset", "derm", {"config": "cpu"}).load(seed=0)


@pytest.mark.slow
@pytest.mark.parametrize("name", CLASSIFIERS)
def test_cpu_config_beats_chance_on_derm(name, derm_splits, tmp_path_factory):
    params = {"config": "cpu"}
    if name in ("linear_probe", "knn", "hgb"):
        params["feature_cache"] = str(tmp_path_factory.getbasetemp() / "features")
    classifier = Registry().create("classifier", name, params)
    classifier.fit(derm_splits.train, derm_splits.val, seed=0)
    proba = classifier.predict_proba(derm_splits.test)
    accuracy = (proba.argmax(1) == derm_splits.test.labels).mean()
    chance = 1 / derm_splits.test.num_classes
    assert accuracy > chance + 0.3, f"{name}: test accuracy {accuracy:.3f}, chance {chance:.2f}"
