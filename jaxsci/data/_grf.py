"""Gaussian random fields on periodic grids (the initial conditions of the FNO benchmarks)."""

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._checks import check_int, check_positive, finite_float
from .._custom_types import Array, ArrayLike, Float, Key
from ..spectral import PeriodicGrid


class GaussianRandomField(eqx.Module):
    r"""The Gaussian measure N(0, sigma^2 (-Laplacian + tau^2 I)^{-alpha}) on the torus
    [0, length)^d, sampled on a uniform grid.

    The Laplacian's eigenfunctions are the Fourier modes e_k(x) = length^{-d/2}
    exp(i kappa . x), kappa = 2 pi k / length, so a sample is

        u(x) = sum_k sqrt(lambda_k) xi_k e_k(x),   lambda_k = sigma^2 (|kappa|^2 + tau^2)^{-alpha},

    with independent standard (complex, Hermitian-symmetric) Gaussians xi_k, and covariance
    C(x, y) = length^{-d} sum_k lambda_k cos(kappa . (x - y)). The defaults are the Burgers
    setting of the FNO paper (Li et al. 2021): mu = N(0, 625 (-Laplacian + 25 I)^{-2}) on
    [0, 1), i.e. sigma = 25, tau = 5, alpha = 2 (then lambda_0 = 1; the FNO group's
    generators drop the mean mode, `zero_mean=True`, as `burgers_dataset` does). Their Navier-Stokes
    initial vorticity is sigma = 7^{3/4}, tau = 7, alpha = 2.5 on [0, 1)^2 with
    `zero_mean=True` (the mean vorticity on a torus is zero).

    Sampling is exact on the grid: white noise is transformed with the FFT, scaled by
    sqrt(lambda_k) and transformed back. Modes with some |k_i| = n_i / 2 (the Nyquist modes
    of an even grid) are left out, so a sample is the grid restriction of a band-limited
    field whose modes satisfy |k_i| < n_i / 2. `zero_mean` also leaves out k = 0.

    The measure's parameters are static: they fix the eigenvalues, which are NumPy
    constants folded into the sampler, and key the cached data sets built from it.
    """

    shape: tuple[int, ...] = eqx.field(static=True)
    length: float = eqx.field(static=True)
    alpha: float = eqx.field(static=True)
    tau: float = eqx.field(static=True)
    sigma: float = eqx.field(static=True)
    zero_mean: bool = eqx.field(static=True)

    def __init__(
        self,
        shape: int | tuple[int, ...],
        *,
        length: float = 1.0,
        alpha: float = 2.0,
        tau: float = 5.0,
        sigma: float = 25.0,
        zero_mean: bool = False,
    ):
        if isinstance(shape, int | np.integer):
            self.shape = (check_int("shape", shape, minimum=2),)
        else:
            self.shape = tuple(check_int(f"shape[{i}]", n, minimum=2) for i, n in enumerate(shape))
            if not self.shape:
                raise ValueError("`shape` must be grid sizes >= 2, got ().")
        self.length = finite_float("length", length)
        self.alpha = finite_float("alpha", alpha)
        self.tau = finite_float("tau", tau)
        self.sigma = finite_float("sigma", sigma)
        self.zero_mean = bool(zero_mean)

    def __check_init__(self):
        check_positive("length", self.length)
        check_positive("alpha", self.alpha)
        check_positive("tau", self.tau)
        check_positive("sigma", self.sigma)

    @property
    def grid(self) -> PeriodicGrid:
        """The periodic grid the field is sampled on."""
        return PeriodicGrid(self.shape, self.length)

    def wavenumbers(self) -> list[np.ndarray]:
        """Integer wavenumbers k_i on the `rfftn` grid (one array per axis, broadcast)."""
        return list(self.grid.mode_numbers())

    def eigenvalues(self) -> np.ndarray:
        """lambda_k on the `rfftn` grid, 0 on the modes left out (Nyquist, and k = 0 with
        `zero_mean`)."""
        ks = self.wavenumbers()
        kappa2 = self.grid.squared_wavenumber()
        lam = self.sigma**2 * (kappa2 + self.tau**2) ** (-self.alpha)
        keep = np.ones(lam.shape, dtype=bool)
        for k, n in zip(ks, self.shape, strict=True):
            keep &= 2 * np.abs(k) != n  # the Nyquist mode of an even axis
        if self.zero_mean:
            keep &= sum(np.abs(k) for k in ks) > 0
        return np.where(keep, lam, 0.0)

    def covariance(self, displacement: Float[ArrayLike, "... d"]) -> Float[np.ndarray, "..."]:
        """C(r) = length^{-d} sum_k lambda_k cos(kappa . r) over the modes that are sampled
        (a direct sum, for tests and plots)."""
        r = np.asarray(displacement, dtype=np.float64)
        d = len(self.shape)
        ks = np.stack(self.grid.mode_numbers(full=True), axis=-1).reshape(-1, d)
        kappa = 2 * np.pi / self.length * ks
        kappa2 = np.sum(kappa**2, axis=-1)
        lam = self.sigma**2 * (kappa2 + self.tau**2) ** (-self.alpha)
        keep = np.ones(len(ks), dtype=bool)
        for i, n in enumerate(self.shape):
            keep &= 2 * np.abs(ks[:, i]) != n
        if self.zero_mean:
            keep &= np.any(ks != 0, axis=1)
        phase = r.reshape(-1, d) @ kappa[keep].T
        cov = np.cos(phase) @ lam[keep] / self.length**d
        return cov.reshape(r.shape[:-1])

    def __call__(self, key: Key, dtype=None) -> Float[Array, "*shape"]:
        """One sample on the grid x_j = j * length / n (per axis)."""
        dtype = jnp.result_type(float) if dtype is None else dtype
        n_total = math.prod(self.shape)
        xi = jax.random.normal(key, self.shape, dtype)
        scale = (
            np.sqrt(self.eigenvalues()) * math.sqrt(n_total) / self.length ** (len(self.shape) / 2)
        )
        u_hat = jnp.fft.rfftn(xi) * scale.astype(dtype)
        return jnp.fft.irfftn(u_hat, s=self.shape).astype(dtype)
