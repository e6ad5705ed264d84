from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Real

from .._checks import check_finite, check_positive, float_parameter
from .._custom_types import Array, ArrayLike, Float, PyTree, ScalarLike, SpectralState, State
from ..spectral import PeriodicGrid
from ..spectral._grid import check_even_grid
from ._base import AbstractSemilinear


class AllenCahn(AbstractSemilinear):
    r"""Allen-Cahn equation u_t = diffusion u_xx + reaction (u - u^3), periodic in x.

    The domain is [start, start + length) (default [-1, 1), the PINN benchmark of Raissi,
    Perdikaris & Karniadakis 2019 and Wang, Sankaran & Perdikaris 2022: diffusion = 1e-4,
    reaction = 5, u0 = x^2 cos(pi x), the `default_initial_state`). The potential
    reaction (u - u^3) drives u to the stable states +-1; diffusion sets the width of the
    interfaces between them, sqrt(2 diffusion / reaction) (0.0063 for the defaults, so the
    benchmark needs a fine grid: 512 points resolve it, h = 0.0039).

    Linear part in Fourier space L(k) = -diffusion k^2; nonlinear part
    N = FFT(reaction (u - u^3)). The 2/3 rule does not remove the aliasing of a cubic
    product (that would take the 1/2 rule), so de-aliasing is off by default: on a grid that
    resolves the interfaces the spectrum of u^3 is at round-off beyond the grid's
    wavenumbers. `length`, `num_points` (even, >= 4) and `dealias` are static grid structure
    (`grid` is the `PeriodicGrid` they make); `start` is the left end, static too (the
    grid's points are start + coordinates).
    """

    diffusion: Float[Array, ""]
    reaction: Float[Array, ""]
    length: float = eqx.field(static=True)
    num_points: int = eqx.field(static=True)
    start: float = eqx.field(static=True)
    dealias: bool = eqx.field(static=True)

    def __init__(
        self,
        diffusion: Real[ArrayLike, ""] = 1e-4,
        reaction: Real[ArrayLike, ""] = 5.0,
        length: float = 2.0,
        num_points: int = 512,
        start: float = -1.0,
        dealias: bool = False,
    ):
        self.num_points, self.length = check_even_grid(num_points, length)
        self.diffusion = float_parameter("diffusion", diffusion)
        self.reaction = float_parameter("reaction", reaction)
        start_arr = np.asarray(start)
        if start_arr.shape != () or not np.isfinite(start_arr) or start_arr.dtype.kind not in "iuf":
            raise ValueError(f"`start` must be a finite real number, got {start!r}.")
        self.start = float(start_arr)
        self.dealias = bool(dealias)

    def __check_init__(self):
        check_positive("diffusion", self.diffusion)
        check_finite("reaction", self.reaction)

    @property
    def grid(self) -> PeriodicGrid:
        return PeriodicGrid(self.num_points, self.length, dealias=self.dealias)

    def coordinates(self) -> np.ndarray:
        """The grid's points x_j = start + j length / num_points (a numpy array)."""
        return self.start + self.grid.coordinates()[0]

    def linear_operator(self) -> SpectralState:
        (k,) = self.grid.wavenumbers()
        return (-self.diffusion * k**2).astype(jnp.result_type(self.diffusion, 1j))

    def nonlinear(self, t: ScalarLike, y_hat: SpectralState, args: PyTree = None) -> SpectralState:
        grid = self.grid
        u = grid.from_spectral(grid.dealiased(y_hat))
        return grid.dealiased(grid.to_spectral(self.reaction * (u - u**3)))

    def default_initial_state(self, key: Array | None = None) -> State:
        x = jnp.asarray(self.coordinates(), dtype=jnp.result_type(float))
        return x**2 * jnp.cos(np.pi * x)

    def residual(self, u: Callable, point: Float[Array, "..."]) -> Array:
        r"""The PDE residual of a field u(x, t) at point = (x, t), for physics-informed losses:

            R = u_t - diffusion u_xx - reaction (u - u^3),

        derivatives by nested forward-mode automatic differentiation (exact to rounding).
        `u` maps a point of shape (2,) to the field (any shape, e.g. (1,)); the residual has
        that shape. Use as `jaxsci.losses.PINNLoss(model.residual, ...)`.
        """
        point = jnp.asarray(point)
        if point.shape != (2,):
            raise ValueError(f"`point` must be (x, t) of shape (2,), got shape {point.shape}.")
        ex = jnp.zeros_like(point).at[0].set(1.0)
        et = jnp.zeros_like(point).at[1].set(1.0)

        def u_x(p):
            return jax.jvp(u, (p,), (ex,))[1]

        value, u_t = jax.jvp(u, (point,), (et,))
        u_xx = jax.jvp(u_x, (point,), (ex,))[1]
        return u_t - self.diffusion * u_xx - self.reaction * (value - value**3)
