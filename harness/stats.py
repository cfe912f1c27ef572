"""Statistics for leaderboards, in one place: the test-sample resamples, the two-level bootstrap
of a method against the real-only baseline (replicates, then test samples) with its p-value,
95% CI and minimum detectable effect, the multiplicity corrections, Friedman + Nemenyi across
datasets, Ktena's Beta-posterior group-vs-outgroup comparison, Mann–Whitney U, and for
attribute fidelity the Wilson interval of a proportion and the chi-square independence test.

Everything is seeded; scipy.stats and statsmodels supply what they have. Definitions, the
calibration of the test and a worked example: docs/metrics.md ("Statistics").
"""
from __future__ import annotations

import gc
import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Sequence

import numpy as np
from scipy import special
from scipy import stats as sps
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.power import TTestPower
from statsmodels.stats.proportion import proportion_confint

from harness import progress
from harness.grid import Grid
from harness.metrics import METRICS
from harness.metrics.resampled import Resamples
from harness.metrics.registry import HIGHER, EvalInput

BASELINE = "none"  # the real-only generator every method is compared with
ALPHA = 0.05
POWER = 0.8
BOOTSTRAP_B = 2000
#: a variance source with fewer replicates than this is "not estimated"
MIN_REPLICATES = 3
#: the grid's default primary endpoints (Holm over the whole run); other metrics are exploratory
PRIMARY_ENDPOINTS = Grid.primary_endpoints
POSTERIOR_DRAWS = 100_000


def prediction_metrics(columns: Sequence[str]) -> list[str]:
    """The metrics computed from the augmented classifier's test predictions: those a baseline
    comparison is made on (fidelity and CAS have no real-only counterpart)."""
    return [name for name in columns if name in METRICS and METRICS[name].source == "predictions"]


# ---- test-sample resamples ----

def resample_test_set(n: int, b: int = BOOTSTRAP_B, seed: int = 0, with_all: bool = False) -> Resamples:
    """b seeded resamples of n test samples, as row indices and as multiplicities (how often each
    sample was drawn); with_all puts all samples, once each, first. Equal (n, b, seed) give equal
    resamples, so every method of a table, and every replicate, is evaluated on the same draws."""
    first = int(with_all)
    indices = np.empty((first + b, n), dtype=np.intp)
    indices[:first] = np.arange(n)
    indices[first:] = np.random.default_rng([seed, n]).integers(0, n, size=(b, n))
    weights = np.bincount((indices + n * np.arange(first + b)[:, None]).ravel(), minlength=(first + b) * n)
    return Resamples(indices, weights.reshape(first + b, n))


# ---- method vs baseline ----

@dataclass
class Comparison:
    diff: float  # method minus baseline, mean over paired replicates
    p: float  # two-sided, uncorrected
    ci_low: float = math.nan  # 95% interval of the difference
    ci_high: float = math.nan
    se: float = math.nan  # standard error of the difference, replicate and test-sample levels together
    mde: float = math.nan  # minimum detectable effect at POWER, two-sided ALPHA


def minimum_detectable_effect(se: float, replicates: int, alpha: float = ALPHA, power: float = POWER) -> float:
    """The true difference a two-sided test at alpha over `replicates` paired replicates finds
    with probability `power`, given the standard error of their mean difference: the effect size
    of statsmodels' TTestPower (noncentral t, replicates − 1 df) times se·√replicates."""
    if replicates < 2 or math.isnan(se):
        return math.nan
    return float(_effect_size(replicates, alpha, power) * se * math.sqrt(replicates))


@lru_cache(maxsize=None)
def _effect_size(replicates: int, alpha: float, power: float) -> float:
    return float(TTestPower().solve_power(nobs=replicates, alpha=alpha, power=power, alternative="two-sided"))


