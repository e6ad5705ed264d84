"""Abstract bases for simulators: ODEs, SDEs and semilinear spectral PDEs."""

import abc
import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._checks import check_finite, check_positive, is_concrete
from .._custom_types import Array, PyTree, ScalarLike, SpectralState, State
from ..spectral import PeriodicGrid

# `check_positive` was defined here before `jaxsci._checks`; the re-export keeps
# `from jaxsci.dynamics._base import check_positive` working for code not yet moved.
__all__ = ["AbstractDynamics", "AbstractSDE", "AbstractSemilinear", "check_positive"]


class AbstractDynamics(eqx.Module):
    """A deterministic model dy/dt = f(t, y, args) on a fixed-shape array state.

    Physical parameters are array fields, so `eqx.filter_grad` differentiates with
    respect to them and `eqx.filter_vmap` batches over them.
    """

    @property
    @abc.abstractmethod
    def state_shape(self) -> tuple[int, ...]:
        """Shape of one state `y`."""

    @abc.abstractmethod
    def vector_field(self, t: ScalarLike, y: State, args: PyTree) -> State:
        """The right-hand side f(t, y, args)."""

    def default_initial_state(self, key: Array | None = None) -> State:
        """A sensible initial state (on or near the attractor where one is known)."""
        raise NotImplementedError(f"{type(self).__name__} has no default initial state.")

    def check_state(self, y, name: str = "y0") -> None:
        """Raise a ValueError naming `name` if `y` has the wrong shape or is not finite."""
        shape = tuple(jnp.shape(y))
        if shape != tuple(self.state_shape):
            raise ValueError(
                f"`{name}` has shape {shape}, but {type(self).__name__} expects a state of "
                f"shape {tuple(self.state_shape)}."
            )
        check_finite(name, y)

    def check_vector_field(self, y, args: PyTree = None, t: ScalarLike = 0.0) -> None:
        """Raise a ValueError if `vector_field(t, y, args)` is not an array of `y`'s shape.

        Traced with `equinox.filter_eval_shape` (nothing is computed): a vector field of the
        wrong shape would otherwise fail inside diffrax as a broadcasting error that names
        neither the model nor the method.
        """
        out = eqx.filter_eval_shape(self.vector_field, t, y, args)
        want = tuple(jnp.shape(y))
        if not isinstance(out, jax.ShapeDtypeStruct) or tuple(out.shape) != want:
            got = f"shape {tuple(out.shape)}" if isinstance(out, jax.ShapeDtypeStruct) else out
            raise ValueError(
                f"`vector_field` of {type(self).__name__} returns {got} for a state of shape "
                f"{want}: it must return dy/dt, an array of the state's shape."
            )


class AbstractSDE(AbstractDynamics):
    """dy = f(t, y) dt + g(t, y) dW with diagonal noise g of the state's shape."""

    @abc.abstractmethod
    def diffusion(self, t: ScalarLike, y: State, args: PyTree) -> State:
        """Diagonal diffusion coefficient g(t, y, args), the same shape as `y`."""


