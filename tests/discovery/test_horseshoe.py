"""Horseshoe regression (numpyro NUTS) against least squares on a problem where the data
dominate the prior: strong coefficients are left unshrunk (posterior mean within Monte
Carlo and posterior error of the OLS estimate), null coefficients are shrunk and dropped."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxsci.discovery import HorseshoeRegression


@pytest.mark.slow
def test_horseshoe_selects_and_matches_least_squares():
    rng = np.random.default_rng(0)
    n = 400
    x = rng.normal(size=(n, 5)) * np.array([1.0, 10.0, 0.1, 1.0, 1.0])
    w = np.array([0.8, 0.0, 20.0, 0.0, 0.0])
    y = x @ w + 0.1 * rng.normal(size=n)
    fit = HorseshoeRegression(num_warmup=300, num_samples=400).fit(
        jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.float32), key=jax.random.key(0)
    )
    np.testing.assert_array_equal(np.asarray(fit.active), [True, False, True, False, False])
    ols = np.linalg.lstsq(x, y, rcond=None)[0]
    draws = np.asarray(fit.draws)
    assert draws.shape == (400, 5)
    std = draws.std(axis=0)
    # |mean - OLS| below 4 x (posterior std, which also bounds the MC error of the mean)
    for j in (0, 2):
        assert abs(draws[:, j].mean() - ols[j]) < 4 * std[j], (j, draws[:, j].mean(), ols[j])
        np.testing.assert_allclose(float(fit.coefficients[j]), draws[:, j].mean(), rtol=1e-5)
    # the noise level is recovered
    assert 0.08**2 < float(fit.noise_variance) < 0.12**2
    assert bool(fit.converged)  # no divergent transitions
