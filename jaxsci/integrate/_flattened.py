"""A flow on flattened states: the vector view of a field model, for the filters."""

from collections.abc import Callable

import equinox as eqx
import jax.numpy as jnp

from .._custom_types import Array, Float
from ._flow import Flow


class FlattenedFlow(eqx.Module):
    """`flow` acting on states flattened to vectors: y (dim,) -> flow(y.reshape(shape)).ravel().

    The filters (`jaxsci.filters`) and observation models act on state vectors (dim,), while a
    field model such as `jaxsci.dynamics.TwoLayerQG` steps arrays of shape (2, n, n). This
    wraps a `Flow` of the field model so that `assimilate` / `run_filter` see vectors; the
    flattening is C order (`reshape`), the layout of `filters.grid_domains` and
    `observations.every_kth_grid` (variable l * n^2 + y * n + x is layer l at (y, x)). A
    reshape is free, so the wrapped flow costs what `flow` does, and `window` keeps the
    flow's fixed-window fast path.

    Arguments:
        flow: the `Flow` of the field model (its `dynamics.state_shape` is the field's
            shape, `state_shape` here).
    """

    flow: Flow
    state_shape: tuple[int, ...] = eqx.field(static=True)

    def __init__(self, flow: Flow):
        if not isinstance(flow, Flow):
            raise TypeError(f"`flow` must be a jaxsci.integrate.Flow, got {type(flow).__name__}.")
        self.flow = flow
        self.state_shape = tuple(int(n) for n in flow.dynamics.state_shape)

    @property
    def dim(self) -> int:
        """The length of the flattened state."""
        n = 1
        for s in self.state_shape:
            n *= s
        return n

    def unflatten(self, y: Float[Array, "*batch dim"]) -> Float[Array, "..."]:
        """(..., dim) -> (..., *state_shape)."""
        return jnp.reshape(y, (*jnp.shape(y)[:-1], *self.state_shape))

    def flatten(self, x: Float[Array, "..."]) -> Float[Array, "*batch dim"]:
        """(..., *state_shape) -> (..., dim)."""
        lead = jnp.shape(x)[: jnp.ndim(x) - len(self.state_shape)]
        return jnp.reshape(x, (*lead, self.dim))

    def __call__(self, y: Float[Array, "..."], t0, t1, **kwargs) -> Float[Array, " dim"]:
        if jnp.shape(y) != (self.dim,):
            raise ValueError(
                f"`y` has shape {tuple(jnp.shape(y))}, expected ({self.dim},): a flattened "
                f"state of shape {self.state_shape}."
            )
        return self.flow(self.unflatten(y), t0, t1, **kwargs).ravel()

    def window(self, length: float) -> Callable[..., Float[Array, " dim"]]:
        """`(y, t0) -> self(y, t0, t0 + length)` on the flow's fixed-window path."""
        step = self.flow.window(length)
        return lambda y, t0, **kwargs: step(self.unflatten(y), t0, **kwargs).ravel()
