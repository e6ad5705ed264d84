"""The RVM against independent computations: scikit-learn's ARDRegression (MacKay's
fixed-point evidence updates) on the same design matrix, and the evidence itself written
out as a dense Gaussian log-density (scipy), whose optimality conditions the fit must meet.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.stats import multivariate_normal
from sklearn.linear_model import ARDRegression

from jaxsci.discovery import RVM, normal_equations

# badly scaled columns on purpose (1e-3 .. 1e3): the fit must not care
SCALES = np.array([1e-3, 1.0, 1e3, 1.0, 10.0, 0.1, 1.0, 1.0])
SUPPORT = [0, 2, 4]
WEIGHTS = [2e3, -1e-3, 0.05]
NOISE = 0.1


def _problem(seed=0, n=300):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, SCALES.size)) * SCALES
    w = np.zeros(SCALES.size)
    w[SUPPORT] = WEIGHTS
    return x, x @ w + NOISE * rng.normal(size=n), w


def _log_evidence(x, y, alpha, beta):
    """log N(y; 0, I/beta + X_a diag(1/alpha_a) X_a^T), dense (the definition)."""
    active = np.isfinite(alpha)
    xa = x[:, active]
    cov = np.eye(len(y)) / beta + (xa / alpha[active]) @ xa.T
    return multivariate_normal(np.zeros(len(y)), cov).logpdf(y)


@pytest.mark.parametrize("seed", [0, 1])
def test_rvm_matches_sklearn_ard(x64, seed):
    x, y, _ = _problem(seed)
    fit = RVM(tolerance=1e-8).fit(jnp.asarray(x), jnp.asarray(y))
    assert bool(fit.converged)
    # MacKay updates with the hyperpriors switched off, run to convergence: the same
    # evidence maximum reached by a different algorithm. Pruning at lambda > 1e8 (the
    # relevant precisions here are <= 1e6; irrelevant ones grow without bound).
    ard = ARDRegression(
        fit_intercept=False,
        max_iter=100_000,
        tol=1e-10,
        threshold_lambda=1e8,
        alpha_1=0.0,
        alpha_2=0.0,
        lambda_1=0.0,
        lambda_2=0.0,
    ).fit(x, y)
    kept = ard.lambda_ < 1e8
    active = np.asarray(fit.active)
    np.testing.assert_array_equal(active, kept)
    assert set(SUPPORT) <= set(np.flatnonzero(active))  # (a noise column may be relevant too)
    np.testing.assert_allclose(np.asarray(fit.coefficients), ard.coef_, rtol=1e-6, atol=0)
    np.testing.assert_allclose(float(fit.noise_variance), 1.0 / ard.alpha_, rtol=1e-6)
    np.testing.assert_allclose(np.asarray(fit.precisions)[active], ard.lambda_[kept], rtol=1e-5)
    cov = np.asarray(fit.covariance)[np.ix_(active, active)]
    np.testing.assert_allclose(cov, ard.sigma_, rtol=1e-5, atol=0)
    # pruned terms: exactly zero, zero covariance, infinite precision
    assert np.all(np.asarray(fit.coefficients)[~active] == 0)
    assert np.all(np.asarray(fit.covariance)[~active] == 0)
    assert np.all(np.isinf(np.asarray(fit.precisions)[~active]))


def test_rvm_is_an_evidence_maximum(x64):
    x, y, _ = _problem(2, n=120)
    fit = RVM(tolerance=1e-9).fit(jnp.asarray(x), jnp.asarray(y))
    alpha = np.asarray(fit.precisions, dtype=float)
    beta = 1.0 / float(fit.noise_variance)
    active = np.isfinite(alpha)
    ref = _log_evidence(x, y, alpha, beta)
    np.testing.assert_allclose(float(fit.log_evidence), ref, rtol=1e-9)
    # stationary in log alpha_j (active j) and log beta: central differences of the dense
    # evidence vanish (relative to the curvature scale of one unit in log space)
    h = 1e-4
    for j in np.flatnonzero(active):
        up, dn = alpha.copy(), alpha.copy()
        up[j] *= np.exp(h)
        dn[j] *= np.exp(-h)
        grad = (_log_evidence(x, y, up, beta) - _log_evidence(x, y, dn, beta)) / (2 * h)
        assert abs(grad) < 1e-4, (j, grad)
    grad = (
        _log_evidence(x, y, alpha, beta * np.exp(h)) - _log_evidence(x, y, alpha, beta * np.exp(-h))
    ) / (2 * h)
    assert abs(grad) < 1e-4, grad
    # pruned terms: adding any one back at a finite precision lowers the evidence, which
    # is T&F's condition q_j^2 <= s_j with s, q computed from the dense C
    cov = np.eye(len(y)) / beta + (x[:, active] / alpha[active]) @ x[:, active].T
    cinv = np.linalg.inv(cov)
    for j in np.flatnonzero(~active):
        s = x[:, j] @ cinv @ x[:, j]
        q = x[:, j] @ cinv @ y
        assert q**2 <= s, (j, q**2, s)
        for a in (1e-3, 1.0, 1e3):
            trial = alpha.copy()
            trial[j] = a / SCALES[j] ** 2
            assert _log_evidence(x, y, trial, beta) < ref


def test_rvm_closed_form_posterior_for_the_selected_set(x64):
    # With alpha, beta fixed at the fit, mu and Sigma are the conjugate Gaussian posterior.
    x, y, _ = _problem(3)
    fit = RVM(tolerance=1e-9).fit(jnp.asarray(x), jnp.asarray(y))
    a = np.asarray(fit.active)
    alpha = np.asarray(fit.precisions)[a]
    beta = 1.0 / float(fit.noise_variance)
    xa = x[:, a]
    sigma = np.linalg.inv(np.diag(alpha) + beta * xa.T @ xa)
    mu = beta * sigma @ xa.T @ y
    np.testing.assert_allclose(np.asarray(fit.coefficients)[a], mu, rtol=1e-8)
    np.testing.assert_allclose(np.asarray(fit.covariance)[np.ix_(a, a)], sigma, rtol=1e-7)


def test_rvm_float32_scale_invariance():
    # The ARD evidence is invariant to column scaling (alpha_j absorbs it); with the
    # internal normalisation the float32 fit is too, across six orders of magnitude.
    x, y, _ = _problem(4)
    x32, y32 = jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.float32)
    base = RVM().fit(x32, y32)
    c = jnp.asarray([1e3, 1.0, 1e-3, 2.0, 1e-2, 10.0, 1.0, 0.5], jnp.float32)
    scaled = RVM().fit(x32 * c, y32)
    np.testing.assert_array_equal(np.asarray(base.active), np.asarray(scaled.active))
    np.testing.assert_allclose(
        np.asarray(scaled.coefficients * c), np.asarray(base.coefficients), rtol=1e-4
    )
    assert bool(base.converged) and bool(scaled.converged)
    w = np.zeros(SCALES.size)
    w[SUPPORT] = WEIGHTS
    np.testing.assert_allclose(np.asarray(base.coefficients)[SUPPORT], WEIGHTS, rtol=0.05)


def test_rvm_noise_free_recovers_the_support_exactly():
    # Exact data: beta sits on the noise floor and only the true terms enter.
    rng = np.random.default_rng(5)
    x = rng.normal(size=(500, 10)).astype(np.float32)
    w = np.zeros(10, np.float32)
    w[[1, 6]] = [0.3, -2.0]
    fit = RVM().fit(jnp.asarray(x), jnp.asarray(x @ w))
    np.testing.assert_array_equal(np.flatnonzero(np.asarray(fit.active)), [1, 6])
    np.testing.assert_allclose(np.asarray(fit.coefficients), w, rtol=1e-4, atol=1e-6)


@pytest.mark.slow
def test_rvm_jit_vmap_and_normal_equations():
    x, y, _ = _problem(6)
    x32, y32 = jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.float32)
    rvm = RVM()
    eager = rvm.fit(x32, y32)
    jitted = jax.jit(lambda a, b: rvm.fit_normal(normal_equations(a, b)))(x32, y32)
    # float32 rounding may stop the two at slightly different iterates: compare on the
    # scale of the posterior standard deviation
    np.testing.assert_array_equal(eager.active, jitted.active)
    np.testing.assert_array_less(
        np.abs(eager.coefficients - jitted.coefficients), 0.05 * eager.std + 1e-30
    )
    # a batch of targets in one vmapped call
    ys = jnp.stack([y32, 2.0 * y32, -y32])
    batch = jax.vmap(lambda b: rvm.fit_normal(normal_equations(x32, b)))(ys)
    tol = 0.05 * eager.std + 1e-30
    np.testing.assert_array_less(np.abs(batch.coefficients[0] - eager.coefficients), tol)
    np.testing.assert_array_less(np.abs(batch.coefficients[1] - 2.0 * eager.coefficients), 2 * tol)
    np.testing.assert_array_less(np.abs(batch.coefficients[2] + eager.coefficients), tol)
