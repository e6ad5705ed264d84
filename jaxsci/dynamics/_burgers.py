import equinox as eqx
import jax.numpy as jnp
import numpy as np

from .._custom_types import Array, Float, PyTree, ScalarLike
from ._base import AbstractSemilinear, check_positive


class Burgers(AbstractSemilinear):
    r"""Viscous Burgers equation u_t + u u_x = nu u_xx on a periodic domain [0, length).

    Linear part L(k) = -nu k^2; nonlinear part N = -(i k / 2) FFT(u^2), 2/3 de-aliased
    when `dealias`. Exact solutions follow from the Cole-Hopf transform u = -2 nu phi_x / phi
    with phi solving the heat equation.
    """

    nu: Float[Array, ""]
    length: float = eqx.field(static=True)
    num_points: int = eqx.field(static=True)
    dealias: bool = eqx.field(static=True)

    def __init__(
        self, nu=0.1, length: float = 2 * np.pi, num_points: int = 128, dealias: bool = True
    ):
        if int(num_points) < 4 or int(num_points) % 2:
            raise ValueError(f"`num_points` must be an even integer >= 4, got {num_points}.")
        if not float(length) > 0:
            raise ValueError(f"`length` must be positive, got {length}.")
        self.nu = jnp.asarray(nu, dtype=float)
        self.length = float(length)
        self.num_points = int(num_points)
        self.dealias = bool(dealias)

    def __check_init__(self):
        check_positive("nu", self.nu)

    @property
    def state_shape(self):
        return (self.num_points,)

    @property
    def grid(self):
        return jnp.asarray(np.arange(self.num_points) * self.length / self.num_points)

    def _k(self):
        return 2 * np.pi / self.length * np.fft.rfftfreq(self.num_points, 1.0 / self.num_points)

    def _mask(self):
        n = self.num_points
        if not self.dealias:
            return np.ones(n // 2 + 1, dtype=bool)
        return np.abs(np.fft.rfftfreq(n, 1.0 / n)) < n / 3.0

    def linear_operator(self):
        return (-self.nu * self._k() ** 2).astype(jnp.result_type(self.nu, 1j))

    def nonlinear(self, t: ScalarLike, y_hat, args: PyTree = None):
        mask = self._mask()
        k = self._k().copy()
        k[-1] = 0.0
        u = jnp.fft.irfft(jnp.where(mask, y_hat, 0), n=self.num_points)
        return jnp.where(mask, -0.5j * k * jnp.fft.rfft(u * u), 0)

    def to_spectral(self, y):
        return jnp.fft.rfft(y)

    def from_spectral(self, y_hat):
        return jnp.fft.irfft(y_hat, n=self.num_points)

    def default_initial_state(self, key=None):
        return jnp.sin(2 * np.pi / self.length * self.grid)
