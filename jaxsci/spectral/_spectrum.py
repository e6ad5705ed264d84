r"""Isotropic (shell-summed) power spectra of periodic fields: the energy spectrum of a
velocity field, the enstrophy spectrum of a 2-D vorticity field, the kinetic-energy spectrum
of a 2-D flow from its streamfunction (one per layer of a layered model)."""

import numpy as np
from jax import numpy as jnp

from .._checks import check_int, check_positive, finite_float
from .._custom_types import Array, ArrayLike, Float
from ._grid import PeriodicGrid


def isotropic_spectrum(
    u: Float[ArrayLike, "..."],
    *,
    spatial_dims: int = 2,
    length: float = 2 * np.pi,
) -> tuple[Float[np.ndarray, " shell"], Float[Array, "... shell"]]:
    r"""The power of a periodic field summed over wavenumber shells, S(k) for k = 0, 1, ...

    With the discrete Fourier coefficients c_m = (1/N) sum_j u_j exp(-2 pi i m . x_j /
    length) of a field on a uniform grid of N = n_1 ... n_d points (the full FFT, every
    mode once) and the integer mode numbers m (|m_i| <= n_i / 2),

        S(k) = (1/2) sum_{m : round(|m|) = k} |c_m|^2,       sum_k S(k) = (1/2) <u^2>

    (Parseval; <.> the mean over the grid), the shell-summed spectrum of turbulence
    (Pope 2000, "Turbulent Flows", sec. 6.5; Boffetta & Ecke 2012, "Two-dimensional
    turbulence", Annu. Rev. Fluid Mech. 44). For a 2-D vorticity field w this is the
    enstrophy spectrum Z(k), whose sum is the mean enstrophy (1/2) <w^2>; the energy
    spectrum of the same flow (the spectrum of its two velocity components, summed) is
    E(k) ~ Z(k) / kappa_k^2 with kappa_k = 2 pi k / length (exact mode by mode, |u_m|^2 =
    |w_m|^2 / |kappa_m|^2; within a shell |kappa_m| spans kappa_k +- pi / length).
    Several channels (leading axes in `*batch`) are not summed: each gets its spectrum.

    The shells run to the largest |m| of the grid, sqrt(d) n / 2 for n points per axis;
    those beyond n / 2 (the corners of the square of modes) are only partly on the grid, so
    plots usually stop at k = n / 2.

    Arguments:
        u: the field, its last `spatial_dims` axes the grid; leading axes are batch axes.
        spatial_dims: d, the number of grid axes (1, 2 or 3).
        length: the period of every axis (only the returned wavenumbers depend on it).

    Returns:
        (kappa, S): the angular wavenumbers kappa_k = 2 pi k / length of the shells
        (NumPy, (K,)) and the spectrum, shape `(*batch, K)`.
    """
    u = jnp.asarray(u)
    d = check_int("spatial_dims", spatial_dims, maximum=3)
    length = finite_float("length", length)
    check_positive("length", length)
    if u.ndim < d:
        raise ValueError(
            f"`u` must have at least spatial_dims = {d} axes (the grid), got shape {u.shape}."
        )
    grid = PeriodicGrid(tuple(u.shape[u.ndim - d :]), length)
    return _shell_sum(u, grid, None)


def _shell_sum(u: Array, grid: PeriodicGrid, weight: np.ndarray | None) -> tuple[np.ndarray, Array]:
    """(kappa_k, sum over the shell round(|m|) = k of (1/2) weight_m |c_m|^2) over the last
    `grid.ndim` axes of `u` (full FFT; `weight` None: 1)."""
    d = grid.ndim
    radius = np.sqrt(sum(m**2 for m in grid.mode_numbers(full=True)))
    shell = np.rint(radius).astype(np.int32).ravel()  # a trace-time constant
    num_shells = int(shell.max()) + 1
    c = jnp.fft.fftn(u, axes=tuple(range(u.ndim - d, u.ndim))) / grid.size
    power = 0.5 * (c.real**2 + c.imag**2)
    if weight is not None:
        power = power * weight.astype(power.dtype)
    batch = u.shape[: u.ndim - d]
    spectrum = jnp.zeros((*batch, num_shells), power.dtype)
    spectrum = spectrum.at[..., shell].add(power.reshape(*batch, -1))
    return 2 * np.pi / grid.length * np.arange(num_shells), spectrum


def kinetic_energy_spectrum(
    psi: Float[ArrayLike, "*batch ny nx"],
    *,
    length: float = 2 * np.pi,
) -> tuple[Float[np.ndarray, " shell"], Float[Array, "*batch shell"]]:
    r"""The isotropic kinetic-energy spectrum E(k) of a 2-D flow from its streamfunction.

    The velocity of a 2-D incompressible flow (or of one layer of a quasi-geostrophic
    model) is (u, v) = (-d psi / dy, d psi / dx), so mode by mode |u_m|^2 + |v_m|^2 =
    |kappa_m|^2 |psi_m|^2 and, with the discrete Fourier coefficients c_m of psi as in
    `isotropic_spectrum` (the full FFT over N points, divided by N),

        E(k) = (1/2) sum_{m : round(|m|) = k} |kappa_m|^2 |c_m|^2,
        sum_k E(k) = (1/2) <u^2 + v^2>          (Parseval),

    the mean kinetic energy per unit mass (Vallis 2017, "Atmospheric and Oceanic Fluid
    Dynamics", 2nd ed., sec. 12.1 and 12.2; pyqg's `ke_spec` up to its binning of shells by
    |kappa| / (sqrt(2) dk) and its angular averaging). Every mode's wavenumber is kept,
    the Nyquist modes included, as in pyqg's inversion. A layered model's psi of shape
    (layer, ny, nx) gives one spectrum per layer (unweighted by the layer depths).

    In 2-D turbulence the enstrophy cascade gives E(k) ~ k^-3 (Kraichnan 1967); in
    geostrophic turbulence below the deformation scale too (Charney 1971), with steeper
    slopes where drag acts (Arbic & Flierl 2004).

    Arguments:
        psi: the streamfunction on a periodic grid, its last two axes (y, x); leading
            axes are batch axes (layers, times).
        length: the period of both axes (the domain's side; only the wavenumbers and the
            energy's scale depend on it).

    Returns:
        (kappa, E): the angular wavenumbers kappa_k = 2 pi k / length of the shells (NumPy,
        (K,)) and the spectrum, shape `(*batch, K)`.
    """
    psi = jnp.asarray(psi)
    length = finite_float("length", length)
    check_positive("length", length)
    if psi.ndim < 2:
        raise ValueError(
            f"`psi` must have at least 2 axes (the grid, y and x), got shape {psi.shape}."
        )
    grid = PeriodicGrid(tuple(psi.shape[-2:]), length)
    return _shell_sum(psi, grid, grid.squared_wavenumber(full=True))
