"""The LETKF on a layered 2-D periodic grid: d-dimensional locations, explicit local domains
(the layers of one column together), the gathered local-observation path."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxsci import filters as F

# A small two-layer problem on a non-square doubly periodic grid (ny, nx) = (6, 5), so a
# swapped axis or a wrong per-axis period changes the answer.
NY, NX, LAYERS, N = 6, 5, 2, 7
DIM = LAYERS * NY * NX


@eqx.filter_jit
def _update(filt, key, ens, y, obs_op):
    return filt.update(key, ens, y, obs_op)


def _problem():
    ens = jax.random.normal(jax.random.key(0), (N, DIM), dtype=jnp.float64)
    ens = ens + jnp.linspace(-1.0, 1.0, DIM)
    # layer 0 at every 2nd point along both axes, and three points of layer 1
    op0 = F.every_kth_grid((NY, NX), 2, n_layers=LAYERS, layers=0)
    extra = np.array([[1, 4], [5, 0], [3, 3]])  # (y, x) grid positions in layer 1
    idx = np.concatenate([op0.indices, NY * NX + extra[:, 0] * NX + extra[:, 1]])
    locs = np.concatenate([np.asarray(op0.locations), extra])
    noise = np.linspace(0.4, 1.2, idx.size)
    obs_op = F.IndexObservation(DIM, idx, noise_std=noise, locations=locs)
    y = jax.random.normal(jax.random.key(1), (idx.size,), dtype=jnp.float64)
    return ens, obs_op, y


def _brute_force_letkf(ens, obs_op, y, loc_rad):
    """Per-column ETKF written out: a Python loop over the grid points, the periodic
    Euclidean distance by explicit wrapping, Gaspari-Cohn with DAPPER's half-width
    1.82 loc_rad and 1e-3 cutoff, and the symmetric square root by an eigendecomposition."""
    ens, y = np.asarray(ens), np.asarray(y)
    idx, locs = np.asarray(obs_op.indices), np.asarray(obs_op.locations)
    sigma = np.sqrt(np.diag(np.asarray(obs_op.noise_cov)))
    mean = ens.mean(axis=0)
    a = ens - mean
    hx = ens[:, idx]
    yw = (hx - hx.mean(axis=0)) / sigma
    dw = (y - hx.mean(axis=0)) / sigma
    out = np.empty_like(ens)
    for py in range(NY):
        for px in range(NX):
            cols = [layer * NY * NX + py * NX + px for layer in range(LAYERS)]
            rho = np.empty(idx.size)
            for j, (oy, ox) in enumerate(locs):
                dy, dx = abs(py - oy) % NY, abs(px - ox) % NX
                dist = np.hypot(min(dy, NY - dy), min(dx, NX - dx))
                rho[j] = F.gaspari_cohn(dist, 1.82 * loc_rad)
            rho = np.where(rho > 1e-3, rho, 0.0)
            ywl, dwl = yw * np.sqrt(rho), dw * np.sqrt(rho)
            lam, v = np.linalg.eigh(ywl @ ywl.T + (N - 1) * np.eye(N))
            pw = (v / lam) @ v.T
            w = pw @ ywl @ dwl
            t = np.sqrt(N - 1) * (v / np.sqrt(lam)) @ v.T
            out[:, cols] = mean[cols] + (w[None, :] + t) @ a[:, cols]
    return out


def _grid_letkf(loc_rad, obs_op, **kwargs):
    g = F.grid_domains((NY, NX), n_layers=LAYERS)
    return F.LETKF(loc_rad, obs_op, g.state_locations, g.domain_length, domains=g.domains, **kwargs)


def test_grid_domains_layout():
    g = F.grid_domains((NY, NX), n_layers=LAYERS, spacing=2.0)
    assert g.state_locations.shape == (DIM, 2) and g.domains.shape == (NY * NX, LAYERS)
    np.testing.assert_array_equal(g.domain_length, [2.0 * NY, 2.0 * NX])
    # variable l * ny * nx + y * nx + x sits at (y, x) * spacing; its column holds both layers
    field = np.arange(DIM).reshape(LAYERS, NY, NX)
    np.testing.assert_array_equal(g.state_locations[field[1, 4, 3]], [8.0, 6.0])
    np.testing.assert_array_equal(g.domains[4 * NX + 3], field[:, 4, 3])
    op = F.every_kth_grid((NY, NX), 4, n_layers=LAYERS, layers=[1], offset=1, spacing=2.0)
    np.testing.assert_array_equal(op.indices, field[1, 1::4, 1::4].ravel())
    np.testing.assert_array_equal(op.locations, [[2, 2], [10, 2]])


@pytest.mark.parametrize("gather", [True, False])
def test_grid_letkf_equals_brute_force_per_column_etkf(x64, gather):
    """Both local-observation paths equal the per-column ETKF loop (loc_rad 1: the taper
    reaches 3.6 grid points, so columns see different subsets and some wrap around)."""
    ens, obs_op, y = _problem()
    letkf = _grid_letkf(1.0, obs_op, gather=gather)
    assert (letkf.local_obs is not None) == gather
    out = _update(letkf, jax.random.key(2), ens, y, obs_op)
    np.testing.assert_allclose(out, _brute_force_letkf(ens, obs_op, y, 1.0), rtol=1e-9, atol=1e-9)


def test_grid_letkf_with_infinite_radius_is_the_etkf(x64):
    ens, obs_op, y = _problem()
    key = jax.random.key(3)
    out = _update(_grid_letkf(np.inf, obs_op), key, ens, y, obs_op)
    np.testing.assert_allclose(out, _update(F.ETKF(), key, ens, y, obs_op), rtol=1e-9, atol=1e-9)


def test_one_coordinate_locations_are_the_1d_letkf(x64):
    """(dim, 1) / (obs, 1) positions with a (1,) length give the ring LETKF's analysis."""
    dim, idx = 20, np.arange(0, 20, 3)
    ens = jax.random.normal(jax.random.key(0), (6, dim), dtype=jnp.float64)
    y = jax.random.normal(jax.random.key(1), (idx.size,), dtype=jnp.float64)
    ring_op = F.IndexObservation(dim, idx, noise_cov=0.5)
    col_op = F.IndexObservation(dim, idx, noise_cov=0.5, locations=idx[:, None])
    ring = F.LETKF(2.0, ring_op, batch_size=2)
    col = F.LETKF(2.0, col_op, np.arange(dim)[:, None], [dim], batch_size=2)
    key = jax.random.key(2)
    np.testing.assert_allclose(
        _update(col, key, ens, y, col_op), _update(ring, key, ens, y, ring_op), rtol=1e-12
    )


