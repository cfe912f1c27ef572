"""What significance against the real-only baseline is computed on, and how it is shown.

The tests themselves are `harness.leaderboard.baseline_tests`: within one table each method's
runs are paired with the baseline's by seed and compared on each prediction metric; the
p-values of one table are corrected together. Fidelity and CAS values have no baseline.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from harness.metrics import METRICS

BASELINE = "none"
ALPHA = 0.05


def prediction_metrics(columns: Sequence[str]) -> list[str]:
    return [name for name in columns if name in METRICS and METRICS[name].source == "predictions"]


def marker(diff: float, p_adj: float, direction: str, alpha: float = ALPHA) -> str:
    """▲ significantly better than the baseline, ▼ significantly worse, "" otherwise."""
    if not (p_adj < alpha) or diff == 0 or np.isnan(diff):
        return ""
    better = diff > 0 if direction == "higher" else diff < 0
    return "▲" if better else "▼"
