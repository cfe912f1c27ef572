"""Statistics for leaderboards: replicate summaries, bootstrap CIs over test samples, paired tests
against the real-only baseline, multiplicity correction, Friedman + Nemenyi across datasets,
Ktena's Beta-posterior group-vs-outgroup comparison and Mann–Whitney U.

Everything is seeded; scipy.stats supplies the tests it has. Definitions: docs/metrics.md.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Callable, Sequence

import numpy as np
from scipy import stats as sps

from harness import progress
from harness.metrics.registry import EvalInput, get_metric

BOOTSTRAP_B = 1000
POSTERIOR_DRAWS = 100_000


# ---- replicates ----

@dataclass
class Summary:
    mean: float
    sd: float  # sample sd (ddof=1); NaN with one replicate
    n: int
    ci_low: float  # t-interval
    ci_high: float


def seed_summary(values: Sequence[float], confidence: float = 0.95) -> Summary:
    """Mean ± sd over replicates and the t-interval mean ± t_{(1+c)/2, n-1} sd / √n (NaN values skipped)."""
    x = np.asarray([v for v in values if not math.isnan(v)], dtype=float)
    if len(x) == 0:
        return Summary(math.nan, math.nan, 0, math.nan, math.nan)
    if len(x) == 1:
        return Summary(float(x[0]), math.nan, 1, math.nan, math.nan)
    mean, sd = float(x.mean()), float(x.std(ddof=1))
    half = float(sps.t.ppf((1 + confidence) / 2, len(x) - 1)) * sd / math.sqrt(len(x))
    return Summary(mean, sd, len(x), mean - half, mean + half)


# ---- bootstrap over test samples ----

def bootstrap_indices(n: int, b: int = BOOTSTRAP_B, seed: int = 0) -> np.ndarray:
    """(b, n) resampling indices, identical for every caller with the same (n, b, seed)."""
    return np.random.default_rng([seed, n]).integers(0, n, size=(b, n))


def bootstrap_ci(statistic: Callable[[np.ndarray], float], n: int, b: int = BOOTSTRAP_B, seed: int = 0,
                 confidence: float = 0.95) -> tuple[float, float]:
    """Percentile CI of statistic(indices) over b seeded resamples of n test samples.
    Resamples where the statistic is undefined (NaN) are dropped."""
    estimates = np.array([statistic(idx) for idx in bootstrap_indices(n, b, seed)])
    estimates = estimates[~np.isnan(estimates)]
    if len(estimates) == 0:
        return math.nan, math.nan
    alpha = (1 - confidence) / 2
    return float(np.quantile(estimates, alpha)), float(np.quantile(estimates, 1 - alpha))


def subset_input(inp: EvalInput, index: np.ndarray) -> EvalInput:
    return replace(inp, y_true=np.asarray(inp.y_true)[index], proba=np.asarray(inp.proba)[index],
                   groups=np.asarray(inp.groups)[index], _memo={})


def metric_statistic(metric: str, runs: Sequence[EvalInput]) -> Callable[[np.ndarray], float]:
    """statistic(indices) = mean over replicate runs (same test samples) of the metric on those samples."""
    fn = get_metric(metric)
    return lambda index: float(np.mean([fn(subset_input(run, index)).value for run in runs]))


def metric_ci(metric: str, runs: Sequence[EvalInput], b: int = BOOTSTRAP_B, seed: int = 0) -> tuple[float, float]:
    """Bootstrap CI of a metric averaged over replicates sharing one test set."""
    return bootstrap_ci(metric_statistic(metric, runs), len(runs[0].y_true), b, seed)


# ---- paired comparison against the baseline ----

@dataclass
class Paired:
    diff: float  # method minus baseline
    p: float  # two-sided, uncorrected
    ci_low: float = math.nan
    ci_high: float = math.nan
    test: str = ""


def _bootstrap_p(observed: float, diffs: np.ndarray) -> Paired:
    """Two-sided p = share of resampled differences on the other side of 0 (+1 correction),
    with the percentile 95% CI of the difference; NaN resamples are dropped."""
    diffs = diffs[~np.isnan(diffs)]
    if math.isnan(observed) or len(diffs) == 0:
        return Paired(math.nan, math.nan, test="bootstrap")
    tail = min((diffs <= 0).sum(), (diffs >= 0).sum())
    p = min(1.0, 2 * (tail + 1) / (len(diffs) + 1))
    return Paired(float(observed), p, float(np.quantile(diffs, 0.025)), float(np.quantile(diffs, 0.975)), "bootstrap")


def paired_bootstrap(method: Callable[[np.ndarray], float], baseline: Callable[[np.ndarray], float], n: int,
                     b: int = BOOTSTRAP_B, seed: int = 0) -> Paired:
    """Bootstrap the difference method − baseline over shared test samples (same resamples)."""
    everything = np.arange(n)
    diffs = np.array([method(idx) - baseline(idx) for idx in bootstrap_indices(n, b, seed)])
    return _bootstrap_p(method(everything) - baseline(everything), diffs)


def bootstrap_table(metrics: Sequence[str], runs: Sequence[EvalInput], b: int = BOOTSTRAP_B,
                    seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(observed (M,), resampled (b, M)): each metric averaged over replicate runs that share one
    test set, on all samples and on each of the b seeded resamples. All metrics of a resample
    share one subset, so its group counts are computed once; equal (n, b, seed) give equal
    resamples, so tables of different methods pair sample by sample."""
    fns = [get_metric(m) for m in metrics]

    def values(index: np.ndarray | None) -> np.ndarray:
        subsets = [run if index is None else subset_input(run, index) for run in runs]
        return np.array([np.mean([fn(s).value for s in subsets]) for fn in fns])

    n = len(runs[0].y_true)
    return values(None), np.array([values(idx) for idx in bootstrap_indices(n, b, seed)]).reshape(b, len(fns))


