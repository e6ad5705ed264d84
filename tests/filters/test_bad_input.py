"""Bad input raises a ValueError naming the argument; divergence is reported as data."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxsci import filters as F


def test_non_positive_definite_noise_cov():
    with pytest.raises(ValueError, match="noise_cov"):
        F.LinearObservation(np.eye(2), noise_cov=[[1.0, 2.0], [2.0, 1.0]])
    with pytest.raises(ValueError, match="noise_cov"):
        F.IndexObservation(3, noise_cov=[1.0, 0.0, 1.0])
    with pytest.raises(ValueError, match="noise_cov"):
        F.IndexObservation(3, noise_cov=-1.0)
    with pytest.raises(ValueError, match="noise_cov"):
        F.IndexObservation(3, noise_cov=np.eye(2))


def test_observation_dimension_mismatch():
    o = F.IndexObservation(4, [0, 2])
    ens = jnp.ones((5, 4)) + jnp.arange(5.0)[:, None]
    with pytest.raises(ValueError, match="y_obs"):
        F.ETKF().analysis(jax.random.key(0), F.ETKF().init(ens), jnp.zeros(3), o)
    with pytest.raises(ValueError, match="ensemble"):
        F.ETKF().analysis(jax.random.key(0), F.ETKF().init(jnp.ones((5, 3))), jnp.zeros(2), o)
    with pytest.raises(ValueError, match="observations"):
        F.run_filter(
            jax.random.key(0), lambda x, a, b: x, o, F.EnKF(), ens, jnp.zeros((3, 5)), dt=1.0
        )
    with pytest.raises(ValueError, match="indices"):
        F.IndexObservation(4, [0, 4])


def test_ensemble_size_below_two():
    o = F.IndexObservation(4)
    with pytest.raises(ValueError, match="ensemble"):
        F.EnKF().analysis(jax.random.key(0), F.EnKF().init(jnp.ones((1, 4))), jnp.zeros(4), o)
    with pytest.raises(ValueError, match="ensemble_size"):
        F.assimilate(
            jax.random.key(0),
            lambda x, a, b: x,
            o,
            F.ETKF(),
            jnp.ones(4),
            n_cycles=3,
            dt=1.0,
            ensemble_size=1,
        )


def test_burn_in_must_leave_cycles_to_score(own_checks):
    """A burn-in of the whole run used to give rmse_a_mean = 0 and diverged = False."""
    o = F.IndexObservation(4)
    kwargs = dict(n_cycles=3, dt=0.5, ensemble_size=4)
    with pytest.raises(ValueError, match=r"`burn_in` must be less than the run length .* = 1.5"):
        F.assimilate(
            jax.random.key(0), lambda x, a, b: x, o, F.ETKF(), jnp.ones(4), burn_in=1.5, **kwargs
        )
    res = F.assimilate(
        jax.random.key(0), lambda x, a, b: x, o, F.ETKF(), jnp.ones(4), burn_in=1.0, **kwargs
    )
    assert np.isfinite(res.rmse_a_mean)  # the last cycle (t = 1.5) is scored


def test_nan_observations():
    o = F.IndexObservation(4)
    ens = jax.random.normal(jax.random.key(0), (5, 4))
    y = jnp.array([0.0, jnp.nan, 1.0, 2.0])
    with pytest.raises(ValueError, match="y_obs"):
        F.ETKF().analysis(jax.random.key(0), F.ETKF().init(ens), y, o)
    with pytest.raises(ValueError, match="observations"):
        F.run_filter(jax.random.key(0), lambda x, a, b: x, o, F.EnKF(), ens, y[None], dt=1.0)


def test_letkf_needs_locations():
    o = F.LinearObservation(np.eye(3))
    with pytest.raises(ValueError, match="locations"):
        F.LETKF(2.0, o)
    with pytest.raises(ValueError, match="loc_rad"):
        F.LETKF(0.0, F.IndexObservation(3))


def test_blow_up_is_flagged_not_averaged():
    """A model that blows up gives non-finite members: every later cycle is flagged and the
    run is diverged, with no exception under jit."""
    o = F.IndexObservation(4)

    def exploding(x, t0, t1):
        return jnp.where(t0 >= 2.0, x * jnp.inf, x)

    res = F.assimilate(
        jax.random.key(0), exploding, o, F.ETKF(), jnp.ones(4), n_cycles=6, dt=1.0, ensemble_size=5
    )
    assert bool(res.diverged)
    np.testing.assert_array_equal(res.diverged_cycles, [False, False, True, True, True, True])
    assert not bool(jnp.isfinite(res.rmse_a_mean))


@pytest.mark.slow
def test_filter_divergence_is_flagged():
    """Global ETKF with 5 members and no inflation on 40-variable Lorenz-96 loses the truth
    (rank-deficient, no localisation): rmse_a goes far above the observation error."""
    from ._l96 import DT, INIT_STD, attractor_state, l96, obs_all

    _, flow = l96()
    res = F.assimilate(
        jax.random.key(0),
        flow,
        obs_all(),
        F.ETKF(),
        attractor_state(),
        n_cycles=400,
        dt=DT,
        ensemble_size=5,
        init_std=INIT_STD,
        burn_in=10.0,
    )
    assert bool(res.diverged), float(res.rmse_a_mean)
    assert float(res.rmse_a_mean) > 2.0
    assert bool(jnp.any(res.diverged_cycles))


def test_hyperparameters_are_checked_by_name():
    """Inflation finite and > 0, relaxation factors and the ESS threshold in [0, 1], jitter and
    initial spread >= 0; resampling is a function or a resampler, not a string; the jitter rule
    an AbstractJitterRule object."""
    for bad in (0.0, -1.0, np.inf, np.nan):
        with pytest.raises(ValueError, match="factor"):
            F.Inflation(F.ETKF(), bad)
    for wrapper in (F.RTPS, F.RTPP):
        for bad in (-0.1, 1.5, np.nan):
            with pytest.raises(ValueError, match="alpha"):
                wrapper(F.EnKF(), bad)
    with pytest.raises(TypeError, match="filter"):
        F.Inflation(F.BootstrapPF(), 1.1)
    with pytest.raises(ValueError, match="ess_threshold"):
        F.BootstrapPF(F.systematic, 1.5)
    with pytest.raises(ValueError, match="reg"):
        F.BootstrapPF(reg=-1.0)
    with pytest.raises(TypeError, match="resampling"):
        F.BootstrapPF("systematic")
    with pytest.raises(ValueError, match="differentiable"):
        F.BootstrapPF(F.SoftResampler(), differentiable=True)
    for bad in ("nuj", True, F.NoUniqueJitter):  # a name, the old boolean, the class
        with pytest.raises(TypeError, match="jitter_rule"):
            F.BootstrapPF(reg=1.0, jitter_rule=bad)
    o = F.IndexObservation(4)
    kw = dict(n_cycles=3, dt=1.0, ensemble_size=5)
    with pytest.raises(ValueError, match="init_std"):
        F.assimilate(
            jax.random.key(0), lambda x, a, b: x, o, F.ETKF(), jnp.ones(4), init_std=-1.0, **kw
        )
    with pytest.raises(ValueError, match="x0"):
        F.assimilate(jax.random.key(0), lambda x, a, b: x, o, F.ETKF(), jnp.full(4, np.nan), **kw)
    with pytest.raises(ValueError, match="dt"):
        F.run_filter(
            jax.random.key(0),
            lambda x, a, b: x,
            o,
            F.EnKF(),
            jnp.eye(5, 4),
            jnp.zeros((2, 4)),
            dt=0.0,
        )
    with pytest.raises(TypeError, match="filter"):
        F.run_filter(
            jax.random.key(0),
            lambda x, a, b: x,
            o,
            F.SoftResampler(),
            jnp.eye(5, 4),
            jnp.zeros((2, 4)),
            dt=1.0,
        )


def test_a_huge_integer_radius_is_the_etkf_radius():
    """`loc_rad` as a Python int beyond float64 is an infinite radius (the ETKF, as the
    docstring says of inf), not an OverflowError from float(); `concrete` reads such ints as
    +-inf so the sign checks still apply."""
    import math

    from jaxsci._checks import concrete

    assert concrete(10**400) == math.inf and concrete(-(10**400)) == -math.inf
    np.testing.assert_array_equal(concrete([1, 10**400]), [1.0, math.inf])
    op = F.IndexObservation(10, [0, 1])
    assert F.LETKF(10**400, op).loc_rad == math.inf
    with pytest.raises(ValueError, match="`loc_rad` must be a positive number"):
        F.LETKF(-(10**400), op)
