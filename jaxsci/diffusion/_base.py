r"""Abstract noise schedules and samplers.

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
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp

from .._custom_types import Array, Float, Int, Key, PyTree

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

    Subclasses implement `log_alpha` and `log_sigma` (elementwise on arrays of times) and
    the fields `t_min` < `t_max` (the range samplers may use: data end and noise end).
    `t_from_lambda` defaults to a safeguarded Newton/bisection solve on [t_min, t_max];
    schedules with a closed-form inverse override it. Derivatives default to forward-mode
    autodiff of the log-coefficients.
    """

    t_min: eqx.AbstractVar[float]
    t_max: eqx.AbstractVar[float]

    @abc.abstractmethod
    def log_alpha(self, t):
        """log alpha_t, elementwise."""

    @abc.abstractmethod
    def log_sigma(self, t):
        """log sigma_t, elementwise."""

    def alpha(self, t):
        """alpha_t (the signal scale)."""
        return jnp.exp(self.log_alpha(t))

    def sigma(self, t):
        """sigma_t (the noise scale)."""
        return jnp.exp(self.log_sigma(t))

    def lambda_(self, t):
        """lambda_t = log(alpha_t / sigma_t), the half log-SNR (strictly decreasing in t)."""
        return self.log_alpha(t) - self.log_sigma(t)

    def t_from_lambda(self, lam):
        """The time t with lambda_t = lam, by safeguarded Newton on [t_min, t_max].

        Used by schedules without a closed-form inverse. lambda_t is strictly decreasing,
        so the root is bracketed by [t_min, t_max] for lam in [lambda(t_max),
        lambda(t_min)] (values outside clamp to the ends). Each iteration takes the Newton
        step when it stays inside the current bracket and bisects otherwise. Gradients
        with respect to `lam` come from one final Newton step on the stopped root (the
        implicit function theorem: dt/dlam = 1 / lambda'(t)).
        """
        lam = jnp.asarray(lam)
        dtype = jnp.result_type(lam, float)
        lam_c = jax.lax.stop_gradient(lam)
        lo = jnp.full_like(lam_c, self.t_min, dtype=dtype)
        hi = jnp.full_like(lam_c, self.t_max, dtype=dtype)

        def body(_, carry):
            lo, hi, t = carry
            f = self.lambda_(t) - lam_c  # > 0 means t is too small (lambda decreasing)
            lo = jnp.where(f > 0, t, lo)
            hi = jnp.where(f > 0, hi, t)
            t_newton = t - f / self.d_lambda(t)
            ok = jnp.isfinite(t_newton) & (t_newton > lo) & (t_newton < hi)
            return lo, hi, jnp.where(ok, t_newton, 0.5 * (lo + hi))

        _, _, t = jax.lax.fori_loop(0, _INVERSE_ITERATIONS, body, (lo, hi, 0.5 * (lo + hi)))
        t = jax.lax.stop_gradient(t)
        return t - (self.lambda_(t) - lam) / self.d_lambda(t)

    def d_log_alpha(self, t):
        """d log alpha_t / dt = f(t), the SDE drift coefficient."""
        return _jvp1(self.log_alpha, t)

    def d_log_sigma(self, t):
        """d log sigma_t / dt."""
        return _jvp1(self.log_sigma, t)

    def d_alpha(self, t):
        """d alpha_t / dt."""
        return self.alpha(t) * self.d_log_alpha(t)

    def d_sigma(self, t):
        """d sigma_t / dt."""
        return self.sigma(t) * self.d_log_sigma(t)

    def d_lambda(self, t):
        """d lambda_t / dt (negative)."""
        return self.d_log_alpha(t) - self.d_log_sigma(t)

    def drift(self, t):
        """f(t) = d log alpha_t / dt of the forward SDE dx = f x dt + g dW."""
        return self.d_log_alpha(t)

    def diffusion_squared(self, t):
        """g(t)^2 = d sigma^2/dt - 2 f sigma^2 = -2 sigma_t^2 d lambda_t/dt."""
        return -2.0 * self.sigma(t) ** 2 * self.d_lambda(t)

    def prior_std(self):
        """Standard deviation of x_{t_max} for data of unit variance, sqrt(alpha^2 + sigma^2).

        The usual initial noise of samplers is `prior_std() * N(0, I)`.
        """
        return jnp.sqrt(self.alpha(self.t_max) ** 2 + self.sigma(self.t_max) ** 2)