def paired_t(method: Sequence[float], baseline: Sequence[float]) -> Paired:
    """Paired t-test over shared seeds (scipy.stats.ttest_rel), as Khosravi et al."""
    result = sps.ttest_rel(method, baseline)
    return Paired(float(np.mean(np.subtract(method, baseline))), float(result.pvalue), test="paired-t")


def paired_wilcoxon(method: Sequence[float], baseline: Sequence[float]) -> Paired:
    """Wilcoxon signed-rank test over shared seeds (scipy.stats.wilcoxon)."""
    diff = np.subtract(method, baseline)
    if not np.any(diff):
        return Paired(0.0, 1.0, test="wilcoxon")
    return Paired(float(np.mean(diff)), float(sps.wilcoxon(method, baseline).pvalue), test="wilcoxon")


TESTS = ("bootstrap", "paired-t", "wilcoxon")


def compare_to_baseline(metric: str, method_runs: Sequence[EvalInput], baseline_runs: Sequence[EvalInput],
                        test: str = "bootstrap", b: int = BOOTSTRAP_B, seed: int = 0) -> Paired:
    """Method vs real-only baseline on one metric. Runs are paired by seed and share the test set
    (same order of samples). Bootstrap resamples test samples; t / Wilcoxon pair the seed values."""
    if test not in TESTS:
        raise ValueError(f"unknown paired test '{test}'; choose one of {TESTS}")
    if len(method_runs) != len(baseline_runs) or not method_runs:
        raise ValueError(f"paired comparison needs the same seeds on both sides, got {len(method_runs)} and {len(baseline_runs)} runs")
    if test == "bootstrap":
        return compare_tables([metric], method_runs, baseline_runs, b=b, seed=seed)[metric]
    fn = get_metric(metric)
    method_values = [fn(run).value for run in method_runs]
    baseline_values = [fn(run).value for run in baseline_runs]
    return (paired_t if test == "paired-t" else paired_wilcoxon)(method_values, baseline_values)


