import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Real

from .._checks import check_finite, check_positive, float_parameter
from .._custom_types import Array, ArrayLike, Float, PyTree, ScalarLike, SpectralState, State
from ..spectral import PeriodicGrid
from ..spectral._grid import check_even_grid
from ._base import AbstractSemilinear


class KuramotoSivashinsky(AbstractSemilinear):
    r"""Kuramoto-Sivashinsky equation on a periodic domain [0, length).

        u_t = -lam u u_x - alpha u_xx - nu u_xxxx - dispersion u_xxx + growth u

    The standard form (lam = alpha = nu = 1, no dispersion or growth) is chaotic for
    length >~ 22; at length 22 its leading Lyapunov exponent is about 0.048
    (Cvitanovic, Davidchack & Siminos 2010). Linear part in Fourier space:
    L(k) = alpha k^2 - nu k^4 + i dispersion k^3 + growth; nonlinear part
    N = -lam (i k / 2) FFT(u^2) with Orszag's 2/3 de-aliasing when `dealias`.
    The extra coefficients let a "true" system differ from the standard "model" (model
    error experiments). `length`, `num_points` (even, >= 4) and `dealias` are static grid
    structure; `grid` is the `PeriodicGrid` they make.
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
        nu: Real[ArrayLike, ""] = 1.0,
        alpha: Real[ArrayLike, ""] = 1.0,
        lam: Real[ArrayLike, ""] = 1.0,
        dispersion: Real[ArrayLike, ""] = 0.0,
        growth: Real[ArrayLike, ""] = 0.0,
        dealias: bool = True,
    ):
        self.num_points, self.length = check_even_grid(num_points, length)
        self.dealias = bool(dealias)
        self.nu = float_parameter("nu", nu)
        self.alpha = float_parameter("alpha", alpha)
        self.lam = float_parameter("lam", lam)
        self.dispersion = float_parameter("dispersion", dispersion)
        self.growth = float_parameter("growth", growth)

    def __check_init__(self):
        check_positive("nu", self.nu)
        for name in ("alpha", "lam", "dispersion", "growth"):
            check_finite(name, getattr(self, name))

    @property
    def grid(self) -> PeriodicGrid:
        return PeriodicGrid(self.num_points, self.length, dealias=self.dealias)

    def linear_operator(self) -> SpectralState:
        (k,), (ko,) = self.grid.wavenumbers(), self.grid.odd_wavenumbers()
        return (self.alpha * k**2 - self.nu * k**4 + self.growth) + 1j * self.dispersion * ko**3

    def nonlinear(self, t: ScalarLike, y_hat: SpectralState, args: PyTree = None) -> SpectralState:
        grid = self.grid
        u = grid.from_spectral(grid.dealiased(y_hat))
        nl = -0.5j * grid.odd_wavenumbers()[0] * grid.to_spectral(u * u)
        return self.lam * grid.dealiased(nl)

    def default_initial_state(self, key: Array | None = None) -> State:
        # Kassam & Trefethen (2005) use u0 = cos(x/16)(1 + sin(x/16)) on [0, 32 pi]; for
        # other lengths we use the same shape with the period rescaled to the domain.
        x = jnp.asarray(self.grid.coordinates()[0])
        s = 2 * np.pi / self.length
        return jnp.cos(s * x) * (1 + jnp.sin(s * x))
