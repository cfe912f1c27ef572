"""Multi-label support: multi-hot chest X-rays, replicate sampling at +100%..+1000%, per-label AUC metrics."""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from harness import ConfigError
from harness.metrics import EvalInput, get_metric, group_report
from harness.sampling import SamplingSpec, plan_requests
from plugins.datasets.cxr import CLASSES, ChestXray


@pytest.fixture(scope="module")
def multi_hot():
    return ChestXray(multilabel=True, n_train=2000, n_val=20, n_test=40, resolution=16).load(0)


def toy_multilabel(seed: int = 0, n: int = 400):
    rng = np.random.default_rng(seed)
    y = (rng.random((n, 3)) < [0.3, 0.5, 0.2]).astype(int)
    groups = rng.integers(0, 2, n)
    proba = np.clip(0.35 * y + rng.random((n, 3)) * (0.6 + 0.3 * groups[:, None]), 0, 1)  # group 1 noisier
    return EvalInput(y, proba, groups, ["a", "b"], min_group_n=10)


# -- metrics -----------------------------------------------------------------------------------------
def test_label_auc_gap_is_the_mean_of_per_label_group_auc_ranges():
    inp = toy_multilabel()
    per_group = np.array([[roc_auc_score(inp.y_true[inp.groups == g, c], inp.proba[inp.groups == g, c])
                           for c in range(3)] for g in range(2)])
    expected = np.mean(per_group.max(0) - per_group.min(0))
    assert get_metric("label_auc_gap")(inp).value == pytest.approx(expected, rel=1e-9)
    assert get_metric("auc")(inp).value == pytest.approx(roc_auc_score(inp.y_true, inp.proba, average="macro"))
    macro_gap = abs(per_group[0].mean() - per_group[1].mean())  # auc_gap compares label-averaged AUCs
    assert get_metric("auc_gap")(inp).value == pytest.approx(macro_gap, rel=1e-9)
    report = group_report(inp)
    np.testing.assert_allclose(report["a"]["label_auc"], per_group[0])
    np.testing.assert_allclose(report["b"]["label_auc"], per_group[1])


def test_label_auc_gap_equals_auc_gap_when_binary_and_skips_undefined_labels():
    rng = np.random.default_rng(1)
    y, groups = rng.integers(0, 2, 200), rng.integers(0, 2, 200)
    p1 = np.clip(0.3 * y + rng.random(200), 0, 1)
    binary = EvalInput(y, np.stack([1 - p1, p1], 1), groups, ["a", "b"])
    assert get_metric("label_auc_gap")(binary).value == pytest.approx(get_metric("auc_gap")(binary).value)
    inp = toy_multilabel()
    inp.y_true[inp.groups == 1, 2] = 0  # label 2 has no positive in group b: its AUC gap is undefined
    result = get_metric("label_auc_gap")(EvalInput(inp.y_true, inp.proba, inp.groups, ["a", "b"]))
    assert "skipped class(es) [2]" in result.reason and np.isfinite(result.value)


# -- dataset -----------------------------------------------------------------------------------------
def test_cxr_multilabel_gives_multi_hot_findings_at_their_rates(multi_hot):
    train = multi_hot.train
    assert train.multilabel and train.labels.shape == (2000, len(CLASSES))
    findings = train.labels[:, 1:]
    np.testing.assert_array_equal(train.labels[:, 0], findings.sum(1) == 0)  # no_finding iff none
    np.testing.assert_allclose(findings.mean(0), [0.25, 0.25, 0.2, 0.15], atol=0.03)
    assert (findings.sum(1) >= 2).mean() > 0.1  # several findings on one film
    assert ChestXray(n_train=50, n_val=5, n_test=10).load(0).train.labels.ndim == 1  # the default stays single-label
    with pytest.raises(ConfigError, match="finding_rates"):
        ChestXray(multilabel=True, finding_rates=[0.5, 0.5]).load(0)


# -- sampling ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("ratio", [1.0, 2.5, 10.0])
def test_replicate_repeats_multi_hot_training_rows(multi_hot, ratio):
    train = multi_hot.train
    labels, attributes = plan_requests(train, "sex", SamplingSpec("replicate", ratio), seed=0)
    n = int(round(ratio * len(train)))
    assert labels.shape == (n, len(CLASSES)) and len(attributes["sex"]) == n
    rows = np.arange(n) % len(train)
    np.testing.assert_array_equal(labels, train.labels[rows])
    np.testing.assert_array_equal(attributes["sex"], train.attributes["sex"][rows])


def test_class_drawing_strategies_refuse_multi_hot_labels(multi_hot):
    with pytest.raises(ConfigError, match="replicate"):
        plan_requests(multi_hot.train, "sex", SamplingSpec("fair", 1.0), seed=0)
