"""Small prediction sets whose metric values are computed by hand in the metric tests."""
import numpy as np

from harness.metrics import EvalInput


def binary_toy(min_group_n: int = 1) -> EvalInput:
    """Two groups of four; hand-computed values are in the tests below."""
    y = np.array([1, 1, 0, 0, 1, 0, 0, 0])
    p1 = np.array([0.9, 0.4, 0.3, 0.6, 0.8, 0.7, 0.2, 0.1])
    groups = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    return EvalInput(y, np.stack([1 - p1, p1], 1), groups, ["a", "b"], min_group_n=min_group_n)
