"""Local domains of the LETKF on a gridded, possibly layered, state: which state variables
are analysed together, and where they are."""

from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from .._checks import check_int, finite_float


class GridDomains(NamedTuple):
    """The LETKF geometry of a layered grid (`grid_domains`), in the arguments' order of
    `LETKF(loc_rad, obs_op, state_locations, domain_length, domains=domains)`.

    Attributes:
        state_locations: (dim, d) position of every state variable, in grid units x
            `spacing` along the grid's axes (the order of `grid_shape`).
        domain_length: (d,) the periodic length of each axis (points x spacing).
        domains: (points, layers) the state indices of each local domain: the `layers`
            variables at one grid point, point p = the C-order index of its grid position.
    """

    state_locations: np.ndarray
    domain_length: np.ndarray
    domains: np.ndarray


def grid_domains(grid_shape: Sequence[int], n_layers: int = 1, spacing: float = 1.0) -> GridDomains:
    """Locations and local domains of a state on a periodic grid with `n_layers` layers.

    The state is an array of shape (n_layers, *grid_shape) (a two-layer QG model's
    (2, ny, nx): layer first, pyqg's layout) flattened in C order, so variable
    l * prod(grid_shape) + p is layer l at grid point p. Every grid point is one local domain
    holding its `n_layers` variables: the layers of a column are analysed together, the
    natural LETKF domain of a layered model (their observations, tapers and ensemble weights
    are shared, so the analysis keeps the inter-layer covariances the ensemble carries).

    Arguments:
        grid_shape: the grid's points along each axis, e.g. (ny, nx).
        n_layers: layers (fields) stacked before the grid axes.
        spacing: the distance between neighbouring grid points (1: grid units, so
            `loc_rad` and observation locations are in grid points).

    Returns:
        A `GridDomains` (state_locations (dim, d), domain_length (d,), domains (points,
        n_layers)), d = len(grid_shape).
    """
    shape = tuple(np.atleast_1d(np.asarray(grid_shape)).tolist())
    if not shape or not all(isinstance(n, int) and n >= 1 for n in shape):
        raise ValueError(
            f"`grid_shape` must be a non-empty sequence of positive integers, got {grid_shape!r}."
        )
    layers = check_int("n_layers", n_layers, 1)
    h = finite_float("spacing", spacing)
    if not h > 0:
        raise ValueError(f"`spacing` must be positive, got {spacing!r}.")
    points = int(np.prod(shape))
    grid = np.stack(np.meshgrid(*(np.arange(n) for n in shape), indexing="ij"), axis=-1)
    locations = h * grid.reshape(points, len(shape)).astype(np.float64)
    return GridDomains(
        state_locations=np.tile(locations, (layers, 1)),
        domain_length=h * np.asarray(shape, dtype=np.float64),
        domains=(np.arange(layers)[None, :] * points + np.arange(points)[:, None]).astype(np.int32),
    )


def as_domains(domains: Any, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """The LETKF's `domains` argument as (points, sizes), the form of `contiguous_batches`.

    `domains` is a (n, s) integer array or a sequence of n integer sequences (of any lengths
    >= 1): row i lists the state indices of domain i. Every index in [0, dim) must belong to
    exactly one domain. Shorter rows are padded by repeating their last index.
    """
    if isinstance(domains, np.ndarray) and domains.ndim != 2:
        raise ValueError(
            f"`domains` has shape {domains.shape}, expected (domains, size): the state "
            "indices of each local domain."
        )
    rows = [np.asarray(r) for r in domains]
    if not rows or any(r.ndim != 1 or r.size == 0 for r in rows):
        raise ValueError(
            "`domains` must be a non-empty list of non-empty 1-D index lists (one per local "
            f"domain), got {domains!r}."
        )
    if any(r.dtype.kind not in "iu" for r in rows):
        raise TypeError("`domains` must hold integer state indices.")
    flat = np.concatenate(rows).astype(np.int64)
    if flat.min() < 0 or flat.max() >= dim:
        raise ValueError(
            f"`domains` holds indices in [{flat.min()}, {flat.max()}], expected state indices "
            f"in [0, {dim})."
        )
    counts = np.bincount(flat, minlength=dim)
    if np.any(counts != 1):
        missing, twice = np.flatnonzero(counts == 0), np.flatnonzero(counts > 1)
        raise ValueError(
            "`domains` must partition the state: every index in [0, "
            f"{dim}) in exactly one domain; missing {missing[:5].tolist()}"
            f"{'...' if missing.size > 5 else ''}, repeated {twice[:5].tolist()}"
            f"{'...' if twice.size > 5 else ''}."
        )
    s = max(r.size for r in rows)
    points = np.stack([np.concatenate([r, np.full(s - r.size, r[-1])]) for r in rows])
    return points.astype(np.int32), np.array([r.size for r in rows], dtype=np.int32)
