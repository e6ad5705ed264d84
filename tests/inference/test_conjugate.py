"""Conjugate posteriors (exact answers) through every sampler: means and sds within MCSE bounds.

Gaussian linear regression with a Gaussian prior on the coefficients has the exact posterior
N(S X^T y / s^2, S), S = (I / s0^2 + X^T X / s^2)^{-1}; a Gamma(a, b) prior on a Poisson rate
gives Gamma(a + sum y, b + n) (its mean and sd check the Positive constraint's Jacobian). Each
estimate must lie within 4 Monte-Carlo standard errors (the run's own mcse_mean / mcse_sd) of
the exact value.
"""

import arviz as az
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxsci import inference

from ._conjugate import (
    COV,
    MEAN,
    POISSON,
    RATE_RATE,
    RATE_SHAPE,
    REGRESSION,
    S,
    X,
    Y,
    numpyro_regression,
)

SAMPLERS = {
    "nuts": inference.NUTS(),
    "hmc": inference.HMC(num_integration_steps=8, dense_mass=True),
    "numpyro_nuts": inference.NumpyroNUTS(dense_mass=True),
}


def _within_mcse(summary, name, mean, sd):
    row = summary[name]
    assert abs(row["mean"] - mean) < 4 * row["mcse_mean"], (name, row, mean)
    assert abs(row["sd"] - sd) < 4 * row["mcse_sd"], (name, row, sd)
    assert row["rhat"] < 1.01 and row["ess_bulk"] > 400, (name, row)


@pytest.mark.slow
@pytest.mark.parametrize("name", list(SAMPLERS))
def test_gaussian_regression(name):
    result = inference.posterior(
        REGRESSION,
        key=jax.random.key(1),
        sampler=SAMPLERS[name],
        num_chains=4,
        num_warmup=400,
        num_samples=500,
        progress_bar=False,
    )
    summary = result.summary()
    for i in range(3):
        _within_mcse(summary, f"beta[{i + 1}]", MEAN[i], np.sqrt(COV[i, i]))
    assert result.divergences == 0
    assert result.draws["beta"].shape == (4, 500, 3)
    # the posterior correlation is recovered too (a dense-mass target)
    draws = result.draws["beta"].reshape(-1, 3)
    np.testing.assert_allclose(np.cov(draws.T), COV, atol=0.1 * np.max(np.diag(COV)))


@pytest.mark.slow
def test_gamma_poisson_positive_constraint():
    result = inference.posterior(
        POISSON,
        key=jax.random.key(2),
        num_chains=4,
        num_warmup=300,
        num_samples=500,
        progress_bar=False,
    )
    _within_mcse(result.summary(), "rate", RATE_SHAPE / RATE_RATE, np.sqrt(RATE_SHAPE) / RATE_RATE)


@pytest.mark.slow
def test_numpyro_model_target():
    """The same regression written as a numpyro model, sampled by blackjax NUTS."""
    result = inference.posterior(
        numpyro_regression,
        key=jax.random.key(3),
        model_args=(jnp.asarray(X),),
        model_kwargs={"y": jnp.asarray(Y)},
        num_chains=2,
        num_warmup=300,
        num_samples=500,
        progress_bar=False,
    )
    summary = result.summary()
    for i in range(3):
        _within_mcse(summary, f"beta[{i + 1}]", MEAN[i], np.sqrt(COV[i, i]))
    pred = result.posterior_predictive(jax.random.key(4), None, jnp.asarray(X))
    assert pred["y"].shape == (2, 500, 12)
    # predictive mean = X E[beta], predictive var = x S x^T + s^2 per observation
    np.testing.assert_allclose(pred["y"].mean(axis=(0, 1)), X @ MEAN, atol=0.1)
    np.testing.assert_allclose(
        pred["y"].var(axis=(0, 1)), np.einsum("ij,jk,ik->i", X, COV, X) + S**2, rtol=0.15
    )


@pytest.mark.slow
def test_same_key_same_draws_and_arviz():
    kwargs = dict(num_chains=3, num_warmup=100, num_samples=100, progress_bar=False)
    a = inference.posterior(REGRESSION, key=jax.random.key(5), **kwargs)
    b = inference.posterior(REGRESSION, key=jax.random.key(5), **kwargs)
    c = inference.posterior(REGRESSION, key=jax.random.key(6), **kwargs)
    np.testing.assert_array_equal(a.draws["beta"], b.draws["beta"])
    assert not np.array_equal(a.draws["beta"], c.draws["beta"])
    # chain c's transitions do not depend on the number of chains or the chunking (up to
    # float rounding, which an MCMC trajectory amplifies: compare the first ones)
    d = inference.posterior(
        REGRESSION, key=jax.random.key(5), **{**kwargs, "num_chains": 2}, chunk_size=7
    )
    np.testing.assert_allclose(
        d.warmup_stats["lp"][:, :10], a.warmup_stats["lp"][:2, :10], rtol=1e-4, atol=1e-4
    )

    idata = a.to_arviz(observed_data={"y": Y})
    assert set(idata.groups()) >= {"posterior", "sample_stats", "observed_data"}
    assert idata.posterior["beta"].shape == (3, 100, 3)
    stats = set(idata.sample_stats.data_vars)
    assert {"diverging", "tree_depth", "step_size", "acceptance_rate", "n_steps", "lp"} <= stats
    assert idata.sample_stats["diverging"].dtype == bool
    # the summary's R-hat / ESS are ArviZ's on the same draws
    summary = a.summary()
    ref = az.summary(idata, var_names=["beta"], kind="diagnostics", round_to="none")
    for i in range(3):
        row = summary[f"beta[{i + 1}]"]
        np.testing.assert_allclose(row["rhat"], ref.loc[f"beta[{i}]", "r_hat"], rtol=1e-5)
        np.testing.assert_allclose(row["ess_bulk"], ref.loc[f"beta[{i}]", "ess_bulk"], rtol=1e-5)
        np.testing.assert_allclose(row["ess_tail"], ref.loc[f"beta[{i}]", "ess_tail"], rtol=1e-5)
    # statistics are consistent with the sampler: gradient evaluations = leapfrog steps
    assert a.grad_evals == int(a.sample_stats["n_steps"].sum() + a.warmup_stats["n_steps"].sum())
    depth = a.sample_stats["tree_depth"]
    steps = a.sample_stats["n_steps"]
    assert np.all(steps <= 2**depth - 1) and np.all(steps >= 2 ** (depth - 1))
