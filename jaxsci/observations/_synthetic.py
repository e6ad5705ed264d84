"""Synthetic observations of a truth run."""

import jax

from .._custom_types import Array, Float, Key
from ._base import AbstractObservation


def synthetic_observations(
    key: Key, obs_op: AbstractObservation, truth: Float[Array, "time dim"]
) -> Float[Array, "time obs"]:
    """Noisy observations y_k = h(x_k) + r_k, r_k ~ N(0, R) independent, of a truth run."""
    obs_op.check_state(truth, "truth")
    keys = jax.random.split(key, truth.shape[0])
    return jax.vmap(obs_op.sample)(keys, truth)