class GridArrays(NamedTuple):
    """A time grid (noise to data) with its schedule coefficients, each of shape (steps+1,)."""

    t: Float[Array, " n1"]
    lam: Float[Array, " n1"]
    alpha: Float[Array, " n1"]
    sigma: Float[Array, " n1"]


def grid_arrays(schedule: AbstractSchedule, ts) -> GridArrays:
    """Precompute (t, lambda, alpha, sigma) on a time grid."""
    ts = jnp.asarray(ts)
    return GridArrays(ts, schedule.lambda_(ts), schedule.alpha(ts), schedule.sigma(ts))


class SamplerState(NamedTuple):
    """State of a sampler between steps.

    x: the current sample x_{t_i}; i: the index of the current grid time; grid: the grid
    arrays; history: sampler-specific arrays (previous model outputs, lambdas, ...).
    """

    x: Float[Array, "..."]
    i: Int[Array, ""]
    grid: GridArrays
    history: PyTree


class AbstractSampler(eqx.Module):
    """A sampler over a time grid: `state = init(denoiser, ts, x_T)`,
    `state, info = step(key, state, denoiser)`.

    The grid `ts` runs from the noise end to the data end (strictly decreasing); one
    `step` moves from `ts[i]` to `ts[i + 1]` using `nfe_per_step` model evaluations. Acts
    on one example (any shape); vmap outside. `info` is a dict of scalars.

    `order` is the method's global order of convergence; `multistep` methods need at
    least `order` steps (NFE >= order) and warm up with lower orders.

    `lower_order_final` (all samplers, default True): when the grid has fewer than 15
    steps, the effective order at step i is capped at n_steps - i, so the final step is
    first order, the one before at most second order, ... This stabilises few-step
    sampling near the data end (Lu et al. 2022b, section 5; the 15-step threshold is the
    one diffusers uses). It never applies to grids of 15 steps or more, so asymptotic
    orders are untouched; set it False for order studies on short grids.
    `lower_order_final="always"` caps the final steps on every grid, as diffusers' UniPC
    does. Use it on time-uniform ("trailing") grids. There the last step is much longer
    in lambda than the others (at 20 steps of diffusers' linear-beta schedule, h = 2.85
    against 0.67 for the step before), and a high-order extrapolation overshoots. On such
    grids it makes DPM-Solver++(2M/3M) and UniPC 4-35x more accurate at 20-50 NFE (see
    `benchmarks/RESULTS_diffusion.md`). It bounds the asymptotic global order by 2 (the
    first-order final step has local error O(h^2)), so keep the default on logSNR-uniform
    grids, whose last step is not special.

    `warmup` (multistep exponential samplers): "lower_order" (default; the published
    methods and diffusers) starts with orders 1, 2, ... while the history is short, so the
    first step has local error O(h^2). Its constant is tiny at the noise end, but it bounds
    the asymptotic global order by 2: visible for the fourth-order DEIS-3 / UniPC-3 (and
    eventually for any order >= 3). "singlestep" takes those first steps with
    DPM-Solver-3 (local error O(h^4), 2 extra evaluations per warm-up step), which keeps
    the theoretical global order up to 4.
    """

    order: eqx.AbstractVar[int]

    def __check_init__(self):
        lof = getattr(self, "lower_order_final", False)
        if not (lof is True or lof is False or lof == "always"):
            raise ValueError(f"`lower_order_final` must be True, False or 'always', got {lof!r}.")

    @property
    def multistep(self) -> bool:
        return False

    @property
    def stochastic(self) -> bool:
        return False

    @property
    def nfe_per_step(self) -> int:
        return 1

    @abc.abstractmethod
    def init(self, denoiser, ts, x_T) -> SamplerState:
        """Initial state at `ts[0]`."""

    @abc.abstractmethod
    def step(self, key: Key | None, state: SamplerState, denoiser) -> tuple[SamplerState, dict]:
        """Advance from ts[i] to ts[i+1]."""

    def min_steps(self) -> int:
        """The fewest grid steps this sampler accepts."""
        return self.order if self.multistep else 1

    def check_steps(self, n_steps: int) -> None:
        """Raise a ValueError when a grid of `n_steps` steps is too short for this sampler."""
        need = self.min_steps()
        if n_steps < need:
            raise ValueError(
                f"{type(self).__name__} of order {self.order} needs NFE >= its order: a grid "
                f"of at least {need} steps; got a grid of {n_steps} step(s) "
                f"(NFE {n_steps * self.nfe_per_step})."
            )
