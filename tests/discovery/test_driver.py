"""`discover_model_error`: noise-free it is one `fit_model_error`; with the EnKF it runs the
passes with the configured filters and sample kinds and finds the injected term; the sample
kinds by hand; the true coefficients of a twin experiment; bad input named."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxsci import discovery, filters
from jaxsci.dynamics import KuramotoSivashinsky

from ._cases import CASES, DT, L, N, truth_states

INTERVAL = 1.0


def _setup():
    changes, expected = CASES["uxx"]
    lib = discovery.SpectralLibrary(["u", "u_xx", "u*u_x"], L, N)
    return KuramotoSivashinsky(L, N), KuramotoSivashinsky(L, N, **changes), lib, expected


@pytest.mark.slow
def test_noise_free_is_one_fit():
    model, _, lib, expected = _setup()
    states = truth_states(CASES["uxx"][0], INTERVAL, 60)
    found = discovery.discover_model_error(model, lib, discovery.RVM(), states, INTERVAL, dt=DT)
    direct = discovery.fit_model_error(
        discovery.RVM(), model, lib, states[:-1], states[1:], INTERVAL, dt=DT
    )
    np.testing.assert_array_equal(found.fit.coefficients, direct.coefficients)
    np.testing.assert_array_equal(found.coefficients, direct.coefficients[None])
    np.testing.assert_array_equal(found.corrected.coefficients, direct.coefficients)
    assert found.fit.terms().keys() == expected.keys()
    assert found.analysis is None and found.info.analysis_rmse.shape == (0,)
    assert found.info.samples == ("noise-free",)
    assert found.info.num_samples == 59 * N


@pytest.mark.slow
def test_noisy_passes_with_the_enkf():
    model, truth, lib, expected = _setup()
    states = truth_states(CASES["uxx"][0], INTERVAL, 120)
    sigma = 0.01 * float(jnp.std(states))
    obs_op = filters.IndexObservation(N, noise_cov=sigma**2)
    key_obs, key_ens, key = jax.random.split(jax.random.key(0), 3)
    observations = filters.synthetic_observations(key_obs, obs_op, states)
    ensemble = observations[0] + sigma * jax.random.normal(key_ens, (32, N))
    passes = discovery.EnKFPasses(
        obs_op,
        filters.Inflation(filters.RTPS(filters.EnKF(), 0.5), 1.2),
        ensemble,
        first_filter=filters.Inflation(filters.RTPS(filters.EnKF(), 0.9), 1.1),
        passes=2,
        burn_in=10,
    )
    found = discovery.discover_model_error(
        model,
        lib,
        discovery.RVM(),
        observations,
        INTERVAL,
        dt=DT,
        refinements=1,
        assimilation=passes,
        truth=states,
        key=key,
    )
    assert found.info.samples == ("ObservationPairs", "InstrumentalPairs")
    assert found.coefficients.shape == (2, 3)
    assert found.analysis is not None and found.analysis.shape == states.shape
    # the imperfect model's EnKF lags the truth; the corrected model's tracks it to within
    # the noise (32 members of a 64-point state, no localisation)
    rmse = np.asarray(found.info.analysis_rmse)
    assert rmse.shape == (2,) and rmse[1] < sigma < rmse[0] < 3 * sigma, (rmse, sigma)
    assert found.info.num_samples == (120 - 10 - 1) * N
    terms = found.fit.terms()
    assert set(terms) == {"u_xx"} and abs(terms["u_xx"] - expected["u_xx"]) < 0.02 * 0.1, terms


def test_sample_kinds_by_hand():
    obs, ana, bg = (jnp.arange(5.0)[:, None] + c for c in (0.0, 10.0, 20.0))
    s, e, w = discovery.AnalysisPairs().pairs(obs, ana, bg, 1)
    np.testing.assert_array_equal(s[:, 0], [11, 12, 13])
    np.testing.assert_array_equal(e[:, 0], [12, 13, 14])
    assert w is None
    s, e, w = discovery.ObservationPairs().pairs(obs, ana, bg, 1)
    np.testing.assert_array_equal(s[:, 0], [11, 12, 13])
    np.testing.assert_array_equal(e[:, 0], [2, 3, 4])
    s, e, w = discovery.InstrumentalPairs().pairs(obs, ana, bg, 1)
    np.testing.assert_array_equal(s[:, 0], [1, 2, 3])
    np.testing.assert_array_equal(e[:, 0], [2, 3, 4])
    assert w is not None
    np.testing.assert_array_equal(w[:, 0], [21, 22, 23])
    # the uncorrected model's background is no instrument
    assert isinstance(discovery.InstrumentalPairs().for_pass(True), discovery.ObservationPairs)
    assert not discovery.AnalysisPairs.needs_full_state


@pytest.mark.slow
def test_true_coefficients_of_a_changed_parameter():
    model, truth, lib, expected = _setup()
    states = truth_states(CASES["uxx"][0], INTERVAL, 20)
    true = discovery.true_coefficients(truth, model, lib, states)
    assert true.residual < 1e-5
    np.testing.assert_allclose(true.coefficients, [0.0, expected["u_xx"], 0.0], rtol=1e-4)
    # a change outside the library: the residual says so
    outside = discovery.true_coefficients(KuramotoSivashinsky(L, N, nu=1.1), model, lib, states)
    assert outside.residual > 0.1


def test_bad_input_is_named(own_checks):
    model, _, lib, _ = _setup()
    obs_op = filters.IndexObservation(N, np.arange(0, N, 2), noise_cov=0.01)
    ensemble = jnp.zeros((4, N))
    observations = jnp.zeros((10, N // 2))
    partial = discovery.EnKFPasses(obs_op, filters.EnKF(), ensemble)
    with pytest.raises(ValueError, match="`assimilation.samples`"):
        discovery.discover_model_error(
            model,
            lib,
            discovery.RVM(),
            observations,
            1.0,
            dt=DT,
            assimilation=partial,
            key=jax.random.key(0),
        )
    analysis = discovery.EnKFPasses(
        obs_op, filters.EnKF(), ensemble, burn_in=8, samples=discovery.AnalysisPairs()
    )
    with pytest.raises(ValueError, match="`assimilation.burn_in`"):
        discovery.discover_model_error(
            model,
            lib,
            discovery.RVM(),
            observations,
            1.0,
            dt=DT,
            assimilation=analysis,
            key=jax.random.key(0),
        )
    with pytest.raises(TypeError, match="`key`"):
        discovery.discover_model_error(
            model, lib, discovery.RVM(), observations, 1.0, dt=DT, assimilation=analysis
        )
    with pytest.raises(ValueError, match="`observations`"):
        discovery.discover_model_error(model, lib, discovery.RVM(), observations, 1.0, dt=DT)
    with pytest.raises(TypeError, match="`filter`"):
        discovery.EnKFPasses(obs_op, "enkf", ensemble)  # pyright: ignore[reportArgumentType]
    with pytest.raises(ValueError, match="`design`"):
        discovery.discover_model_error(
            model, lib, discovery.RVM(), jnp.zeros((10, N)), 1.0, dt=DT, design="exact"
        )
