r"""Model parameterisations, exact conversions, and the denoiser wrapper.

For x = alpha x0 + sigma eps (alpha, sigma at time t) a network may predict

* `EpsPrediction`: the noise eps (Ho et al. 2020);
* `X0Prediction`: the data x0 (Karras et al. 2022's denoiser D);
* `VPrediction`: v = alpha eps - sigma x0 (Salimans & Ho 2022, for any schedule);
* `ScorePrediction`: grad log p_t(x) = -eps / sigma;
* `FlowPrediction`: the flow velocity u = alpha' x0 + sigma' eps (flow matching, Lipman
  et al. 2023), which is also the probability-flow ODE velocity dx/dt.

Given x every pair determines the others exactly:
x0 = (x - sigma eps)/alpha; eps = (x - alpha x0)/sigma;
from v: x0 = (alpha x - sigma v)/(alpha^2 + sigma^2), eps = (sigma x + alpha v)/(alpha^2 + sigma^2);
from the score: eps = -sigma s;
from u: [alpha sigma; alpha' sigma'] [x0; eps] = [x; u], determinant
alpha sigma' - sigma alpha' = -alpha sigma lambda' > 0, so
x0 = (sigma' x - sigma u)/det, eps = (alpha u - alpha' x)/det.

Every output is linear and homogeneous in (x0, eps) at fixed t (`from_x0_eps`), which the
training losses use to convert an error in eps into an error in any output.
"""

import abc
from collections.abc import Callable

import equinox as eqx
import jax.numpy as jnp
import numpy as np

from .._checks import check_range, concrete
from .._custom_types import Array, Float
from ._base import AbstractSchedule, RealLike, Times, check_schedule

Example = Float[Array, "*shape"]


class AbstractParameterization(eqx.Module):
    """What a model outputs, as a pair of exact maps to and from (x0, eps) at time t.

    `to_x0_eps(output, x, t, schedule)` recovers the data and noise predictions from a
    model output at (t, x); `from_x0_eps(x0, eps, t, schedule)` is the output a model of
    this kind would give for them. Both act on one example (any shape) and a scalar t.
    """

    @abc.abstractmethod
    def to_x0_eps(
        self, output: Example, x: Example, t: Times, schedule: AbstractSchedule
    ) -> tuple[Example, Example]:
        """(x0, eps) implied by a model `output` at (t, x)."""

    @abc.abstractmethod
    def from_x0_eps(
        self, x0: Example, eps: Example, t: Times, schedule: AbstractSchedule
    ) -> Example:
        """The output of this parameterisation for a given (x0, eps) at time t."""


class EpsPrediction(AbstractParameterization):
    """The model predicts the noise eps (Ho et al. 2020)."""

    def to_x0_eps(self, output, x, t, schedule):
        return (x - schedule.sigma(t) * output) / schedule.alpha(t), output

    def from_x0_eps(self, x0, eps, t, schedule):
        return eps


class X0Prediction(AbstractParameterization):
    """The model predicts the data x0 (the denoiser D of Karras et al. 2022)."""

    def to_x0_eps(self, output, x, t, schedule):
        return output, (x - schedule.alpha(t) * output) / schedule.sigma(t)

    def from_x0_eps(self, x0, eps, t, schedule):
        return x0


class VPrediction(AbstractParameterization):
    """The model predicts v = alpha eps - sigma x0 (Salimans & Ho 2022)."""

    def to_x0_eps(self, output, x, t, schedule):
        a, s = schedule.alpha(t), schedule.sigma(t)
        norm = a**2 + s**2
        return (a * x - s * output) / norm, (s * x + a * output) / norm

    def from_x0_eps(self, x0, eps, t, schedule):
        return schedule.alpha(t) * eps - schedule.sigma(t) * x0


class ScorePrediction(AbstractParameterization):
    """The model predicts the score grad log p_t(x) = -eps / sigma (Song et al. 2021)."""

    def to_x0_eps(self, output, x, t, schedule):
        s = schedule.sigma(t)
        eps = -s * output
        return (x - s * eps) / schedule.alpha(t), eps

    def from_x0_eps(self, x0, eps, t, schedule):
        return -eps / schedule.sigma(t)


class FlowPrediction(AbstractParameterization):
    """The model predicts the flow velocity u = alpha' x0 + sigma' eps (Lipman et al. 2023),
    the probability-flow ODE velocity."""

    def to_x0_eps(self, output, x, t, schedule):
        a, s = schedule.alpha(t), schedule.sigma(t)
        da, ds = schedule.d_alpha(t), schedule.d_sigma(t)
        det = a * ds - s * da
        return (ds * x - s * output) / det, (a * output - da * x) / det

    def from_x0_eps(self, x0, eps, t, schedule):
        return schedule.d_alpha(t) * x0 + schedule.d_sigma(t) * eps


def check_parameterization(value, name: str = "parameterization") -> AbstractParameterization:
    """`value` when it is an `AbstractParameterization`, else a TypeError naming `name`."""
    if not isinstance(value, AbstractParameterization):
        raise TypeError(
            f"`{name}` must be an AbstractParameterization (EpsPrediction(), X0Prediction(), "
            f"VPrediction(), ScorePrediction() or FlowPrediction()), got {value!r}."
        )
    return value


