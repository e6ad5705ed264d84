"""Gaussian random fields on periodic grids (the initial conditions of the FNO benchmarks)."""

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._custom_types import Array, Float, Key


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
            self.shape = (int(shape),)
        else:
            self.shape = tuple(int(n) for n in shape)
        self.length = float(length)
        self.alpha = float(alpha)
        self.tau = float(tau)
        self.sigma = float(sigma)
        self.zero_mean = bool(zero_mean)

    def __check_init__(self):
        if not self.shape or any(n < 2 for n in self.shape):
            raise ValueError(f"`shape` must be grid sizes >= 2, got {self.shape}.")
        for name in ("length", "tau", "sigma"):
            if not getattr(self, name) > 0:
                raise ValueError(f"`{name}` must be positive, got {getattr(self, name)}.")
        if not self.alpha > 0:
            raise ValueError(f"`alpha` must be positive, got {self.alpha}.")

    def wavenumbers(self) -> list[np.ndarray]:
        """Integer wavenumbers k_i on the `rfftn` grid (one array per axis, broadcast)."""
        axes = [np.fft.fftfreq(n, 1.0 / n) for n in self.shape[:-1]]
        axes.append(np.fft.rfftfreq(self.shape[-1], 1.0 / self.shape[-1]))
        return list(np.meshgrid(*axes, indexing="ij"))

    def eigenvalues(self) -> np.ndarray:
        """lambda_k on the `rfftn` grid, 0 on the modes left out (Nyquist, and k = 0 with
        `zero_mean`)."""
        ks = self.wavenumbers()
        kappa2 = sum((2 * np.pi / self.length * k) ** 2 for k in ks)
        lam = self.sigma**2 * (kappa2 + self.tau**2) ** (-self.alpha)
        keep = np.ones(lam.shape, dtype=bool)
        for k, n in zip(ks, self.shape, strict=True):
            if n % 2 == 0:
                keep &= np.abs(k) != n // 2
        if self.zero_mean:
            keep &= sum(np.abs(k) for k in ks) > 0
        return np.where(keep, lam, 0.0)

    def covariance(self, displacement: Float[Array, "... d"]) -> np.ndarray:
        """C(r) = length^{-d} sum_k lambda_k cos(kappa . r) over the modes that are sampled
        (a direct sum, for tests and plots)."""
        r = np.asarray(displacement, dtype=np.float64)
        d = len(self.shape)
        axes = [np.fft.fftfreq(n, 1.0 / n) for n in self.shape]
        ks = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, d)
        kappa = 2 * np.pi / self.length * ks
        kappa2 = np.sum(kappa**2, axis=-1)
        lam = self.sigma**2 * (kappa2 + self.tau**2) ** (-self.alpha)
        keep = np.ones(len(ks), dtype=bool)
        for i, n in enumerate(self.shape):
            if n % 2 == 0:
                keep &= np.abs(ks[:, i]) != n // 2
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
