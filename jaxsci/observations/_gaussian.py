"""The Gaussian log-density with a given Cholesky factor."""

import math

import jax
import jax.numpy as jnp

from .._custom_types import Array, Float

_LOG_2PI = math.log(2.0 * math.pi)


def gaussian_log_density(
    residual: Float[Array, " obs"], chol: Float[Array, "obs obs"]
) -> Float[Array, ""]:
    """log N(r; 0, L L^T) for a lower-triangular L: one triangular solve z = L^{-1} r and
    -(|z|^2 + 2 sum_i log |L_ii| + obs log 2 pi) / 2.

    For covariances other than an observation model's R (e.g. R + r_t^2 H H^T in a twisted
    SMC sampler), factored once and shared by many residuals.
    """
    z = jax.scipy.linalg.solve_triangular(chol, residual, lower=True)
    log_det = 2.0 * jnp.sum(jnp.log(jnp.abs(jnp.diagonal(chol))))
    return -0.5 * (jnp.sum(z**2) + log_det + residual.shape[0] * _LOG_2PI)
