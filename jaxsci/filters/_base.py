"""Abstract filters and the shared ensemble algebra (anomalies, whitening, likelihood)."""

import abc
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp

from .._custom_types import Array, Float, Key
from ._observations import AbstractObservation


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


class AbstractEnsembleFilter(eqx.Module):
    """An ensemble analysis step: `analysis(key, ensemble, y_obs, obs_op) -> (ensemble, info)`.

    Ensembles are (members, dim) arrays; the analysis acts on one ensemble and one observation
    vector (vmap outside for batches of experiments). `info` is a dict of arrays (possibly
    empty). Filters never raise under jit: a failed analysis gives non-finite members, which
    `assimilate` reports as divergence.
    """

    @abc.abstractmethod
    def analysis(
        self,
        key: Key,
        ensemble: Float[Array, "ens dim"],
        y_obs: Float[Array, " obs"],
        obs_op: AbstractObservation,
    ) -> tuple[Float[Array, "ens dim"], dict]:
        """Update a forecast ensemble with the observation `y_obs`."""


class AbstractParticleFilter(eqx.Module):
    """A weighted-particle analysis step on log-weights:
    `analysis(key, particles, log_weights, y_obs, obs_op) -> (particles, log_weights, info)`.

    `log_weights` are normalised (logsumexp = 0) on output; `info` holds at least `ess`
    (effective sample size before resampling) and `log_evidence` (the log of the incremental
    marginal likelihood estimate p(y_k | y_{1:k-1})).
    """

    @abc.abstractmethod
    def analysis(
        self,
        key: Key,
        particles: Float[Array, "ens dim"],
        log_weights: Float[Array, " ens"],
        y_obs: Float[Array, " obs"],
        obs_op: AbstractObservation,
    ) -> tuple[Float[Array, "ens dim"], Float[Array, " ens"], dict]:
        """Reweight (and possibly resample) particles with the observation `y_obs`."""


def check_analysis_inputs(ensemble, y_obs, obs_op) -> None:
    check_ensemble(ensemble, obs_op)
    obs_op.check_observation(y_obs)
