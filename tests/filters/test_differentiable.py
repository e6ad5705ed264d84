"""Gradients of filter log-likelihoods with respect to model parameters."""

import importlib.util
import pathlib

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxsci import filters as F

from ._l96 import DT, attractor_state, obs_all
from ._linear import OBS_COV, OBS_MATRIX, TRANSITION, make_problem, sample_ensemble


@pytest.mark.slow
def test_enkf_log_likelihood_gradient_matches_finite_differences(x64):
    """d/dF of the DEnKF log-likelihood of Lorenz-96 observations, float64, against a central
    difference with step 1e-5 (truncation O(h^2) ~ 1e-10, rounding ~ 1e-16/1e-5 * |ll|)."""
    from jaxsci.dynamics import Lorenz96
    from jaxsci.integrate import Flow

    n, k = 40, 40
    obs_op = obs_all(n)
    x0 = jnp.asarray(attractor_state(n), dtype=jnp.float64)
    truth_flow = Flow(Lorenz96(n, 8.0), DT, max_steps=4)
    truth = jax.lax.scan(lambda x, _: (truth_flow(x, 0.0, DT),) * 2, x0, None, length=k)[1]
    ys = F.synthetic_observations(jax.random.key(0), obs_op, truth)
    ens0 = x0 + 0.5 * jax.random.normal(jax.random.key(1), (30, n), dtype=jnp.float64)
    filt = F.Inflation(F.DEnKF(), 1.05)

    def ll(forcing):
        flow = Flow(Lorenz96(n, forcing), DT, max_steps=4)
        return F.log_likelihood(jax.random.key(2), flow, obs_op, filt, ens0, ys, dt=DT)

    grad = eqx.filter_jit(jax.grad(ll))
    for forcing in (7.5, 8.3):
        g = float(grad(jnp.float64(forcing)))
        h = 1e-5
        fd = (float(ll(jnp.float64(forcing + h))) - float(ll(jnp.float64(forcing - h)))) / (2 * h)
        np.testing.assert_allclose(g, fd, rtol=1e-5)
    # the likelihood prefers the true forcing: the gradient points towards F = 8
    assert float(grad(jnp.float64(7.5))) > 0 > float(grad(jnp.float64(8.5)))


class ScaledLinear(eqx.Module):
    theta: jax.Array

    def __call__(self, x, t0, t1):
        return self.theta * jnp.asarray(TRANSITION, dtype=x.dtype) @ x


@pytest.mark.slow
def test_pf_gradient_estimate_is_consistent(x64):
    """Stop-gradient resampling: E[Z_hat * d log Z_hat / d theta] = dZ/dtheta, so the
    ratio-weighted average of the PF gradient estimates matches d log Z / d theta of the exact
    Kalman likelihood (computed by autodiff through `kalman_filter`). Linear-Gaussian model
    x_k = theta T x_{k-1} + q; z-score with the Monte-Carlo standard error over 2000 runs."""
    obs_op, ys = make_problem(n_cycles=4, seed=3)
    q = 0.3 * np.eye(3)
    from ._linear import COV0, MEAN0

    def exact_ll(theta):
        return F.kalman_filter(
            theta * TRANSITION, q, OBS_MATRIX, OBS_COV, MEAN0, COV0, ys
        ).log_likelihood

    theta0 = jnp.float64(0.95)
    ll_exact = float(exact_ll(theta0))
    g_exact = float(jax.grad(exact_ll)(theta0))
    pf = F.BootstrapPF(F.systematic, ess_threshold=1.0, differentiable=True)
    chol_q = jnp.asarray(np.linalg.cholesky(q))

    def one(key):
        k0, k1 = jax.random.split(key)
        ens0 = sample_ensemble(k0, 200)

        def ll(theta):
            return F.log_likelihood(
                k1, ScaledLinear(theta), obs_op, pf, ens0, ys, dt=1.0, process_noise_chol=chol_q
            )

        return jax.value_and_grad(ll)(theta0)

    ll_hat, g_hat = jax.vmap(one)(jax.random.split(jax.random.key(9), 2000))
    weighted = np.asarray(jnp.exp(ll_hat - ll_exact) * g_hat)
    mcse = weighted.std(ddof=1) / np.sqrt(weighted.size)
    assert abs(weighted.mean() - g_exact) < 4.0 * mcse, (weighted.mean(), g_exact, mcse)
    # informative: the 4-MCSE acceptance band is narrower than |g| itself
    assert mcse < 0.25 * abs(g_exact)
    # the plain average of d log Z_hat is consistent too (bias O(1/N)); a loose sanity check
    assert np.sign(np.mean(np.asarray(g_hat))) == np.sign(g_exact)


@pytest.mark.slow
def test_learn_forcing_example_converges():
    """examples/learn_l96_forcing.py at fast settings recovers F = 8 within 2%."""
    path = pathlib.Path(__file__).parents[2] / "examples" / "learn_l96_forcing.py"
    spec = importlib.util.spec_from_file_location("learn_l96_forcing", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    forcing, history = module.learn_forcing(n_cycles=100, n_steps=40, verbose=False)
    assert history[0][2] < 6.5
    assert abs(forcing - 8.0) / 8.0 < 0.02, forcing
