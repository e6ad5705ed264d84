"""`SemilinearOperator`: a learned Fourier-multiplier linear part plus a network nonlinearity."""

from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._custom_types import Array, ArrayLike, Float, PyTree, ScalarLike, SpectralState
from ..dynamics import AbstractSemilinear
from ..spectral import PeriodicGrid
from ._vector_field import _apply, _check_network_shape, _check_output


def _self_conjugate(grid: PeriodicGrid) -> np.ndarray:
    """The modes of the real-FFT layout that are their own conjugate (m = 0 or 2 |m| = n on
    every axis): a real field has real coefficients there, so an imaginary symbol would
    rotate them out of the real fields (the inverse real FFT drops the imaginary part)."""
    own = np.ones(grid.spectral_shape, dtype=bool)
    for m, n in zip(grid.mode_numbers(), grid.shape, strict=True):
        own &= (m == 0) | (2 * np.abs(m) == n)
    return own


# smallest initial gap max_real - Re L (units of the symbol, 1/time): keeps s = sqrt(gap)
# away from the zero-gradient point s = 0 of Re L = max_real - s^2
_MIN_GAP = 1e-4


class SemilinearOperator(AbstractSemilinear):
    r"""A semilinear neural operator: u_t = L_theta u + N_theta(u) on a periodic grid.

    Singh, Gong, Zhang et al. (2024, ICLR), "Semilinear neural operators: a unified
    recursive framework for prediction and data assimilation": the linear part is a learned
    diagonal Fourier multiplier (the symbol L_theta(k), one complex number per mode of the
    grid's real-FFT layout) and the nonlinear part a network acting on the grid state,

        d/dt u_hat(k) = L_theta(k) u_hat(k) + P F[net_theta(u)](k),

    with F the real FFT and P the grid's 2/3 de-aliasing projection (`grid.dealiased`;
    the identity for a grid built with `dealias=False`), which keeps the network from
    feeding the unresolved modes. Being an `AbstractSemilinear`, it is integrated by the
    exponential integrators (ETDRK4, the default of `jaxsci.integrate.Flow` and `simulate`
    for semilinear models), which treat the stiff learned L exactly: the recursive step
    u(t + h) = e^{L h} u(t) + int_0^h e^{L (h - s)} N(u(t + s)) ds of the paper is the
    variation-of-constants formula that ETDRK4 approximates. `Flow(model, dt)` is then the
    forecast model of `jaxsci.filters.run_filter`, and `jaxsci.integrate.FlowMap` makes a
    one-argument step for `jaxsci.losses.RolloutLoss` (training through rollouts).

    Parameterisation of the symbol: Im L = `linear_imag` (zero on the self-conjugate modes
    m = 0 and the Nyquist mode, where a real field has real coefficients); Re L =
    `linear_real` when `max_real` is None, otherwise Re L = max_real - linear_real^2, so
    that no mode grows faster than max_real (a mode started at the bound starts 1e-4 below
    it, since s = 0 would be a zero-gradient point; stability of the learned model: a bound
    of 0 makes L dissipative, a small positive bound on a few modes admits the linearly unstable
    band of Kuramoto-Sivashinsky, whose largest growth rate is max_k (k^2 - k^4) = 1/4).
    Both are array fields (`eqx.filter_grad` trains them with the network); `max_real` is
    an array field too (a vmap over bounds works) but frozen: read through `stop_gradient`,
    its gradient is zero.

    With the true symbol (`linear=model.linear_operator()`) and a network returning a
    model's nonlinear term in grid space it reproduces that model (tested on KS). The
    parameter count is that of `network` plus two real numbers per mode of the real-FFT
    layout (plus the entries of `max_real`, which `count_params` counts but training keeps).

    Arguments:
        grid: the 1-D `jaxsci.spectral.PeriodicGrid` of the state (e.g. `model.grid`).
        network: `network(u)` returning an array of its input's shape, the nonlinear term in
            grid space (e.g. an `FNO1d(1, 1, ...)` with `network_shape=(1, n)`).
        linear: the initial symbol, complex or real, of `grid.spectral_shape` (default 0;
            e.g. `KuramotoSivashinsky().linear_operator()` to start from the truth).
        max_real: None (Re L free) or the largest growth rate allowed, a scalar or an array
            broadcastable to `grid.spectral_shape`, at least Re of `linear` everywhere.
        network_shape: the network's input shape when it differs from the grid's (same
            number of entries), e.g. `(1, n)` for a one-channel FNO on an n-point grid.
    """

    grid: PeriodicGrid
    network: Callable
    linear_real: Float[Array, "*spectral"]
    linear_imag: Float[Array, "*spectral"]
    max_real: Float[Array, "*spectral"] | None
    network_shape: tuple[int, ...] | None = eqx.field(static=True)

    def __init__(
        self,
        grid: PeriodicGrid,
        network: Callable,
        linear: ArrayLike | None = None,
        *,
        max_real: ArrayLike | None = None,
        network_shape: tuple[int, ...] | None = None,
    ):
        if not isinstance(grid, PeriodicGrid):
            raise TypeError(f"`grid` must be a jaxsci.spectral.PeriodicGrid, got {type(grid)}.")
        if not callable(network):
            raise TypeError(f"`network` must be callable, got {type(network).__name__}.")
        if grid.ndim != 1:
            # on a d > 1 real-FFT layout the columns of last-axis mode 0 (and Nyquist) hold
            # both m and -m of the other axes, where a real field needs L(-m) = conj L(m);
            # free entries there would be silently dropped by the inverse real FFT
            raise ValueError(
                f"`grid` must be a 1-D PeriodicGrid (the symbol's Hermitian symmetry is only "
                f"built in for one axis), got a grid of shape {grid.shape}."
            )
        spectral = grid.spectral_shape
        dtype = jnp.result_type(float)
        symbol = np.zeros(spectral) if linear is None else np.asarray(linear)
        if symbol.shape != spectral:
            raise ValueError(
                f"`linear` has shape {symbol.shape}, but it must be a symbol on the grid's "
                f"real-FFT layout, shape {spectral} (`grid.spectral_shape`)."
            )
        if not np.all(np.isfinite(symbol)):
            raise ValueError("`linear` must be finite, got non-finite entries.")
        re, im = np.real(symbol).astype(np.float64), np.imag(symbol).astype(np.float64)
        if max_real is None:
            self.max_real = None
            self.linear_real = jnp.asarray(re, dtype)
        else:
            bound = np.asarray(max_real, dtype=np.float64)
            try:
                bound_full = np.broadcast_to(bound, spectral)
            except ValueError:
                raise ValueError(
                    f"`max_real` has shape {bound.shape}, which does not broadcast to the "
                    f"grid's real-FFT shape {spectral}."
                ) from None
            if not np.all(np.isfinite(bound)):
                raise ValueError(f"`max_real` must be finite, got {max_real!r}.")
            excess = re - bound_full
            if np.any(excess > 0):
                i = np.unravel_index(int(np.argmax(excess)), spectral)
                raise ValueError(
                    f"`max_real` must be at least Re(linear) on every mode, but at mode index "
                    f"{tuple(int(j) for j in i)} Re(linear) = {re[i]:g} > max_real = "
                    f"{bound_full[i]:g}."
                )
            self.max_real = jnp.asarray(bound, dtype)
            # Re L = max_real - s^2 has zero gradient in s at s = 0: a mode started exactly
            # at the bound (e.g. the default zero symbol with max_real = 0) could never move,
            # so s starts at least at sqrt(_MIN_GAP) (Re L at most 1e-4 below the bound)
            self.linear_real = jnp.asarray(np.sqrt(np.maximum(bound_full - re, _MIN_GAP)), dtype)
        self.linear_imag = jnp.asarray(np.where(_self_conjugate(grid), 0.0, im), dtype)
        self.grid = grid
        self.network_shape = _check_network_shape(network_shape, grid.shape)
        _check_output("network", network, grid.shape, False, self.network_shape)
        self.network = network

    def linear_operator(self) -> SpectralState:
        """L_theta(k) on the grid's real-FFT layout (see the parameterisation above)."""
        if self.max_real is None:
            re = self.linear_real
        else:
            # the bound is a hyperparameter: read through stop_gradient, so that training
            # every inexact array (`train.fit`) leaves it where it was set
            re = jax.lax.stop_gradient(self.max_real) - self.linear_real**2
        im = jnp.where(_self_conjugate(self.grid), 0.0, self.linear_imag)
        return re + 1j * im

    def network_term(self, u: Float[Array, "*grid"]) -> Float[Array, "*grid"]:
        """net_theta(u) in grid space, in the state's shape (before de-aliasing)."""
        return _apply(self.network, None, u, False, self.network_shape)

    def nonlinear(self, t: ScalarLike, y_hat: SpectralState, args: PyTree = None) -> SpectralState:
        u = self.from_spectral(y_hat)
        return self.grid.dealiased(self.to_spectral(self.network_term(u)))