def compare_tables(metrics: Sequence[str], method_runs: Sequence[EvalInput], baseline_runs: Sequence[EvalInput],
                   baseline_table: tuple[np.ndarray, np.ndarray] | None = None, b: int = BOOTSTRAP_B,
                   seed: int = 0) -> dict[str, Paired]:
    """Paired bootstrap of several metrics at once; pass `baseline_table` (from bootstrap_table)
    to reuse the baseline's resamples across methods."""
    n = len(baseline_runs[0].y_true)
    if any(len(run.y_true) != n for run in [*method_runs, *baseline_runs]):
        raise ValueError("paired bootstrap needs every run evaluated on the same test samples")
    base_observed, base_resampled = baseline_table or bootstrap_table(metrics, baseline_runs, b, seed)
    observed, resampled = bootstrap_table(metrics, method_runs, b, seed)
    return {m: _bootstrap_p(float(observed[j] - base_observed[j]), resampled[:, j] - base_resampled[:, j])
            for j, m in enumerate(metrics)}


# ---- multiplicity ----

def holm(pvalues: Sequence[float]) -> np.ndarray:
    """Holm step-down adjusted p-values; NaN stays NaN and does not count as a test."""
    p = np.asarray(pvalues, dtype=float)
    out = np.full(len(p), math.nan)
    valid = np.flatnonzero(~np.isnan(p))
    order = valid[np.argsort(p[valid], kind="stable")]
    m = len(order)
    adjusted = np.maximum.accumulate(p[order] * (m - np.arange(m)))
    out[order] = np.minimum(adjusted, 1.0)
    return out


def bonferroni(pvalues: Sequence[float]) -> np.ndarray:
    p = np.asarray(pvalues, dtype=float)
    return np.minimum(p * np.count_nonzero(~np.isnan(p)), 1.0)


CORRECTIONS = {"holm": holm, "bonferroni": bonferroni}


def correct(pvalues: Sequence[float], method: str = "holm") -> np.ndarray:
    if method not in CORRECTIONS:
        raise ValueError(f"unknown correction '{method}'; choose one of {sorted(CORRECTIONS)}")
    return CORRECTIONS[method](pvalues)


# ---- across datasets ----

@dataclass
class Friedman:
    statistic: float
    p: float
    average_ranks: np.ndarray  # rank 1 = best
    critical_difference: float  # Nemenyi, at alpha


def nemenyi_cd(num_methods: int, num_datasets: int, alpha: float = 0.05) -> float:
    """Nemenyi critical difference q_α √(k(k+1) / 6N), q_α = studentized range / √2 (Demšar 2006)."""
    q = sps.studentized_range.ppf(1 - alpha, num_methods, np.inf) / math.sqrt(2)
    return float(q * math.sqrt(num_methods * (num_methods + 1) / (6 * num_datasets)))


def friedman_nemenyi(scores: np.ndarray, higher_is_better: bool = True, alpha: float = 0.05) -> Friedman | None:
    """Friedman test on a (datasets, methods) score table plus Nemenyi CD on average ranks.
    Returns None, with a warning, under 3 datasets or 3 methods (the test needs both)."""
    scores = np.asarray(scores, dtype=float)
    if scores.ndim != 2 or scores.shape[0] < 3 or scores.shape[1] < 3:
        progress.warn(f"Friedman/Nemenyi skipped: needs >= 3 datasets and >= 3 methods, got shape {scores.shape}")
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
    correct = np.asarray(inp.y_pred == inp.y_true)
    if correct.ndim == 2:  # multilabel: a sample is correct when all its labels are
        correct = correct.all(1)
    known = (inp.groups >= 0) & (inp.groups < len(inp.group_names))
    out = {}
    for code, name in enumerate(inp.group_names):
        in_group = inp.groups == code
        outgroup = known & ~in_group
        out[name] = beta_posterior_gap(int(correct[in_group].sum()), int(in_group.sum()),
                                       int(correct[outgroup].sum()), int(outgroup.sum()), draws, seed)
    return out
