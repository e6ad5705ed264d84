"""Covariance inflation and relaxation, as wrappers around any ensemble analysis."""

import jax.numpy as jnp

from .._custom_types import Array, Float
from ._base import AbstractEnsembleFilter


class Inflation(AbstractEnsembleFilter):
    """Multiplicative inflation of the analysis anomalies: A_a <- `factor` * A_a (DAPPER's
    `infl`, Anderson & Anderson 1999). `factor` is an array field, so sweeps vmap over it."""

    filter: AbstractEnsembleFilter
    factor: Float[Array, ""]

    def __init__(self, filter: AbstractEnsembleFilter, factor=1.0):
        self.filter = filter
        self.factor = jnp.asarray(factor, dtype=jnp.result_type(float))

    def analysis(self, key, ensemble, y_obs, obs_op):
        ens, info = self.filter.analysis(key, ensemble, y_obs, obs_op)
        mean = jnp.mean(ens, axis=0)
        return mean + self.factor.astype(ens.dtype) * (ens - mean), info


class RTPS(AbstractEnsembleFilter):
    """Relaxation to prior spread (Whitaker & Hamill 2012): per variable,
    A_a <- A_a * (1 + alpha (sigma_f - sigma_a) / sigma_a)."""

    filter: AbstractEnsembleFilter
    alpha: Float[Array, ""]

    def __init__(self, filter: AbstractEnsembleFilter, alpha=0.5):
        self.filter = filter
        self.alpha = jnp.asarray(alpha, dtype=jnp.result_type(float))

    def analysis(self, key, ensemble, y_obs, obs_op):
        ens, info = self.filter.analysis(key, ensemble, y_obs, obs_op)
        mean = jnp.mean(ens, axis=0)
        sig_f = jnp.std(ensemble, axis=0, ddof=1)
        sig_a = jnp.std(ens, axis=0, ddof=1)
        scale = 1.0 + self.alpha.astype(ens.dtype) * (sig_f - sig_a) / sig_a
        return mean + (ens - mean) * scale, info


class RTPP(AbstractEnsembleFilter):
    """Relaxation to prior perturbations (Zhang et al. 2004): A_a <- (1-alpha) A_a + alpha A_f."""

    filter: AbstractEnsembleFilter
    alpha: Float[Array, ""]

    def __init__(self, filter: AbstractEnsembleFilter, alpha=0.5):
        self.filter = filter
        self.alpha = jnp.asarray(alpha, dtype=jnp.result_type(float))

    def analysis(self, key, ensemble, y_obs, obs_op):
        ens, info = self.filter.analysis(key, ensemble, y_obs, obs_op)
        mean = jnp.mean(ens, axis=0)
        a = self.alpha.astype(ens.dtype)
        prior = ensemble - jnp.mean(ensemble, axis=0)
        return mean + (1 - a) * (ens - mean) + a * prior, info
