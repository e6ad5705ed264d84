"""`ensemble_scores` against references: a hand-computed case, the closed-form CRPS of a
Gaussian (Gneiting, Raftery, Westveld & Goldman 2005, eq. 5, the citation of
`losses.crps_gaussian`) and the calibrated-ensemble identity E[spread^2] = E[rmse^2] (Fortin
et al. 2014) by Monte Carlo with its standard error; the weighted scores against the unweighted
ones and against importance-weighted particles of a known Gaussian."""

import math

import numpy as np
import pytest
from scipy.stats import norm

from jaxsci.metrics import ensemble_scores, interval_coverage


def test_hand_computed_case():
    ens = np.array([[[0.0, 1.0], [2.0, 3.0]]])  # one case, M = 2, two variables
    truth = np.array([[0.0, 0.0]])
    s = ensemble_scores(ens, truth)
    # mean (1, 2): rmse sqrt((1 + 4) / 2); member variance 2 (ddof 1) in both variables.
    np.testing.assert_allclose(s.rmse, math.sqrt(2.5), rtol=1e-6)
    np.testing.assert_allclose(s.spread, math.sqrt(1.5 * 2.0), rtol=1e-6)
    # fair CRPS: mean |x - y| - |x1 - x2| / 2 per variable: (1 - 1, 2 - 1) -> mean 0.5.
    np.testing.assert_allclose(s.crps, 0.5, rtol=1e-6)
    np.testing.assert_allclose(s.spread_skill, s.spread / s.rmse, rtol=1e-6)


def test_gaussian_crps_and_calibration():
    rng = np.random.default_rng(0)
    cases, m, d = 4000, 5, 3
    # Calibrated: truth and members are exchangeable N(0, 1) draws.
    truth = rng.normal(size=(cases, d))
    ens = rng.normal(size=(cases, m, d))
    s = ensemble_scores(ens, truth)
    mean = ens.mean(1)
    sq = np.mean((mean - truth) ** 2, -1)
    var = (m + 1) / m * np.mean(ens.var(1, ddof=1), -1)
    diff = var - sq  # E[diff] = 0 for a calibrated ensemble
    assert abs(diff.mean()) < 4 * diff.std(ddof=1) / math.sqrt(cases)
    assert 0.95 < float(s.spread_skill) < 1.05
    # Fair CRPS of N(0, 1) members is unbiased for the Gaussian CRPS averaged over the truth:
    # E_y CRPS(N(0, 1), y) for y ~ N(0, 1) is E|X - Y| - E|X - X'| / 2 = 1 / sqrt(pi).
    z = truth
    crps_exact = z * (2 * norm.cdf(z) - 1) + 2 * norm.pdf(z) - 1 / math.sqrt(math.pi)
    assert abs(float(s.crps) - crps_exact.mean()) < 0.02
    np.testing.assert_allclose(crps_exact.mean(), 1 / math.sqrt(math.pi), atol=0.02)
    # An overconfident ensemble (members with half the spread) has ratio well below 1.
    assert float(ensemble_scores(0.5 * ens, truth).spread_skill) < 0.7


def test_bad_shapes_are_named():
    with pytest.raises((ValueError, TypeError), match="ensembles"):
        ensemble_scores(np.zeros((3, 4)), np.zeros((3, 4)))
    with pytest.raises((ValueError, TypeError), match="truth"):
        ensemble_scores(np.zeros((3, 4, 2)), np.zeros((3, 3)))
    with pytest.raises((ValueError, TypeError), match="members"):
        ensemble_scores(np.zeros((3, 1, 2)), np.zeros((3, 2)))


def test_coverage_counts_the_central_interval_by_hand():
    """101 members 0..100 for each of 5 variables of one case; the 90% PIT window is
    [0.05, 0.95] * 102 = [5.1, 96.9] in rank units. A truth tied with one member has PIT
    uniform on [r, r + 2]/102 (r members below), an untied one on [r, r + 1]/102; the
    coverage is the overlap with the window over the length:
    4 -> (6 - 5.1)/2, 5 -> (7 - 5.1)/2, 50 -> 1, 95 -> (96.9 - 95)/2, 95.5 -> 96.9 - 96."""
    ens = np.tile(np.arange(101.0)[None, :, None], (1, 1, 5))
    truth = np.array([[4.0, 5.0, 50.0, 95.0, 95.5]])
    expected = (0.45 + 0.95 + 1.0 + 0.95 + 0.9) / 5
    assert float(interval_coverage(ens, truth, 0.9)) == pytest.approx(expected, abs=1e-6)
    assert float(interval_coverage(ens, truth, 0.999)) == pytest.approx(5 / 5)


@pytest.mark.slow
@pytest.mark.parametrize("m", [10, 99, 100])
def test_coverage_of_an_exchangeable_ensemble_is_the_level_at_any_size(m):
    """Truth and M members i.i.d.: the truth's rank is uniform on 0..M, so the expected
    rank-based coverage is exactly the level (the quantile interval of the members covered
    0.76 at M = 10 and 0.886 at M = 100). Per-case coverage lies in [0, 1], so its
    variance is at most 0.9 * 0.1 (Bhatia-Davis); 4 SE."""
    rng = np.random.default_rng(m)
    n = 20000
    ens, truth = rng.normal(size=(n, m, 1)), rng.normal(size=(n, 1))
    cov = float(interval_coverage(ens, truth, 0.9))
    se = np.sqrt(0.9 * 0.1 / n)
    assert abs(cov - 0.9) < 4 * se


