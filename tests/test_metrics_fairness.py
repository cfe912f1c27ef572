"""Golden tests for the fairness metrics: hand computations and agreement with fairlearn."""
import math

import numpy as np
import pytest
from fairlearn.metrics import (MetricFrame, demographic_parity_difference, equal_opportunity_difference,
                               equalized_odds_difference)
from sklearn.metrics import accuracy_score

from harness.metrics import EvalInput, get_metric, group_accuracy

from metric_toys import binary_toy


def value(name: str, inp: EvalInput) -> float:
    return get_metric(name)(inp).value


def test_binary_toy_by_hand():
    inp = binary_toy()  # group a: acc 1/2, TPR 1/2, FPR 1/2, selection 1/2; b: 3/4, 1, 1/3, 1/2
    assert value("dp", inp) == pytest.approx(0.0)
    assert value("eo", inp) == pytest.approx(0.5)
    assert value("eodds", inp) == pytest.approx(0.5)
    assert value("essp", inp) == pytest.approx(0.625 / (1 + 0.125 + 0.125))
    assert value("essp_pct", inp) == pytest.approx(62.5 / (1 + 12.5 + 12.5))
    assert value("es_auc", inp) == pytest.approx((13 / 15) / (1 + abs(0.75 - 13 / 15) + abs(1 - 13 / 15)))
    assert value("nar", inp) == pytest.approx(0.25 / (0.625 + 1e-6))


def multiclass_toy() -> EvalInput:
    y = np.array([0, 1, 2, 0, 0, 1, 2, 2])
    pred = np.array([0, 1, 1, 2, 0, 0, 2, 2])
    return EvalInput(y, np.eye(3)[pred], np.array([0, 0, 0, 0, 1, 1, 1, 1]), ["a", "b"], min_group_n=1)


def test_multiclass_one_vs_rest_by_hand():
    inp = multiclass_toy()
    # selection rates a: (1/4, 2/4, 1/4), b: (2/4, 0, 2/4)
    assert value("dp", inp) == pytest.approx((0.25 + 0.5 + 0.25) / 3)
    # TPR a: (1/2, 1, 0), b: (1, 0, 1); FPR gaps are all 1/3
    assert value("eo", inp) == pytest.approx((0.5 + 1 + 1) / 3)
    assert value("eodds", inp) == pytest.approx((0.5 + 1 + 1) / 3)
    assert value("gap_acc", inp) == pytest.approx(0.25)


def test_dp_measures_predictions_not_label_prevalence():
    """The public-code pitfall: fairlearn fed one-hot labels as y_true measures prevalence instead."""
    inp = multiclass_toy()
    relabelled = EvalInput(np.roll(inp.y_true, 3), inp.proba, inp.groups, inp.group_names, min_group_n=1)
    assert value("dp", relabelled) == pytest.approx(value("dp", inp))
    prevalence_gap = np.mean([demographic_parity_difference(inp.y_true == c, inp.y_true == c,
                                                            sensitive_features=inp.groups) for c in range(3)])
    assert prevalence_gap != pytest.approx(value("dp", inp))


def test_dp_floor_and_excess_by_hand():
    """The floor is the DP a perfect classifier (ŷ = y) scores on the same test set."""
    binary = binary_toy()  # positive prevalence a: 2/4, b: 1/4; both groups select 2/4
    assert value("dp_floor", binary) == pytest.approx(0.25)
    assert value("dp_excess", binary) == pytest.approx(0.0 - 0.25)  # fairer than the perfect classifier
    inp = multiclass_toy()  # prevalence a: (2/4, 1/4, 1/4), b: (1/4, 1/4, 2/4); selection as above
    assert value("dp_floor", inp) == pytest.approx((0.25 + 0 + 0.25) / 3)
    assert value("dp_excess", inp) == pytest.approx(((0.25 - 0.25) + (0.5 - 0) + (0.25 - 0.25)) / 3)


