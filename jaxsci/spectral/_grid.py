r"""The periodic spectral grid: coordinates, wavenumbers, de-aliasing and derivative symbols.

One home for the numbers every Fourier pseudo-spectral code on a periodic box needs (the
semilinear PDE models, the discovery term library, Sobolev norms, Gaussian random fields):
a uniform grid on the torus [0, length)^d with n_1 x ... x n_d points and the layout of
its real FFT (`numpy.fft.rfftn`: full FFT axes first, the half-spectrum axis last).
Conventions (Trefethen 2000, "Spectral Methods in MATLAB", ch. 3; Canuto, Hussaini,
Quarteroni & Zang 2006, "Spectral Methods", ch. 2):

* grid points x_j = j length / n, j = 0..n-1 per axis (no endpoint: it is x_0 again);
* mode numbers m as `numpy.fft.fftfreq(n, 1/n)` (|m| <= n/2) and, on the last axis,
  `numpy.fft.rfftfreq(n, 1/n)` (0 <= m <= n/2); angular wavenumbers k = 2 pi m / length;
* the Nyquist mode m = -n/2 of an even axis is the sum of e^{+i pi j} and e^{-i pi j}: it
  has no sign, so odd derivatives set it to zero (`odd_wavenumbers`), even ones keep it;
* Orszag's (1971) 2/3 rule: a quadratic product of fields that keep only |m_i| < n_i / 3
  has no aliased modes among |m_i| < n_i / 3, so products are evaluated from, and
  projected back onto, those modes (`dealias_mask`).

Every array is a NumPy constant, so under `jit` it is folded into the program at trace time.
"""

import math
from collections.abc import Sequence

import equinox as eqx
import jax.numpy as jnp
import numpy as np

from .._checks import check_int, check_positive, finite_float
from .._custom_types import Array, ArrayLike, Complex, Float