def hierarchical_bootstrap(differences: np.ndarray, alpha: float = ALPHA, power: float = POWER,
                           seed: int = 0) -> list[Comparison]:
    """Two-level bootstrap of method − baseline for M metrics at once.

    `differences` is (R, 1 + B, M): for each of R paired replicates, the difference on all test
    samples (column 0) and on B test-sample resamples shared by every replicate and both methods.

    Level 1, replicates: the spread s of the R replicate differences holds everything that varies
    between replicates, each replicate's own test-sample noise included; it is drawn as
    s/√R · T, T ~ Student t with R − 1 df (a resample of 3 replicates would have (R−1)/R of their
    variance and no t tail: it rejects far too often, docs/metrics.md). Level 2, test samples:
    only the part of the resampled differences that all replicates share (the test set itself,
    their mean covariance over resamples) is added, as the resampled replicate mean scaled to
    that variance, so no source is counted twice. Δ*_b = Δ + c_b + s/√R · T.

    p = 2·min(P(Δ* ≤ 0), P(Δ* ≥ 0)) over the B resamples, each count replaced by its exact
    expectation over T (so p is not floored at 1/(B+1), which a Holm correction over a whole run
    needs); the 95% CI is the percentile interval of one seeded Δ* per resample; the MDE is
    minimum_detectable_effect of √(s²/R + shared variance).
    """
    d = np.asarray(differences, dtype=float)
    replicates = d.shape[0]
    if replicates < 2:
        raise ValueError(f"a two-level bootstrap needs at least 2 paired replicates, got {replicates}")
    df = replicates - 1
    observed = d[:, 0].mean(0)
    scale = d[:, 0].std(0, ddof=1) / math.sqrt(replicates)
    rng = np.random.default_rng([seed, replicates, d.shape[1]])
    out = []
    for j in range(d.shape[2]):
        resampled = d[:, 1:, j][:, ~np.isnan(d[:, 1:, j]).any(0)]  # (R, B valid)
        if math.isnan(observed[j]) or math.isnan(scale[j]) or resampled.shape[1] < 2:
            out.append(Comparison(float(observed[j]), math.nan))
            continue
        mean_b = resampled.mean(0)
        covariance = np.cov(resampled)
        shared = max(0.0, float((covariance.sum() - np.trace(covariance)) / (replicates * (replicates - 1))))
        spread = float(mean_b.var(ddof=1))
        shifted = observed[j] + (mean_b - mean_b.mean()) * (math.sqrt(shared / spread) if spread > 0 else 0.0)
        if scale[j] > 0:
            below = special.stdtr(df, -shifted / scale[j]).mean()
            above = special.stdtr(df, shifted / scale[j]).mean()
        else:
            below, above = (shifted <= 0).mean(), (shifted >= 0).mean()
        tail = min(below, above)
        p = min(1.0, 2 * tail) if tail > 0 else 1 / (len(shifted) + 1)
        draws = shifted + scale[j] * rng.standard_t(df, size=len(shifted))
        low, high = np.quantile(draws, [alpha / 2, 1 - alpha / 2])
        se = math.sqrt(scale[j] ** 2 + shared)
        out.append(Comparison(float(observed[j]), float(p), float(low), float(high), se,
                              minimum_detectable_effect(se, replicates, alpha, power)))
    return out


def mean_interval(mean: float, sd: float, n: int, alpha: float = ALPHA) -> tuple[float, float]:
    """The (1 − alpha) t-interval of a mean over n replicates from their mean and sd (ddof=1);
    NaN under 2 replicates."""
    if n < 2 or math.isnan(sd) or math.isnan(mean):
        return math.nan, math.nan
    half = float(sps.t.ppf(1 - alpha / 2, n - 1)) * sd / math.sqrt(n)
    return mean - half, mean + half


