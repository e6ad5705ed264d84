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


@pytest.mark.slow
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
    # y_k = h(x_k) + r_k with the keys of `synthetic_observations` from the first of three
    # keys (drawn cycle by cycle in the filter's loop, the same numbers as in one call)
    key_obs = jax.random.split(jax.random.key(0), 3)[0]
    want = jax.jit(F.synthetic_observations)(key_obs, OBS, res.truth)
    np.testing.assert_array_equal(res.observations, want)


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


def test_climatological_spread_definition():
    """sqrt of the component-averaged time variance (ddof 0), against numpy."""
    traj = np.random.default_rng(0).normal(size=(50, 7)) * np.arange(1.0, 8.0) + 3.0
    ref = np.sqrt(np.mean(np.var(traj, axis=0)))
    np.testing.assert_allclose(F.climatological_spread(traj), ref, rtol=1e-6)
    assert float(F.climatological_spread(np.ones((5, 3)))) == 0.0


@pytest.mark.slow  # 5-8 s of compiles; CI runs the slow tier (fast-tier budget)
def test_divergence_threshold_is_reported_with_its_rule():
    """Default threshold: DIVERGENCE_FRACTION x the climatological spread of the run's truth;
    a user threshold replaces it; `metrics()` reports the threshold, the spread and the rule.
    (The first call is `test_outputs_and_rmse_definition`'s: compiled once per session.)"""
    res = F.assimilate(
        jax.random.key(0), FLOW, OBS, F.Inflation(F.ETKF(), 1.05), X0, store_ensembles=True, **KW
    )
    clim = np.sqrt(np.mean(np.var(np.asarray(res.truth), axis=0)))
    np.testing.assert_allclose(res.climatological_spread, clim, rtol=1e-5)
    assert F.DIVERGENCE_FRACTION == 0.5
    np.testing.assert_allclose(res.divergence_threshold, 0.5 * clim, rtol=1e-5)
    m = res.metrics()
    assert m["divergence_threshold"] == pytest.approx(0.5 * clim, rel=1e-5)
    assert m["climatological_spread"] == pytest.approx(clim, rel=1e-5)
    assert "climatological spread" in m["divergence_rule"] and not m["diverged"]
    np.testing.assert_array_equal(res.diverged_cycles, np.asarray(res.rmse_a) > 0.5 * clim)
    # a threshold below the run's rmse_a: diverged, by the user's rule
    low = 0.5 * float(res.rmse_a_mean)
    strict = F.assimilate(
        jax.random.key(0),
        FLOW,
        OBS,
        F.Inflation(F.ETKF(), 1.05),
        X0,
        divergence_threshold=low,
        **KW,
    )
    assert bool(strict.diverged) and float(strict.divergence_threshold) == pytest.approx(low)
    assert "given" in strict.metrics()["divergence_rule"]
    np.testing.assert_array_equal(strict.rmse_a, res.rmse_a)


