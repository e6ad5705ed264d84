r"""Which states make the model-error samples of one data-assimilation pass.

With noisy observations y_k of a truth, an EnKF run gives analysis means x^a_k and forecast
(background) means x^f_k at every observation time. A model-error sample needs a start
x_k, an end one interval later, and the states at which the regressors (the library or the
step sensitivities) are evaluated (see `fit_model_error`). Two biases decide the choice
(Mojgani, Chattopadhyay & Hassanzadeh 2022, Chaos 32, 061105, "MEDIDA", use analyses):

* an EnKF run with an imperfect model lags the truth: with a gain K < 1 its analysis keeps
  a fraction (1 - K) of the model's forecast error, so samples between analyses are biased
  by about (1 - K) e;
* noisy starts put their noise both in the target (through the forecast) and in the
  regressors, which biases least squares (errors in variables; Fuller 1987, "Measurement
  Error Models", ch. 1) by about sigma^2 / Delta. Regressors evaluated at states whose
  errors are independent of that noise are instrumental variables and remove the bias; the
  background mean of an EnKF that runs a nearly perfect (corrected) model is one.

Each kind maps (observations, analyses, backgrounds) to the (starts, ends, regressor
states) of `fit_model_error`, leaving out the first `burn_in` analysis cycles.
"""

import abc
from typing import ClassVar

import equinox as eqx

from .._custom_types import Array, Float


class AbstractSamplePairs(eqx.Module):
    """How one pass of `discover_model_error` turns EnKF output into model-error samples.

    `needs_full_state`: whether the observations are used as states (then the whole state
    must be observed, in order: observations of shape (time, dim)).
    """

    needs_full_state: eqx.AbstractClassVar[bool]

    @abc.abstractmethod
    def pairs(
        self,
        observations: Float[Array, "time dim"],
        analysis: Float[Array, "time dim"],
        background: Float[Array, "time dim"],
        burn_in: int,
    ) -> tuple[
        Float[Array, "sample dim"], Float[Array, "sample dim"], Float[Array, "sample dim"] | None
    ]:
        """(starts, ends, regressor states or None for the starts) from the states at the
        observation times 0..K-1, cycles before `burn_in` left out."""

    @abc.abstractmethod
    def for_pass(self, first: bool) -> "AbstractSamplePairs":
        """The kind used in a pass; `first`: the EnKF ran the uncorrected model."""


class AnalysisPairs(AbstractSamplePairs):
    """MEDIDA's samples: (x^a_{k+1} - Phi(x^a_k)) / Delta, regressors at x^a_k. The only kind
    for partial observations; lags the truth by the filter's (1 - K) e."""

    needs_full_state: ClassVar[bool] = False

    def pairs(self, observations, analysis, background, burn_in):
        b = burn_in
        return analysis[b:-1], analysis[b + 1 :], None

    def for_pass(self, first: bool) -> AbstractSamplePairs:
        return self


class ObservationPairs(AbstractSamplePairs):
    """(y_{k+1} - Phi(x^a_k)) / Delta, regressors at x^a_k: the end is the observation, so
    the filter's lag enters once, not twice."""

    needs_full_state: ClassVar[bool] = True

    def pairs(self, observations, analysis, background, burn_in):
        b = burn_in
        return analysis[b:-1], observations[b + 1 :], None

    def for_pass(self, first: bool) -> AbstractSamplePairs:
        return self


class InstrumentalPairs(AbstractSamplePairs):
    """(y_{k+1} - Phi(y_k)) / Delta with the regressors at the background mean x^f_k, an
    instrumental variable (no errors-in-variables bias). In a pass whose EnKF runs the
    uncorrected model the background is no instrument (it lags the truth); that pass uses
    `ObservationPairs`."""

    needs_full_state: ClassVar[bool] = True

    def pairs(self, observations, analysis, background, burn_in):
        b = burn_in
        return observations[b:-1], observations[b + 1 :], background[b:-1]

    def for_pass(self, first: bool) -> AbstractSamplePairs:
        return ObservationPairs() if first else self
