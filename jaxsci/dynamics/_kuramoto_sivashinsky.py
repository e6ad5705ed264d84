import equinox as eqx
import jax.numpy as jnp
import numpy as np

from .._custom_types import Array, Float, PyTree, ScalarLike
from ._base import AbstractSemilinear, check_positive


class KuramotoSivashinsky(AbstractSemilinear):
    r"""Kuramoto-Sivashinsky equation on a periodic domain [0, length).

        u_t = -lam u u_x - alpha u_xx - nu u_xxxx - dispersion u_xxx + growth u

    The standard form (lam = alpha = nu = 1, no dispersion or growth) is chaotic for
    length >~ 22; at length 22 its leading Lyapunov exponent is about 0.048
    (Cvitanovic, Davidchack & Siminos 2010). Linear part in Fourier space:
    L(k) = alpha k^2 - nu k^4 + i dispersion k^3 + growth; nonlinear part
    N = -lam (i k / 2) FFT(u^2) with Orszag's 2/3 de-aliasing when `dealias`.
    The extra coefficients let a "true" system differ from the standard "model" (model
    error experiments). `length` and `num_points` are static grid structure.
    """

    nu: Float[Array, ""]
    alpha: Float[Array, ""]
    lam: Float[Array, ""]
    dispersion: Float[Array, ""]
    growth: Float[Array, ""]
    length: float = eqx.field(static=True)
    num_points: int = eqx.field(static=True)
    dealias: bool = eqx.field(static=True)

    def __init__(
        self,
        length: float = 22.0,
        num_points: int = 64,
        nu=1.0,
        alpha=1.0,
        lam=1.0,
        dispersion=0.0,
        growth=0.0,
        dealias: bool = True,
    ):
        if int(num_points) < 4 or int(num_points) % 2:
            raise ValueError(f"`num_points` must be an even integer >= 4, got {num_points}.")
        if not float(length) > 0:
            raise ValueError(f"`length` must be positive, got {length}.")
        self.length = float(length)
        self.num_points = int(num_points)
        self.dealias = bool(dealias)
        self.nu = jnp.asarray(nu, dtype=float)
        self.alpha = jnp.asarray(alpha, dtype=float)
        self.lam = jnp.asarray(lam, dtype=float)
        self.dispersion = jnp.asarray(dispersion, dtype=float)
        self.growth = jnp.asarray(growth, dtype=float)

    def __check_init__(self):
        check_positive("nu", self.nu)

    @property
    def state_shape(self):
        return (self.num_points,)

    @property
    def grid(self):
        return jnp.asarray(np.arange(self.num_points) * self.length / self.num_points)

    def _k(self):
        # Angular wavenumbers (numpy constants, folded at trace time).
        return 2 * np.pi / self.length * np.fft.rfftfreq(self.num_points, 1.0 / self.num_points)

    def _k_odd(self):
        # Odd derivatives: the Nyquist mode has no sign and is set to zero.
        k = self._k().copy()
        k[-1] = 0.0
        return k

    def _mask(self):
        n = self.num_points
        if not self.dealias:
            return np.ones(n // 2 + 1, dtype=bool)
        return np.abs(np.fft.rfftfreq(n, 1.0 / n)) < n / 3.0

    def linear_operator(self):
        k = self._k()
        ko = self._k_odd()
        return (self.alpha * k**2 - self.nu * k**4 + self.growth) + 1j * self.dispersion * ko**3

    def nonlinear(self, t: ScalarLike, y_hat, args: PyTree = None):
        mask = self._mask()
        u = jnp.fft.irfft(jnp.where(mask, y_hat, 0), n=self.num_points)
        nl = -0.5j * self._k_odd() * jnp.fft.rfft(u * u)
        return self.lam * jnp.where(mask, nl, 0)

    def to_spectral(self, y):
        return jnp.fft.rfft(y)

    def from_spectral(self, y_hat):
        return jnp.fft.irfft(y_hat, n=self.num_points)

    def default_initial_state(self, key=None):
        # Kassam & Trefethen (2005) use u0 = cos(x/16)(1 + sin(x/16)) on [0, 32 pi]; for
        # other lengths we use the same shape with the period rescaled to the domain.
        x = self.grid
        s = 2 * np.pi / self.length
        return jnp.cos(s * x) * (1 + jnp.sin(s * x))
