"""`posterior_draws`: one sampler over a sequence of observations. TDS draws against the
exact posterior of a Gaussian prior (a one-component `GaussianMixture`, whose
`exact_posterior` is checked against quadrature in test_posterior.py) at two analysis times
with different observations; DPS's bookkeeping and the argument checks. The TDS tolerances
are loose on purpose: 50 steps leave the chain's discretisation bias (a few hundredths for
this prior, test_kalman_reference.py), and one run of 512 particles has no run-to-run
error estimate for the std."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxsci.diffusion as jd
from jaxsci.observations import IndexObservation

PRIOR = ([1.0], [[0.5, -1.0]], [[1.0, 0.6]])  # one Gaussian component, d = 2
YS = [[1.5], [-1.0]]


@pytest.mark.slow  # compile-dominated, ~9 s on the loaded 2-core machine
def test_tds_draws_follow_each_exact_posterior():
    prior = jd.GaussianMixture(*PRIOR)
    obs = IndexObservation(2, [0], noise_std=0.5)
    sch = jd.VPLinear()
    grid = jd.time_grid(sch, 50)
    tds = jd.TDS(obs, [0.0], twist=jd.PiGDMTwist(1.0))
    n = 512
    out = jd.posterior_draws(
        tds, prior.eps_model(sch), sch, grid, jnp.asarray(YS), n, key=jax.random.key(0)
    )
    assert out.samples.shape == (2, n, 2)
    assert out.particles.shape == (2, n, 2) and out.weights.shape == (2, n)
    np.testing.assert_allclose(np.asarray(out.weights).sum(1), 1.0, rtol=1e-5)
    assert not np.any(np.asarray(out.collapsed))
    for k, y in enumerate(YS):
        post = jd.exact_posterior(prior, obs, y)
        x = np.asarray(out.samples[k])
        # Monte-Carlo error of a mean of resampled draws: std / sqrt(ESS); 50 steps add a
        # discretisation bias of a few hundredths for this prior (test_kalman_reference.py).
        se = np.sqrt(np.diag(np.asarray(post.covariance())) / float(out.ess[k]))
        assert np.all(np.abs(x.mean(0) - np.asarray(post.mean())) < 4 * se + 0.1), (k, x.mean(0))
        xw = np.asarray(out.weights[k]) @ np.asarray(out.particles[k])  # the weighted mean
        assert np.all(np.abs(xw - np.asarray(post.mean())) < 4 * se + 0.1), (k, xw)
        std = math.sqrt(float(post.covariance()[0, 0]))
        assert abs(x[:, 0].std() - std) < 0.2 * std, (k, x[:, 0].std(), std)
    # the two analyses differ: each follows its own observation
    assert float(out.samples[0, :, 0].mean()) > float(out.samples[1, :, 0].mean()) + 1.0


@pytest.mark.slow
def test_dps_draws_and_bad_input():
    prior = jd.GaussianMixture(*PRIOR)
    obs = IndexObservation(2, [0], noise_std=0.5)
    sch = jd.VPLinear()
    grid = jd.time_grid(sch, 10)
    dps = jd.DPS(obs, [0.0], zeta=0.5)
    out = jd.posterior_draws(
        dps, prior.eps_model(sch), sch, grid, jnp.asarray(YS), 8, key=jax.random.key(0)
    )
    assert out.samples.shape == (2, 8, 2)
    np.testing.assert_array_equal(out.ess, 8.0)
    np.testing.assert_array_equal(out.particles, out.samples)  # DPS: equal weights
    np.testing.assert_allclose(out.weights, 1 / 8)
    assert np.all(np.isfinite(np.asarray(out.samples)))
    with pytest.raises((ValueError, TypeError), match="observations"):
        jd.posterior_draws(
            dps, prior.eps_model(sch), sch, grid, jnp.zeros((2, 3)), 8, key=jax.random.key(0)
        )
    with pytest.raises((ValueError, TypeError), match="num_particles"):
        jd.posterior_draws(
            dps,
            prior.eps_model(sch),
            sch,
            grid,
            jnp.asarray(YS),
            8,
            key=jax.random.key(0),
            num_particles=16,
        )
    # a Denoiser brings its own schedule: another `schedule` is refused, not ignored
    den = jd.Denoiser(prior.eps_model(sch), sch, jd.EpsPrediction())
    with pytest.raises(ValueError, match="schedule"):
        jd.posterior_draws(dps, den, jd.VPCosine(), grid, jnp.asarray(YS), 8, key=jax.random.key(0))
    jd.posterior_draws(dps, den, sch, grid, jnp.asarray(YS), 2, key=jax.random.key(0))
    with pytest.raises(TypeError, match="sampler"):
        jd.posterior_draws(
            jd.DDIM(), prior.eps_model(sch), sch, grid, jnp.asarray(YS), 8, key=jax.random.key(0)
        )
