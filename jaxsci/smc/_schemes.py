"""Resampling schemes: functions `(key, weights, num_samples) -> ancestor indices`.

Each scheme is unbiased: E[#offspring of i] = num_samples * w_i for normalised w (Douc, Cappé
& Moulines 2005 compare them; systematic has the lowest variance in practice and is DAPPER's
default). `weights` are non-negative and need not be normalised.

Why not `blackjax.smc.resampling`: its schemes expect normalised weights, search the
cumulative sum with `side="left"` (so a particle of weight zero is returned when a uniform
equals a cumulative sum exactly, e.g. systematic's first point at U = 0), and draw the
uniforms in the default float dtype rather than the weights' dtype. Here the weights are
normalised inside, the search takes the first cumulative sum strictly above each uniform, and
an index is never past the last particle of positive weight (rounding can leave the total
of the cumulative sum just below 1), so a particle of zero weight (a dropped, NaN-weighted
particle of an SMC sampler) is never drawn.
"""

from collections.abc import Callable
from typing import TypeAlias

import jax
import jax.numpy as jnp

from .._custom_types import Array, Float, Int, Key

ResamplingScheme: TypeAlias = Callable[[Key, Float[Array, " n"], int], Int[Array, " m"]]


def _inverse_cdf(weights: Float[Array, " n"], u: Float[Array, " m"]) -> Int[Array, " m"]:
    """Indices i with cdf[i-1] <= u < cdf[i] for sorted or unsorted u in [0, 1), never past
    the last index of positive weight."""
    n = weights.shape[0]
    cdf = jnp.cumsum(weights / jnp.sum(weights))
    idx = jnp.searchsorted(cdf, u, side="right")
    last = n - 1 - jnp.argmax(weights[::-1] > 0)
    return jnp.clip(idx, 0, last).astype(jnp.int32)


def multinomial(key: Key, weights: Float[Array, " n"], num_samples: int) -> Int[Array, " m"]:
    """Independent draws from Categorical(w)."""
    u = jax.random.uniform(key, (num_samples,), dtype=weights.dtype)
    return _inverse_cdf(weights, u)


def stratified(key: Key, weights: Float[Array, " n"], num_samples: int) -> Int[Array, " m"]:
    """One uniform per stratum: u_j = (j + U_j) / m (Kitagawa 1996)."""
    u = jnp.arange(num_samples) + jax.random.uniform(key, (num_samples,), dtype=weights.dtype)
    return _inverse_cdf(weights, u / num_samples)


def systematic(key: Key, weights: Float[Array, " n"], num_samples: int) -> Int[Array, " m"]:
    """One uniform shared by all strata: u_j = (j + U) / m (Carpenter et al. 1999)."""
    u = jnp.arange(num_samples) + jax.random.uniform(key, (), dtype=weights.dtype)
    return _inverse_cdf(weights, u / num_samples)


def residual(key: Key, weights: Float[Array, " n"], num_samples: int) -> Int[Array, " m"]:
    """floor(m w_i) deterministic copies, the remaining m - sum floor(m w_i) drawn
    multinomially from the residuals m w_i - floor(m w_i) (Liu & Chen 1998). Static shapes:
    the multinomial draws fill the slots after the deterministic copies."""
    w = weights / jnp.sum(weights)
    mw = num_samples * w
    copies = jnp.floor(mw).astype(jnp.int32)
    n_det = jnp.sum(copies)
    det = jnp.repeat(
        jnp.arange(w.shape[0], dtype=jnp.int32), copies, total_repeat_length=num_samples
    )
    resid = mw - copies
    resid = resid / jnp.maximum(jnp.sum(resid), jnp.finfo(w.dtype).tiny)
    draws = multinomial(key, jnp.where(jnp.sum(resid) > 0, resid, w), num_samples)
    return jnp.where(jnp.arange(num_samples) < n_det, det, draws)