def test_coverage_exact_expectation_over_ranks():
    """One case per possible rank r = 0..M of an untied truth: the mean over ranks is the
    expectation for an exchangeable truth, exactly the level (M = 10, level 0.9 and 0.5)."""
    m = 10
    ens = np.tile(np.arange(1.0, m + 1)[None, :, None], (m + 1, 1, 1))
    truth = np.arange(m + 1.0)[:, None] + 0.5
    for level in (0.9, 0.5):
        assert float(interval_coverage(ens, truth, level)) == pytest.approx(level, abs=1e-6)


def test_coverage_nan_member_or_truth_is_nan():
    ens = np.tile(np.arange(10.0)[None, :, None], (2, 1, 1))
    truth = np.array([[4.5], [5.5]])
    bad = ens.copy()
    bad[1, 3, 0] = np.nan
    assert np.isnan(float(interval_coverage(bad, truth)))
    assert np.isnan(float(interval_coverage(ens, np.array([[4.5], [np.nan]]))))


def test_coverage_bad_shapes_and_levels_are_named(own_checks):
    ens = np.zeros((4, 3, 2))
    with pytest.raises(ValueError, match="`truth` must have shape"):
        interval_coverage(ens, np.zeros((4, 3)))
    with pytest.raises(ValueError, match="level"):
        interval_coverage(ens, np.zeros((4, 2)), 1.0)
    with pytest.raises(ValueError, match="members"):
        interval_coverage(ens[:, :1], np.zeros((4, 2)))


def test_weighted_scores_equal_weights_are_the_unweighted_scores():
    rng = np.random.default_rng(3)
    ens, truth = rng.normal(size=(5, 7, 3)), rng.normal(size=(5, 3))
    s = ensemble_scores(ens, truth)
    w = ensemble_scores(ens, truth, np.full((5, 7), 3.0))  # normalised inside
    for a, b in zip(s, w, strict=True):
        np.testing.assert_allclose(a, b, rtol=2e-5)
    # Zero weights drop members: the scores of the others alone.
    w0 = np.ones((5, 7))
    w0[:, 4:] = 0.0
    for a, b in zip(
        ensemble_scores(ens[:, :4], truth), ensemble_scores(ens, truth, w0), strict=True
    ):
        np.testing.assert_allclose(a, b, rtol=2e-5)


def _inverse_cdf_index(cdf, u):
    return np.sum(u[:, :, None] > cdf[:, None, :], axis=-1)


@pytest.mark.slow
def test_weighted_crps_of_importance_weights_matches_the_gaussian_crps():
    """Self-normalised importance weights of N(0, 2^2) proposals for an N(0, 1) target, the
    truth y ~ N(0, 1): E_y CRPS(N(0, 1), y) = 1/sqrt(pi). The weighted particles score it
    within Monte-Carlo error; resampling them to 32 draws and scoring the draws as independent
    members (duplicates included) is biased up by many standard errors."""
    rng = np.random.default_rng(1)
    cases, n, blocks = 8000, 32, 20
    truth = rng.normal(size=(cases, 1))
    x = 2.0 * rng.normal(size=(cases, n, 1))
    logw = norm.logpdf(x[..., 0]) - norm.logpdf(x[..., 0], scale=2.0)
    w = np.exp(logw - logw.max(1, keepdims=True))
    w /= w.sum(1, keepdims=True)
    u = rng.uniform(size=(cases, n))  # multinomial resampling by the inverse CDF
    idx = np.minimum(_inverse_cdf_index(np.cumsum(w, 1), u), n - 1)
    draws = np.take_along_axis(x, idx[..., None], 1)
    exact = 1 / math.sqrt(math.pi)

    def crps_and_se(*args):
        per_block = [
            float(ensemble_scores(*a).crps)
            for a in zip(*(np.split(v, blocks) for v in args), strict=True)
        ]
        return np.mean(per_block), np.std(per_block, ddof=1) / math.sqrt(blocks)

    crps_w, se_w = crps_and_se(x, truth, w)
    assert abs(crps_w - exact) < 4 * se_w, (crps_w, se_w)
    crps_d, se_d = crps_and_se(draws, truth)
    assert crps_d - exact > 4 * se_d, (crps_d, se_d)
    assert 0.95 < float(ensemble_scores(x, truth, w).spread_skill) < 1.05


def test_weighted_scores_reject_bad_weights():
    ens, truth = np.zeros((2, 3, 1)), np.zeros((2, 1))
    with pytest.raises(ValueError, match="weights"):
        ensemble_scores(ens, truth, -np.ones((2, 3)))
    with pytest.raises(ValueError, match="weights"):
        ensemble_scores(ens, truth, np.array([[1.0, 0, 0], [1, 1, 1]]))
