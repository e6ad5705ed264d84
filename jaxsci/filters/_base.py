"""The filter state, the analysis info, and the abstract filters (ensemble and particle)."""

import abc
from typing import NamedTuple, TypeAlias

import equinox as eqx
import jax.numpy as jnp

from .._custom_types import Array, Bool, Float, Int, Key
from ..observations import AbstractObservation
from ._statistics import (
    check_analysis_inputs,
    ensemble_log_likelihood,
    mean_and_spread,
    weighted_mean_and_spread,
)

#: A forecast or analysis ensemble (members, state dimension) and one observation vector.
Ensemble: TypeAlias = Float[Array, "ens dim"]
ObsVector: TypeAlias = Float[Array, " obs"]


class FilterState(NamedTuple):
    """A weighted ensemble: the state of every filter between analyses.

    Attributes:
        ensemble: members or particles, (ens, dim).
        log_weights: normalised log-weights (logsumexp = 0), (ens,); ensemble Kalman
            filters keep them uniform (-log N).
    """

    ensemble: Float[Array, "ens dim"]
    log_weights: Float[Array, " ens"]


class FilterInfo(NamedTuple):
    """Diagnostics of one analysis.

    Attributes:
        log_likelihood: the filter's estimate of log p(y_k | y_{1:k-1}): the Gaussian
            ensemble likelihood log N(y_k; mean h(E_f), Y Y^T/(N-1) + R) for ensemble Kalman
            filters, the particle estimate log sum_i w_i p(y_k | x_i) for particle filters.
        ess: the effective sample size before resampling (N for ensemble Kalman filters).
        resampled: whether the particles were resampled (False for ensemble Kalman filters).
        num_nonfinite: members whose log-weight was NaN and was set to -inf (particle filters).
    """

    log_likelihood: Float[Array, ""]
    ess: Float[Array, ""]
    resampled: Bool[Array, ""]
    num_nonfinite: Int[Array, ""]


class AbstractFilter(eqx.Module):
    """A filter: `state = filter.init(ensemble)`, then per observation
    `state, info = filter.analysis(key, state, y_obs, obs_op)` and
    `mean, spread = filter.statistics(state)`.

    The analysis acts on one `FilterState` and one observation vector (vmap outside for
    batches of experiments). Filters never raise under jit: a failed analysis gives
    non-finite members, which `assimilate` reports as divergence.
    """

    def init(self, ensemble: Float[Array, "ens dim"]) -> FilterState:
        """The state of an initial ensemble: equal weights."""
        n = ensemble.shape[0]
        return FilterState(ensemble, jnp.full((n,), -jnp.log(n), dtype=ensemble.dtype))

    @abc.abstractmethod
    def analysis(
        self, key: Key, state: FilterState, y_obs: ObsVector, obs_op: AbstractObservation
    ) -> tuple[FilterState, FilterInfo]:
        """Update a forecast state with the observation `y_obs`."""

    @abc.abstractmethod
    def statistics(self, state: FilterState) -> tuple[Float[Array, " dim"], Float[Array, ""]]:
        """The state's mean and spread (sqrt of the variable-averaged variance)."""


class AbstractEnsembleFilter(AbstractFilter):
    """An ensemble Kalman-type filter: `update(key, ensemble, y_obs, obs_op) -> ensemble`
    moves the (equally weighted) members; `analysis` wraps it with the input checks and the
    Gaussian ensemble likelihood of the forecast (`ensemble_log_likelihood`; not computed
    when unused under `jit`), and keeps the uniform weights.
    """

    @abc.abstractmethod
    def update(
        self, key: Key, ensemble: Ensemble, y_obs: ObsVector, obs_op: AbstractObservation
    ) -> Ensemble:
        """The analysis ensemble of a forecast ensemble (members, dim) and `y_obs`."""

    def analysis(
        self, key: Key, state: FilterState, y_obs: ObsVector, obs_op: AbstractObservation
    ) -> tuple[FilterState, FilterInfo]:
        forecast = state.ensemble
        check_analysis_inputs(forecast, y_obs, obs_op)
        analysis = self.update(key, forecast, y_obs, obs_op)
        info = FilterInfo(
            log_likelihood=ensemble_log_likelihood(forecast, y_obs, obs_op),
            ess=jnp.asarray(forecast.shape[0], dtype=forecast.dtype),
            resampled=jnp.asarray(False),
            num_nonfinite=jnp.zeros((), jnp.int32),
        )
        return FilterState(analysis, state.log_weights), info

    def statistics(self, state: FilterState) -> tuple[Float[Array, " dim"], Float[Array, ""]]:
        return mean_and_spread(state.ensemble)


class AbstractParticleFilter(AbstractFilter):
    """A weighted-particle filter (built on `jaxsci.smc`): `analysis` reweights and possibly
    resamples; `log_weights` are normalised on output, `info.log_likelihood` is the log of
    the incremental evidence estimate and `info.ess` the ESS before resampling. Statistics
    are weighted: the weighted mean and the spread of the unbiased weighted variance.
    """

    def statistics(self, state: FilterState) -> tuple[Float[Array, " dim"], Float[Array, ""]]:
        return weighted_mean_and_spread(state.ensemble, state.log_weights)
