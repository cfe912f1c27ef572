"""Golden tests for harness.stats: hand formulas, scipy agreement, seeding, corrections."""
import math

import numpy as np
import pytest
from scipy import stats as sps

from harness import stats
from harness.metrics import EvalInput

from metric_toys import binary_toy


def test_seed_summary_t_interval_by_hand():
    s = stats.seed_summary([1.0, 2.0, 3.0])
    assert (s.mean, s.sd, s.n) == (2.0, 1.0, 3)
    half = 4.302652729911275 / math.sqrt(3)  # t_{0.975, 2}
    assert (s.ci_low, s.ci_high) == pytest.approx((2 - half, 2 + half))
    one = stats.seed_summary([0.7, math.nan])
    assert one.n == 1 and one.mean == 0.7 and math.isnan(one.sd)


def test_bootstrap_ci_is_seeded_and_has_the_normal_width():
    x = np.random.default_rng(0).normal(size=400)
    statistic = lambda idx: float(x[idx].mean())
    low, high = stats.bootstrap_ci(statistic, len(x), seed=3)
    assert (low, high) == stats.bootstrap_ci(statistic, len(x), seed=3)
    assert low < x.mean() < high
    assert high - low == pytest.approx(2 * 1.96 * x.std() / math.sqrt(len(x)), rel=0.15)


def runs_with_accuracy(p_correct: float, seeds: int, n: int = 600) -> list[EvalInput]:
    rng = np.random.default_rng(123)
    y = rng.integers(0, 2, n)
    runs = []
    for s in range(seeds):
        r = np.random.default_rng(s + int(p_correct * 1000))
        pred = np.where(r.random(n) < p_correct, y, 1 - y)
        runs.append(EvalInput(y, np.eye(2)[pred], rng.integers(0, 2, n), ["a", "b"]))
    return runs


def test_paired_bootstrap_detects_a_real_difference_and_not_a_null_one():
    better, baseline = runs_with_accuracy(0.85, 3), runs_with_accuracy(0.7, 3)
    result = stats.compare_to_baseline("acc", better, baseline, b=300)
    assert result.diff == pytest.approx(np.mean([r.y_pred.__eq__(r.y_true).mean() for r in better])
                                        - np.mean([r.y_pred.__eq__(r.y_true).mean() for r in baseline]))
    assert result.p < 0.01 and result.ci_low > 0
    same = stats.compare_to_baseline("acc", baseline, baseline, b=300)
    assert same.diff == 0 and same.p == 1.0


def test_paired_t_and_wilcoxon_match_hand_formula_and_scipy():
    method, base = [0.81, 0.84, 0.80, 0.86, 0.83], [0.78, 0.80, 0.79, 0.81, 0.80]
    d = np.subtract(method, base)
    t_by_hand = d.mean() / (d.std(ddof=1) / math.sqrt(len(d)))
    p_by_hand = 2 * sps.t.sf(abs(t_by_hand), len(d) - 1)
    result = stats.paired_t(method, base)
    assert result.p == pytest.approx(p_by_hand) and result.diff == pytest.approx(d.mean())
    assert result.p == pytest.approx(sps.ttest_rel(method, base).pvalue)
    # all five differences positive: exact two-sided signed-rank p = 2 / 2^5
    assert stats.paired_wilcoxon(method, base).p == pytest.approx(2 / 32)
    assert stats.paired_wilcoxon(method, base).p == pytest.approx(sps.wilcoxon(method, base).pvalue)


def test_compare_to_baseline_refuses_unpaired_runs():
    with pytest.raises(ValueError, match="same seeds"):
        stats.compare_to_baseline("acc", runs_with_accuracy(0.8, 3), runs_with_accuracy(0.7, 2), test="paired-t")
    with pytest.raises(ValueError, match="unknown paired test"):
        stats.compare_to_baseline("acc", runs_with_accuracy(0.8, 3), runs_with_accuracy(0.7, 3), test="z")


def test_holm_and_bonferroni_by_hand():
    p = [0.01, 0.04, 0.03, math.nan]
    assert stats.holm(p)[:3] == pytest.approx([0.03, 0.06, 0.06]) and math.isnan(stats.holm(p)[3])
    assert stats.bonferroni(p)[:3] == pytest.approx([0.03, 0.12, 0.09])
    assert stats.correct([0.5, 0.6], "holm") == pytest.approx([1.0, 1.0])


def test_friedman_matches_rank_formula_and_scipy():
    scores = np.array([[0.9, 0.8, 0.7], [0.85, 0.86, 0.6], [0.7, 0.65, 0.66], [0.9, 0.7, 0.8]])
    result = stats.friedman_nemenyi(scores)
    n, k = scores.shape
    ranks = np.array([[1, 2, 3], [2, 1, 3], [1, 3, 2], [1, 3, 2]], dtype=float)
    chi2_by_hand = 12 * n / (k * (k + 1)) * np.sum(ranks.mean(0) ** 2 - ((k + 1) / 2) ** 2)
    assert result.average_ranks == pytest.approx(ranks.mean(0))
    assert result.statistic == pytest.approx(chi2_by_hand)
    assert result.p == pytest.approx(sps.friedmanchisquare(*scores.T).pvalue)


@pytest.mark.parametrize("k,q", [(2, 1.960), (3, 2.343), (4, 2.569), (5, 2.728), (10, 3.164)])
def test_nemenyi_critical_difference_uses_demsar_table(k, q):
    assert stats.nemenyi_cd(k, 10) == pytest.approx(q * math.sqrt(k * (k + 1) / 60), abs=1e-3)


def test_friedman_warns_and_skips_under_three_datasets(capsys):
    assert stats.friedman_nemenyi(np.array([[0.9, 0.8, 0.7], [0.8, 0.7, 0.6]])) is None
    assert "needs >= 3 datasets" in capsys.readouterr().err


def test_beta_posterior_matches_closed_form_moments():
    post = stats.beta_posterior_gap(30, 50, 160, 200, seed=1)
    mean_g, mean_o = 31 / 52, 161 / 202
    var = lambda a, b: a * b / ((a + b) ** 2 * (a + b + 1))
    assert post.mean_diff == pytest.approx(mean_g - mean_o, abs=2e-3)
    assert post.sd == pytest.approx(math.sqrt(var(31, 21) + var(161, 41)), rel=0.02)
    assert post.p_negative > 0.99
    assert post == stats.beta_posterior_gap(30, 50, 160, 200, seed=1)


def test_accuracy_posteriors_per_group():
    posts = stats.accuracy_posteriors(binary_toy(), draws=20000)  # group a 2/4 correct, b 3/4
    assert posts["a"].mean_diff == pytest.approx(3 / 6 - 4 / 6, abs=0.01)
    assert posts["b"].mean_diff == pytest.approx(-posts["a"].mean_diff, abs=0.01)


def test_mann_whitney_u_counts_pairs():
    a, b = [0.81, 0.79, 0.85, 0.88], [0.70, 0.80, 0.75]
    u_by_hand = sum((x > y) + 0.5 * (x == y) for x in a for y in b)
    u, p = stats.mann_whitney(a, b)
    assert u == u_by_hand == 11
    assert p == pytest.approx(sps.mannwhitneyu(a, b).pvalue)
