"""Class and attribute fidelity: does a generator make what it was asked for, per requested group?

A fixed judge (harness.metrics.judge) reads the class and the primary attribute back from every
synthetic image. Per requested group: the share judged as the requested class and as the
requested group, with a Wilson 95% interval over the synthetic samples; the worst group; raw and
corrected for the judge's own errors on real images (confusion-matrix inversion, clipped); and
the chi-square test of independence of the judged attribute from the requested one, which makes
"ignores the attribute" a reported fact. With several judges the values of the one most
accurate on real test images are the metrics; the others are kept beside them, and a disagreement beyond DISAGREEMENT_TOLERANCE is
noted on the metric, not averaged away. Definitions: docs/metrics.md ("Attribute fidelity").
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from harness import stats
from harness.data import ImageSet
from harness.metrics.judge import LABEL, Judge, confusion
from harness.metrics.registry import HIGHER, MetricValue, register_metric

#: judges whose fidelities differ by more than this (absolute) are reported as disagreeing
DISAGREEMENT_TOLERANCE = 0.10
#: a confusion matrix this ill-conditioned cannot be inverted meaningfully
MAX_CONDITION = 1e6
#: the p-value under which the judged attribute is taken to depend on the requested one
INDEPENDENCE_ALPHA = 0.01

METRIC_NAMES = ("class_fidelity", "class_fidelity_adj", "worst_class_fidelity", "worst_class_fidelity_adj",
                "attr_fidelity", "attr_fidelity_adj", "worst_attr_fidelity", "worst_attr_fidelity_adj")


def corrected_rates(requested: np.ndarray, judged: np.ndarray, real_confusion: np.ndarray) -> dict[int, float]:
    """For each requested code r: the share of samples that truly are r, estimated from the judged
    shares q_r and the judge's confusion on real images M (rows: true, columns: judged, row-normalised)
    by solving π M = q_r, clipping π to [0, 1] and renormalising. For two values this is the
    Rogan–Gladen estimator. NaN where M has an empty row or is singular."""
    counts = np.asarray(real_confusion, dtype=float)
    size = len(counts)
    out: dict[int, float] = {}
    if np.any(counts.sum(1) == 0):
        return {int(r): math.nan for r in np.unique(requested)}
    m = counts / counts.sum(1, keepdims=True)
    if np.linalg.cond(m) > MAX_CONDITION:
        return {int(r): math.nan for r in np.unique(requested)}
    for r in np.unique(requested):
        q = np.bincount(judged[requested == r], minlength=size)[:size] / max(1, int(np.sum(requested == r)))
        pi = np.clip(np.linalg.solve(m.T, q), 0.0, 1.0)
        out[int(r)] = float(pi[r] / pi.sum()) if pi.sum() > 0 else math.nan
    return out


def _weighted(rates: dict[int, float], requested: np.ndarray) -> float:
    """Mean of per-request-value rates weighted by how often each value was requested."""
    if not rates:
        return math.nan
    return float(sum(rate * np.sum(requested == r) for r, rate in rates.items()) / len(requested))


def _share(hits: np.ndarray) -> dict:
    k, n = int(hits.sum()), len(hits)
    low, high = stats.proportion_ci(k, n)
    return {"value": k / n if n else math.nan, "ci": [low, high], "k": k, "n": n}


def judge_fidelity(requested_labels: np.ndarray | None, requested_groups: np.ndarray, judged_labels: np.ndarray | None,
                   judged_groups: np.ndarray, real: dict, attribute: str, min_group_n: int = 10) -> dict:
    """Every fidelity value of one judge's verdicts on one synthetic set.

    requested_* are the codes the images were asked for (labels None for multi-hot datasets), judged_*
    the judge's codes, `real` its real_test_report (which names the groups). Returns {"metrics", "reasons", "per_group",
    "confusion" (requested × judged counts), "independence" (judged vs requested attribute), "chance"}.
    """
    group_names = real["groups"]
    sizes = len(group_names)
    attr_real = np.asarray(real[attribute]["confusion"])
    attr_adj = corrected_rates(requested_groups[requested_groups >= 0], judged_groups[requested_groups >= 0], attr_real)
    per_group: dict[str, dict] = {}
    reasons: dict[str, str] = {}
    for code, name in enumerate(group_names):
        rows = requested_groups == code
        entry: dict = {"n": int(rows.sum())}
        if rows.sum() < max(1, min_group_n):
            entry["reason"] = f"{int(rows.sum())} synthetic images requested for this group < min_group_n={min_group_n}"
            per_group[name] = entry
            continue
        entry["attr"] = {**_share(judged_groups[rows] == code), "adj": attr_adj.get(code, math.nan)}
        if requested_labels is not None:
            group_real = np.asarray(real[LABEL]["per_group"][name]["confusion"])
            class_adj = corrected_rates(requested_labels[rows], judged_labels[rows], group_real)
            entry["class"] = {**_share(judged_labels[rows] == requested_labels[rows]),
                              "adj": _weighted(class_adj, requested_labels[rows])}
        per_group[name] = entry
    metrics: dict[str, float] = {}
    if requested_labels is None:
        for name in METRIC_NAMES[:4]:
            metrics[name] = math.nan
            reasons[name] = "multi-hot labels: class fidelity is defined for single-label datasets"
    else:
        _summarise("class", judged_labels == requested_labels, per_group, metrics, reasons)
    known = requested_groups >= 0
    _summarise("attr", judged_groups[known] == requested_groups[known], per_group, metrics, reasons)
    table = confusion(requested_groups, judged_groups, sizes)
    test = stats.independence_test(table)
    out = {"metrics": metrics, "reasons": reasons, "per_group": per_group,
           "confusion": {"attribute": table.tolist()},
           "independence": {"chi2": test.chi2, "p": test.p, "dof": test.dof,
                            "depends_on_request": bool(test.p < INDEPENDENCE_ALPHA)},
           "chance": {"attr": 1 / sizes}}
    if requested_labels is not None:
        num_classes = len(real[LABEL]["confusion"])
        out["confusion"]["class"] = confusion(requested_labels, judged_labels, num_classes).tolist()
        out["chance"]["class"] = 1 / num_classes
    return out


def _summarise(target: str, hits: np.ndarray, per_group: dict[str, dict], metrics: dict, reasons: dict) -> None:
    """Overall, corrected and worst-group values of one target ("class" or "attr") into metrics,
    with the reason for each NaN and the groups each aggregate skipped."""
    raw = {name: g[target]["value"] for name, g in per_group.items() if target in g}
    adj = {name: g[target]["adj"] for name, g in per_group.items() if target in g and not math.isnan(g[target]["adj"])}
    small = [name for name in per_group if name not in raw]
    uncorrectable = [name for name in raw if name not in adj]
    metrics[f"{target}_fidelity"] = float(np.mean(hits)) if len(hits) else math.nan
    # the overall corrected value needs every group corrected; a partial average would be another population
    metrics[f"{target}_fidelity_adj"] = (math.nan if uncorrectable or not adj else
                                         sum(adj[g] * per_group[g]["n"] for g in adj) / sum(per_group[g]["n"] for g in adj))
    metrics[f"worst_{target}_fidelity"] = min(raw.values(), default=math.nan)
    metrics[f"worst_{target}_fidelity_adj"] = min(adj.values(), default=math.nan)
    too_small = f"skipped {len(small)} group(s) under min_group_n: {', '.join(small)}" if small else ""
    cannot = (f"not correctable for {', '.join(uncorrectable)}: the judge's confusion on real images has a value "
              f"without real test images or cannot be inverted (a judge at chance)") if uncorrectable else ""
    for name, notes in ((f"{target}_fidelity", []), (f"{target}_fidelity_adj", [cannot, too_small]),
                        (f"worst_{target}_fidelity", [too_small]), (f"worst_{target}_fidelity_adj", [cannot, too_small])):
        text = "; ".join(n for n in notes if n)
        if math.isnan(metrics[name]) and not text:
            text = "no synthetic images" if not len(hits) else "no group with enough requested images"
        if text:
            reasons[name] = text


def attribute_fidelity_report(judges: list[Judge], synthetic: ImageSet, cache_dir: Path | None,
                              min_group_n: int = 10, tolerance: float = DISAGREEMENT_TOLERANCE) -> dict:
    """Judge a synthetic set (its labels and attributes are the requests) with every judge.

    Returns {"metrics", "reasons"} of the primary judge, the one most accurate on real test images
    (mean over its targets; the leaderboard's values), "primary": its family, "judges": {family:
    judge_fidelity(...) plus its real-test accuracy}, and "disagreements": [{"metric", "values",
    "difference"}] for every metric on which two judges differ by more than `tolerance`.
    """
    attribute = judges[0].attribute
    requested_groups = synthetic.group_codes(attribute)
    requested_labels = None if synthetic.multilabel else synthetic.labels
    per_judge = {}
    for judge in judges:
        judged = judge.read(synthetic, cache_dir)
        report = judge_fidelity(requested_labels, requested_groups, judged.get(LABEL), judged[attribute], judge.real,
                                attribute, min_group_n)
        report["real_test"] = real_accuracy(judge)
        per_judge[judge.family] = report
    lead = max(judges, key=_mean_real_accuracy)  # max keeps the first of equals
    primary = per_judge[lead.family]
    disagreements = []
    for name in METRIC_NAMES:
        values = {family: r["metrics"][name] for family, r in per_judge.items() if not math.isnan(r["metrics"][name])}
        if len(values) > 1 and max(values.values()) - min(values.values()) > tolerance:
            disagreements.append({"metric": name, "values": values,
                                  "difference": max(values.values()) - min(values.values())})
    reasons = dict(primary["reasons"])
    for d in disagreements:
        said = ", ".join(f"{family} {value:.2f}" for family, value in d["values"].items())
        reasons[d["metric"]] = "; ".join(filter(None, [reasons.get(d["metric"]), f"judges disagree: {said}"]))
    return {"metrics": dict(primary["metrics"]), "reasons": reasons, "primary": lead.family,
            "attribute": attribute, "judges": per_judge, "disagreements": disagreements, "tolerance": tolerance}


def _mean_real_accuracy(judge: Judge) -> float:
    values = [acc["overall"] for acc in real_accuracy(judge).values() if acc["overall"] is not None]
    return float(np.mean(values)) if values else -1.0


def real_accuracy(judge: Judge) -> dict:
    """{target: {"overall": acc, group: acc, ...}} of a judge on the real test split."""
    return {target: {"overall": entry["accuracy"], **{g: v["accuracy"] for g, v in entry["per_group"].items()}}
            for target, entry in judge.real.items() if isinstance(entry, dict) and "per_group" in entry}


def judge_summary(report: dict | None) -> str | None:
    """'effnet: class 0.97 (dark 0.95–light 0.98), skin_tone 0.99; pixels: ...' for table headers:
    each judge's real-test accuracy overall and its range over groups."""
    if not report or not report.get("judges"):
        return None
    parts = []
    for family, judged in report["judges"].items():
        targets = []
        real = judged.get("real_test", {})
        for target in sorted(real, key=lambda t: t != LABEL):  # the class first
            acc = real[target]
            groups = {g: v for g, v in acc.items() if g != "overall" and v is not None}
            span = ""
            if groups and min(groups.values()) < max(groups.values()):
                low, high = min(groups, key=groups.get), max(groups, key=groups.get)
                span = f" ({low} {groups[low]:.2f}–{high} {groups[high]:.2f})"
            name = "class" if target == LABEL else target
            targets.append(f"{name} {acc['overall']:.2f}{span}" if acc.get("overall") is not None else f"{name} n/a")
        parts.append(f"{family}: {', '.join(targets)}")
    return "; ".join(parts)


def _from_report(name: str):
    def read(report: dict) -> MetricValue:
        return MetricValue(report["metrics"][name], report.get("reasons", {}).get(name, ""))
    read.__name__ = name
    return read


# Registered so leaderboards show them beside FID (source "fidelity": computed from images);
# the value is read from the `attribute_fidelity` part of a generator cell's fidelity report.
for _name, _text in [
    ("class_fidelity", "share of synthetic images the judge reads as the requested class"),
    ("class_fidelity_adj", "class_fidelity corrected for the judge's per-group errors on real images"),
    ("worst_class_fidelity", "lowest class_fidelity over requested groups"),
    ("worst_class_fidelity_adj", "lowest corrected class_fidelity over requested groups"),
    ("attr_fidelity", "share of synthetic images the judge reads as the requested group"),
    ("attr_fidelity_adj", "attr_fidelity corrected for the judge's attribute errors on real images"),
    ("worst_attr_fidelity", "lowest attr_fidelity over requested groups"),
    ("worst_attr_fidelity_adj", "lowest corrected attr_fidelity over requested groups"),
]:
    register_metric(_name, HIGHER, tolerance=0.05, description=_text, source="fidelity")(_from_report(_name))