class PeriodicGrid(eqx.Module):
    r"""A uniform grid on the periodic box [0, length)^d and its real-FFT layout.

    All fields are static (hashable structure), so a grid can sit in any model and under
    `jit`. The spectral arrays are NumPy constants of `spectral_shape` =
    (n_1, ..., n_{d-1}, n_d // 2 + 1), the shape of `to_spectral(u)`, or of the full FFT
    shape with `full=True`.

    Arguments:
        shape: points per axis, an int (1-D) or a sequence of ints (>= 1).
        length: the period of every axis (> 0).
        dealias: whether `dealias_mask` applies the 2/3 rule (otherwise it keeps every mode).
    """

    shape: tuple[int, ...] = eqx.field(static=True)
    length: float = eqx.field(static=True)
    dealias: bool = eqx.field(static=True)

    def __init__(
        self, shape: int | Sequence[int], length: float = 2 * np.pi, *, dealias: bool = True
    ):
        if isinstance(shape, Sequence) and not isinstance(shape, str):
            if len(shape) == 0:
                raise ValueError("`shape` must have at least one axis, got ().")
            self.shape = tuple(check_int(f"shape[{i}]", n) for i, n in enumerate(shape))
        else:
            self.shape = (check_int("shape", shape),)
        check_positive("length", length)
        self.length = float(length)
        self.dealias = bool(dealias)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        """The number of grid points, n_1 ... n_d."""
        return math.prod(self.shape)

    @property
    def spectral_shape(self) -> tuple[int, ...]:
        """The shape of `to_spectral(u)`: (n_1, ..., n_{d-1}, n_d // 2 + 1)."""
        return self.shape[:-1] + (self.shape[-1] // 2 + 1,)

    @property
    def spacing(self) -> float:
        """The grid spacing of the first axis, length / n_1 (every axis: length / n_i)."""
        return self.length / self.shape[0]

    def coordinates(self) -> tuple[np.ndarray, ...]:
        """The grid points x_j = j length / n, one array of `shape` per axis (ij indexing)."""
        axes = [np.arange(n) * self.length / n for n in self.shape]
        return tuple(np.meshgrid(*axes, indexing="ij"))

    def mode_numbers(self, *, full: bool = False) -> tuple[np.ndarray, ...]:
        """The integer mode numbers m (as floats), one array per axis, on the real-FFT layout
        (`numpy.fft.fftfreq` axes, `rfftfreq` on the last) or with `full` on the full FFT."""
        axes = [np.fft.fftfreq(n, 1.0 / n) for n in self.shape[:-1]]
        n = self.shape[-1]
        axes.append(np.fft.fftfreq(n, 1.0 / n) if full else np.fft.rfftfreq(n, 1.0 / n))
        return tuple(np.meshgrid(*axes, indexing="ij"))

    def wavenumbers(self, *, full: bool = False) -> tuple[np.ndarray, ...]:
        """The angular wavenumbers k = 2 pi m / length, one array per axis (see
        `mode_numbers`)."""
        return tuple(2 * np.pi / self.length * m for m in self.mode_numbers(full=full))

    def odd_wavenumbers(self, *, full: bool = False) -> tuple[np.ndarray, ...]:
        """`wavenumbers` with the Nyquist mode (2 |m| = n on an even axis) set to zero: the
        wavenumbers of odd derivatives, which are otherwise not real-valued there."""
        ms = self.mode_numbers(full=full)
        ks = self.wavenumbers(full=full)
        return tuple(
            np.where(2 * np.abs(m) == n, 0.0, k) for m, k, n in zip(ms, ks, self.shape, strict=True)
        )

    def squared_wavenumber(self, *, full: bool = False) -> np.ndarray:
        """|k|^2 = k_1^2 + ... + k_d^2 (every mode, the Nyquist modes included)."""
        ks = self.wavenumbers(full=full)
        total = ks[0] ** 2
        for k in ks[1:]:
            total = total + k**2
        return total

    def dealias_mask(self) -> np.ndarray:
        """The modes a 2/3-de-aliased product keeps: |m_i| < n_i / 3 on every axis (Orszag
        1971), a boolean array of `spectral_shape`; all True when `dealias` is False."""
        if not self.dealias:
            return np.ones(self.spectral_shape, dtype=bool)
        mask = np.ones(self.spectral_shape, dtype=bool)
        for m, n in zip(self.mode_numbers(), self.shape, strict=True):
            mask &= np.abs(m) < n / 3.0
        return mask

    def derivative(self, order: int | Sequence[int]) -> np.ndarray:
        r"""The Fourier symbol prod_i (i k_i)^{order_i} of d^{order_1} / dx_1^{order_1} ...,
        with the Nyquist modes of odd orders set to zero (`odd_wavenumbers`).

        `order` is one int per axis (a bare int for a 1-D grid). Returns a complex array of
        `spectral_shape`.
        """
        orders = (order,) if isinstance(order, int | np.integer) else tuple(order)
        if len(orders) != self.ndim:
            raise ValueError(
                f"`order` must give one derivative order per axis ({self.ndim}), got {order!r}."
            )
        orders = tuple(check_int(f"order[{i}]", o, minimum=0) for i, o in enumerate(orders))
        even, odd = self.wavenumbers(), self.odd_wavenumbers()
        symbol = None
        for i, o in enumerate(orders):
            k = odd[i] if o % 2 else even[i]
            factor = (1j * k) ** o
            symbol = factor if symbol is None else symbol * factor
        assert symbol is not None  # ndim >= 1
        return symbol

    def laplacian(self) -> np.ndarray:
        """The Fourier symbol -|k|^2 of the Laplacian."""
        return -self.squared_wavenumber()

    def inverse_laplacian(self) -> np.ndarray:
        """The symbol -1/|k|^2 of the inverse Laplacian on mean-zero fields, 0 at k = 0 (so
        psi_hat = -inverse_laplacian() w_hat solves lap psi = -w with zero mean)."""
        k2 = self.squared_wavenumber()
        inv = np.where(k2 > 0, 1.0 / np.where(k2 > 0, k2, 1.0), 0.0)
        return -inv

    def to_spectral(self, u: Float[ArrayLike, "..."]) -> Complex[Array, "..."]:
        """The real FFT (`jnp.fft.rfftn`) over the last `ndim` axes of `u`."""
        return jnp.fft.rfftn(jnp.asarray(u), axes=tuple(range(-self.ndim, 0)))

    def from_spectral(self, u_hat: Complex[ArrayLike, "..."]) -> Float[Array, "..."]:
        """The inverse of `to_spectral` (`jnp.fft.irfftn` to the grid's shape)."""
        return jnp.fft.irfftn(jnp.asarray(u_hat), s=self.shape, axes=tuple(range(-self.ndim, 0)))

    def dealiased(self, u_hat: Complex[ArrayLike, "..."]) -> Complex[Array, "..."]:
        """`u_hat` with the modes outside `dealias_mask` set to zero."""
        return jnp.where(self.dealias_mask(), u_hat, 0)


#: The largest number of grid points (num_points ** ndim) a pseudo-spectral model or term
#: library accepts: 2**24, i.e. 16,777,216 points in 1-D or 4096 x 4096 in 2-D. A model
#: precomputes and checks its Fourier symbol on the whole grid at construction (seconds at
#: this size on two CPU cores); beyond it construction, and the validation of a config that
#: builds the model, would allocate gigabytes and run for minutes before any run starts.
MAX_GRID_POINTS = 2**24


def check_even_grid(num_points: int, length: float, ndim: int = 1) -> tuple[int, float]:
    """`num_points` as an even int >= 4 and `length` as a positive float, else an error
    naming the argument: the grid arguments of the pseudo-spectral models and libraries
    (an even count, so that the one mode without a sign is the Nyquist mode that odd
    derivatives drop). The grid of `num_points ** ndim` points must not exceed
    `MAX_GRID_POINTS`; that bound is checked before anything is allocated."""
    n = check_int("num_points", num_points, minimum=4)
    if n % 2:
        raise ValueError(f"`num_points` must be an even integer >= 4, got {num_points}.")
    if n**ndim > MAX_GRID_POINTS:
        largest = int(MAX_GRID_POINTS ** (1 / ndim) + 1e-6)  # 2**24, 2**12, 2**8 for d = 1, 2, 3
        per_axis = " per axis" if ndim > 1 else ""
        raise ValueError(
            f"`num_points` must be an even integer in [4, {largest}]{per_axis} (at most "
            f"{MAX_GRID_POINTS} grid points), got {num_points}."
        )
    value = finite_float("length", length)
    check_positive("length", value)
    return n, value
