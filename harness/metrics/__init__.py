"""Metrics: pure functions over arrays, registered once, used by every leaderboard."""
from harness.metrics import fairness, fidelity, utility  # noqa: F401  (registers the metrics)
from harness.metrics.registry import (ALIASES, HIGHER, LOWER, METRICS, EvalInput, Metric, MetricValue, aggregate,
                                      compute_metrics, get_metric, per_group, register_metric)
from harness.metrics.report import group_report, group_reports
# after the registry names: attribute_fidelity uses harness.stats, which imports METRICS from here
from harness.metrics import attribute_fidelity  # noqa: F401,E402  (registers the metrics)
from harness.metrics.utility import gap_metric_name, group_accuracy, group_auc

__all__ = ["ALIASES", "HIGHER", "LOWER", "METRICS", "EvalInput", "Metric", "MetricValue", "aggregate",
           "compute_metrics", "get_metric", "per_group", "register_metric", "group_report", "group_reports",
           "gap_metric_name", "group_accuracy", "group_auc"]
