"""The effective sample size of a weighted particle population."""

import jax
import jax.numpy as jnp

from .._custom_types import Array, Float


def effective_sample_size(log_weights: Float[Array, " n"]) -> Float[Array, ""]:
    """ESS = 1 / sum_i w_i^2 for the normalised weights w = softmax(log_weights) (Kong, Liu &
    Wong 1994): n for equal weights, 1 when one particle holds all the weight. Particles of
    weight zero (log-weight -inf) count as absent; NaN log-weights give NaN.

    The same quantity as `blackjax.smc.ess.ess`, computed from the softmax so that equal
    weights give n up to one rounding (the ESS is compared with `ess_threshold * n`).
    """
    w = jax.nn.softmax(log_weights)
    return 1.0 / jnp.sum(w**2)
