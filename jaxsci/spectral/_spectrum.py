r"""Isotropic (shell-summed) power spectra of periodic fields: the energy spectrum of a
velocity field, the enstrophy spectrum of a 2-D vorticity field."""

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
    shape = tuple(u.shape[u.ndim - d :])
    grid = PeriodicGrid(shape, length)
    radius = np.sqrt(sum(m**2 for m in grid.mode_numbers(full=True)))
    shell = np.rint(radius).astype(np.int32).ravel()  # a trace-time constant
    num_shells = int(shell.max()) + 1
    c = jnp.fft.fftn(u, axes=tuple(range(u.ndim - d, u.ndim))) / grid.size
    power = 0.5 * (c.real**2 + c.imag**2)
    batch = u.shape[: u.ndim - d]
    spectrum = jnp.zeros((*batch, num_shells), power.dtype)
    spectrum = spectrum.at[..., shell].add(power.reshape(*batch, -1))
    return 2 * np.pi / length * np.arange(num_shells), spectrum
