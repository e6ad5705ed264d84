"""The `assimilate` driver: DAPPER's rmse_a definition, stored outputs, vmapped sweeps."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxsci import filters as F
from jaxsci.dynamics import Lorenz96
from jaxsci.integrate import Flow

MODEL = Lorenz96(12, 8.0)
FLOW = Flow(MODEL, 0.05, max_steps=4)
OBS = F.every_kth(12, 2, noise_cov=0.5)
X0 = MODEL.default_initial_state() + jnp.linspace(0.0, 1.0, 12)
KW = dict(n_cycles=40, dt=0.05, ensemble_size=8, init_std=0.5, burn_in=0.5)


def test_outputs_and_rmse_definition():
    res = F.assimilate(
        jax.random.key(0), FLOW, OBS, F.Inflation(F.ETKF(), 1.05), X0, store_ensembles=True, **KW
    )
    k = KW["n_cycles"]
    assert res.truth.shape == (k, 12) and res.observations.shape == (k, 6)
    assert res.filter.ensembles.shape == (k, 8, 12) and res.filter.log_weights.shape == (k, 8)
    np.testing.assert_allclose(res.filter.log_weights, np.full((k, 8), -np.log(8.0)), rtol=1e-6)
    np.testing.assert_allclose(res.filter.mean_a, res.filter.ensembles.mean(axis=1), atol=1e-5)
    # rmse_a: RMS over components at each analysis time, then the plain average over
    # analysis times after the burn-in (t_k = k dt > 0.5), not the root of an averaged MSE
    rmse = np.sqrt(np.mean((np.asarray(res.filter.mean_a) - np.asarray(res.truth)) ** 2, -1))
    np.testing.assert_allclose(res.rmse_a, rmse, rtol=1e-5)
    times = 0.05 * np.arange(1, k + 1)
    np.testing.assert_allclose(res.times, times, rtol=1e-6)
    np.testing.assert_allclose(res.rmse_a_mean, rmse[times > 0.5].mean(), rtol=1e-5)
    spread = np.sqrt(np.var(np.asarray(res.filter.ensembles), axis=1, ddof=1).mean(-1))
    np.testing.assert_allclose(res.filter.spread_a, spread, rtol=1e-4)
    assert np.all(np.isfinite(res.filter.log_likelihood)) and not bool(res.diverged)
    m = res.metrics()
    assert set(m) >= {"rmse_a", "spread_a", "n_cycles", "diverged"} and m["n_cycles"] == k


@pytest.mark.slow
def test_inflation_by_seed_sweep_is_one_vmapped_call():
    inflations = jnp.array([1.0, 1.05, 1.1])
    keys = jax.random.split(jax.random.key(1), 2)

    def one(infl, key):
        return F.assimilate(key, FLOW, OBS, F.Inflation(F.EnKF(), infl), X0, **KW).rmse_a

    sweep = jax.jit(jax.vmap(jax.vmap(one, in_axes=(None, 0)), in_axes=(0, None)))(inflations, keys)
    assert sweep.shape == (3, 2, KW["n_cycles"])
    for i, a in enumerate(inflations):
        for j, key in enumerate(keys):
            np.testing.assert_allclose(sweep[i, j], one(a, key), rtol=2e-3, atol=2e-4)