def test_a_perfect_classifier_sits_on_the_dp_floor():
    inp = multiclass_toy()
    perfect = EvalInput(inp.y_true, np.eye(3)[inp.y_true], inp.groups, inp.group_names, min_group_n=1)
    assert value("dp", perfect) == pytest.approx(value("dp_floor", inp))
    assert value("dp_excess", perfect) == pytest.approx(0.0)
    assert value("dp_floor", perfect) == value("dp_floor", inp)  # the floor ignores the predictions


def random_binary(seed: int, n: int = 5000, groups: int = 4) -> EvalInput:
    rng = np.random.default_rng(seed)
    g = rng.integers(0, groups, n)
    y = (rng.random(n) < 0.3 + 0.1 * g).astype(int)
    p1 = np.clip(0.5 * y + 0.5 * rng.random(n) - 0.05 * g, 0, 1)
    return EvalInput(y, np.stack([1 - p1, p1], 1), g, [f"g{i}" for i in range(groups)])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_binary_agrees_with_fairlearn(seed):
    inp = random_binary(seed)
    y, pred, g = inp.y_true, inp.y_pred, inp.groups
    assert value("dp", inp) == pytest.approx(demographic_parity_difference(y, pred, sensitive_features=g), abs=1e-12)
    assert value("eo", inp) == pytest.approx(equal_opportunity_difference(y, pred, sensitive_features=g), abs=1e-12)
    assert value("eodds", inp) == pytest.approx(equalized_odds_difference(y, pred, sensitive_features=g), abs=1e-12)
    frame = MetricFrame(metrics=accuracy_score, y_true=y, y_pred=pred, sensitive_features=g)
    ours = group_accuracy(inp)
    for code, expected in frame.by_group.items():
        assert ours[f"g{code}"].value == pytest.approx(expected, abs=1e-12)
    assert value("gap_acc", inp) == pytest.approx(frame.difference(method="between_groups"), abs=1e-12)


def test_multiclass_equals_mean_of_fairlearn_one_vs_rest():
    rng = np.random.default_rng(5)
    n, k = 4000, 4
    g, y = rng.integers(0, 3, n), rng.integers(0, k, n)
    proba = rng.dirichlet(np.ones(k), n)
    proba[np.arange(n), y] += 0.3 * g  # accuracy differs by group
    inp = EvalInput(y, proba / proba.sum(1, keepdims=True), g, ["a", "b", "c"])
    pred = inp.y_pred
    one_vs_rest = lambda fn: np.mean([fn(y == c, pred == c, sensitive_features=g) for c in range(k)])
    assert value("dp", inp) == pytest.approx(one_vs_rest(demographic_parity_difference), abs=1e-12)
    assert value("eo", inp) == pytest.approx(one_vs_rest(equal_opportunity_difference), abs=1e-12)
    assert value("eodds", inp) == pytest.approx(one_vs_rest(equalized_odds_difference), abs=1e-12)


def test_small_groups_are_skipped_and_said():
    inp = random_binary(3)
    groups = inp.groups.copy()
    groups[np.flatnonzero(groups == 3)[5:]] = 2  # leave 5 samples in g3
    small = EvalInput(inp.y_true, inp.proba, groups, inp.group_names, min_group_n=10)
    kept = groups != 3
    y, pred = inp.y_true[kept], inp.y_pred[kept]
    result = get_metric("dp")(small)
    assert result.value == pytest.approx(demographic_parity_difference(y, pred, sensitive_features=groups[kept]))
    assert "g3" in result.reason
    essp = get_metric("essp")(small)
    assert not math.isnan(essp.value) and "g3" in essp.reason


def test_single_group_gives_nan_with_reason():
    inp = EvalInput(np.array([0, 1] * 10), np.eye(2)[[0, 1] * 10], np.zeros(20, dtype=int), ["only", "absent"])
    for name in ("dp", "eo", "eodds", "essp", "nar"):
        result = get_metric(name)(inp)
        assert math.isnan(result.value) and result.reason, name
