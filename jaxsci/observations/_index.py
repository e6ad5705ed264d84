"""Observing a subset of the state variables: h(x) = x[indices]."""

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._checks import check_int
from .._custom_types import Array, Float, Int
from ._base import AbstractLinearObservation, GaussianNoise


class IndexObservation(AbstractLinearObservation):
    """h(x) = x[indices]: observe a subset of state variables (all of them by default).

    `locations` are the indices themselves, so LETKF can localise on a 1-D grid. A linear
    observation: H has one unit entry per row (`matrix()`), and its Gram matrix H H^T
    (`gram`) is 1 where two observations read the same variable (the identity for distinct
    indices), so twisted SMC and exact Gaussian posteriors take it like a `LinearObservation`.

    Arguments:
        state_dim: dimension of the state.
        indices: observed indices (default: all).
        noise_cov: R as a scalar, a vector (diagonal) or a full matrix.
        noise_std: instead of `noise_cov`, the error standard deviation(s). Neither: R = I.
    """

    indices: Int[Array, " obs"]
    gram: Float[Array, "obs obs"]
    noise: GaussianNoise
    state_dim: int = eqx.field(static=True)
    locations: Float[Array, " obs"]

    def __init__(
        self, state_dim: int, indices: Any = None, noise_cov: Any = None, *, noise_std: Any = None
    ):
        state_dim = check_int("state_dim", state_dim, 1)
        idx = np.arange(state_dim) if indices is None else np.asarray(indices)
        whole = idx.dtype.kind == "f" and bool(np.all(np.isfinite(idx) & (idx == np.round(idx))))
        if idx.dtype.kind not in "iu" and not whole:
            raise TypeError(f"`indices` must be integers, got {indices!r} (dtype {idx.dtype}).")
        idx = idx.astype(np.int64)
        if idx.ndim != 1 or idx.size == 0 or idx.min() < 0 or idx.max() >= state_dim:
            raise ValueError(
                f"`indices` must be a non-empty 1-D array of integers in [0, {state_dim}), "
                f"got {idx.tolist()}."
            )
        self.indices = jnp.asarray(idx, dtype=jnp.int32)
        self.gram = jnp.asarray(idx[:, None] == idx[None, :], dtype=jnp.result_type(float))
        self.noise = GaussianNoise(idx.size, noise_cov, noise_std=noise_std)
        self.state_dim = state_dim
        self.locations = jnp.asarray(idx, dtype=jnp.result_type(float))

    def __call__(self, x: Float[Array, " dim"]) -> Float[Array, " obs"]:
        return x[self.indices]

    def matrix(self) -> Float[Array, "obs dim"]:
        """H: row i is the unit vector of `indices[i]`."""
        return jax.nn.one_hot(self.indices, self.state_dim, dtype=self.gram.dtype)


def every_kth(
    state_dim: int, k: int, noise_cov: Any = None, offset: int = 0, *, noise_std: Any = None
) -> IndexObservation:
    """Observe every `k`-th state variable starting at `offset`."""
    k = check_int("k", k, 1)
    offset = check_int("offset", offset, 0)
    indices = np.arange(offset, check_int("state_dim", state_dim, 1), k)
    return IndexObservation(state_dim, indices, noise_cov, noise_std=noise_std)
