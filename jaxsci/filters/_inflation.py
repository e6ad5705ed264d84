"""Covariance inflation and relaxation, as wrappers around any ensemble update."""

import abc

import equinox as eqx
import jax.numpy as jnp

from .._checks import check_positive, check_probability, hyperparameter
from .._custom_types import Key, Scalar
from ..observations import AbstractObservation
from ._base import AbstractEnsembleFilter, Ensemble, ObsVector


class AbstractRelaxation(AbstractEnsembleFilter):
    """A wrapper that runs `filter`'s update, then adjusts its analysis anomalies with
    `relax(forecast, analysis)`. Its parameters are array fields, so sweeps vmap over them."""

    filter: eqx.AbstractVar[AbstractEnsembleFilter]

    def __check_init__(self):
        if not isinstance(self.filter, AbstractEnsembleFilter):
            raise TypeError(
                "`filter` must be an AbstractEnsembleFilter (e.g. EnKF()), got "
                f"{type(self.filter).__name__}."
            )

    @abc.abstractmethod
    def relax(self, forecast: Ensemble, analysis: Ensemble) -> Ensemble:
        """The adjusted analysis ensemble."""

    def update(
        self, key: Key, ensemble: Ensemble, y_obs: ObsVector, obs_op: AbstractObservation
    ) -> Ensemble:
        return self.relax(ensemble, self.filter.update(key, ensemble, y_obs, obs_op))


class Inflation(AbstractRelaxation):
    """Multiplicative inflation of the analysis anomalies: A_a <- `factor` * A_a (DAPPER's
    `infl`, Anderson & Anderson 1999), `factor` finite and > 0."""

    filter: AbstractEnsembleFilter
    factor: Scalar = eqx.field(default=1.0, converter=hyperparameter)

    def __check_init__(self):
        check_positive("factor", self.factor)

    def relax(self, forecast: Ensemble, analysis: Ensemble) -> Ensemble:
        mean = jnp.mean(analysis, axis=0)
        return mean + self.factor.astype(analysis.dtype) * (analysis - mean)


class RTPS(AbstractRelaxation):
    """Relaxation to prior spread (Whitaker & Hamill 2012): per variable,
    A_a <- A_a * (1 + alpha (sigma_f - sigma_a) / sigma_a), `alpha` in [0, 1]."""

    filter: AbstractEnsembleFilter
    alpha: Scalar = eqx.field(default=0.5, converter=hyperparameter)

    def __check_init__(self):
        check_probability("alpha", self.alpha)

    def relax(self, forecast: Ensemble, analysis: Ensemble) -> Ensemble:
        sig_f = jnp.std(forecast, axis=0, ddof=1)
        sig_a = jnp.std(analysis, axis=0, ddof=1)
        scale = 1.0 + self.alpha.astype(analysis.dtype) * (sig_f - sig_a) / sig_a
        mean = jnp.mean(analysis, axis=0)
        return mean + (analysis - mean) * scale


class RTPP(AbstractRelaxation):
    """Relaxation to prior perturbations (Zhang et al. 2004): A_a <- (1-alpha) A_a + alpha A_f,
    `alpha` in [0, 1]."""

    filter: AbstractEnsembleFilter
    alpha: Scalar = eqx.field(default=0.5, converter=hyperparameter)

    def __check_init__(self):
        check_probability("alpha", self.alpha)

    def relax(self, forecast: Ensemble, analysis: Ensemble) -> Ensemble:
        a = self.alpha.astype(analysis.dtype)
        prior = forecast - jnp.mean(forecast, axis=0)
        mean = jnp.mean(analysis, axis=0)
        return mean + (1 - a) * (analysis - mean) + a * prior
