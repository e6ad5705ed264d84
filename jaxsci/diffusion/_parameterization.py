r"""Model parameterisations, exact conversions, and the denoiser wrapper.

For x = alpha x0 + sigma eps (alpha, sigma at time t) a network may predict

* ``"eps"``: the noise eps (Ho et al. 2020);
* ``"x0"``: the data x0 (Karras et al. 2022's denoiser D);
* ``"v"``: v = alpha eps - sigma x0 (Salimans & Ho 2022, for any schedule);
* ``"score"``: grad log p_t(x) = -eps / sigma;
* ``"flow"``: the flow velocity u = alpha' x0 + sigma' eps (flow matching, Lipman et al.
  2023), which is also the probability-flow ODE velocity dx/dt.

Given x every pair determines the others exactly:
x0 = (x - sigma eps)/alpha; eps = (x - alpha x0)/sigma;
from v: x0 = (alpha x - sigma v)/(alpha^2 + sigma^2), eps = (sigma x + alpha v)/(alpha^2 + sigma^2);
from the score: eps = -sigma s;
from u: [alpha sigma; alpha' sigma'] [x0; eps] = [x; u], determinant
alpha sigma' - sigma alpha' = -alpha sigma lambda' > 0, so
x0 = (sigma' x - sigma u)/det, eps = (alpha u - alpha' x)/det.
"""

from collections.abc import Callable

import equinox as eqx
import jax.numpy as jnp
import numpy as np

from .._custom_types import Array, Float
from ._base import AbstractSchedule

PARAMETERIZATIONS = ("eps", "x0", "v", "score", "flow")


def check_parameterization(kind, name: str = "parameterization") -> str:
    """Return `kind` when it is a known parameterisation, else raise a ValueError."""
    if kind not in PARAMETERIZATIONS:
        raise ValueError(f"Unknown `{name}` {kind!r}; expected one of {list(PARAMETERIZATIONS)}.")
    return kind


def to_x0_eps(kind: str, output, x, t, schedule: AbstractSchedule):
    """(x0, eps) implied by a model `output` of parameterisation `kind` at (t, x)."""
    check_parameterization(kind)
    a, s = schedule.alpha(t), schedule.sigma(t)
    if kind == "eps":
        eps = output
        return (x - s * eps) / a, eps
    if kind == "x0":
        return output, (x - a * output) / s
    if kind == "v":
        norm = a**2 + s**2
        return (a * x - s * output) / norm, (s * x + a * output) / norm
    if kind == "score":
        eps = -s * output
        return (x - s * eps) / a, eps
    da, ds = schedule.d_alpha(t), schedule.d_sigma(t)
    det = a * ds - s * da
    return (ds * x - s * output) / det, (a * output - da * x) / det


def from_x0_eps(kind: str, x0, eps, t, schedule: AbstractSchedule):
    """The output of parameterisation `kind` for a given (x0, eps) at time t."""
    check_parameterization(kind)
    a, s = schedule.alpha(t), schedule.sigma(t)
    if kind == "eps":
        return eps
    if kind == "x0":
        return x0
    if kind == "v":
        return a * eps - s * x0
    if kind == "score":
        return -eps / s
    return schedule.d_alpha(t) * x0 + schedule.d_sigma(t) * eps


def convert(output, *, source: str, target: str, x, t, schedule: AbstractSchedule):
    """Convert a model output between parameterisations (exact, see the module docstring)."""
    check_parameterization(source, "source")
    check_parameterization(target, "target")
    x0, eps = to_x0_eps(source, output, x, t, schedule)
    return from_x0_eps(target, x0, eps, t, schedule)


def _is_number(x) -> bool:
    """A concrete Python/NumPy real number (not bool, not an array that may be traced)."""
    return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, bool)


class DynamicThreshold(eqx.Module):
    r"""Dynamic thresholding of x0 predictions (Saharia et al. 2022, "Imagen", section 2.3).

    s = clip(quantile(|x0|, percentile), 1, max_value) per example, then
    x0 <- clip(x0, -s, s) / s. Defaults: the paper's percentile 0.995 and data range
    [-1, 1]; `max_value` bounds s as diffusers' `sample_max_value` does.
    """

    percentile: float = 0.995
    max_value: float = float("inf")

    def __check_init__(self):
        # Python ints are numbers too (DynamicThreshold(1, 3) is valid; max_value=0 is not).
        if _is_number(self.percentile) and not 0.0 < self.percentile <= 1.0:
            raise ValueError(f"`percentile` must be in (0, 1], got {self.percentile}.")
        if _is_number(self.max_value) and not self.max_value >= 1.0:
            raise ValueError(f"`max_value` must be >= 1, got {self.max_value}.")

    def __call__(self, x0: Float[Array, "..."]) -> Float[Array, "..."]:
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
    scale: float | Float[Array, ""]

    def __call__(self, t, x):
        u = self.unconditional(t, x)
        return u + self.scale * (self.conditional(t, x) - u)


class Denoiser(eqx.Module):
    """Any callable `model(t, x)` of a declared parameterisation, seen as a denoiser.

    Exposes `predict(t, x) -> (x0, eps)`, `x0`, `eps`, `score` and the probability-flow
    velocity `velocity(t, x) = f(t) x - sigma_t lambda_t' eps`. With `threshold` (a
    `DynamicThreshold`) the x0 prediction is thresholded and eps recomputed from it, so
    every sampler sees a consistent pair.

    Arguments:
        model: callable (t, x) -> array shaped like x, t a scalar time of `schedule`.
        schedule: the noise schedule the model was trained with.
        parameterization: one of "eps", "x0", "v", "score", "flow".
        threshold: optional `DynamicThreshold`.
    """

    model: Callable
    schedule: AbstractSchedule
    parameterization: str = eqx.field(default="eps", static=True)
    threshold: DynamicThreshold | None = None

    def __check_init__(self):
        check_parameterization(self.parameterization)
        if not isinstance(self.schedule, AbstractSchedule):
            raise TypeError(
                f"`schedule` must be an AbstractSchedule, got {type(self.schedule).__name__}."
            )

    def predict(self, t, x):
        """(x0, eps) at time t."""
        out = self.model(t, x)
        if jnp.shape(out) != jnp.shape(x):
            raise ValueError(
                f"the model returned shape {jnp.shape(out)} for x of shape {jnp.shape(x)}; "
                "a denoiser must return an array shaped like x."
            )
        x0, eps = to_x0_eps(self.parameterization, out, x, t, self.schedule)
        if self.threshold is not None:
            x0 = self.threshold(x0)
            eps = (x - self.schedule.alpha(t) * x0) / self.schedule.sigma(t)
        return x0, eps

    def x0(self, t, x):
        return self.predict(t, x)[0]

    def eps(self, t, x):
        return self.predict(t, x)[1]

    def score(self, t, x):
        return -self.eps(t, x) / self.schedule.sigma(t)

    def velocity(self, t, x):
        """Probability-flow ODE velocity dx/dt = f(t) x - sigma_t lambda_t' eps."""
        sch = self.schedule
        return sch.d_log_alpha(t) * x - sch.sigma(t) * sch.d_lambda(t) * self.eps(t, x)


def as_denoiser(model, schedule: AbstractSchedule, parameterization: str) -> Denoiser:
    """`model` itself when it is a `Denoiser` (its own schedule and parameterisation win),
    else `Denoiser(model, schedule, parameterization)`: the model argument of the
    samplers' drivers."""
    if isinstance(model, Denoiser):
        return model
    check_parameterization(parameterization)
    return Denoiser(model, schedule, parameterization)
