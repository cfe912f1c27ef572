"""Golden tests for the utility metrics: hand-computed toy cases, scikit-learn agreement, NaN policy."""
import math

import numpy as np
import pytest
from sklearn.metrics import balanced_accuracy_score, roc_auc_score

from harness.metrics import EvalInput, compute_metrics, gap_metric_name, get_metric, group_auc, group_report

from metric_toys import binary_toy


def value(name: str, inp: EvalInput) -> float:
    return get_metric(name)(inp).value


def test_binary_toy_by_hand():
    inp = binary_toy()
    assert value("acc", inp) == pytest.approx(5 / 8)
    assert value("bal_acc", inp) == pytest.approx((2 / 3 + 3 / 5) / 2)
    # positives {.9,.4,.8} beat 5, 3 and 5 of the 5 negatives
    assert value("auc", inp) == pytest.approx(13 / 15)
    assert value("worst_acc", inp) == pytest.approx(0.5)
    assert value("gap_acc", inp) == pytest.approx(0.25)
    assert value("worst_auc", inp) == pytest.approx(0.75)  # group a: 3 of 4 pairs ordered
    assert value("auc_gap", inp) == pytest.approx(0.25)


def test_group_report_carries_n_and_values():
    report = group_report(binary_toy())
    assert report["a"]["n"] == 4 and report["a"]["acc"] == pytest.approx(0.5)
    assert report["a"]["tpr"] == pytest.approx(0.5) and report["b"]["tpr"] == pytest.approx(1.0)
    assert report["b"]["fpr"] == pytest.approx(1 / 3) and report["b"]["auc"] == pytest.approx(1.0)
    assert report["a"]["selection_rate"] == pytest.approx(0.5)


def test_multilabel_accuracy_is_elementwise_and_auc_mean_over_labels():
    y = np.array([[1, 0], [0, 1], [1, 1], [0, 0]])
    proba = np.array([[0.9, 0.2], [0.6, 0.7], [0.4, 0.8], [0.1, 0.3]])
    inp = EvalInput(y, proba, np.zeros(4, dtype=int), ["all"], min_group_n=1)
    assert value("acc", inp) == pytest.approx(6 / 8)  # errors: (1,0) and (2,0)
    assert value("auc", inp) == pytest.approx(roc_auc_score(y, proba, average="macro"))


def test_high_risk_sensitivity_collapses_high_risk_classes():
    y = np.array([0, 1, 2, 2, 1])
    pred = np.array([0, 2, 2, 0, 1])  # high-risk {1, 2}: cases 1,2,3,4; called high-risk: 1,2,4
    inp = EvalInput(y, np.eye(3)[pred], np.zeros(5, dtype=int), ["all"], min_group_n=1, high_risk=(1, 2))
    assert value("high_risk_sens", inp) == pytest.approx(3 / 4)
    no_declared = EvalInput(y, np.eye(3)[pred], np.zeros(5, dtype=int), ["all"], min_group_n=1)
    result = get_metric("high_risk_sens")(no_declared)
    assert math.isnan(result.value) and "no high-risk" in result.reason


@pytest.mark.parametrize("k", [2, 5])
def test_auc_and_balanced_accuracy_agree_with_sklearn_with_ties(k):
    rng = np.random.default_rng(k)
    n = 3000
    proba = np.round(rng.dirichlet(np.ones(k), n), 2)  # rounding makes many ties
    proba /= proba.sum(1, keepdims=True)
    y = rng.integers(0, k, n)
    groups = rng.integers(-1, 3, n)
    inp = EvalInput(y, proba, groups, ["a", "b", "c"])
    expected_auc = roc_auc_score(y, proba[:, 1]) if k == 2 else roc_auc_score(y, proba, multi_class="ovr")
    assert value("auc", inp) == pytest.approx(expected_auc, rel=1e-12)
    assert value("bal_acc", inp) == pytest.approx(balanced_accuracy_score(y, proba.argmax(1)), rel=1e-12)
    for code, (name, group_value) in enumerate(group_auc(inp).items()):
        mask = groups == code
        expected = roc_auc_score(y[mask], proba[mask, 1]) if k == 2 else roc_auc_score(y[mask], proba[mask], multi_class="ovr")
        assert group_value.value == pytest.approx(expected, rel=1e-12), name


def test_unknown_group_counts_overall_but_not_in_groups():
    inp = binary_toy()
    with_unknown = EvalInput(np.append(inp.y_true, [1, 1]), np.vstack([inp.proba, [[0.9, 0.1], [0.8, 0.2]]]),
                             np.append(inp.groups, [-1, -1]), ["a", "b"], min_group_n=1)
    assert value("acc", with_unknown) == pytest.approx(5 / 10)
    assert value("gap_acc", with_unknown) == pytest.approx(0.25)


def test_nan_policy_small_empty_and_single_class_groups():
    inp = binary_toy(min_group_n=1)
    inp = EvalInput(inp.y_true, inp.proba, inp.groups, ["a", "b", "nobody"], min_group_n=1)
    report = group_report(inp)
    assert report["nobody"]["n"] == 0 and report["nobody"]["reason"] == "empty group"
    assert math.isnan(report["nobody"]["acc"])
    gap = get_metric("gap_acc")(inp)
    assert gap.value == pytest.approx(0.25) and "nobody" in gap.reason

    small = binary_toy(min_group_n=5)  # both groups have 4 samples
    report = group_report(small)
    assert all(math.isnan(g["acc"]) and "min_group_n=5" in g["reason"] for g in report.values())
    worst = get_metric("worst_acc")(small)
    assert math.isnan(worst.value) and "no valid group" in worst.reason

    y = np.array([0, 0, 0, 1, 0, 1])  # group "b" has only class 0: its AUC is undefined, not 0 or -1
    p1 = np.array([0.1, 0.2, 0.3, 0.9, 0.4, 0.6])
    single = EvalInput(y, np.stack([1 - p1, p1], 1), np.array([1, 1, 1, 0, 0, 0]), ["a", "b"], min_group_n=1)
    aucs = group_auc(single)
    assert math.isnan(aucs["b"].value) and "absent" in aucs["b"].reason
    assert aucs["a"].value == pytest.approx(1.0)
    assert math.isnan(value("auc_gap", single))


def test_auc_is_nan_with_reason_when_a_class_is_absent():
    inp = EvalInput(np.array([0, 1, 0, 1]), np.full((4, 3), 1 / 3), np.zeros(4, dtype=int), ["all"], min_group_n=1)
    result = get_metric("auc")(inp)
    assert math.isnan(result.value) and "[2]" in result.reason


def test_aliases_and_gap_names():
    assert get_metric("worst_group_acc").name == "worst_acc"
    assert gap_metric_name("auc") == "auc_gap" and gap_metric_name("bal_acc") == "gap_bal_acc"
    assert set(compute_metrics(binary_toy())) >= {"acc", "bal_acc", "auc", "dp", "eo", "eodds", "essp", "nar"}
