"""`spectral.kinetic_energy_spectrum`: a single streamfunction mode lands in its shell with
its analytic energy, per-batch Parseval against the velocity computed by hand, the total
against pyqg-jax's own two-layer kinetic energy (its inversion, its velocities), and bad
arguments are named."""

import jax
import numpy as np
import pytest

from jaxsci.spectral import (
    PeriodicGrid,
    isotropic_spectrum,
    kinetic_energy_spectrum as _kinetic_energy_spectrum,
)

kinetic_energy_spectrum = jax.jit(_kinetic_energy_spectrum, static_argnames=("length",))


def test_a_single_mode_is_all_in_its_shell():
    n, length, a = 32, 5.0, 0.3
    y, x = PeriodicGrid((n, n), length).coordinates()  # axes (y, x)
    c = 2 * np.pi / length
    psi = a * np.cos(c * (3 * x + 4 * y))  # |m| = 5; u = -psi_y, v = psi_x
    kappa, e = kinetic_energy_spectrum(psi, length=length)
    e = np.asarray(e)
    np.testing.assert_allclose(kappa[:6], c * np.arange(6))
    # <u^2 + v^2> / 2 = a^2 |kappa|^2 / 4 with |kappa| = 5 c, all of it in shell 5
    assert e[5] == pytest.approx(a**2 * (5 * c) ** 2 / 4, rel=1e-5)
    np.testing.assert_allclose(np.delete(e, 5), 0.0, atol=1e-9)


def test_it_is_the_spectrum_of_the_velocity():
    # batch (2 times, 2 layers) of random band-limited fields: E(k) equals the shell-summed
    # spectrum of (u, v) = (-psi_y, psi_x) by NumPy spectral derivatives (no Nyquist modes)
    n, length = 16, 2.5
    grid = PeriodicGrid((n, n), length)
    rng = np.random.default_rng(0)
    shape = (2, 2, *grid.spectral_shape)
    psi_hat = np.where(grid.dealias_mask(), rng.normal(size=shape) + 1j * rng.normal(size=shape), 0)
    ky, kx = grid.wavenumbers()
    psi, u, v = (
        np.fft.irfft2(f, s=(n, n)) for f in (psi_hat, -1j * ky * psi_hat, 1j * kx * psi_hat)
    )
    kappa, e = kinetic_energy_spectrum(psi, length=length)
    _, s = jax.jit(isotropic_spectrum, static_argnames="length")(np.stack([u, v]), length=length)
    np.testing.assert_allclose(np.asarray(e), np.asarray(s).sum(0), rtol=1e-5, atol=1e-12)
    np.testing.assert_allclose(
        np.asarray(e).sum(-1), 0.5 * np.mean(u**2 + v**2, axis=(-1, -2)), rtol=1e-5
    )


@pytest.mark.slow  # compiling pyqg-jax's float64 inversion: 2-4 s on the 2-core VM
def test_total_equals_pyqg_jax_kinetic_energy(x64):
    pyqg_jax = pytest.importorskip("pyqg_jax")
    n = 32
    qg = pyqg_jax.qg_model.QGModel(nx=n, precision=pyqg_jax.state.Precision.DOUBLE)
    grid = PeriodicGrid((n, n), qg.L)
    rng = np.random.default_rng(1)
    q = rng.normal(size=(2, n, n)) * 1e-6
    q = np.asarray(grid.from_spectral(grid.dealiased(grid.to_spectral(q))))  # no Nyquist modes
    state = pyqg_jax.state.PseudoSpectralState(
        qh=np.zeros((2, n, n // 2 + 1), complex), _q_shape=(n, n)
    ).update(q=q)

    @jax.jit  # one compiled program: op by op, pyqg-jax takes seconds in float64
    def psi_and_total(state):
        full = qg.get_full_state(state)
        return full.p, pyqg_jax.diagnostics.total_ke(full, qg.get_grid())

    psi, total = psi_and_total(state)
    _, e = _kinetic_energy_spectrum(psi, length=qg.L)
    weights = np.asarray(qg.get_grid().Hi / qg.get_grid().H)  # pyqg weights layers by depth
    assert float(weights @ np.asarray(e).sum(-1)) == pytest.approx(float(total), rel=1e-10)


def test_bad_arguments_are_named(own_checks):
    with pytest.raises(ValueError, match="`psi` must have at least 2 axes"):
        _kinetic_energy_spectrum(np.zeros(8))
    with pytest.raises(ValueError, match="`length`"):
        _kinetic_energy_spectrum(np.zeros((4, 4)), length=0.0)