def test_sparse_2d_observations_take_the_gathered_path():
    """1 in 8 points along both axes of a 64^2 two-layer grid (64 observations): a column
    gathers at most the few inside its taper (loc_rad 4), not all 64."""
    op = F.every_kth_grid((64, 64), 8, n_layers=2, layers=0, noise_std=1.0)
    g = F.grid_domains((64, 64), n_layers=2)
    letkf = F.LETKF(4.0, op, g.state_locations, g.domain_length, domains=g.domains)
    assert letkf.local_obs is not None
    assert letkf.local_obs.shape == (64 * 64, letkf.local_sqrt_taper.shape[1])
    # a disc of radius 2 x 1.82 x 4 = 14.6 grid points holds at most ~ pi 14.6^2 / 64 + rim
    assert 8 <= letkf.local_obs.shape[1] <= 20, letkf.local_obs.shape


def test_bad_grid_arguments_are_named():
    ens, obs_op, y = _problem()
    g = F.grid_domains((NY, NX), n_layers=LAYERS)
    with pytest.raises(ValueError, match="`state_locations` has shape"):
        F.LETKF(1.0, obs_op, g.state_locations[:-1], g.domain_length)
    with pytest.raises(ValueError, match="`obs_op.locations` has shape"):
        F.LETKF(1.0, obs_op, np.zeros((DIM, 3)), [1.0, 1.0, 1.0])
    with pytest.raises(ValueError, match="`domain_length` is required"):
        F.LETKF(1.0, obs_op, g.state_locations)
    with pytest.raises(ValueError, match="`domain_length` has shape"):
        F.LETKF(1.0, obs_op, g.state_locations, [6.0, 5.0, 1.0])
    with pytest.raises(ValueError, match="`domains` must partition"):
        F.LETKF(1.0, obs_op, g.state_locations, g.domain_length, domains=g.domains[1:])
    with pytest.raises(ValueError, match="`domains` has shape"):
        F.LETKF(1.0, obs_op, g.state_locations, g.domain_length, domains=np.arange(DIM))
    with pytest.raises(ValueError, match="not both"):
        F.LETKF(1.0, obs_op, g.state_locations, g.domain_length, domains=g.domains, batch_size=2)
    with pytest.raises(ValueError, match="`locations` has shape"):
        F.IndexObservation(DIM, [0, 1], locations=np.zeros((3, 2)))
    with pytest.raises(ValueError, match="`layers`"):
        F.every_kth_grid((NY, NX), 2, n_layers=2, layers=2)
    with pytest.raises(ValueError, match="`grid_shape`"):
        F.grid_domains((NY, 0))
