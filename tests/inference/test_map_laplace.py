"""MAP and Laplace against closed forms, and as a sampler start.

Gaussian regression (flat constraint): the posterior is Gaussian, so the mode is the exact
posterior mean and the Laplace covariance the exact posterior covariance. Gamma-Poisson in
unconstrained space u = log(rate): p(u) = Gamma(e^u; a', b') e^u is proportional to
exp(a' u - b' e^u), so the mode is u* = log(a'/b') and -d^2 log p/du^2 = b' e^{u*} = a', i.e.
Laplace variance 1/a'.
"""

import jax
import numpy as np
import pytest

from jaxsci import inference

from ._conjugate import COV, MEAN, POISSON, RATE_RATE, RATE_SHAPE, REGRESSION


def test_gaussian_mode_and_covariance_are_exact():
    mode = inference.map_estimate(REGRESSION, init={"beta": np.zeros(3)})
    assert bool(mode.converged)
    np.testing.assert_allclose(np.asarray(mode.params["beta"]), MEAN, atol=2e-4)
    approx = inference.laplace(mode)
    assert bool(approx.ok)
    np.testing.assert_allclose(np.asarray(approx.cov), COV, rtol=2e-3, atol=1e-6)
    draws = approx.sample(jax.random.key(0), 20_000)["beta"]
    se = np.sqrt(np.diag(COV) / 20_000)
    assert np.all(np.abs(np.asarray(draws).mean(axis=0) - MEAN) < 4 * se)


def test_gamma_poisson_unconstrained_laplace():
    approx = inference.laplace(POISSON, init={"rate": 1.0})
    np.testing.assert_allclose(float(approx.mean[0]), np.log(RATE_SHAPE / RATE_RATE), rtol=1e-4)
    np.testing.assert_allclose(float(approx.map.params["rate"]), RATE_SHAPE / RATE_RATE, rtol=1e-4)
    np.testing.assert_allclose(float(approx.cov[0, 0]), 1.0 / RATE_SHAPE, rtol=1e-3)


@pytest.mark.slow
def test_laplace_and_map_start_the_sampler():
    approx = inference.laplace(REGRESSION, init={"beta": np.zeros(3)})
    result = inference.posterior(
        REGRESSION,
        key=jax.random.key(0),
        init=approx,
        num_chains=2,
        num_warmup=100,
        num_samples=100,
        progress_bar=False,
    )
    # the chains start at distinct Laplace draws
    starts = result.init
    assert starts.shape == (2, 3) and not np.allclose(starts[0], starts[1])
    result = inference.posterior(
        REGRESSION,
        key=jax.random.key(0),
        init=approx.map,
        num_chains=2,
        num_warmup=100,
        num_samples=100,
        progress_bar=False,
    )
    np.testing.assert_allclose(result.init, np.broadcast_to(np.asarray(approx.mean), (2, 3)))
    with pytest.raises(ValueError, match="init='map'"):
        inference.map_estimate(REGRESSION, init="map")
