"""Gaspari-Cohn tapering and the LETKF's compact local-observation lists."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxsci import filters as F
from jaxsci.filters._localization import (
    gaspari_cohn,
    local_observations,
    periodic_distance,
    sqrt_taper_matrix,
)


def test_gaspari_cohn_values_and_continuity():
    """Gaspari & Cohn (1999), eq. 4.10: 1 at 0, 5/24 at one half-width, 0 from two on; the
    two polynomial pieces meet continuously with a continuous slope."""
    c = 3.0
    np.testing.assert_allclose(
        gaspari_cohn(np.array([0.0, c, 2 * c, 2.5 * c]), c), [1, 5 / 24, 0, 0], atol=1e-14
    )
    for r in (1.0, 2.0):
        lo, hi = gaspari_cohn(np.array([r - 1e-7, r + 1e-7]) * c, c)
        assert abs(lo - hi) < 1e-6
        d = 1e-4
        left = (gaspari_cohn(r - 2 * d, 1.0) - gaspari_cohn(r - d, 1.0)) / d
        right = (gaspari_cohn(r + d, 1.0) - gaspari_cohn(r + 2 * d, 1.0)) / d
        assert abs(left - right) < 1e-3
    # monotone decreasing on [0, 2c]
    assert np.all(np.diff(gaspari_cohn(np.linspace(0, 2 * c, 200), c)) <= 1e-15)
    assert np.all(gaspari_cohn(np.array([1.0, 100.0]), np.inf) == 1.0)


def test_periodic_distance_wraps():
    d = periodic_distance(np.array([0.0, 39.0]), np.array([1.0, 38.0]), 40.0)
    np.testing.assert_allclose(d, [[1, 2], [2, 1]])


@pytest.mark.parametrize("periodic", [True, False])
def test_local_observations_equal_dense_taper(periodic):
    """Scattered back to a dense (dim, obs) matrix, the compact lists equal the dense taper;
    chunks smaller than the grid must not change that."""
    dim = 50
    locs = np.arange(dim, dtype=float)
    obs_locs = np.sort(np.random.default_rng(0).uniform(0, dim, size=23))
    length = float(dim) if periodic else None
    dense = np.asarray(sqrt_taper_matrix(locs, obs_locs, 3.0, length))
    idx, taper = local_observations(locs, obs_locs, 3.0, length, chunk=7)
    idx, taper = np.asarray(idx), np.asarray(taper)
    assert idx.shape == taper.shape and idx.shape[0] == dim
    assert idx.shape[1] == int((dense > 0).sum(axis=1).max()) < obs_locs.size
    rebuilt = np.zeros_like(dense)
    for i in range(dim):
        np.add.at(rebuilt[i], idx[i], taper[i])
    np.testing.assert_allclose(rebuilt, dense, rtol=1e-6)


def test_domain_without_observations_keeps_its_prior():
    """Observations only near one end of a line: far domains have no local observation (all
    padding, zero taper), so their ensemble columns come out exactly as they went in."""
    dim = 30
    obs_op = F.IndexObservation(dim, indices=np.arange(3), noise_cov=0.5)
    letkf = F.LETKF(2.0, obs_op, periodic=False)
    ens = jax.random.normal(jax.random.key(0), (6, dim))
    y = jnp.ones(3)
    out = letkf.update(jax.random.key(1), ens, y, obs_op)
    np.testing.assert_allclose(
        np.asarray(out[:, 20:]), np.asarray(ens[:, 20:]), rtol=1e-6, atol=1e-6
    )
    assert np.max(np.abs(np.asarray(out[:, 0] - ens[:, 0]))) > 1e-2


def test_letkf_gathered_local_observations_equal_dense_taper(x64):
    """A 60-variable ring observed at every other point with loc_rad 2: each domain sees 8 of
    the 30 observations, so the LETKF gathers them; the same analysis with the dense taper
    (every observation, zero weight outside) must agree to rounding."""
    dim = 60
    obs_op = F.IndexObservation(dim, indices=np.arange(0, dim, 2), noise_cov=0.3)
    letkf = F.LETKF(2.0, obs_op)
    assert letkf.local_obs is not None and letkf.local_obs.shape[1] < obs_op.obs_dim // 2
    dense = eqx.tree_at(
        lambda f: (f.local_obs, f.local_sqrt_taper),
        letkf,
        (None, sqrt_taper_matrix(np.arange(dim), np.arange(0, dim, 2), 2.0, float(dim))),
        is_leaf=lambda x: x is None,
    )
    ens = jax.random.normal(jax.random.key(2), (8, dim), dtype=jnp.float64)
    y = jax.random.normal(jax.random.key(3), (30,), dtype=jnp.float64)
    a = letkf.update(jax.random.key(4), ens, y, obs_op)
    b = dense.update(jax.random.key(4), ens, y, obs_op)
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-12, atol=1e-12)
    assert np.max(np.abs(np.asarray(a - ens))) > 1e-2
