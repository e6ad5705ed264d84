import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Real

from .._checks import check_finite, check_int, check_positive, float_parameter
from .._custom_types import Array, ArrayLike, Float, PyTree, ScalarLike, SpectralState, State
from ..spectral import PeriodicGrid
from ..spectral._grid import check_even_grid
from ._base import AbstractSemilinear


class NavierStokes2D(AbstractSemilinear):
    r"""2-D incompressible Navier-Stokes in vorticity form on a periodic square.

        w_t + u . grad(w) = nu lap(w) - drag w + f,   lap(psi) = -w,  u = (psi_y, -psi_x)

    State: vorticity w on an n x n grid indexed [x, y], domain [0, length)^2. Optional
    Kolmogorov forcing: the body force (A sin(k_f y), 0), i.e. vorticity forcing
    f = -A k_f cos(k_f y) with k_f = 2 pi `forcing_wavenumber` / length. Linear part
    L = -nu |k|^2 - drag; the advection term is computed pseudo-spectrally with 2/3
    de-aliasing (odd derivatives without the Nyquist modes). `grid` is the n x n
    `PeriodicGrid` of `num_points` (even, >= 4), `length` and `dealias`.
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
        nu: Real[ArrayLike, ""] = 1e-3,
        num_points: int = 64,
        length: float = 2 * np.pi,
        drag: Real[ArrayLike, ""] = 0.0,
        forcing_amplitude: Real[ArrayLike, ""] = 0.0,
        forcing_wavenumber: int = 4,
        dealias: bool = True,
    ):
        self.num_points, self.length = check_even_grid(num_points, length, ndim=2)
        self.nu = float_parameter("nu", nu)
        self.drag = float_parameter("drag", drag)
        self.forcing_amplitude = float_parameter("forcing_amplitude", forcing_amplitude)
        self.forcing_wavenumber = check_int("forcing_wavenumber", forcing_wavenumber, minimum=None)
        self.dealias = bool(dealias)

    def __check_init__(self):
        check_positive("nu", self.nu)
        check_positive("drag", self.drag, allow_zero=True)
        check_finite("forcing_amplitude", self.forcing_amplitude)

    @property
    def grid(self) -> PeriodicGrid:
        return PeriodicGrid((self.num_points, self.num_points), self.length, dealias=self.dealias)

    def _forcing_hat(self):
        # Built in numpy (a trace-time constant), like the grid's arrays.
        n = self.num_points
        y = np.broadcast_to(np.arange(n) * self.length / n, (n, n))
        kf = 2 * np.pi * self.forcing_wavenumber / self.length
        pattern = np.fft.rfft2(-kf * np.cos(kf * y))
        return self.forcing_amplitude * pattern

    def linear_operator(self) -> SpectralState:
        lin = -self.nu * self.grid.squared_wavenumber() - self.drag
        return lin.astype(jnp.result_type(self.nu, 1j))

    def nonlinear(self, t: ScalarLike, y_hat: SpectralState, args: PyTree = None) -> SpectralState:
        grid = self.grid
        kxo, kyo = grid.odd_wavenumbers()
        w_hat = grid.dealiased(y_hat)
        psi_hat = w_hat * -grid.inverse_laplacian()
        u = grid.from_spectral(1j * kyo * psi_hat)
        v = grid.from_spectral(-1j * kxo * psi_hat)
        wx = grid.from_spectral(1j * kxo * w_hat)
        wy = grid.from_spectral(1j * kyo * w_hat)
        adv_hat = grid.to_spectral(u * wx + v * wy)
        return grid.dealiased(-adv_hat) + self._forcing_hat()

    def velocity(self, w: Float[Array, "n n"]) -> tuple[Float[Array, "n n"], Float[Array, "n n"]]:
        """Velocity (u, v) = (psi_y, -psi_x) from vorticity `w` via the streamfunction."""
        grid = self.grid
        kx, ky = grid.wavenumbers()
        psi_hat = grid.to_spectral(w) * -grid.inverse_laplacian()
        return grid.from_spectral(1j * ky * psi_hat), grid.from_spectral(-1j * kx * psi_hat)

    def default_initial_state(self, key: Array | None = None) -> State:
        # A smooth, broadband vorticity field (deterministic): a few sheared Fourier modes.
        x, y = (jnp.asarray(c) for c in self.grid.coordinates())
        s = 2 * np.pi / self.length
        return (
            jnp.sin(s * x) * jnp.cos(2 * s * y)
            + 0.5 * jnp.cos(3 * s * x + 1.0)
            + 0.3 * jnp.sin(2 * s * (x + y))
        )
