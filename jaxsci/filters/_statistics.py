"""Ensemble statistics: anomalies and whitened observation-space quantities, the Gaussian
ensemble likelihood, and the (weighted) mean and spread a driver reports."""

from typing import NamedTuple

import jax
import jax.numpy as jnp

from .._custom_types import Array, Float
from ..observations import AbstractObservation


def check_ensemble(ensemble, obs_op: AbstractObservation, name: str = "ensemble") -> None:
    """Raise a ValueError naming `name` unless `ensemble` is (members >= 2, state_dim)."""
    shape = tuple(jnp.shape(ensemble))
    if len(shape) != 2:
        raise ValueError(f"`{name}` must have shape (members, dim), got {shape}.")
    if shape[0] < 2:
        raise ValueError(
            f"`{name}` has {shape[0]} member(s); ensemble filters need at least 2 (shape {shape})."
        )
    obs_op.check_state(ensemble, name)


def check_analysis_inputs(ensemble, y_obs, obs_op: AbstractObservation) -> None:
    """The ensemble and the observation of one analysis (trace-time checks on shapes)."""
    check_ensemble(ensemble, obs_op)
    obs_op.check_observation(y_obs)


class EnsembleStats(NamedTuple):
    """Forecast statistics in the form every ensemble analysis needs.

    mean (dim), anomalies A = E - mean (members, dim), whitened observation anomalies
    Yw = L^{-1}(h(E) - mean h(E)) (members, obs), whitened innovation dw = L^{-1}(y - mean h(E)),
    """

    mean: Float[Array, " dim"]
    anomalies: Float[Array, "ens dim"]
    obs_anomalies: Float[Array, "ens obs"]
    innovation: Float[Array, " obs"]


def ensemble_stats(ensemble, y_obs, obs_op: AbstractObservation) -> EnsembleStats:
    """Means, anomalies and whitened observation-space quantities of a forecast ensemble."""
    mean = jnp.mean(ensemble, axis=0)
    hx = jax.vmap(obs_op)(ensemble)
    hmean = jnp.mean(hx, axis=0)
    return EnsembleStats(
        mean=mean,
        anomalies=ensemble - mean,
        obs_anomalies=obs_op.whiten(hx - hmean),
        innovation=obs_op.whiten(y_obs - hmean),
    )


def use_ensemble_space(yw: Float[Array, "ens obs"]) -> bool:
    """Work with N x N systems when the ensemble is no larger than the number of observations
    (P x P systems otherwise); a static choice on shapes, as DAPPER makes it."""
    return yw.shape[0] <= yw.shape[1]


def gram_cholesky_ens(yw: Float[Array, "ens obs"]) -> Float[Array, "ens ens"]:
    """Lower Cholesky factor of Yw Yw^T + (N-1) I (ensemble space)."""
    n = yw.shape[0]
    return jnp.linalg.cholesky(yw @ yw.T + (n - 1) * jnp.eye(n, dtype=yw.dtype))


def gram_cholesky_obs(yw: Float[Array, "ens obs"]) -> Float[Array, "obs obs"]:
    """Lower Cholesky factor of Yw^T Yw + (N-1) I (observation space)."""
    n, p = yw.shape
    return jnp.linalg.cholesky(yw.T @ yw + (n - 1) * jnp.eye(p, dtype=yw.dtype))


def ensemble_log_likelihood(
    ensemble: Float[Array, "ens dim"], y_obs: Float[Array, " obs"], obs_op: AbstractObservation
) -> Float[Array, ""]:
    r"""Gaussian log-likelihood log N(y; h̄, Y Y^T/(N-1) + R) of one observation under a forecast
    ensemble, computed in ensemble space.

    With whitened anomalies Yw (N x P) and innovation d, S_w = I + Yw^T Yw/(N-1). The matrix
    determinant lemma gives log det S_w = log det(I_N + Yw Yw^T/(N-1)) and Woodbury gives
    d^T S_w^{-1} d = d^T d - d^T Yw^T (Yw Yw^T + (N-1) I)^{-1} Yw d, so the cost is O(N^2 P)
    instead of O(P^3) (when N <= P; otherwise S_w is factored directly).
    log det S = log det S_w + log det R.
    """
    s = ensemble_stats(ensemble, y_obs, obs_op)
    n = ensemble.shape[0]
    yw, d = s.obs_anomalies, s.innovation
    p = obs_op.obs_dim
    if use_ensemble_space(yw):
        chol = gram_cholesky_ens(yw)
        u = jax.scipy.linalg.solve_triangular(chol, yw @ d, lower=True)
        maha = jnp.sum(d**2) - jnp.sum(u**2)
        logdet = 2.0 * jnp.sum(jnp.log(jnp.diag(chol))) - n * jnp.log(n - 1.0)
    else:  # fewer observations than members: factor (N-1) S_w = Yw^T Yw + (N-1) I
        chol = gram_cholesky_obs(yw)
        u = jax.scipy.linalg.solve_triangular(chol, d, lower=True)
        maha = (n - 1.0) * jnp.sum(u**2)
        logdet = 2.0 * jnp.sum(jnp.log(jnp.diag(chol))) - p * jnp.log(n - 1.0)
    return -0.5 * (maha + logdet + obs_op.log_det_noise_cov() + p * jnp.log(2 * jnp.pi))


def mean_and_spread(
    ensemble: Float[Array, "ens dim"],
) -> tuple[Float[Array, " dim"], Float[Array, ""]]:
    """The ensemble mean and the spread sqrt(mean over variables of the ddof-1 variance)."""
    return jnp.mean(ensemble, axis=0), jnp.sqrt(jnp.mean(jnp.var(ensemble, axis=0, ddof=1)))


def unbiased_weighting(w: Float[Array, " ens"]) -> tuple[Float[Array, " ens"], Float[Array, ""]]:
    """Weights (cw, ub) for the unbiased weighted covariance ub * sum_i cw_i (x_i - m)(x_i - m)^T
    with m = cw @ x and ub = 1 / (1 - sum cw^2) (equal to the ddof=1 covariance for equal
    weights). When the normalised weights `w` are degenerate (one particle holds them all,
    1 - sum w^2 below 100 eps) the weighted covariance is zero or 0/0, so the uniform weights
    are used instead (DAPPER's fallback): the spread of the cloud, not of one particle.
    """
    eps = jnp.finfo(w.dtype).eps
    degenerate = 1.0 - jnp.sum(w**2) < 100 * eps
    cw = jnp.where(degenerate, jnp.full_like(w, 1.0 / w.shape[0]), w)
    return cw, 1.0 / (1.0 - jnp.sum(cw**2))


def particle_mean(
    particles: Float[Array, "ens dim"], log_weights: Float[Array, " ens"]
) -> Float[Array, " dim"]:
    """The weighted mean sum_i w_i x_i."""
    return jax.nn.softmax(log_weights) @ particles


def weighted_mean_and_spread(
    particles: Float[Array, "ens dim"], log_weights: Float[Array, " ens"]
) -> tuple[Float[Array, " dim"], Float[Array, ""]]:
    """The weighted mean, and the spread from the unbiased weighted variance (the cloud's
    unweighted spread when the weights are degenerate, instead of 0/0)."""
    cw, ub = unbiased_weighting(jax.nn.softmax(log_weights))
    var = ub * (cw @ (particles - cw @ particles) ** 2)
    return particle_mean(particles, log_weights), jnp.sqrt(jnp.mean(var))
