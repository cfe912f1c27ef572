"""The batched metrics behind the significance tests equal the registered metric functions on
the same resamples, to the last bit: binary, multiclass and multilabel inputs, unknown-group
samples, groups that fall under min_group_n in some resamples, tied scores, high-risk classes."""
import numpy as np
import pytest

from harness import stats
from harness.metrics import METRICS, EvalInput
from harness.metrics import resampled
from harness.metrics.resampled import BATCHED, resampled_values, subset

PREDICTION_METRICS = [name for name, m in METRICS.items() if m.source == "predictions"]


def _input(kind: str, n: int = 120, seed: int = 0) -> EvalInput:
    rng = np.random.default_rng(seed)
    groups = rng.choice([0, 1, 2, -1], size=n, p=[0.52, 0.32, 0.085, 0.075])  # group 2 is near min_group_n
    if kind == "multilabel":
        y = rng.integers(0, 2, (n, 3))
        proba = np.round(np.clip(y * 0.3 + rng.random((n, 3)) * 0.7, 0, 1), 1)  # rounding makes ties
        return EvalInput(y, proba, groups, ["a", "b", "c"], min_group_n=11, high_risk=(1,))
    k = 2 if kind == "binary" else 4
    y = rng.integers(0, k, n)
    logits = rng.random((n, k)) + 0.8 * np.eye(k)[y] * (rng.random(n) < 0.7)[:, None]
    proba = np.round(logits / logits.sum(1, keepdims=True), 2)
    return EvalInput(y, proba, groups, ["a", "b", "c"], min_group_n=11, high_risk=(1,) if k > 2 else ())


@pytest.mark.parametrize("kind", ["binary", "multiclass", "multilabel"])
def test_batched_metrics_equal_the_registered_functions_on_each_resample(kind):
    inp = _input(kind)
    resamples = stats.resample_test_set(len(inp.y_true), 40, seed=3)
    got = resampled_values(inp, PREDICTION_METRICS, resamples)
    expected = np.array([[METRICS[m](subset(inp, idx)).value for m in PREDICTION_METRICS] for idx in resamples.indices])
    for j, name in enumerate(PREDICTION_METRICS):
        np.testing.assert_array_equal(got[:, j], expected[:, j], err_msg=f"{kind} {name}")
    large_enough = resamples.weights[:, inp.groups == 2].sum(1) >= inp.min_group_n
    assert large_enough.any() and not large_enough.all()  # group c is dropped in some resamples only


def test_every_registered_prediction_metric_has_a_batched_form():
    assert set(PREDICTION_METRICS) <= set(BATCHED)


def test_the_unresampled_row_is_the_metric_on_all_samples():
    inp = _input("multiclass", seed=5)
    n = len(inp.y_true)
    got = resampled_values(inp, PREDICTION_METRICS, stats.resample_test_set(n, 0, with_all=True))[0]
    np.testing.assert_array_equal(got, [METRICS[m](inp).value for m in PREDICTION_METRICS])


@pytest.mark.parametrize("pair_limit,b", [(0, 30), (0, 300), (10**9, 30)])
def test_both_auc_paths_agree_with_the_registered_auc(monkeypatch, pair_limit, b):
    """Discordant-pair counting (good classifiers) and cumulative sums (others; two ways of
    summing, by resample count) give the same bits."""
    monkeypatch.setattr(resampled, "PAIR_LIMIT", pair_limit)
    inp = _input("multiclass", seed=7)
    resamples = stats.resample_test_set(len(inp.y_true), b, seed=1)
    names = ["auc", "worst_auc", "auc_gap", "label_auc_gap", "es_auc"]
    got = resampled_values(inp, names, resamples)
    expected = np.array([[METRICS[m](subset(inp, idx)).value for m in names] for idx in resamples.indices])
    np.testing.assert_array_equal(got, expected)
