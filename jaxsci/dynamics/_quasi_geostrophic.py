r"""Phillips' two-layer quasi-geostrophic model on a doubly periodic square (pyqg's conventions)."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Real

from .._checks import check_finite, check_int, check_key, check_positive, float_parameter
from .._custom_types import Array, ArrayLike, Float, PyTree, ScalarLike, SpectralState, State
from ..spectral import PeriodicGrid
from ..spectral._grid import check_even_grid
from ._base import AbstractSemilinear

#: pyqg's filter cutoff: the filter is 1 for nondimensional wavenumbers |k dx| <= 0.65 pi
#: (pyqg's `cphi`, Arbic & Flierl 2004) and decays as exp(-filterfac (|k dx| - 0.65 pi)^4)
#: beyond, so the Nyquist band (|k dx| = pi) is damped by e^-34.5 ~ 1e-15 per step.
FILTER_CUTOFF = 0.65 * np.pi


class TwoLayerQG(AbstractSemilinear):
    r"""Phillips' two-layer quasi-geostrophic model, pseudo-spectral on a periodic square.

    The potential-vorticity anomalies q_1 (upper layer) and q_2 (lower) of a flow with
    mean zonal velocities U_1, U_2 on a beta plane (Phillips 1954; the equations,
    conventions and defaults of pyqg, Abernathey et al. 2019, doi:10.5281/zenodo.3551326):

        q_1 = lap psi_1 + F_1 (psi_2 - psi_1),  q_2 = lap psi_2 + F_2 (psi_1 - psi_2),
        d_t q_i + J(psi_i, q_i) + U_i d_x q_i + Q_{y,i} d_x psi_i = -delta_{i2} r_ek lap psi_2
                                                                     - nu (-lap)^p q_i,

    with F_1 = 1 / (r_d^2 (1 + delta)), F_2 = delta F_1 (delta = H_1 / H_2), the mean PV
    gradients Q_{y,1} = beta + F_1 (U_1 - U_2), Q_{y,2} = beta - F_2 (U_1 - U_2), velocities
    (u, v) = (-d_y psi, d_x psi) and J(psi, q) = u d_x q + v d_y q. The advection is
    computed as pyqg does, in flux form d_x((u + U_i) q) + d_y(v q) with the products on the
    grid and no de-aliasing (the spectral filter, `spectral_filter()`, removes the aliased
    band; the grid's `dealias` is False), and the derivatives use pyqg's wavenumbers (the
    Nyquist modes included), so the tendency equals pyqg's to round-off.

    State: q of shape (2, n, n) indexed [layer, y, x] (layer 0 upper, x along the last
    axis, pyqg's layout) on [0, length)^2; `grid` is the n x n `PeriodicGrid` over the
    last two axes (axis 0 is y, axis 1 is x). The split for the integrators:
    L = -nu |k|^(2p) (`hyperviscosity` nu, `hyperviscosity_order` p; zero by default, as
    pyqg has none), diagonal and shared by the layers; everything else -- the inversion,
    the Jacobian, the mean-flow advection, beta and the bottom drag, which couple the layers
    through psi -- is `nonlinear`, as in pyqg's tendency. pyqg's scheme (AB3 with the filter
    applied after every step) is `jaxsci.integrate.AB3(filter=model.spectral_filter())`;
    ETDRK4 takes the filter through `jaxsci.integrate.Filtered`.

    Arguments (SI units; pyqg's defaults):
        num_points: n, grid points per side (even, >= 4); pyqg's nx = 64.
        length: the side L of the square in m (1e6).
        beta: the meridional gradient of the Coriolis parameter, 1/(m s) (1.5e-11).
        rd: the deformation radius r_d in m (15000, > 0).
        delta: the layer-thickness ratio H_1 / H_2 (0.25, > 0).
        H1: the upper layer's thickness in m (500, > 0); H_2 = H_1 / delta.
        U1, U2: the mean zonal velocities of the layers in m/s (0.025, 0).
        rek: the linear drag coefficient of the lower layer in 1/s (5.787e-7, >= 0).
        filterfac: the strength of pyqg's exponential filter (23.6, >= 0; 0: no filter).
        hyperviscosity: nu in m^(2p)/s (0, >= 0).
        hyperviscosity_order: p (an int >= 1; 4 is a del^8 hyperviscosity).
    """

    beta: Float[Array, ""]
    rd: Float[Array, ""]
    delta: Float[Array, ""]
    H1: Float[Array, ""]
    U1: Float[Array, ""]
    U2: Float[Array, ""]
    rek: Float[Array, ""]
    filterfac: Float[Array, ""]
    hyperviscosity: Float[Array, ""]
    num_points: int = eqx.field(static=True)
    length: float = eqx.field(static=True)
    hyperviscosity_order: int = eqx.field(static=True)

    def __init__(
        self,
        num_points: int = 64,
        length: float = 1e6,
        *,
        beta: Real[ArrayLike, ""] = 1.5e-11,
        rd: Real[ArrayLike, ""] = 15000.0,
        delta: Real[ArrayLike, ""] = 0.25,
        H1: Real[ArrayLike, ""] = 500.0,
        U1: Real[ArrayLike, ""] = 0.025,
        U2: Real[ArrayLike, ""] = 0.0,
        rek: Real[ArrayLike, ""] = 5.787e-7,
        filterfac: Real[ArrayLike, ""] = 23.6,
        hyperviscosity: Real[ArrayLike, ""] = 0.0,
        hyperviscosity_order: int = 4,
    ):
        self.num_points, self.length = check_even_grid(num_points, length, ndim=2)
        self.beta = float_parameter("beta", beta)
        self.rd = float_parameter("rd", rd)
        self.delta = float_parameter("delta", delta)
        self.H1 = float_parameter("H1", H1)
        self.U1 = float_parameter("U1", U1)
        self.U2 = float_parameter("U2", U2)
        self.rek = float_parameter("rek", rek)
        self.filterfac = float_parameter("filterfac", filterfac)
        self.hyperviscosity = float_parameter("hyperviscosity", hyperviscosity)
        self.hyperviscosity_order = check_int("hyperviscosity_order", hyperviscosity_order)

    def __check_init__(self):
        check_finite("beta", self.beta)
        check_positive("rd", self.rd)
        check_positive("delta", self.delta)
        check_positive("H1", self.H1)
        check_finite("U1", self.U1)
        check_finite("U2", self.U2)
        check_positive("rek", self.rek, allow_zero=True)
        check_positive("filterfac", self.filterfac, allow_zero=True)
        check_positive("hyperviscosity", self.hyperviscosity, allow_zero=True)

    # ------------------------------------------------------------------ grid and constants

    @property
    def grid(self) -> PeriodicGrid:
        return PeriodicGrid((self.num_points, self.num_points), self.length, dealias=False)

    @property
    def state_shape(self) -> tuple[int, ...]:
        """(2, n, n): the two layers' PV on the grid."""
        return (2, self.num_points, self.num_points)

    @property
    def H2(self) -> Float[Array, ""]:
        """The lower layer's thickness H_1 / delta."""
        return self.H1 / self.delta

    @property
    def F1(self) -> Float[Array, ""]:
        """F_1 = 1 / (r_d^2 (1 + delta)), the upper layer's stretching coefficient."""
        return 1.0 / (self.rd**2 * (1.0 + self.delta))

    @property
    def F2(self) -> Float[Array, ""]:
        """F_2 = delta F_1."""
        return self.delta * self.F1

    @property
    def layer_weights(self) -> Float[Array, " 2"]:
        """(H_1 / H, H_2 / H) = (delta, 1) / (1 + delta): the depth weights of the layers."""
        return jnp.stack([self.delta, jnp.ones_like(self.delta)]) / (1.0 + self.delta)

    def mean_pv_gradient(self) -> Float[Array, " 2"]:
        """(Q_{y,1}, Q_{y,2}) = (beta + F_1 (U_1 - U_2), beta - F_2 (U_1 - U_2))."""
        shear = self.U1 - self.U2
        return jnp.stack([self.beta + self.F1 * shear, self.beta - self.F2 * shear])

    def _wavenumbers(self):
        """(k, l, |k|^2) on the real-FFT layout: k along x (the last axis), l along y.

        |k|^2 is pyqg's `wv2` (every mode). The first-derivative symbols i k, i l are pyqg's
        except on the self-conjugate Nyquist entries -- the x-Nyquist column, and the
        y-Nyquist row's entries in the columns k = 0 and k = n/2 -- where a real field's
        coefficient is real, so i k or i l times it is an imaginary part that the inverse
        real FFT drops: pyqg's physical fields are unchanged by setting them to zero, and the
        tendency then maps the spectra of real fields to spectra of real fields. Integrators
        that combine stages in spectral space (ETDRK) need that: otherwise the dropped parts
        feed back through a second derivative in the next stage (an O(h^2) error per step at
        the Nyquist modes, first order globally; measured on the inviscid system).
        """
        ky, kx = self.grid.wavenumbers()
        n = self.num_points
        mx = np.fft.rfftfreq(n, 1.0 / n)[None, :] + 0 * kx
        my = np.fft.fftfreq(n, 1.0 / n)[:, None] + 0 * ky
        nyquist_x = mx == n // 2
        self_conjugate = (my == -(n // 2)) & ((mx == 0) | nyquist_x)
        kx_d = np.where(nyquist_x, 0.0, kx)
        ky_d = np.where(self_conjugate, 0.0, ky)
        return kx_d, ky_d, kx**2 + ky**2

    # ------------------------------------------------------------------ the model

    def _invert(self, q_hat: SpectralState) -> SpectralState:
        """psi_hat from q_hat: the 2 x 2 system q_hat = A psi_hat solved per wavenumber,
        A = [[-(K^2 + F_1), F_1], [F_2, -(K^2 + F_2)]], det A = K^2 (K^2 + F_1 + F_2); the
        mean (K = 0) streamfunction is zero."""
        _, _, k2 = self._wavenumbers()
        f1, f2 = self.F1, self.F2
        det = k2 * (k2 + f1 + f2)
        inv_det = np.where(k2 > 0, 1.0, 0.0) / jnp.where(k2 > 0, det, 1.0)
        q1, q2 = q_hat[0], q_hat[1]
        p1 = -((k2 + f2) * q1 + f1 * q2) * inv_det
        p2 = -(f2 * q1 + (k2 + f1) * q2) * inv_det
        return jnp.stack([p1, p2])

    def linear_operator(self) -> SpectralState:
        _, _, k2 = self._wavenumbers()
        lin = -self.hyperviscosity * k2**self.hyperviscosity_order
        return lin.astype(jnp.result_type(self.hyperviscosity, 1j))

    def nonlinear(self, t: ScalarLike, y_hat: SpectralState, args: PyTree = None) -> SpectralState:
        grid = self.grid
        kx, ky, k2 = self._wavenumbers()
        ph = self._invert(y_hat)
        q = grid.from_spectral(y_hat)
        u = grid.from_spectral(-1j * ky * ph)
        v = grid.from_spectral(1j * kx * ph)
        ubg = jnp.stack([self.U1, self.U2])[:, None, None]
        uq_hat = grid.to_spectral((u + ubg) * q)
        vq_hat = grid.to_spectral(v * q)
        qy = self.mean_pv_gradient()[:, None, None]
        tendency = -(1j * kx * uq_hat + 1j * ky * vq_hat + 1j * kx * qy * ph)
        # bottom drag on the lower layer's relative vorticity: -r_ek lap psi_2
        drag = jnp.stack([jnp.zeros_like(k2), self.rek * k2])
        return jnp.asarray(tendency + drag * ph)

    # ------------------------------------------------------------------ public helpers

    def streamfunction(self, q: Float[Array, "2 n n"]) -> Float[Array, "2 n n"]:
        """The streamfunction psi of PV `q` (the inversion; psi has zero mean)."""
        return self.grid.from_spectral(self._invert(self.grid.to_spectral(q)))

    def potential_vorticity(self, psi: Float[Array, "2 n n"]) -> Float[Array, "2 n n"]:
        r"""The PV anomaly q of the streamfunction `psi`, the inverse of `streamfunction`:
        q_1 = lap psi_1 + F_1 (psi_2 - psi_1), q_2 = lap psi_2 + F_2 (psi_1 - psi_2) (pyqg's
        PV; spectral Laplacian). q's layer means are zero (psi does not hold them: add them
        back where a state has them)."""
        grid = self.grid
        lap = grid.from_spectral(jnp.asarray(grid.laplacian()) * grid.to_spectral(psi))
        stretch = jnp.stack([self.F1 * (psi[1] - psi[0]), self.F2 * (psi[0] - psi[1])])
        return lap + stretch

    def velocity(
        self, q: Float[Array, "2 n n"]
    ) -> tuple[Float[Array, "2 n n"], Float[Array, "2 n n"]]:
        """The eddy velocities (u, v) = (-d_y psi, d_x psi) of PV `q` (without U_i)."""
        kx, ky, _ = self._wavenumbers()
        ph = self._invert(self.grid.to_spectral(q))
        return self.grid.from_spectral(-1j * ky * ph), self.grid.from_spectral(1j * kx * ph)

    def spectral_filter(self) -> Float[Array, "n m"]:
        r"""pyqg's exponential filter on the real-FFT layout: 1 where the nondimensional
        wavenumber k* = sqrt((k dx)^2 + (l dy)^2) <= 0.65 pi (`FILTER_CUTOFF`), else
        exp(-filterfac (k* - 0.65 pi)^4). Multiplies the spectral state after every step
        (pyqg's `filtr`; Arbic & Flierl 2004); all ones when `filterfac` is 0."""
        ky, kx = self.grid.wavenumbers()
        dx = self.length / self.num_points
        kstar = np.sqrt((kx * dx) ** 2 + (ky * dx) ** 2)
        excess = np.where(kstar > FILTER_CUTOFF, kstar - FILTER_CUTOFF, 0.0)
        return jnp.exp(-self.filterfac * excess**4)

    def kinetic_energy(self, q: Float[Array, "2 n n"]) -> Float[Array, " 2"]:
        r"""The kinetic energy per unit mass of each layer, (1/2) mean |grad psi_i|^2 (pyqg's
        EKE1, EKE2), in m^2/s^2, as -(1/2) mean(psi_i lap psi_i) with the spectral Laplacian
        (the form the discrete system conserves; equal to the grid mean of u^2 + v^2 up to
        the Nyquist modes, which the filter removes)."""
        _, _, k2 = self._wavenumbers()
        ph = self._invert(self.grid.to_spectral(q))
        psi = self.grid.from_spectral(ph)
        lap_psi = self.grid.from_spectral(-k2 * ph)
        return -0.5 * jnp.mean(psi * lap_psi, axis=(-2, -1))

    def potential_energy(self, q: Float[Array, "2 n n"]) -> Float[Array, ""]:
        r"""The available potential energy per unit mass of the column,
        (1/2) r_d^-2 (H_1 / H)(H_2 / H) mean (psi_1 - psi_2)^2 (pyqg's APE, whose spectral
        flux `APEflux` carries the same factor), in m^2/s^2."""
        psi = self.streamfunction(q)
        w1, w2 = self.layer_weights
        return 0.5 * w1 * w2 / self.rd**2 * jnp.mean((psi[0] - psi[1]) ** 2)

    def energy(self, q: Float[Array, "2 n n"]) -> Float[Array, ""]:
        r"""The total energy per unit mass, sum_i (H_i / H) KE_i + APE: conserved by the
        inviscid, undriven system (U_1 = U_2 = 0, r_ek = 0, no filter, no hyperviscosity;
        beta allowed), also by the pseudo-spectral discretisation (the flux-form Jacobian is
        orthogonal to psi on the grid)."""
        return jnp.sum(self.layer_weights * self.kinetic_energy(q)) + self.potential_energy(q)

    def linear_growth_rates(self) -> Float[Array, "n m"]:
        r"""The linear growth rate of every Fourier mode (k, l) on the real-FFT layout, in 1/s.

        Linearised about the mean flow, a mode psi_hat evolves as A d_t psi_hat = M psi_hat
        with A the inversion matrix (see `_invert`) and
        M = (-i k diag(U) - nu K^(2p)) A - i k diag(Q_y) + diag(0, r_ek K^2); the growth rate
        is the largest real part of the eigenvalues of A^-1 M (the Phillips problem with
        beta, drag and hyperviscosity; Vallis 2017, "Atmospheric and Oceanic Fluid
        Dynamics", section 9.6), with the model's discrete wavenumbers: zero at K = 0, and
        on the x-Nyquist column (where d/dx of a real grid field is zero) only the drag and
        hyperviscosity act.
        """
        kx, _, k2 = self._wavenumbers()
        f1, f2 = self.F1, self.F2
        u1, u2 = self.U1, self.U2
        qy1, qy2 = self.mean_pv_gradient()
        ik = 1j * kx
        damp = self.hyperviscosity * k2**self.hyperviscosity_order
        a11, a12, a21, a22 = -(k2 + f1), f1 + 0 * k2, f2 + 0 * k2, -(k2 + f2)
        m11 = (-ik * u1 - damp) * a11 - ik * qy1
        m12 = (-ik * u1 - damp) * a12
        m21 = (-ik * u2 - damp) * a21
        m22 = (-ik * u2 - damp) * a22 - ik * qy2 + self.rek * k2
        det_a = jnp.where(k2 > 0, a11 * a22 - a12 * a21, 1.0)
        # B = A^-1 M with A^-1 = [[a22, -a12], [-a21, a11]] / det A
        b11 = (a22 * m11 - a12 * m21) / det_a
        b12 = (a22 * m12 - a12 * m22) / det_a
        b21 = (-a21 * m11 + a11 * m21) / det_a
        b22 = (-a21 * m12 + a11 * m22) / det_a
        half_trace = 0.5 * (b11 + b22)
        root = jnp.sqrt(half_trace**2 - (b11 * b22 - b12 * b21))
        rate = jnp.maximum((half_trace + root).real, (half_trace - root).real)
        return jnp.where(k2 > 0, rate, 0.0)

    def default_initial_state(self, key: Array | None = None) -> State:
        """pyqg's random start: q_1 = 1e-7 U(0, 1) per grid point + 1e-6 U(0, 1) per column
        (a small meridionally uniform perturbation, in 1/s), q_2 = 0. `key` defaults to
        `jax.random.key(0)`."""
        key = jax.random.key(0) if key is None else check_key("key", key)
        k_point, k_column = jax.random.split(key)
        n = self.num_points
        dtype = jnp.result_type(float)
        q1 = 1e-7 * jax.random.uniform(k_point, (n, n), dtype) + 1e-6 * jax.random.uniform(
            k_column, (1, n), dtype
        )
        return jnp.stack([q1, jnp.zeros((n, n), dtype)])
