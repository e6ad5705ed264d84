"""`chunked_analysis` / `run_filter_chunked`: the chunked EnKF, DEnKF and ETKF (and their
inflation) give the unchunked filters' analyses and `run_filter`'s cycles to float64
rounding, in both of the filters' regimes (N > P: the same observation-space formulas; N <= P:
the filters' N x N form), and refuse filters they cannot chunk."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxsci import dynamics, filters, integrate
from jaxsci.observations import every_kth

_SLOW_FILTERS = [
    filters.ETKF(),
    filters.DEnKF(),
    filters.Inflation(filters.EnKF(), 1.05),
    filters.Inflation(filters.ETKF(), 1.1),
]


def _check_against_update(fs, n, k):
    rng = np.random.default_rng(0)
    obs = every_kth(20, k, noise_cov=0.5)
    ens = 3.0 + rng.standard_normal((n, 20))
    y = rng.standard_normal(obs.obs_dim)
    key = jax.random.key(1)
    for f in fs:
        ref = np.asarray(eqx.filter_jit(f.update)(key, jnp.asarray(ens), jnp.asarray(y), obs))
        work = ens.copy()  # updated in place: `out` is the forecast array
        got = filters.chunked_analysis(f, key, work, y, obs, chunk_size=7, out=work)
        assert got.ensemble is work  # 7 divides neither N
        np.testing.assert_allclose(got.ensemble, ref, rtol=0, atol=1e-12, err_msg=repr(f))
        np.testing.assert_allclose(got.mean, ref.mean(0), rtol=0, atol=1e-12)
        assert got.spread == pytest.approx(np.sqrt(np.mean(ref.var(0, ddof=1))), rel=1e-12)


def test_chunked_enkf_equals_the_filters_update(x64):
    _check_against_update([filters.EnKF()], 30, 2)  # N > P


@pytest.mark.slow
def test_chunked_analyses_equal_the_filters_update_in_both_regimes(x64):
    _check_against_update(_SLOW_FILTERS, 30, 2)  # N > P: the same formulas
    _check_against_update([filters.EnKF(), *_SLOW_FILTERS], 8, 2)  # N <= P


@pytest.mark.slow
def test_run_filter_chunked_equals_run_filter(x64):
    rng = np.random.default_rng(2)
    flow = integrate.Flow(dynamics.Lorenz96(20, 8.0), 0.05, integrate.RK4())
    obs = every_kth(20, 2, noise_cov=1.0)
    ens = 3.0 + rng.standard_normal((30, 20))
    ys = 3.0 + rng.standard_normal((3, obs.obs_dim))
    key = jax.random.key(3)
    for f in (filters.EnKF(), filters.ETKF()):
        ref = filters.run_filter(key, flow, obs, f, jnp.asarray(ens), jnp.asarray(ys), dt=0.1)
        got = filters.run_filter_chunked(key, flow, obs, f, ens, ys, dt=0.1, chunk_size=7)
        for name in ("mean_f", "mean_a", "spread_f", "spread_a"):
            np.testing.assert_allclose(
                getattr(got, name), np.asarray(getattr(ref, name)), rtol=0, atol=1e-11
            )


def test_filters_it_cannot_chunk_are_refused():
    obs = every_kth(20, 2)
    ens = np.ones((4, 20))
    for f in (filters.ETKF(rotate=True), filters.SerialEnSRF()):
        with pytest.raises(ValueError, match="`filter`"):
            filters.chunked_analysis(f, jax.random.key(0), ens, np.zeros(10), obs, chunk_size=2)
    with pytest.raises(ValueError, match="chunk_size"):
        filters.chunked_analysis(
            filters.EnKF(), jax.random.key(0), ens, np.zeros(10), obs, chunk_size=0
        )
    with pytest.raises(ValueError, match="`out`"):
        filters.chunked_analysis(
            filters.EnKF(),
            jax.random.key(0),
            ens,
            np.zeros(10),
            obs,
            chunk_size=2,
            out=np.ones((3, 20)),
        )


def _small_problem():
    rng = np.random.default_rng(4)
    flow = integrate.Flow(dynamics.Lorenz96(8, 8.0), 0.05, integrate.RK4())
    obs = every_kth(8, 2, noise_cov=1.0)
    ens = (3.0 + rng.standard_normal((6, 8))).astype(np.float32)
    ys = (3.0 + rng.standard_normal((1, obs.obs_dim))).astype(np.float32)
    return flow, obs, ens, ys


@pytest.mark.slow
def test_in_place_updates_a_memmap(tmp_path):
    flow, obs, ens, ys = _small_problem()
    mm = np.lib.format.open_memmap(tmp_path / "ens.npy", "w+", np.float32, ens.shape)
    mm[:] = ens
    args = dict(dt=0.05, chunk_size=4)
    ref = filters.run_filter_chunked(jax.random.key(0), flow, obs, filters.EnKF(), ens, ys, **args)
    got = filters.run_filter_chunked(
        jax.random.key(0), flow, obs, filters.EnKF(), mm, ys, in_place=True, **args
    )
    assert got.ensemble is mm
    assert got.forecast_chunk_bytes == ref.forecast_chunk_bytes > 4 * 6 * 8  # >= its members
    mm.flush()
    np.testing.assert_array_equal(np.load(tmp_path / "ens.npy"), ref.ensemble)  # on disk
    frozen = ens.copy()
    frozen.flags.writeable = False
    for bad in (frozen, jnp.asarray(ens)):
        with pytest.raises(ValueError, match="initial_ensemble"):
            filters.run_filter_chunked(
                jax.random.key(0), flow, obs, filters.EnKF(), bad, ys, in_place=True, **args
            )


def test_run_filter_chunked_bad_input_is_named():
    flow, obs, ens, ys = _small_problem()
    args = dict(dt=0.05, chunk_size=4)
    with pytest.raises(ValueError, match="observations"):
        filters.run_filter_chunked(
            jax.random.key(0), flow, obs, filters.EnKF(), ens, ys[:0], **args
        )
    raw = jnp.zeros(4, jnp.uint32)  # passes the annotation, is no key of the default PRNG
    with pytest.raises(TypeError, match="`key`"):
        filters.run_filter_chunked(raw, flow, obs, filters.EnKF(), ens, ys, **args)
    with pytest.raises(TypeError, match="`key`"):
        filters.chunked_analysis(filters.EnKF(), raw, ens, ys[0], obs, chunk_size=2)
    with pytest.raises(ValueError, match="`out`.*writable"):
        filters.chunked_analysis(
            filters.EnKF(),
            jax.random.key(0),
            ens,
            ys[0],
            obs,
            chunk_size=2,
            out=jnp.zeros(ens.shape),
        )