def paired_t(method: Sequence[float], baseline: Sequence[float]) -> Comparison:
    """Paired t-test over replicates (scipy.stats.ttest_rel), as Khosravi et al.; t-interval CI."""
    diff = np.subtract(method, baseline)
    result = sps.ttest_rel(method, baseline)
    interval = result.confidence_interval(1 - ALPHA)
    se = float(diff.std(ddof=1) / math.sqrt(len(diff)))
    return Comparison(float(diff.mean()), float(result.pvalue), float(interval.low), float(interval.high), se,
                      minimum_detectable_effect(se, len(diff)))


def paired_wilcoxon(method: Sequence[float], baseline: Sequence[float]) -> Comparison:
    """Wilcoxon signed-rank test over replicates (scipy.stats.wilcoxon)."""
    diff = np.subtract(method, baseline)
    if not np.any(diff):
        return Comparison(0.0, 1.0)
    return Comparison(float(np.mean(diff)), float(sps.wilcoxon(method, baseline).pvalue))


def welch_from_summaries(mean_a: float, sd_a: float, n_a: float, mean_b: float, sd_b: float, n_b: float) -> float:
    """Two-sided p of Welch's t-test from two runs' mean, sd and replicate count (what a leaderboard
    CSV keeps; `harness compare`); NaN with fewer than 2 replicates on a side."""
    if n_a < 2 or n_b < 2 or math.isnan(sd_a) or math.isnan(sd_b):
        return math.nan
    if sd_a == 0 and sd_b == 0:
        return 1.0 if mean_a == mean_b else 0.0
    return float(sps.ttest_ind_from_stats(mean_a, sd_a, n_a, mean_b, sd_b, n_b, equal_var=False).pvalue)


def marker(diff: float, p_adj: float, direction: str, alpha: float = ALPHA) -> str:
    """▲ significantly better than the baseline, ▼ significantly worse, "" otherwise."""
    if not (p_adj < alpha) or diff == 0 or np.isnan(diff):
        return ""
    better = diff > 0 if direction == HIGHER else diff < 0
    return "▲" if better else "▼"


# ---- multiplicity (statsmodels.stats.multitest) ----

CORRECTIONS = {"holm": "holm", "bonferroni": "bonferroni"}


def correct(pvalues: Sequence[float], method: str = "holm") -> np.ndarray:
    """Adjusted p-values; NaN stays NaN and does not count as a test."""
    if method not in CORRECTIONS:
        raise ValueError(f"unknown correction '{method}'; choose one of {sorted(CORRECTIONS)}")
    p = np.asarray(pvalues, dtype=float)
    out = np.full(len(p), math.nan)
    tested = ~np.isnan(p)
    if tested.any():
        # statsmodels' Holm runs gc.collect() on every call (0.1–0.3 s with torch and pandas
        # loaded, once per table); a frozen heap makes that collection instant
        gc.freeze()
        try:
            out[tested] = multipletests(p[tested], method=CORRECTIONS[method])[1]
        finally:
            gc.unfreeze()
    return out


def holm(pvalues: Sequence[float]) -> np.ndarray:
    return correct(pvalues, "holm")


# ---- across datasets ----

@dataclass
class Friedman:
    statistic: float
    p: float
    average_ranks: np.ndarray  # rank 1 = best
    critical_difference: float  # Nemenyi, at alpha


def nemenyi_cd(num_methods: int, num_blocks: int, alpha: float = ALPHA) -> float:
    """Nemenyi critical difference q_α √(k(k+1) / 6N), q_α = studentized range / √2 (Demšar 2006)."""
    q = sps.studentized_range.ppf(1 - alpha, num_methods, np.inf) / math.sqrt(2)
    return float(q * math.sqrt(num_methods * (num_methods + 1) / (6 * num_blocks)))