@pytest.mark.slow
def test_lost_filter_on_kuramoto_sivashinsky_is_flagged():
    """Regression: KS (L = 22, 32 points), 16 points observed with noise std 1 (about the
    field's own std). A deflated ETKF (factor 0.8) collapses its ensemble, ignores the
    observations and runs free: its mean is a state on the attractor unrelated to the truth,
    rmse_a ~ sqrt(2) x the climatological spread. The old rule (rmse_a > 2 x noise std = 2)
    called it converged; against the truth's climatology it is diverged. The same ETKF with
    inflation 1.05 tracks the truth and is not flagged. One vmapped call over the factor."""
    from jaxsci.dynamics import KuramotoSivashinsky
    from jaxsci.integrate import ETDRK4, rollout

    model = KuramotoSivashinsky(22.0, 32)
    flow = Flow(model, 0.25, ETDRK4())
    x0 = jax.jit(lambda x: rollout(flow, x, 100, dt=1.0)[-1])(model.default_initial_state())
    noise_std = 1.0
    obs = F.every_kth(32, 2, noise_cov=noise_std**2)

    def run(factor):
        return F.assimilate(
            jax.random.key(0),
            flow,
            obs,
            F.Inflation(F.ETKF(), factor),
            x0,
            n_cycles=200,
            dt=1.0,
            ensemble_size=10,
            init_std=0.1,
            burn_in=100.0,
            compute_likelihood=False,
        )

    res = jax.jit(jax.vmap(run))(jnp.array([1.05, 0.8]))
    rmse = np.asarray(res.rmse_a_mean)
    clim = np.sqrt(np.mean(np.var(np.asarray(res.truth), axis=1), axis=-1))
    working, lost = 0, 1
    assert rmse[working] < 0.3 * clim[working], (rmse, clim)
    assert rmse[lost] > clim[lost], (rmse, clim)  # no better than climatology: lost
    assert rmse[lost] < 2.0 * noise_std  # below the old rule's threshold
    assert not bool(res.diverged[working])
    assert bool(res.diverged[lost]), (rmse, clim)


@pytest.mark.slow  # a statistical check over 2000 components, two conventions
def test_ensemble_centre_conventions():
    """Centred on the truth (default): the initial mean misses x0 by N(0, s^2 / N) per
    component. DAPPER's convention (truth x0 ~ N(mu0, s^2 I), members ~ N(mu0, s^2 I)
    independently, `ensemble_centre=mu0`): it misses by N(0, s^2 (1 + 1/N)). With the
    identity as model, the first forecast mean is the initial ensemble mean; 2000 components
    give the mean squares to a relative standard error of sqrt(2 / 2000) = 3.2 %."""
    dim, n, s = 2000, 10, 0.7
    mu0 = jnp.linspace(-1.0, 1.0, dim)
    x0 = mu0 + s * jax.random.normal(jax.random.key(7), (dim,))
    obs = F.IndexObservation(dim, [0])
    kw = dict(n_cycles=1, dt=1.0, ensemble_size=n, init_std=s)

    def identity(x, t0, t1):
        return x

    def run(key, **extra):
        return F.assimilate(key, identity, obs, F.ETKF(), x0, **kw, **extra)

    key = jax.random.key(3)
    centred, independent = run(key), run(key, ensemble_centre=mu0)
    se = 4 * np.sqrt(2 / dim)  # 4 standard errors of a mean of squares
    ms_centred = float(centred.rmse_f[0]) ** 2
    ms_independent = float(independent.rmse_f[0]) ** 2
    assert abs(ms_centred / (s**2 / n) - 1) < se, ms_centred
    assert abs(ms_independent / (s**2 * (1 + 1 / n)) - 1) < se, ms_independent
    # both spreads are s; only the centre moves, the truth does not
    for res in (centred, independent):
        assert abs(float(res.filter.spread_f[0]) ** 2 / s**2 - 1) < 4 * np.sqrt(2 / (dim * (n - 1)))
    np.testing.assert_array_equal(centred.truth, independent.truth)
    # same key, same result; the default is the truth as centre, bit for bit
    np.testing.assert_array_equal(
        run(key, ensemble_centre=mu0).filter.mean_f, independent.filter.mean_f
    )
    np.testing.assert_array_equal(run(key, ensemble_centre=x0).filter.mean_f, centred.filter.mean_f)


def test_bad_trajectory_and_centre_are_named(own_checks):
    with pytest.raises(ValueError, match="trajectory"):
        F.climatological_spread(np.ones(5))
    kw = dict(n_cycles=1, dt=1.0, ensemble_size=3)
    for bad in (jnp.zeros(11), X0.at[0].set(jnp.nan)):
        with pytest.raises(ValueError, match="ensemble_centre"):
            F.assimilate(jax.random.key(0), FLOW, OBS, F.ETKF(), X0, ensemble_centre=bad, **kw)
