"""Simulator-generated datasets: GRF covariance against its direct sum, Burgers pairs against
the Cole-Hopf solution, conservation laws of the trajectory sets, seeding and caching."""

import math

import jax
import numpy as np
import pytest

from jaxsci import data

# ------------------------------------------------------------------------- random fields


@pytest.mark.parametrize("shape", [(64,), (16, 12)])
@pytest.mark.slow  # 16-24 s under xdist; CI's slow tier runs it
def test_grf_covariance_matches_the_operator(shape):
    # Empirical covariance of 6000 samples at a few lags against
    # C(r) = L^{-d} sum_k lambda_k cos(kappa . r) (a direct sum over modes), within 4.5 MCSE.
    d = len(shape)
    grf = data.GaussianRandomField(shape, length=2.0, alpha=1.5 + d / 2, tau=3.0, sigma=4.0)
    samples = np.asarray(
        jax.jit(jax.vmap(grf))(jax.random.split(jax.random.key(0), 6000)), dtype=np.float64
    )
    flat = samples.reshape(len(samples), -1)
    lags = [(0,) * d, (1,) * d, (3,) + (0,) * (d - 1), (shape[0] // 2,) + (1,) * (d - 1)]
    origin = flat[:, 0]
    for lag in lags:
        other = samples[(slice(None), *lag)]
        prod = origin * other
        r = np.asarray(lag) * 2.0 / np.asarray(shape)
        exact = float(grf.covariance(r))
        z = (prod.mean() - exact) / (prod.std(ddof=1) / math.sqrt(len(prod)))
        assert abs(z) < 4.5, (lag, prod.mean(), exact)
    z_mean = flat.mean() / (flat.mean(axis=1).std(ddof=1) / math.sqrt(len(flat)))
    assert abs(z_mean) < 4.5


def test_grf_fno_burgers_defaults_and_zero_mean():
    grf = data.GaussianRandomField(8)
    lam = grf.eigenvalues()
    k = np.arange(5)
    expected = 625.0 * ((2 * np.pi * k) ** 2 + 25.0) ** -2.0
    expected[4] = 0.0  # Nyquist left out
    np.testing.assert_allclose(lam, expected, rtol=1e-12)
    assert lam[0] == pytest.approx(1.0)
    u = np.asarray(data.GaussianRandomField((8, 8), zero_mean=True)(jax.random.key(1)))
    assert abs(u.mean()) < 1e-6 * np.abs(u).max()
    with pytest.raises(ValueError, match="`tau` must be finite and positive"):
        data.GaussianRandomField(8, tau=0.0)


# ------------------------------------------------------------------------------- Burgers


def cole_hopf(u0, nu, t, fine=4096):
    """Exact viscous Burgers solution on [0, 1) from band-limited grid values u0.

    With c = mean(u0) and v0 = u0 - c: phi0 = exp(-V0 / (2 nu)), V0' = v0, solves the heat
    equation exactly in Fourier space (on a fine grid), v = -2 nu phi_x / phi, and
    u(x, t) = c + v(x - c t, t) (Galilean shift).
    """
    n = u0.shape[-1]
    uh = np.fft.rfft(np.asarray(u0, dtype=np.float64))
    c = uh[0].real / n
    vh = np.zeros(fine // 2 + 1, complex)
    vh[1 : n // 2] = uh[1 : n // 2] * fine / n
    k = np.fft.rfftfreq(fine, 1.0 / fine)
    ik = 2j * np.pi * k
    big_v = np.fft.irfft(np.where(k > 0, vh / np.where(k > 0, ik, 1.0), 0.0), fine)
    ph = np.fft.rfft(np.exp(-big_v / (2 * nu)))
    ph = ph * np.exp(-nu * (2 * np.pi * k) ** 2 * t - ik * c * t)
    u = c - 2 * nu * np.fft.irfft(ik * ph, fine) / np.fft.irfft(ph, fine)
    return u[:: fine // n]


@pytest.mark.slow
def test_burgers_pairs_match_cole_hopf_and_cache(tmp_path):
    key = jax.random.key(3)
    u0, u1 = data.burgers_dataset(key, 6, num_points=128, chunk_size=4, path=tmp_path / "b.npz")
    assert u0.shape == u1.shape == (6, 128) and u0.dtype == np.float32
    # Zero-mean data (the default): u(1) is ~100x smaller than u(0), and float32 rounding
    # of the time stepping sits at the scale of u(0): relative to u(1) it is ~3e-6.
    for i in range(6):
        ref = cole_hopf(u0[i], 0.1, 1.0)
        assert np.linalg.norm(u1[i] - ref) / np.linalg.norm(ref) < 1e-5
        assert np.linalg.norm(u1[i] - ref) / np.linalg.norm(u0[i]) < 1e-7
    # The cache returns the same arrays; other settings are refused, naming what differs.
    c0, c1 = data.burgers_dataset(key, 6, num_points=128, path=tmp_path / "b.npz")
    np.testing.assert_array_equal(c0, u0)
    np.testing.assert_array_equal(c1, u1)
    with pytest.raises(ValueError, match=r"other settings \(nu: cached 0.1, asked 0.2\)"):
        data.burgers_dataset(key, 6, num_points=128, nu=0.2, path=tmp_path / "b.npz")
    # Example i depends on its own key only: a larger set starts with the same examples
    # (generated in other chunks: 4 + 4 + 1 here, 4 + 2 above); another key differs.
    more0, _ = data.burgers_dataset(key, 9, num_points=128, chunk_size=4)
    np.testing.assert_array_equal(more0[:6], u0)
    other0, _ = data.burgers_dataset(jax.random.key(4), 4, num_points=128, chunk_size=4)
    assert not np.allclose(other0, u0[:4])
    with pytest.raises(ValueError, match="`num_samples` must be an integer >= 1"):
        data.burgers_dataset(key, 0)


# --------------------------------------------------------------------------- trajectories


@pytest.mark.slow
def test_ks_trajectories_conserve_the_mean_and_are_chaotic():
    u = data.ks_trajectories(jax.random.key(0), 3, 40, save_every=2.0, spinup=60.0)
    assert u.shape == (3, 41, 64) and np.isfinite(u).all()
    # d/dt mean(u) = 0 for KS (every term is a derivative); the initial field has mean 0.
    assert np.abs(u.mean(axis=-1)).max() < 1e-4
    # On the attractor at L = 22: O(1) amplitude, and two nearby-start trajectories differ.
    assert 0.5 < u.std() < 3.0
    assert np.abs(u[0] - u[1]).mean() > 0.3


@pytest.mark.slow
def test_navier_stokes_unforced_flow_decays_and_keeps_zero_mean():
    w = data.navier_stokes_trajectories(
        jax.random.key(0), 2, 4, num_points=32, save_every=0.5, dt=5e-3, nu=5e-3
    )
    assert w.shape == (2, 5, 32, 32) and np.isfinite(w).all()
    assert np.abs(w.mean(axis=(-1, -2))).max() < 1e-6
    # Unforced, no drag: enstrophy is non-increasing (it decays by viscosity in 2-D).
    enstrophy = (w**2).mean(axis=(-1, -2))
    assert np.all(np.diff(enstrophy, axis=1) < 0)


@pytest.mark.slow
def test_lorenz96_trajectories_reach_the_attractor():
    x = data.lorenz96_trajectories(jax.random.key(0), 4, 200, spinup=10.0)
    assert x.shape == (4, 201, 40) and np.isfinite(x).all()
    # Climatology of L96 (n = 40, F = 8): mean ~2.3, standard deviation ~3.6.
    assert 1.8 < x.mean() < 2.9 and 3.0 < x.std() < 4.2
