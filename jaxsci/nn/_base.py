"""Abstract bases of the model zoo and the shape/argument checks every network shares."""

import abc
from collections.abc import Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._custom_types import Array, Float, PyTree, ScalarLike


class AbstractNetwork(eqx.Module):
    """A network that maps one example to one output; batch with `jax.vmap` outside.

    Fields (1-D grids) are channels-first `(channels, n)`, 2-D fields `(channels, h, w)`,
    vectors `(size,)`. Every concrete network documents its parameter count as a formula
    that `count_params` reproduces.
    """

    @abc.abstractmethod
    def __call__(self, *args, **kwargs) -> PyTree:
        """Apply the network to one example."""


class AbstractTimeConditioned(eqx.Module):
    """A time-conditioned network `f(t, x)` (a score, noise or velocity model).

    `t` is a scalar (diffusion time or noise level), `x` one example; the output has the
    shape of `x`. `jaxsci.diffusion` uses any network of this shape.
    """

    @abc.abstractmethod
    def __call__(self, t: ScalarLike, x: Float[Array, "..."]) -> Float[Array, "..."]:
        """Evaluate the network at time `t` on one example `x`."""


def count_params(model: PyTree) -> int:
    """Number of floating-point array entries in `model` (what an optimiser updates).

    Non-trainable buffers stored as float arrays (the random Fourier matrix of `MLP`) are
    included; each network's docstring says which of its entries are buffers.
    """
    leaves = jax.tree_util.tree_leaves(eqx.filter(model, eqx.is_inexact_array))
    return int(sum(np.size(leaf) for leaf in leaves))


def check_int(name: str, value, minimum: int = 1) -> int:
    """`value` as an int >= `minimum`, else a ValueError naming `name` (bools rejected)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"`{name}` must be an integer, got {value!r} ({type(value).__name__}).")
    if value < minimum:
        raise ValueError(f"`{name}` must be an integer >= {minimum}, got {value}.")
    return int(value)


def check_pair(name: str, value, minimum: int = 1) -> tuple[int, int]:
    """An int or a pair of ints, each >= `minimum`, as a pair."""
    if isinstance(value, Sequence) and not isinstance(value, str):
        if len(value) != 2:
            raise ValueError(f"`{name}` must be an integer or a pair of integers, got {value!r}.")
        return check_int(f"{name}[0]", value[0], minimum), check_int(
            f"{name}[1]", value[1], minimum
        )
    v = check_int(name, value, minimum)
    return v, v


def check_shape(name: str, x, expected: Sequence[int | None], what: str) -> None:
    """Raise a ValueError naming `name` unless `x.shape` matches `expected` (None = any size).

    `what` describes the expected layout, e.g. "(in_channels, n) = (3, n)".
    """
    shape = tuple(jnp.shape(x))
    ok = len(shape) == len(expected) and all(
        e is None or s == e for s, e in zip(shape, expected, strict=True)
    )
    if not ok:
        raise ValueError(
            f"`{name}` has shape {shape}, expected {what}; batch with jax.vmap outside "
            "the network (one example in)."
        )


def as_float(x) -> Array:
    """`x` as a JAX array with a floating dtype (integers become the default float)."""
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.inexact):
        x = x.astype(float)
    return x
