"""`spectral.isotropic_spectrum`: single Fourier modes land in their shell with their
analytic power, Parseval over batch axes, the 2-D energy spectrum of the velocity is the
enstrophy spectrum over kappa^2, jit == no-jit, and bad arguments are named."""

import jax
import numpy as np
import pytest

from jaxsci.spectral import PeriodicGrid, isotropic_spectrum as _isotropic_spectrum

# compiled (one program per shape) rather than op by op: the same numbers, a faster test
isotropic_spectrum = jax.jit(_isotropic_spectrum, static_argnames=("spatial_dims", "length"))


def test_a_single_mode_is_all_in_its_shell():
    n, a = 32, 1.7
    x, y = PeriodicGrid((n, n)).coordinates()
    w = a * np.cos(3 * x + 4 * y)  # |m| = 5; mean enstrophy a^2 / 4
    kappa, z = isotropic_spectrum(w)
    z = np.asarray(z)
    assert kappa.shape == z.shape == (int(np.rint(np.sqrt(2) * n / 2)) + 1,)
    np.testing.assert_allclose(kappa[:6], np.arange(6))
    assert z[5] == pytest.approx(a**2 / 4, rel=1e-5)
    np.testing.assert_allclose(np.delete(z, 5), 0.0, atol=1e-9)
    # another period rescales the wavenumbers only; a 1-D sine: (1/2) <sin^2> = 1/4 at m = 2
    kappa, s = isotropic_spectrum(np.sin(2 * np.arange(16) * np.pi / 8), spatial_dims=1, length=1.0)
    np.testing.assert_allclose(kappa, 2 * np.pi * np.arange(9))
    np.testing.assert_allclose(np.asarray(s), np.eye(9)[2] / 4, atol=1e-7)


def test_parseval_over_batch_axes_and_jit():
    u = np.random.default_rng(0).normal(size=(2, 3, 12, 10))
    kappa, s = isotropic_spectrum(u)
    assert s.shape == (2, 3, len(kappa))
    np.testing.assert_allclose(np.asarray(s).sum(-1), 0.5 * np.mean(u**2, axis=(-1, -2)), rtol=1e-5)
    eager = _isotropic_spectrum(u)[1]  # op by op == compiled
    np.testing.assert_allclose(np.asarray(eager), np.asarray(s), rtol=1e-6)


def test_energy_spectrum_is_enstrophy_spectrum_over_kappa_squared():
    # modes at integer radii |m| = 1, 2, 5 (where E(k) = Z(k) / kappa_k^2 holds exactly);
    # velocity (psi_y, -psi_x) with lap psi = -w by hand: psi = sum a_m / |kappa_m|^2 cos(.)
    n, length = 16, 3.0
    x, y = PeriodicGrid((n, n), length).coordinates()
    c = 2 * np.pi / length
    modes = {(1, 0): 0.7, (0, 2): -1.1, (3, 4): 0.5, (4, 3): 0.9}
    w, u, v = (np.zeros((n, n)) for _ in range(3))
    for (mx, my), a in modes.items():
        phase = c * (mx * x + my * y)
        k2 = c**2 * (mx**2 + my**2)
        w += a * np.cos(phase)
        u += -a / k2 * c * my * np.sin(phase)  # psi_y
        v += a / k2 * c * mx * np.sin(phase)  # -psi_x
    kappa, z = isotropic_spectrum(w, length=length)
    _, e = isotropic_spectrum(np.stack([u, v]), length=length)
    energy, z, kappa = np.asarray(e).sum(0), np.asarray(z), np.asarray(kappa)
    np.testing.assert_allclose(kappa[[1, 2, 5]], c * np.array([1, 2, 5]))
    expected = [0.7**2 / 4, 1.1**2 / 4, (0.5**2 + 0.9**2) / 4]  # a^2 / 4 per cosine
    np.testing.assert_allclose(z[[1, 2, 5]], expected, rtol=1e-5)
    np.testing.assert_allclose(energy[1:], z[1:] / kappa[1:] ** 2, rtol=1e-5, atol=1e-12)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="`spatial_dims`"):
        _isotropic_spectrum(np.zeros((4, 4, 4, 4)), spatial_dims=4)
    with pytest.raises(ValueError, match="`u` must have at least spatial_dims = 2"):
        _isotropic_spectrum(np.zeros(8))
    with pytest.raises(ValueError, match="`length`"):
        _isotropic_spectrum(np.zeros((4, 4)), length=-1.0)
