"""Abstract bases of the model zoo and the one-example shape check every network shares."""

import abc
from collections.abc import Sequence
from typing import Any

import equinox as eqx
import jax
import numpy as np

from .._checks import as_float_array, check_int, check_pair, check_shape
from .._custom_types import Array, Float, PyTree, ScalarLike

# `check_int`, `check_pair` and `check_shape` were defined here before `jaxsci._checks`; the
# re-exports keep `from jaxsci.nn._base import check_shape` (etc.) working.
__all__ = [
    "AbstractNetwork",
    "AbstractTimeConditioned",
    "as_float",
    "check_example",
    "check_int",
    "check_pair",
    "check_shape",
    "count_params",
]


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


def check_example(name: str, x: Any, expected: Sequence[int | None], what: str) -> None:
    """`jaxsci._checks.check_shape` for the one example a network takes: the error names
    `name`, the shape got and `what` was expected, and says to vmap over a batch."""
    check_shape(
        name,
        x,
        expected,
        f"{what}; batch with jax.vmap outside the network (one example in)",
    )


def as_float(x: Any) -> Array:
    """`x` as a JAX array with a floating dtype (integers become the default float)."""
    return as_float_array("x", x)
