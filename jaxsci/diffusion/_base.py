r"""The abstract noise schedule.

A Gaussian diffusion (or flow) process is described by its marginals
q(x_t | x_0) = N(alpha_t x_0, sigma_t^2 I), t in [t_min, t_max], with the half log
signal-to-noise ratio lambda_t = log(alpha_t / sigma_t) strictly decreasing in t
(Kingma et al. 2021, "Variational diffusion models"; Lu et al. 2022, "DPM-Solver", eq. 2).
Everything a sampler needs follows from (alpha_t, sigma_t):

* the linear SDE with these marginals, dx = f(t) x dt + g(t) dW, has
  f(t) = d log alpha_t / dt and g(t)^2 = d sigma_t^2/dt - 2 f(t) sigma_t^2
  = -2 sigma_t^2 d lambda_t / dt (Kingma et al. 2021, appendix; Lu et al. 2022, eq. 2.3);
* the probability-flow ODE (Song et al. 2021, "Score-based generative modeling through
  SDEs", eq. 13) is dx/dt = f(t) x - g(t)^2 / 2 * score = f(t) x - sigma_t lambda_t' eps,
  with eps = -sigma_t * score the noise prediction.

Samplers work in lambda, so any schedule with an inverse t(lambda) plugs in.
"""

import abc

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Real

from .._custom_types import Array, ArrayLike, Float

# Times, log-SNRs: a Python number or an array of any shape; results have its shape.
Times = Real[ArrayLike, "*t"]
TimeArray = Float[Array, "*t"]
# A scalar hyperparameter: a Python int or float, or a 0-d JAX array (traced under
# vmap/grad).
RealLike = float | int | Real[Array, ""]

# Safeguarded Newton iterations of the generic inverse t(lambda): every iteration at least
# halves the bracket (bisection fallback), so 64 of them reach float64 resolution on any
# bracket; Newton converges quadratically once inside.
_INVERSE_ITERATIONS = 64


def _jvp1(fn, t):
    """Elementwise derivative d fn(t)/dt of an elementwise function."""
    t = jnp.asarray(t)
    return jax.jvp(fn, (t,), (jnp.ones_like(t),))[1]


class AbstractSchedule(eqx.Module):
    """A noise schedule: alpha_t, sigma_t, lambda_t and the inverse t(lambda).

    Final subclasses implement `log_alpha`, `log_sigma` (elementwise on arrays of times),
    the inverse `t_from_lambda` (in closed form, or by `newton_t_from_lambda`) and the
    fields `t_min` < `t_max` (the range samplers may use: data end and noise end).
    Derivatives are forward-mode autodiff of the log-coefficients.
    """

    t_min: eqx.AbstractVar[RealLike]
    t_max: eqx.AbstractVar[RealLike]

    @abc.abstractmethod
    def log_alpha(self, t: Times) -> TimeArray:
        """log alpha_t, elementwise."""

    @abc.abstractmethod
    def log_sigma(self, t: Times) -> TimeArray:
        """log sigma_t, elementwise."""

    def alpha(self, t: Times) -> TimeArray:
        """alpha_t (the signal scale)."""
        return jnp.exp(self.log_alpha(t))

    def sigma(self, t: Times) -> TimeArray:
        """sigma_t (the noise scale)."""
        return jnp.exp(self.log_sigma(t))

    def lambda_(self, t: Times) -> TimeArray:
        """lambda_t = log(alpha_t / sigma_t), the half log-SNR (strictly decreasing in t)."""
        return self.log_alpha(t) - self.log_sigma(t)

    @abc.abstractmethod
    def t_from_lambda(self, lam: Times) -> TimeArray:
        """The time t with lambda_t = lam (schedules without a closed form may return
        `newton_t_from_lambda(self, lam)`)."""

    def d_log_alpha(self, t: Times) -> TimeArray:
        """d log alpha_t / dt = f(t), the SDE drift coefficient."""
        return _jvp1(self.log_alpha, t)

    def d_log_sigma(self, t: Times) -> TimeArray:
        """d log sigma_t / dt."""
        return _jvp1(self.log_sigma, t)

    def d_alpha(self, t: Times) -> TimeArray:
        """d alpha_t / dt."""
        return self.alpha(t) * self.d_log_alpha(t)

    def d_sigma(self, t: Times) -> TimeArray:
        """d sigma_t / dt."""
        return self.sigma(t) * self.d_log_sigma(t)

    def d_lambda(self, t: Times) -> TimeArray:
        """d lambda_t / dt (negative)."""
        return self.d_log_alpha(t) - self.d_log_sigma(t)

    def drift(self, t: Times) -> TimeArray:
        """f(t) = d log alpha_t / dt of the forward SDE dx = f x dt + g dW."""
        return self.d_log_alpha(t)

    def diffusion_squared(self, t: Times) -> TimeArray:
        """g(t)^2 = d sigma^2/dt - 2 f sigma^2 = -2 sigma_t^2 d lambda_t/dt."""
        return -2.0 * self.sigma(t) ** 2 * self.d_lambda(t)

    def prior_std(self) -> Float[Array, ""]:
        """Standard deviation of x_{t_max} for data of unit variance, sqrt(alpha^2 + sigma^2).

        The usual initial noise of samplers is `prior_std() * N(0, I)`.
        """
        return jnp.sqrt(self.alpha(self.t_max) ** 2 + self.sigma(self.t_max) ** 2)


def newton_t_from_lambda(schedule: AbstractSchedule, lam: Times) -> TimeArray:
    """The time t with lambda_t = lam, by safeguarded Newton on [t_min, t_max].

    The generic inverse for schedules without a closed form. lambda_t is strictly
    decreasing, so the root is bracketed by [t_min, t_max] for lam in [lambda(t_max),
    lambda(t_min)] (values outside clamp to the ends). Each iteration takes the Newton step
    when it stays inside the current bracket and bisects otherwise. Gradients with respect
    to `lam` come from one final Newton step on the stopped root (the implicit function
    theorem: dt/dlam = 1 / lambda'(t)).
    """
    lam = jnp.asarray(lam)
    dtype = jnp.result_type(lam, float)
    lam_c = jax.lax.stop_gradient(lam)
    lo = jnp.full_like(lam_c, schedule.t_min, dtype=dtype)
    hi = jnp.full_like(lam_c, schedule.t_max, dtype=dtype)

    def body(_, carry):
        lo, hi, t = carry
        f = schedule.lambda_(t) - lam_c  # > 0 means t is too small (lambda decreasing)
        lo = jnp.where(f > 0, t, lo)
        hi = jnp.where(f > 0, hi, t)
        t_newton = t - f / schedule.d_lambda(t)
        ok = jnp.isfinite(t_newton) & (t_newton > lo) & (t_newton < hi)
        return lo, hi, jnp.where(ok, t_newton, 0.5 * (lo + hi))

    _, _, t = jax.lax.fori_loop(0, _INVERSE_ITERATIONS, body, (lo, hi, 0.5 * (lo + hi)))
    t = jax.lax.stop_gradient(t)
    return t - (schedule.lambda_(t) - lam) / schedule.d_lambda(t)


def check_schedule(schedule) -> AbstractSchedule:
    """`schedule` when it is an `AbstractSchedule`, else a TypeError naming it."""
    if not isinstance(schedule, AbstractSchedule):
        raise TypeError(f"`schedule` must be an AbstractSchedule, got {type(schedule).__name__}.")
    return schedule