def friedman_nemenyi(scores: np.ndarray, higher_is_better: bool = True, alpha: float = ALPHA) -> Friedman | None:
    """Friedman test on a (blocks, methods) score table plus Nemenyi CD on average ranks.
    Returns None, with a warning, under 3 blocks or 3 methods (the test needs both)."""
    scores = np.asarray(scores, dtype=float)
    if scores.ndim != 2 or scores.shape[0] < 3 or scores.shape[1] < 3:
        progress.warn(f"Friedman/Nemenyi skipped: needs >= 3 blocks and >= 3 methods, got shape {scores.shape}")
        return None
    result = sps.friedmanchisquare(*scores.T)
    ranks = sps.rankdata(-scores if higher_is_better else scores, axis=1).mean(0)
    return Friedman(float(result.statistic), float(result.pvalue), ranks, nemenyi_cd(scores.shape[1], scores.shape[0], alpha))


# ---- group vs outgroup, replicate sets ----

@dataclass
class Posterior:
    mean_diff: float  # group minus outgroup
    sd: float
    p_negative: float  # P(diff < 0)


def beta_posterior_gap(k_group: int, n_group: int, k_out: int, n_out: int, draws: int = POSTERIOR_DRAWS,
                       seed: int = 0) -> Posterior:
    """Ktena et al.: Beta(1+k, 1+n−k) posteriors of a rate (e.g. accuracy) in a group and in
    everyone else; Monte Carlo over the difference group − outgroup."""
    rng = np.random.default_rng(seed)
    diff = rng.beta(1 + k_group, 1 + n_group - k_group, draws) - rng.beta(1 + k_out, 1 + n_out - k_out, draws)
    return Posterior(float(diff.mean()), float(diff.std(ddof=1)), float(np.mean(diff < 0)))


def mann_whitney(a: Sequence[float], b: Sequence[float], alternative: str = "two-sided") -> tuple[float, float]:
    """Mann–Whitney U of replicate sets a and b (scipy.stats.mannwhitneyu): (U of a, p)."""
    result = sps.mannwhitneyu(a, b, alternative=alternative)
    return float(result.statistic), float(result.pvalue)


def accuracy_posteriors(inp: EvalInput, draws: int = POSTERIOR_DRAWS, seed: int = 0) -> dict[str, Posterior]:
    """beta_posterior_gap of accuracy for each group against all other known-group samples."""
    correct_ = np.asarray(inp.y_pred == inp.y_true)
    if correct_.ndim == 2:  # multilabel: a sample is correct when all its labels are
        correct_ = correct_.all(1)
    known = (inp.groups >= 0) & (inp.groups < len(inp.group_names))
    out = {}
    for code, name in enumerate(inp.group_names):
        in_group = inp.groups == code
        outgroup = known & ~in_group
        out[name] = beta_posterior_gap(int(correct_[in_group].sum()), int(in_group.sum()),
                                       int(correct_[outgroup].sum()), int(outgroup.sum()), draws, seed)
    return out


# ---- proportions and contingency tables (attribute fidelity) ----

def proportion_ci(successes: int, n: int, alpha: float = ALPHA) -> tuple[float, float]:
    """Wilson score interval of successes/n (statsmodels' proportion_confint); (NaN, NaN) for n = 0.
    Wilson rather than the normal approximation: fidelities sit near 0 or 1, where that fails."""
    if n <= 0:
        return math.nan, math.nan
    low, high = proportion_confint(int(successes), int(n), alpha=alpha, method="wilson")
    return float(low), float(high)


@dataclass
class Independence:
    chi2: float
    p: float
    dof: int


def independence_test(table: np.ndarray) -> Independence:
    """Pearson chi-square test that rows and columns of a contingency table are independent
    (scipy.stats.chi2_contingency, no continuity correction). Empty rows and columns are dropped
    (they have no expected count); with fewer than 2 of either nothing can depend: p = 1."""
    table = np.asarray(table, dtype=float)
    table = table[table.sum(1) > 0][:, table.sum(0) > 0]
    if table.ndim != 2 or min(table.shape) < 2:
        return Independence(0.0, 1.0, 0)
    result = sps.chi2_contingency(table, correction=False)
    return Independence(float(result.statistic), float(result.pvalue), int(result.dof))
