"""Gaspari-Cohn tapering and periodic distances for domain localisation."""

import jax.numpy as jnp
import numpy as np

# DAPPER (and Sakov & Bertino 2011) define a localisation radius so that the taper equals
# exp(-1/2) at distance `radius`, like a Gaussian of standard deviation `radius`. For the
# Gaspari-Cohn function that needs the half-width c = sqrt(10/3) * radius ~ 1.82 * radius.
GC_RADIUS_SCALE = 1.82


def gaspari_cohn(distance, half_width):
    """Gaspari & Cohn (1999), eq. 4.10: a compactly supported 5th-order piecewise rational
    approximation of a Gaussian, 1 at distance 0 and 0 beyond 2 * half_width.

    With r = distance / half_width:
    r <= 1:     -r^5/4 + r^4/2 + 5 r^3/8 - 5 r^2/3 + 1
    1 < r <= 2:  r^5/12 - r^4/2 + 5 r^3/8 + 5 r^2/3 - 5 r + 4 - 2/(3 r)
    An infinite `half_width` gives 1 everywhere (no localisation).
    """
    d = np.asarray(distance, dtype=np.float64)
    c = float(half_width)
    if np.isinf(c):
        return np.ones_like(d)
    r = d / c
    inner = ((((-0.25 * r + 0.5) * r + 0.625) * r - 5.0 / 3.0) * r**2) + 1.0
    with np.errstate(divide="ignore", invalid="ignore"):
        outer = (
            (((r / 12.0 - 0.5) * r + 0.625) * r + 5.0 / 3.0) * r**2
            - 5.0 * r
            + 4.0
            - 2.0 / (3.0 * r)
        )
    return np.where(r <= 1, inner, np.where(r <= 2, outer, 0.0))


def periodic_distance(a, b, length):
    """Distances between points `a` (m,) or (m, d) and `b` (k,) or (k, d), shape (m, k).

    On a line (`length` None) |a - b| in 1-D and the Euclidean distance in d dimensions; on a
    periodic domain (a ring, a doubly periodic square, ...) each axis' difference is first
    wrapped to the shortest one, min(|da| mod L, L - |da| mod L), with `length` L a scalar
    (every axis) or a (d,) vector (one per axis): the Euclidean distance on the torus. 1-D
    points (m,) are points with d = 1, and give exactly the same numbers as (m, 1).
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.ndim == 1 and b.ndim == 1:
        d = np.abs(a[:, None] - b[None])
        if length is None:
            return d
        d = np.mod(d, length)
        return np.minimum(d, length - d)
    a, b = a.reshape(a.shape[0], -1), b.reshape(b.shape[0], -1)
    d = np.abs(a[:, None, :] - b[None, :, :])  # (m, k, d)
    if length is not None:
        ell = np.asarray(length, dtype=np.float64)
        d = np.mod(d, ell)
        d = np.minimum(d, ell - d)
    return np.sqrt(np.sum(d**2, axis=-1))


def sqrt_taper_matrix(
    state_locations,
    obs_locations,
    loc_rad: float,
    domain_length: float | np.ndarray | None,
    cutoff: float = 1e-3,
):
    """sqrt of the Gaspari-Cohn taper between each state location (local domain) and each
    observation, with DAPPER's radius convention (half-width 1.82 * loc_rad) and its cutoff:
    tapers below `cutoff` (1e-3) are set to zero (the observation is outside the domain).
    """
    return jnp.asarray(
        _sqrt_taper_rows(state_locations, obs_locations, loc_rad, domain_length, cutoff),
        dtype=jnp.result_type(float),
    )


def _sqrt_taper_rows(state_locations, obs_locations, loc_rad, domain_length, cutoff):
    d = periodic_distance(state_locations, obs_locations, domain_length)
    return _sqrt_taper_of_distance(d, loc_rad, cutoff)


def _sqrt_taper_of_distance(distance, loc_rad, cutoff):
    taper = gaspari_cohn(distance, GC_RADIUS_SCALE * float(loc_rad))
    return np.sqrt(np.where(taper > cutoff, taper, 0.0))


def contiguous_batches(dim: int, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Split the state indices 0..dim-1 into contiguous local domains of about `batch_size`.

    DAPPER's 1-D `rectangular_partitioning`: n = round(dim / batch_size) batches (Python's
    round, half to even) from `np.array_split`, so when `batch_size` does not divide `dim`
    the batches differ in size by one (the first dim mod n are one larger); e.g. dim 40,
    batch_size 3: 13 batches, one of 4 and twelve of 3. `batch_size` 1 gives one batch per
    state variable.

    Returns:
        points: (n, s) int32 state indices of each batch, s the largest batch; a shorter
            batch is padded by repeating its last index.
        sizes: (n,) int32 number of points in each batch.
    """
    parts = np.array_split(np.arange(dim), round(dim / batch_size))
    s = max(p.size for p in parts)
    points = np.stack([np.concatenate([p, np.full(s - p.size, p[-1])]) for p in parts])
    return points.astype(np.int32), np.array([p.size for p in parts], dtype=np.int32)