class AbstractSemilinear(AbstractDynamics):
    r"""A stiff PDE u_t = L u + N(u) on a periodic grid, L diagonal in Fourier space.

    A model declares its `grid` (a `jaxsci.spectral.PeriodicGrid`) and gives
    `linear_operator()` (the Fourier symbol of L on the grid's real-FFT layout) and
    `nonlinear(t, u_hat, args)` (N in spectral space; de-aliasing its products, e.g. with
    `grid.dealiased`, is the model's job). The state seen by integrators and
    users is the real field on the grid; `to_spectral` / `from_spectral` are the grid's real
    FFT and its inverse. `vector_field` is derived, so any diffrax solver works; the
    exponential integrators in `jaxsci.integrate` use the split directly.
    """

    grid: eqx.AbstractVar[PeriodicGrid]

    def __check_init__(self):
        # Runs after the final class's own checks (equinox walks the MRO from the final
        # class), so the parameters are finite here: a non-finite Fourier symbol comes from
        # wavenumbers 2 pi m / length whose powers overflow the float dtype (a tiny `length`).
        # Or a coefficient is so large that it overflows on a reasonable grid.
        symbol = self.linear_operator()
        # A symbol on another layout (e.g. the full FFT's, from `wavenumbers(full=True)`)
        # would otherwise fail inside the integrators as a broadcasting error. A state with
        # leading channel axes (e.g. the layers of a layered model) may have one symbol per
        # channel or one shared by all (broadcast over the channel axes).
        allowed = {self.grid.spectral_shape, self.spectral_state_shape}
        if tuple(jnp.shape(symbol)) not in allowed:
            raise ValueError(
                f"`linear_operator()` of {type(self).__name__} has shape "
                f"{tuple(jnp.shape(symbol))}, but it must have the grid's real-FFT shape "
                f"{self.grid.spectral_shape} (`grid.spectral_shape`, that of `to_spectral(y)`; "
                "build it from `grid.wavenumbers()`, whose default is that layout)"
                + (
                    f" or the spectral state's shape {self.spectral_state_shape}."
                    if self.spectral_state_shape != self.grid.spectral_shape
                    else "."
                )
            )
        if is_concrete(symbol) and not np.all(np.isfinite(np.asarray(symbol))):
            k_max = np.pi * max(self.grid.shape) / self.grid.length
            dtype = jnp.result_type(float)
            largest = self._largest_coefficient()
            if k_max <= 1e4 and largest is not None:
                name, value = largest
                raise ValueError(
                    f"`{name}` = {value:g} is too large: the linear operator overflows {dtype} "
                    f"on the grid of {self.grid.shape} points (length {self.grid.length:g}, "
                    f"largest wavenumber {k_max:.3g})."
                )
            raise ValueError(
                f"`length` = {self.grid.length:g} is too short for the grid of "
                f"{self.grid.shape} points: the linear operator at the largest wavenumber "
                f"{k_max:.3g} overflows {dtype}."
            )

    def _largest_coefficient(self) -> tuple[str, float] | None:
        """(name, value) of the scalar parameter field of largest magnitude, if any."""
        best = None
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if isinstance(value, PeriodicGrid) or not is_concrete(value):
                continue
            arr = np.asarray(value)
            if arr.shape != () or not np.issubdtype(arr.dtype, np.number):
                continue
            if best is None or abs(float(arr)) > abs(best[1]):
                best = (field.name, float(arr))
        return best

    @property
    def state_shape(self) -> tuple[int, ...]:
        """The grid's shape: the state is the field on the grid.

        A model whose state has leading channel axes (one field per layer, say) overrides
        this with `channels + grid.shape`; the real FFTs run over the last `grid.ndim` axes,
        and the linear symbol is per channel or shared (broadcast over the channels).
        """
        return self.grid.shape

    @property
    def spectral_state_shape(self) -> tuple[int, ...]:
        """The shape of `to_spectral(y)`: the channel axes, then `grid.spectral_shape`."""
        channels = tuple(self.state_shape)[: len(self.state_shape) - self.grid.ndim]
        return channels + self.grid.spectral_shape

    @abc.abstractmethod
    def linear_operator(self) -> SpectralState:
        """Fourier symbol of the linear part, shaped like `to_spectral(y)`."""

    @abc.abstractmethod
    def nonlinear(self, t: ScalarLike, y_hat: SpectralState, args: PyTree) -> SpectralState:
        """Nonlinear part N(u) in spectral space."""

    def to_spectral(self, y: State) -> SpectralState:
        """Grid values -> Fourier coefficients (`grid.to_spectral`, a real FFT)."""
        return self.grid.to_spectral(y)

    def from_spectral(self, y_hat: SpectralState) -> State:
        """Fourier coefficients -> grid values (`grid.from_spectral`)."""
        return self.grid.from_spectral(y_hat)

    def vector_field(self, t: ScalarLike, y: State, args: PyTree) -> State:
        y_hat = self.to_spectral(y)
        rhs = self.linear_operator() * y_hat + self.nonlinear(t, y_hat, args)
        return self.from_spectral(rhs)
