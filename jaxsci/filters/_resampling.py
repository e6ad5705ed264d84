"""Resampling schemes with one signature `(key, weights, num_samples) -> indices`.

Shared by the particle filters and (later) sequential Monte Carlo samplers. `weights` are
non-negative and normalised internally; each scheme is unbiased: E[#offspring of i] =
num_samples * w_i. Douc, Cappé & Moulines (2005) compare them; systematic has the lowest
variance in practice and is DAPPER's default.
"""

from collections.abc import Callable

import jax
import jax.numpy as jnp

from .._custom_types import Array, Float, Int, Key


def _inverse_cdf(weights, u):
    """Indices i with cdf[i-1] <= u < cdf[i] for sorted or unsorted u in [0, 1)."""
    cdf = jnp.cumsum(weights / jnp.sum(weights))
    idx = jnp.searchsorted(cdf, u, side="right")
    return jnp.clip(idx, 0, weights.shape[0] - 1).astype(jnp.int32)


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


ResamplingFn = Callable[[Key, Float[Array, " n"], int], Int[Array, " m"]]

RESAMPLING_SCHEMES: dict[str, ResamplingFn] = {
    "multinomial": multinomial,
    "stratified": stratified,
    "systematic": systematic,
    "residual": residual,
}


def effective_sample_size(log_weights: Float[Array, " n"]) -> Float[Array, ""]:
    """ESS = 1 / sum w_i^2 for normalised w = softmax(log_weights) (Kong et al. 1994)."""
    w = jax.nn.softmax(log_weights)
    return 1.0 / jnp.sum(w**2)
