"""Calibration of the leaderboard's significance test against known truth (simulated tables).

Each simulated table has a baseline and a method with 3 paired replicates each on one shared
test set (300 samples, 3 groups of 50/30/20%). A replicate's accuracy in every group moves by a
generator-fit effect and a classifier-seed effect (sd 0.04 each: larger than the test-sample
noise), and samples are right or wrong through a Gaussian copula, so a hard sample is hard for
every replicate. The test is the one the leaderboard runs: harness.metrics.resampled for the
metric values under shared test resamples, harness.stats.hierarchical_bootstrap for p and MDE.
"""
import numpy as np
import pytest
from scipy import stats as sps

from harness import stats
from harness.metrics import EvalInput
from harness.metrics.resampled import resampled_values

N, REPLICATES, B = 300, 3, 200  # the replicate level is exact in p, so a small B suffices
GROUP_SHARE, GROUP_ACC = [0.5, 0.3, 0.2], np.array([0.55, 0.45, 0.35])  # room for a large effect below 1
SD_GENERATOR = SD_CLASSIFIER = 0.04
METRICS = ["acc", "worst_acc", "gap_acc"]
TABLES = 500


def _table(rng: np.random.Generator, effect: float) -> np.ndarray:
    """(REPLICATES, 1 + B, len(METRICS)) method − baseline differences of one simulated table."""
    groups = rng.choice(3, size=N, p=GROUP_SHARE)
    y = rng.integers(0, 2, N)
    hardness = rng.normal(size=N)
    resamples = stats.resample_test_set(N, B, seed=int(rng.integers(2**31)), with_all=True)

    def replicate(shift: float) -> np.ndarray:
        accuracy = np.clip(GROUP_ACC + shift + rng.normal(0, SD_GENERATOR) + rng.normal(0, SD_CLASSIFIER), 0.01, 0.99)
        latent = 0.6 * hardness + 0.8 * rng.normal(size=N)
        right = latent < sps.norm.ppf(accuracy[groups])
        predicted = np.where(right, y, 1 - y)
        return resampled_values(EvalInput(y, np.eye(2)[predicted], groups, ["a", "b", "c"]), METRICS, resamples)

    return np.stack([replicate(effect) - replicate(0.0) for _ in range(REPLICATES)])


def _simulate(effect: float, tables: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(p, mde) of shape (tables, len(METRICS))."""
    rng = np.random.default_rng(seed)
    results = [stats.hierarchical_bootstrap(_table(rng, effect), seed=i) for i in range(tables)]
    return (np.array([[r.p for r in row] for row in results]), np.array([[r.mde for r in row] for row in results]))


@pytest.fixture(scope="module")
def null_tables():
    return _simulate(0.0, TABLES, seed=2024)


def test_identical_methods_are_rejected_at_most_at_the_nominal_rate(null_tables):
    p, _ = null_tables
    rejection = (p < stats.ALPHA).mean(0)
    assert rejection.max() <= 0.06, dict(zip(METRICS, rejection))
    assert np.isfinite(p).all()


def test_an_effect_of_twice_the_mde_is_found_with_80_percent_power(null_tables):
    _, mde = null_tables
    effect = 2 * float(np.median(mde[:, METRICS.index("acc")]))
    p, _ = _simulate(effect, 200, seed=7)
    power = (p[:, METRICS.index("acc")] < stats.ALPHA).mean()
    assert power >= 0.8, (effect, power)
