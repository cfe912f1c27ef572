"""Golden tests for harness.stats: hand formulas, scipy agreement, seeding, corrections."""
import math

import numpy as np
import pytest
from scipy import stats as sps

from harness import stats
from harness.metrics import EvalInput

from metric_toys import binary_toy


def test_test_resamples_are_seeded_and_their_weights_count_the_indices():
    resamples = stats.resample_test_set(50, 30, seed=4, with_all=True)
    assert np.array_equal(resamples.indices[0], np.arange(50)) and (resamples.weights[0] == 1).all()
    for index, weights in zip(resamples.indices, resamples.weights):
        assert np.array_equal(np.bincount(index, minlength=50), weights)
    again = stats.resample_test_set(50, 30, seed=4)
    assert np.array_equal(again.indices, resamples.indices[1:])
    assert not np.array_equal(stats.resample_test_set(50, 30, seed=5).indices, again.indices)


def test_two_level_bootstrap_without_test_noise_is_the_paired_t_test():
    """When every test resample gives the observed differences, only the replicate level is
    left, and its exact p is the paired t-test's (scipy.stats.ttest_rel)."""
    method, base = np.array([0.81, 0.84, 0.80, 0.86]), np.array([0.78, 0.80, 0.79, 0.81])
    differences = np.repeat((method - base)[:, None, None], 1 + 20_000, axis=1)
    result = stats.hierarchical_bootstrap(differences, seed=1)[0]
    assert result.p == pytest.approx(sps.ttest_rel(method, base).pvalue, rel=1e-9)
    t_interval = sps.ttest_rel(method, base).confidence_interval(0.95)
    half_width = (t_interval.high - t_interval.low) / 2  # the CI's draws are Monte Carlo: close, not equal
    assert (result.ci_low, result.ci_high) == pytest.approx((t_interval.low, t_interval.high), abs=0.05 * half_width)
    assert result.diff == pytest.approx((method - base).mean())


def test_two_level_bootstrap_adds_only_the_test_variance_replicates_share():
    rng = np.random.default_rng(0)
    shared = rng.normal(0, 0.02, 1000)  # the test set moves every replicate alike
    own = rng.normal(0, 0.02, (3, 1000))  # each replicate's own test noise is in its spread already
    differences = np.concatenate([np.full((3, 1, 1), 0.01), (0.01 + shared + own)[:, :, None]], axis=1)
    differences[:, 0, 0] = [0.0, 0.01, 0.02]
    result = stats.hierarchical_bootstrap(differences)[0]
    assert result.se == pytest.approx(math.sqrt(0.01 ** 2 / 3 + 0.02 ** 2), rel=0.15)


def test_minimum_detectable_effect_is_statsmodels_t_power():
    from statsmodels.stats.power import TTestPower

    se, n = 0.01, 5
    effect = TTestPower().solve_power(nobs=n, alpha=0.05, power=0.8)
    assert stats.minimum_detectable_effect(se, n) == pytest.approx(effect * se * math.sqrt(n))
    # the t-quantile approximation (t_{1-α/2} + t_{power}) · se is close
    assert stats.minimum_detectable_effect(se, n) == pytest.approx((sps.t.ppf(0.975, 4) + sps.t.ppf(0.8, 4)) * se, rel=0.02)
    assert math.isnan(stats.minimum_detectable_effect(se, 1))


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


def test_holm_and_bonferroni_by_hand_and_as_statsmodels():
    from statsmodels.stats.multitest import multipletests

    p = [0.01, 0.04, 0.03, math.nan]
    assert stats.holm(p)[:3] == pytest.approx([0.03, 0.06, 0.06]) and math.isnan(stats.holm(p)[3])
    assert stats.correct(p, "bonferroni")[:3] == pytest.approx([0.03, 0.12, 0.09])
    assert stats.correct([0.5, 0.6], "holm") == pytest.approx([1.0, 1.0])
    many = np.random.default_rng(0).random(40) ** 3
    assert stats.holm(many) == pytest.approx(multipletests(many, method="holm")[1])
    with pytest.raises(ValueError, match="unknown correction"):
        stats.correct(p, "fdr")


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


def test_friedman_warns_and_skips_under_three_blocks(capsys):
    assert stats.friedman_nemenyi(np.array([[0.9, 0.8, 0.7], [0.8, 0.7, 0.6]])) is None
    assert "needs >= 3 blocks" in capsys.readouterr().err


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