def convert(
    output: Example,
    *,
    source: AbstractParameterization,
    target: AbstractParameterization,
    x: Example,
    t: Times,
    schedule: AbstractSchedule,
) -> Example:
    """Convert a model output between parameterisations (exact, see the module docstring)."""
    check_parameterization(source, "source")
    check_parameterization(target, "target")
    x0, eps = source.to_x0_eps(output, x, t, schedule)
    return target.from_x0_eps(x0, eps, t, schedule)


class DynamicThreshold(eqx.Module):
    r"""Dynamic thresholding of x0 predictions (Saharia et al. 2022, "Imagen", section 2.3).

    s = clip(quantile(|x0|, percentile), 1, max_value) per example, then
    x0 <- clip(x0, -s, s) / s. Defaults: the paper's percentile 0.995 and data range
    [-1, 1]; `max_value` bounds s as diffusers' `sample_max_value` does. Both are array
    fields (a vmap over them works).
    """

    percentile: RealLike = 0.995
    max_value: RealLike = float("inf")

    def __check_init__(self):
        check_range("percentile", self.percentile, 0.0, 1.0, lower_open=True)
        # max_value may be +inf (no bound): only NaN and values below 1 are refused.
        value = concrete(self.max_value)
        if value is not None and not np.all(value >= 1.0):
            raise ValueError(f"`max_value` must be >= 1, got {self.max_value}.")

    def __call__(self, x0: Example) -> Example:
        # jnp.quantile needs a floating q (an int percentile such as 1 would raise there).
        q = jnp.asarray(self.percentile, dtype=x0.dtype)
        s = jnp.quantile(jnp.abs(x0).ravel(), q)
        s = jnp.clip(s, 1.0, self.max_value)
        return jnp.clip(x0, -s, s) / s


class ClassifierFreeGuidance(eqx.Module):
    r"""Classifier-free guidance (Ho & Salimans 2022): a model (t, x) -> u + w (c - u).

    `conditional` and `unconditional` are callables (t, x) -> output in the same
    parameterisation; w = `scale` (w = 1: the conditional model; w = 0: unconditional).
    The combination is linear, so it is the same guided model whichever of eps / x0 / v /
    score / flow the outputs are (each is affine in eps at fixed (t, x)).
    """

    conditional: Callable
    unconditional: Callable
    scale: RealLike

    def __call__(self, t: Times, x: Example) -> Example:
        u = self.unconditional(t, x)
        return u + self.scale * (self.conditional(t, x) - u)


def _check_schedule(schedule) -> None:
    if not isinstance(schedule, AbstractSchedule):
        raise TypeError(f"`schedule` must be an AbstractSchedule, got {type(schedule).__name__}.")


class Denoiser(eqx.Module):
    """Any callable `model(t, x)` of a declared parameterisation, seen as a denoiser.

    Exposes `predict(t, x) -> (x0, eps)`, `x0`, `eps`, `score` and the probability-flow
    velocity `velocity(t, x) = f(t) x - sigma_t lambda_t' eps`. With `threshold` (a
    `DynamicThreshold`) the x0 prediction is thresholded and eps recomputed from it, so
    every sampler sees a consistent pair.

    Arguments:
        model: callable (t, x) -> array shaped like x, t a scalar time of `schedule`.
        schedule: the noise schedule the model was trained with.
        parameterization: what the model outputs (default `EpsPrediction()`).
        threshold: optional `DynamicThreshold`.
    """

    model: Callable
    schedule: AbstractSchedule
    parameterization: AbstractParameterization = EpsPrediction()
    threshold: DynamicThreshold | None = None

    def __check_init__(self):
        check_parameterization(self.parameterization)
        check_schedule(self.schedule)

    def predict(self, t: Times, x: Example) -> tuple[Example, Example]:
        """(x0, eps) at time t."""
        out = self.model(t, x)
        if jnp.shape(out) != jnp.shape(x):
            raise ValueError(
                f"the model returned shape {jnp.shape(out)} for x of shape {jnp.shape(x)}; "
                "a denoiser must return an array shaped like x."
            )
        x0, eps = self.parameterization.to_x0_eps(out, x, t, self.schedule)
        if self.threshold is not None:
            x0 = self.threshold(x0)
            eps = (x - self.schedule.alpha(t) * x0) / self.schedule.sigma(t)
        return x0, eps

    def x0(self, t: Times, x: Example) -> Example:
        """The data prediction E[x0 | x_t = x]."""
        return self.predict(t, x)[0]

    def eps(self, t: Times, x: Example) -> Example:
        """The noise prediction E[eps | x_t = x]."""
        return self.predict(t, x)[1]

    def score(self, t: Times, x: Example) -> Example:
        """The score grad log p_t(x) = -eps / sigma_t."""
        return -self.eps(t, x) / self.schedule.sigma(t)

    def velocity(self, t: Times, x: Example) -> Example:
        """Probability-flow ODE velocity dx/dt = f(t) x - sigma_t lambda_t' eps."""
        sch = self.schedule
        return sch.d_log_alpha(t) * x - sch.sigma(t) * sch.d_lambda(t) * self.eps(t, x)


def as_denoiser(
    model: "Callable | Denoiser",
    schedule: AbstractSchedule,
    parameterization: AbstractParameterization,
) -> Denoiser:
    """`model` itself when it is a `Denoiser` (its own schedule and parameterisation win),
    else `Denoiser(model, schedule, parameterization)`: the model argument of the
    samplers' drivers."""
    if isinstance(model, Denoiser):
        return model
    return Denoiser(model, schedule, check_parameterization(parameterization))
