"""Observing a subset of the state variables: h(x) = x[indices]."""

from typing import Any, cast

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._checks import check_int
from .._custom_types import Array, Float, Int
from ._base import AbstractLinearObservation, GaussianNoise, as_locations


class IndexObservation(AbstractLinearObservation):
    """h(x) = x[indices]: observe a subset of state variables (all of them by default).

    `locations` are the indices themselves by default, so LETKF can localise on a 1-D grid;
    pass `locations` ((obs,) or (obs, d)) for another geometry, e.g. the (y, x) grid
    positions of the observed points of a 2-D field (`every_kth_grid`). A linear
    observation: H has one unit entry per row (`matrix()`), and its Gram matrix H H^T
    (`gram`) is 1 where two observations read the same variable (the identity for distinct
    indices), so twisted SMC and exact Gaussian posteriors take it like a `LinearObservation`.

    Arguments:
        state_dim: dimension of the state.
        indices: observed indices (default: all).
        noise_cov: R as a scalar, a vector (diagonal) or a full matrix.
        noise_std: instead of `noise_cov`, the error standard deviation(s). Neither: R = I.
        locations: positions of the observations, (obs,) or (obs, d) (default: `indices`).
    """

    indices: Int[Array, " obs"]
    noise: GaussianNoise
    state_dim: int = eqx.field(static=True)
    locations: Float[Array, " obs *coord"]

    def __init__(
        self,
        state_dim: int,
        indices: Any = None,
        noise_cov: Any = None,
        *,
        noise_std: Any = None,
        locations: Any = None,
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
        self.noise = GaussianNoise(idx.size, noise_cov, noise_std=noise_std)
        self.state_dim = state_dim
        if locations is None:
            self.locations = jnp.asarray(idx, dtype=jnp.result_type(float))
        else:
            self.locations = cast(Array, as_locations(locations, idx.size))

    def __call__(self, x: Float[Array, " dim"]) -> Float[Array, " obs"]:
        return x[self.indices]

    @property
    def gram(self) -> Float[Array, "obs obs"]:
        """H H^T: 1 where two observations select the same variable (built when asked, so
        an observation of 10^4 points holds no 10^4 x 10^4 matrix)."""
        idx = self.indices
        return jnp.asarray(idx[:, None] == idx[None, :], dtype=self.noise.std.dtype)

    def matrix(self) -> Float[Array, "obs dim"]:
        """H: row i is the unit vector of `indices[i]`."""
        return jax.nn.one_hot(self.indices, self.state_dim, dtype=self.noise.std.dtype)


def every_kth(
    state_dim: int, k: int, noise_cov: Any = None, offset: int = 0, *, noise_std: Any = None
) -> IndexObservation:
    """Observe every `k`-th state variable starting at `offset`."""
    k = check_int("k", k, 1)
    offset = check_int("offset", offset, 0)
    indices = np.arange(offset, check_int("state_dim", state_dim, 1), k)
    return IndexObservation(state_dim, indices, noise_cov, noise_std=noise_std)


def every_kth_grid(
    grid_shape: Any,
    k: int,
    noise_cov: Any = None,
    *,
    n_layers: int = 1,
    layers: Any = None,
    offset: int = 0,
    spacing: float = 1.0,
    noise_std: Any = None,
) -> IndexObservation:
    """Observe every `k`-th grid point along each axis of a layered grid: the 2-D (d-D)
    `every_kth`.

    The state is an array of shape (n_layers, *grid_shape) flattened in C order (the layout
    of `jaxsci.filters.grid_domains`: a two-layer QG model's q of shape (2, ny, nx) with
    n_layers 2). Observed are the points whose index along every axis is offset, offset + k,
    ..., of the layers `layers` (default: all), i.e. prod(ceil((n_i - offset) / k)) points
    per layer, one in k^d of the grid for k dividing the n_i. The observations' `locations`
    are their grid positions x `spacing`, (obs, d) in the axes' order (e.g. (y, x)), the
    positions `grid_domains` gives the state, so `LETKF` localises in the same units.

    Arguments:
        grid_shape: the grid's points along each axis, e.g. (ny, nx).
        k: the stride along every axis (>= 1).
        noise_cov: R as a scalar, a vector (diagonal) or a full matrix.
        n_layers: layers stacked before the grid axes.
        layers: the observed layers (an int or a sequence; default: every layer).
        offset: the first observed index along every axis (0 <= offset < min(grid_shape)).
        spacing: the distance between neighbouring grid points.
        noise_std: instead of `noise_cov`, the error standard deviation(s).
    """
    shape = tuple(np.atleast_1d(np.asarray(grid_shape)).tolist())
    if not shape or not all(isinstance(n, int) and n >= 1 for n in shape):
        raise ValueError(
            f"`grid_shape` must be a non-empty sequence of positive integers, got {grid_shape!r}."
        )
    k = check_int("k", k, 1)
    n_layers = check_int("n_layers", n_layers, 1)
    offset = check_int("offset", offset, 0, min(shape) - 1)
    chosen = np.arange(n_layers) if layers is None else np.atleast_1d(np.asarray(layers))
    if (
        chosen.ndim != 1
        or chosen.size == 0
        or chosen.dtype.kind not in "iu"
        or chosen.min() < 0
        or chosen.max() >= n_layers
        or np.unique(chosen).size != chosen.size
    ):
        raise ValueError(
            f"`layers` must be distinct layer indices in [0, {n_layers}), got {layers!r}."
        )
    spacing_ = float(spacing)
    if not np.isfinite(spacing_) or spacing_ <= 0:
        raise ValueError(f"`spacing` must be a positive number, got {spacing!r}.")
    axes = [np.arange(offset, n, k) for n in shape]
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, len(shape))
    points = np.ravel_multi_index(tuple(grid.T), shape)
    size = int(np.prod(shape))
    indices = (chosen[:, None] * size + points[None, :]).ravel()
    locations = np.tile(spacing_ * grid.astype(np.float64), (chosen.size, 1))
    return IndexObservation(
        n_layers * size, indices, noise_cov, noise_std=noise_std, locations=locations
    )
