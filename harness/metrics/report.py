"""Per-group values for the run record: every group of every sensitive attribute, with n.

`group_report` answers for one EvalInput (one attribute); `group_reports` repeats it for all
attributes of a test set. Values are plain floats (NaN where undefined) and lists, ready for
JSON; a group's "reason" says why its values are NaN.
"""
from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from harness.metrics.fairness import false_positive_rates, selection_rates, true_positive_rates
from harness.metrics.groupstats import class_aucs, counts, group_reasons
from harness.metrics.registry import EvalInput
from harness.metrics.utility import accuracy_rows, auc_rows, balanced_accuracy_rows, high_risk_rows


def _plain(values: np.ndarray, binary: bool) -> float | list[float]:
    return float(values[0]) if binary else [float(v) for v in values]


def group_report(inp: EvalInput) -> dict[str, dict]:
    """{group: {"n", "acc", "bal_acc", "auc", ["high_risk_sens"], "selection_rate", "tpr", "fpr", "reason"}}.

    selection_rate / tpr / fpr are scalars for the positive class of a binary task, otherwise
    lists over classes (one-vs-rest). Multilabel inputs add "label_auc", the group's AUC per label.
    Groups under min_group_n get NaN everywhere but n.
    """
    c = counts(inp)
    table = {"acc": accuracy_rows(inp, c), "bal_acc": balanced_accuracy_rows(inp, c), "auc": auc_rows(inp)[1]}
    if len(inp.high_risk):
        table["high_risk_sens"] = high_risk_rows(inp)[:-1]
    rates = {"selection_rate": selection_rates(inp), "tpr": true_positive_rates(inp), "fpr": false_positive_rates(inp)}
    label_aucs = class_aucs(inp)[1]
    report = {}
    for g, (name, reason) in enumerate(zip(inp.group_names, group_reasons(inp))):
        entry: dict = {"n": int(c.n[g]), "reason": reason}
        for key, values in table.items():
            entry[key] = math.nan if reason else float(values[g])
        for key, values in rates.items():
            entry[key] = _plain(np.full(values.shape[1], math.nan) if reason else values[g], inp.binary)
        if inp.multilabel:  # per-label AUCs of the group (auc is their mean)
            entry["label_auc"] = [math.nan if reason else float(v) for v in label_aucs[g]]
        undefined = [key for key in table if math.isnan(entry[key])]
        if undefined and not reason:  # e.g. auc when a class is absent from this group
            entry["reason"] = f"undefined in this group: {', '.join(undefined)}"
        report[name] = entry
    return report


def group_reports(inp: EvalInput, attributes: dict[str, np.ndarray], vocab: dict[str, list[str]]) -> dict[str, dict]:
    """group_report for every sensitive attribute: {attribute: {group: {...}}}."""
    return {name: group_report(replace(inp, groups=codes, group_names=list(vocab[name]), attribute=name, _memo={}))
            for name, codes in attributes.items()}