def _batch_sqrt_taper_rows(
    state_locations, points, sizes, obs_locations, loc_rad, domain_length, cutoff
):
    """sqrt tapers of batches of state points: the taper of the *mean* of the distances from
    each point of the batch to the observation (DAPPER's `localization_setup`, direction
    'x2y'). A batch of one point gives exactly `_sqrt_taper_rows`."""
    n, s = points.shape
    d = periodic_distance(state_locations[points.ravel()], obs_locations, domain_length)
    d = d.reshape(n, s, -1)
    inside = (np.arange(s)[None, :] < sizes[:, None])[..., None]
    mean_d = np.sum(np.where(inside, d, 0.0), axis=1) / sizes[:, None]
    return _sqrt_taper_of_distance(mean_d, loc_rad, cutoff)


def local_observations(
    state_locations,
    obs_locations,
    loc_rad: float,
    domain_length: float | np.ndarray | None,
    cutoff: float = 1e-3,
    chunk: int = 1024,
    batches: tuple[np.ndarray, np.ndarray] | None = None,
):
    """For each local domain, the observations inside its taper.

    A local domain is one state location, or with `batches` = (points, sizes) from
    `contiguous_batches` one batch of state locations, whose distance to an observation is
    the mean of its points' distances (DAPPER's convention).

    Returns NumPy arrays (indices, sqrt_taper), both (domains, k) with k the largest number
    of observations any domain sees (at least 1): row i lists the observations with nonzero
    taper for domain i, padded with index 0 and taper 0 (a padded entry contributes exactly
    nothing). Equal in value to the dense `sqrt_taper_matrix`, at O(dim k) instead of
    O(dim obs) per analysis; built in chunks of `chunk` domains, so the dense matrix is never
    held.
    """
    locs = np.asarray(state_locations, dtype=np.float64)
    obs = np.asarray(obs_locations, dtype=np.float64)
    n_domains = locs.shape[0] if batches is None else batches[0].shape[0]
    rows = []
    for start in range(0, n_domains, chunk):
        stop = start + chunk
        if batches is None:
            block = _sqrt_taper_rows(locs[start:stop], obs, loc_rad, domain_length, cutoff)
        else:
            points, sizes = batches[0][start:stop], batches[1][start:stop]
            block = _batch_sqrt_taper_rows(locs, points, sizes, obs, loc_rad, domain_length, cutoff)
        rows.extend((np.flatnonzero(r), r[r > 0]) for r in block)
    k = max(1, max(idx.size for idx, _ in rows))
    indices = np.zeros((len(rows), k), dtype=np.int32)
    tapers = np.zeros((len(rows), k))
    for i, (idx, r) in enumerate(rows):
        indices[i, : idx.size], tapers[i, : idx.size] = idx, r
    return indices, tapers
