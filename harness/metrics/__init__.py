"""Metrics: pure functions over arrays, registered once, used by every leaderboard."""
from harness.metrics import utility  # noqa: F401  (registers the metrics)
from harness.metrics.registry import (HIGHER, LOWER, METRICS, EvalInput, Metric, MetricValue, aggregate,
                                      compute_metrics, get_metric, per_group, register_metric)
from harness.metrics.utility import group_accuracy

__all__ = ["HIGHER", "LOWER", "METRICS", "EvalInput", "Metric", "MetricValue", "aggregate", "compute_metrics",
           "get_metric", "per_group", "register_metric", "group_accuracy"]
