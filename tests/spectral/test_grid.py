"""The periodic spectral grid against numpy.fft and analytic Fourier calculus: wavenumbers
and coordinates, exact derivatives of trigonometric polynomials, de-aliasing mask counts,
the inverse Laplacian on a known 2-D field, transforms, and argument errors."""

import time

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxsci.dynamics as dyn
from jaxsci.discovery import SpectralLibrary
from jaxsci.spectral import MAX_GRID_POINTS, PeriodicGrid


@pytest.mark.parametrize("n, length", [(16, 2 * np.pi), (22, 22.0), (15, 3.0)])
def test_1d_wavenumbers_and_coordinates_match_numpy(n, length):
    grid = PeriodicGrid(n, length)
    assert grid.shape == (n,) and grid.ndim == 1 and grid.size == n
    assert grid.spectral_shape == (n // 2 + 1,)
    (x,) = grid.coordinates()
    np.testing.assert_array_equal(x, np.arange(n) * length / n)
    assert grid.spacing == pytest.approx(length / n)
    (m,) = grid.mode_numbers()
    np.testing.assert_array_equal(m, np.fft.rfftfreq(n, 1.0 / n))
    (k,) = grid.wavenumbers()
    np.testing.assert_allclose(k, 2 * np.pi * np.fft.rfftfreq(n, length / n), rtol=1e-15)
    (k_full,) = grid.wavenumbers(full=True)
    np.testing.assert_allclose(k_full, 2 * np.pi * np.fft.fftfreq(n, length / n), rtol=1e-15)


def test_2d_wavenumbers_follow_the_rfftn_layout():
    h, w, length = 12, 10, 5.0
    grid = PeriodicGrid((h, w), length)
    assert grid.spectral_shape == (h, w // 2 + 1)
    assert np.fft.rfftn(np.zeros((h, w))).shape == grid.spectral_shape
    kx, ky = grid.wavenumbers()
    assert kx.shape == ky.shape == grid.spectral_shape
    np.testing.assert_allclose(kx[:, 0], 2 * np.pi * np.fft.fftfreq(h, length / h), rtol=1e-15)
    np.testing.assert_allclose(ky[0], 2 * np.pi * np.fft.rfftfreq(w, length / w), rtol=1e-15)
    x, y = grid.coordinates()
    np.testing.assert_array_equal(x[:, 0], np.arange(h) * length / h)
    np.testing.assert_array_equal(y[0], np.arange(w) * length / w)
    np.testing.assert_allclose(grid.squared_wavenumber(), kx**2 + ky**2, rtol=1e-15)
    np.testing.assert_array_equal(grid.laplacian(), -(kx**2 + ky**2))


@pytest.mark.parametrize("shape", [(16,), (15,), (8, 6), (7, 6), (8, 5)])
def test_odd_wavenumbers_drop_exactly_the_nyquist_modes(shape):
    """Zero where 2|m| = n on an even axis (and at m = 0), unchanged elsewhere; an odd axis
    has no Nyquist mode. Integer test, so it holds for every (n, length): comparing |k| with
    pi n / length in floating point misses the Nyquist mode for e.g. n = 22, length = 2 pi."""
    grid = PeriodicGrid(shape, 2 * np.pi)
    for m, k, ko, n in zip(
        grid.mode_numbers(), grid.wavenumbers(), grid.odd_wavenumbers(), shape, strict=True
    ):
        nyquist = 2 * np.abs(m) == n
        assert nyquist.any() == (n % 2 == 0)
        np.testing.assert_array_equal(ko[nyquist], 0.0)
        np.testing.assert_array_equal(ko[~nyquist], k[~nyquist])
    assert np.pi * 22 / (2 * np.pi) != 2 * np.pi / (2 * np.pi) * 11  # the float test's failure
    (ko,) = PeriodicGrid(22, 2 * np.pi).odd_wavenumbers()
    assert ko[-1] == 0.0


def test_derivatives_of_a_trigonometric_polynomial_are_exact(x64):
    """u = sum_m a_m cos(q m x) + b_m sin(q m x) with |m| < n / 2: every derivative order 0-4
    from the symbol (i k)^p agrees with the analytic derivative to rounding."""
    n, length = 32, 7.0
    grid = PeriodicGrid(n, length)
    (x,) = grid.coordinates()
    q = 2 * np.pi / length
    terms = [(0, 0.7, 0.0), (1, 0.3, -1.2), (5, -0.4, 0.8), (15, 0.1, 0.25)]  # (m, a, b)

    def deriv(p):
        total = np.zeros(n)
        for m, a, b in terms:
            w = q * m
            # d^p/dx^p of a cos(wx) + b sin(wx) = w^p (a cos(wx + p pi/2) + b sin(wx + p pi/2))
            total += w**p * (a * np.cos(w * x + p * np.pi / 2) + b * np.sin(w * x + p * np.pi / 2))
        return total

    u_hat = grid.to_spectral(jnp.asarray(deriv(0)))
    for p in range(5):
        got = np.asarray(grid.from_spectral(grid.derivative(p) * u_hat))
        ref = deriv(p)
        np.testing.assert_allclose(got, ref, atol=1e-12 * max(1.0, np.abs(ref).max()))


def test_mixed_2d_derivative_is_exact(x64):
    """d^3/dx dy^2 of sin(2 q x + 1) cos(3 q y) = -2 q (3 q)^2 cos(2 q x + 1) cos(3 q y)."""
    grid = PeriodicGrid((16, 12), 3.0)
    x, y = grid.coordinates()
    q = 2 * np.pi / 3.0
    u = np.sin(2 * q * x + 1) * np.cos(3 * q * y)
    ref = -2 * q * (3 * q) ** 2 * np.cos(2 * q * x + 1) * np.cos(3 * q * y)
    got = grid.from_spectral(grid.derivative((1, 2)) * grid.to_spectral(jnp.asarray(u)))
    np.testing.assert_allclose(np.asarray(got), ref, atol=1e-11 * np.abs(ref).max())


def test_dealias_mask_counts():
    """2/3 rule: |m| < n / 3 on every axis. n = 64: m = 0..21 (22 of 33 rfft modes);
    48 x 30: 31 rows (|m| <= 15) times 10 columns (m <= 9)."""
    assert int(PeriodicGrid(64).dealias_mask().sum()) == 22
    mask = PeriodicGrid((48, 30)).dealias_mask()
    assert mask.shape == (48, 16) and int(mask.sum()) == 31 * 10
    assert int(PeriodicGrid(30).dealias_mask().sum()) == 10  # m = 0..9 (10 = n / 3 is not kept)
    assert PeriodicGrid((8, 6), dealias=False).dealias_mask().all()
    u_hat = jnp.ones(PeriodicGrid(64).spectral_shape, jnp.complex64)
    assert int(jnp.sum(PeriodicGrid(64).dealiased(u_hat) != 0)) == 22


def test_inverse_laplacian_solves_poisson_in_2d(x64):
    """psi = sin(2 q x) cos(3 q y) + 0.5 cos(q x - q y) has lap psi = -13 q^2 (first term)
    - 2 q^2 (second); -inverse_laplacian applied to w = -lap psi returns psi (mean zero)."""
    length = 4.0
    grid = PeriodicGrid((32, 24), length)
    x, y = grid.coordinates()
    q = 2 * np.pi / length
    psi = np.sin(2 * q * x) * np.cos(3 * q * y) + 0.5 * np.cos(q * x - q * y)
    w = 13 * q**2 * np.sin(2 * q * x) * np.cos(3 * q * y) + 2 * q**2 * 0.5 * np.cos(q * x - q * y)
    lap = grid.from_spectral(grid.laplacian() * grid.to_spectral(jnp.asarray(psi)))
    np.testing.assert_allclose(np.asarray(lap), -w, atol=1e-11 * np.abs(w).max())
    got = grid.from_spectral(-grid.inverse_laplacian() * grid.to_spectral(jnp.asarray(w)))
    np.testing.assert_allclose(np.asarray(got), psi, atol=1e-13)
    assert grid.inverse_laplacian()[0, 0] == 0.0  # the mean mode is dropped


def test_transforms_act_on_the_last_axes_and_round_trip():
    grid = PeriodicGrid((8, 6))
    u = jax.random.normal(jax.random.key(0), (3, 8, 6))
    u_hat = grid.to_spectral(u)
    assert u_hat.shape == (3, *grid.spectral_shape)
    ref = np.fft.rfftn(np.asarray(u), axes=(1, 2))
    np.testing.assert_allclose(np.asarray(u_hat), ref, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.asarray(grid.from_spectral(u_hat)), np.asarray(u), atol=1e-6)


def test_a_grid_is_static_structure_under_jit():
    """No array leaves: a model holding a grid jits, and equal grids hash equal."""
    assert jax.tree_util.tree_leaves(PeriodicGrid((4, 6), 2.0)) == []
    assert hash(PeriodicGrid(8, 2.0)) == hash(PeriodicGrid(8, 2.0))
    assert PeriodicGrid(8, 2.0) == PeriodicGrid(8, 2.0) != PeriodicGrid(8, 3.0)

    @eqx.filter_jit
    def smooth(grid, u):
        return grid.from_spectral(grid.dealiased(grid.to_spectral(u)))

    u = jnp.cos(jnp.arange(12) * 2 * np.pi * 5 / 12)  # m = 5 >= 12 / 3: removed
    np.testing.assert_allclose(np.asarray(smooth(PeriodicGrid(12), u)), 0.0, atol=1e-6)


def test_bad_arguments_name_themselves():
    with pytest.raises(ValueError, match="`length`"):
        PeriodicGrid(8, 0.0)
    with pytest.raises(ValueError, match="`length`"):
        PeriodicGrid(8, float("nan"))
    with pytest.raises(ValueError, match=r"`shape\[1\]`"):
        PeriodicGrid((8, 0))
    with pytest.raises(TypeError, match="`shape`|'shape'"):  # ours, or the type hook's
        PeriodicGrid(8.0)
    with pytest.raises(ValueError, match="`shape`"):
        PeriodicGrid(())
    with pytest.raises(ValueError, match="`order`"):
        PeriodicGrid((8, 8)).derivative(2)
    with pytest.raises(ValueError, match=r"`order\[0\]`"):
        PeriodicGrid(8).derivative(-1)


@pytest.mark.parametrize(
    "make, too_big",
    [
        (lambda n: dyn.KuramotoSivashinsky(num_points=n), 2**24 + 2),
        (lambda n: dyn.Burgers(num_points=n), 827_783_078),
        (lambda n: dyn.NavierStokes2D(num_points=n), 2**12 + 2),  # (2^12 + 2)^2 points
        (lambda n: SpectralLibrary(num_points=n), 10**9),
    ],
)
def test_grid_models_refuse_more_than_max_grid_points_before_allocating(make, too_big):
    """A model checks its Fourier symbol on the whole grid at construction: with 10^9 points
    that allocated gigabytes and ran for minutes (the config fuzz's num_points = 827783078).
    Above `MAX_GRID_POINTS` it is refused at once, naming `num_points` and the range."""
    assert MAX_GRID_POINTS == 2**24
    start = time.perf_counter()
    with pytest.raises(ValueError, match=r"`num_points` must be an even integer in \[4, "):
        make(too_big)
    assert time.perf_counter() - start < 0.5
