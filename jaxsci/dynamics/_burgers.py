import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Real

from .._checks import check_positive, float_parameter
from .._custom_types import Array, ArrayLike, Float, PyTree, ScalarLike, SpectralState, State
from ..spectral import PeriodicGrid
from ..spectral._grid import check_even_grid
from ._base import AbstractSemilinear


class Burgers(AbstractSemilinear):
    r"""Viscous Burgers equation u_t + u u_x = nu u_xx on a periodic domain [0, length).

    Linear part L(k) = -nu k^2; nonlinear part N = -(i k / 2) FFT(u^2), 2/3 de-aliased
    when `dealias`. Exact solutions follow from the Cole-Hopf transform u = -2 nu phi_x / phi
    with phi solving the heat equation. `length`, `num_points` (even, >= 4) and `dealias`
    are static grid structure; `grid` is the `PeriodicGrid` they make.
    """

    nu: Float[Array, ""]
    length: float = eqx.field(static=True)
    num_points: int = eqx.field(static=True)
    dealias: bool = eqx.field(static=True)

    def __init__(
        self,
        nu: Real[ArrayLike, ""] = 0.1,
        length: float = 2 * np.pi,
        num_points: int = 128,
        dealias: bool = True,
    ):
        self.num_points, self.length = check_even_grid(num_points, length)
        self.nu = float_parameter("nu", nu)
        self.dealias = bool(dealias)

    @property
    def grid(self) -> PeriodicGrid:
        return PeriodicGrid(self.num_points, self.length, dealias=self.dealias)

    def __check_init__(self):
        check_positive("nu", self.nu)

    def linear_operator(self) -> SpectralState:
        (k,) = self.grid.wavenumbers()
        return (-self.nu * k**2).astype(jnp.result_type(self.nu, 1j))

    def nonlinear(self, t: ScalarLike, y_hat: SpectralState, args: PyTree = None) -> SpectralState:
        grid = self.grid
        u = grid.from_spectral(grid.dealiased(y_hat))
        return grid.dealiased(-0.5j * grid.odd_wavenumbers()[0] * grid.to_spectral(u * u))

    def default_initial_state(self, key: Array | None = None) -> State:
        return jnp.sin(2 * np.pi / self.length * jnp.asarray(self.grid.coordinates()[0]))
