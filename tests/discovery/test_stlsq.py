"""STLSQ (Brunton et al. 2016) against its defining properties: hard thresholding of the
least-squares coefficients for an orthogonal design, exact recovery of noise-free sparse
data, and the least-squares covariance of the selected terms (NumPy)."""

import jax
import jax.numpy as jnp
import numpy as np

from jaxsci.discovery import STLSQ, normal_equations


def test_orthogonal_design_is_hard_thresholding(x64):
    # For orthonormal columns the least-squares coefficients do not interact, so STLSQ is
    # one hard threshold of the normalised coefficients w_j RMS(phi_j) / RMS(t).
    rng = np.random.default_rng(0)
    n = 400
    q, _ = np.linalg.qr(rng.normal(size=(n, 6)))
    scales = np.array([1.0, 1e3, 1e-2, 5.0, 1.0, 0.1])
    x = q * scales
    w = np.array([2.0, 1e-3, 30.0, 0.0, 0.05, 0.0])
    y = x @ w + 1e-3 * rng.normal(size=n)
    ols = np.linalg.lstsq(x, y, rcond=None)[0]
    normalised = ols * np.sqrt(np.mean(x**2, axis=0)) / np.sqrt(np.mean(y**2))
    for threshold in (0.01, 0.05, 0.2):
        fit = STLSQ(threshold=threshold).fit(jnp.asarray(x), jnp.asarray(y))
        keep = np.abs(normalised) >= threshold
        np.testing.assert_array_equal(np.asarray(fit.active), keep)
        np.testing.assert_allclose(
            np.asarray(fit.coefficients), np.where(keep, ols, 0.0), rtol=1e-9
        )


def test_noise_free_sparse_recovery_and_covariance(x64):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(300, 8)) * np.logspace(-2, 2, 8)
    w = np.zeros(8)
    w[[1, 5]] = [40.0, -0.02]
    fit = STLSQ().fit(jnp.asarray(x), jnp.asarray(x @ w))
    np.testing.assert_array_equal(np.flatnonzero(np.asarray(fit.active)), [1, 5])
    np.testing.assert_allclose(np.asarray(fit.coefficients), w, rtol=1e-9, atol=1e-12)
    # with noise: the covariance of the selected terms is sigma^2 (X_a^T X_a)^{-1}
    y = x @ w + 0.01 * rng.normal(size=300)
    fit = STLSQ().fit(jnp.asarray(x), jnp.asarray(y))
    a = np.asarray(fit.active)
    xa = x[:, a]
    coef = np.linalg.lstsq(xa, y, rcond=None)[0]
    sigma2 = np.sum((y - xa @ coef) ** 2) / (300 - a.sum())
    np.testing.assert_allclose(np.asarray(fit.coefficients)[a], coef, rtol=1e-8)
    np.testing.assert_allclose(float(fit.noise_variance), sigma2, rtol=1e-8)
    np.testing.assert_allclose(
        np.asarray(fit.covariance)[np.ix_(a, a)], sigma2 * np.linalg.inv(xa.T @ xa), rtol=1e-7
    )


def test_stlsq_jit_matches_eager():
    rng = np.random.default_rng(2)
    x = jnp.asarray(rng.normal(size=(200, 5)), jnp.float32)
    y = x @ jnp.asarray([1.0, 0.0, -0.5, 0.0, 0.01]) + 0.01 * jnp.asarray(rng.normal(size=200))
    eager = STLSQ().fit(x, y)
    jitted = jax.jit(lambda a, b: STLSQ().fit_normal(normal_equations(a, b)))(x, y)
    np.testing.assert_array_equal(eager.active, jitted.active)
    np.testing.assert_allclose(eager.coefficients, jitted.coefficients, rtol=1e-5)
    assert bool(eager.converged)


def test_threshold_sweep_is_one_vmap():
    # the threshold is an array field: a sweep is one vmapped fit, equal to one fit each
    rng = np.random.default_rng(3)
    x = jnp.asarray(rng.normal(size=(200, 5)), jnp.float32)
    y = x @ jnp.asarray([1.0, 0.0, -0.5, 0.0, 0.01]) + 0.01 * jnp.asarray(rng.normal(size=200))
    ne = normal_equations(x, y)
    thresholds = jnp.asarray([0.0, 0.005, 0.05, 0.5])
    fit = jax.jit(lambda t: STLSQ(threshold=t).fit_normal(ne))  # one compilation for all
    swept = jax.vmap(fit)(thresholds)
    for i, t in enumerate(thresholds):
        one = fit(t)
        np.testing.assert_array_equal(np.asarray(swept.active[i]), np.asarray(one.active))
        np.testing.assert_allclose(swept.coefficients[i], one.coefficients, rtol=1e-5, atol=1e-7)
    assert [int(a.sum()) for a in np.asarray(swept.active)] == [5, 3, 2, 1]
