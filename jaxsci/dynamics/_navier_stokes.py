import equinox as eqx
import jax.numpy as jnp
import numpy as np

from .._custom_types import Array, Float, PyTree, ScalarLike
from ._base import AbstractSemilinear, check_positive


class NavierStokes2D(AbstractSemilinear):
    r"""2-D incompressible Navier-Stokes in vorticity form on a periodic square.

        w_t + u . grad(w) = nu lap(w) - drag w + f,   lap(psi) = -w,  u = (psi_y, -psi_x)

    State: vorticity w on an n x n grid indexed [x, y], domain [0, length)^2. Optional
    Kolmogorov forcing: the body force (A sin(k_f y), 0), i.e. vorticity forcing
    f = -A k_f cos(k_f y) with k_f = 2 pi `forcing_wavenumber` / length. Linear part
    L = -nu |k|^2 - drag; the advection term is computed pseudo-spectrally with 2/3
    de-aliasing.
    """

    nu: Float[Array, ""]
    drag: Float[Array, ""]
    forcing_amplitude: Float[Array, ""]
    forcing_wavenumber: int = eqx.field(static=True)
    length: float = eqx.field(static=True)
    num_points: int = eqx.field(static=True)
    dealias: bool = eqx.field(static=True)

    def __init__(
        self,
        nu=1e-3,
        num_points: int = 64,
        length: float = 2 * np.pi,
        drag=0.0,
        forcing_amplitude=0.0,
        forcing_wavenumber: int = 4,
        dealias: bool = True,
    ):
        if int(num_points) < 4 or int(num_points) % 2:
            raise ValueError(f"`num_points` must be an even integer >= 4, got {num_points}.")
        if not float(length) > 0:
            raise ValueError(f"`length` must be positive, got {length}.")
        self.nu = jnp.asarray(nu, dtype=float)
        self.drag = jnp.asarray(drag, dtype=float)
        self.forcing_amplitude = jnp.asarray(forcing_amplitude, dtype=float)
        self.forcing_wavenumber = int(forcing_wavenumber)
        self.length = float(length)
        self.num_points = int(num_points)
        self.dealias = bool(dealias)

    def __check_init__(self):
        check_positive("nu", self.nu)
        check_positive("drag", self.drag, allow_zero=True)

    @property
    def state_shape(self):
        return (self.num_points, self.num_points)

    @property
    def grid(self):
        x = np.arange(self.num_points) * self.length / self.num_points
        xx, yy = np.meshgrid(x, x, indexing="ij")
        return jnp.asarray(xx), jnp.asarray(yy)

    def _k(self):
        n = self.num_points
        s = 2 * np.pi / self.length
        kx = s * np.fft.fftfreq(n, 1.0 / n)
        ky = s * np.fft.rfftfreq(n, 1.0 / n)
        return np.meshgrid(kx, ky, indexing="ij")

    def _mask(self):
        n = self.num_points
        if not self.dealias:
            return np.ones((n, n // 2 + 1), dtype=bool)
        kx = np.fft.fftfreq(n, 1.0 / n)
        ky = np.fft.rfftfreq(n, 1.0 / n)
        kxx, kyy = np.meshgrid(kx, ky, indexing="ij")
        return (np.abs(kxx) < n / 3.0) & (np.abs(kyy) < n / 3.0)

    def _forcing_hat(self):
        # Built in numpy (a trace-time constant): `self.grid` is a jax array, which is a
        # tracer inside jit and cannot go through np.fft.
        n = self.num_points
        y = np.broadcast_to(np.arange(n) * self.length / n, (n, n))
        kf = 2 * np.pi * self.forcing_wavenumber / self.length
        pattern = np.fft.rfft2(-kf * np.cos(kf * y))
        return self.forcing_amplitude * pattern

    def linear_operator(self):
        kx, ky = self._k()
        lin = -self.nu * (kx**2 + ky**2) - self.drag
        return lin.astype(jnp.result_type(self.nu, 1j))

    def nonlinear(self, t: ScalarLike, y_hat, args: PyTree = None):
        kx, ky = self._k()
        n = self.num_points
        # Odd derivatives drop the Nyquist rows/columns (no well-defined sign).
        kxo = np.where(np.abs(kx) == np.pi * n / self.length, 0.0, kx)
        kyo = np.where(np.abs(ky) == np.pi * n / self.length, 0.0, ky)
        k2 = kx**2 + ky**2
        inv_k2 = np.where(k2 > 0, 1.0 / np.where(k2 > 0, k2, 1.0), 0.0)
        mask = self._mask()
        w_hat = jnp.where(mask, y_hat, 0)
        psi_hat = w_hat * inv_k2
        u = jnp.fft.irfft2(1j * kyo * psi_hat, s=(n, n))
        v = jnp.fft.irfft2(-1j * kxo * psi_hat, s=(n, n))
        wx = jnp.fft.irfft2(1j * kxo * w_hat, s=(n, n))
        wy = jnp.fft.irfft2(1j * kyo * w_hat, s=(n, n))
        adv_hat = jnp.fft.rfft2(u * wx + v * wy)
        return jnp.where(mask, -adv_hat, 0) + self._forcing_hat()

    def to_spectral(self, y):
        return jnp.fft.rfft2(y)

    def from_spectral(self, y_hat):
        return jnp.fft.irfft2(y_hat, s=(self.num_points, self.num_points))

    def velocity(self, w):
        """Velocity (u, v) from vorticity `w` via the streamfunction."""
        kx, ky = self._k()
        n = self.num_points
        k2 = kx**2 + ky**2
        inv_k2 = np.where(k2 > 0, 1.0 / np.where(k2 > 0, k2, 1.0), 0.0)
        psi_hat = jnp.fft.rfft2(w) * inv_k2
        return (
            jnp.fft.irfft2(1j * ky * psi_hat, s=(n, n)),
            jnp.fft.irfft2(-1j * kx * psi_hat, s=(n, n)),
        )

    def default_initial_state(self, key=None):
        # A smooth, broadband vorticity field (deterministic): a few sheared Fourier modes.
        x, y = self.grid
        s = 2 * np.pi / self.length
        return (
            jnp.sin(s * x) * jnp.cos(2 * s * y)
            + 0.5 * jnp.cos(3 * s * x + 1.0)
            + 0.3 * jnp.sin(2 * s * (x + y))
        )
