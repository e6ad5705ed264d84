r"""Exponential-integrator samplers of the probability-flow ODE in lambda.

With lambda = log(alpha/sigma) and h = lambda_t - lambda_s > 0 (one step from the
noisier time s to t), variation of constants solves the probability-flow ODE exactly in its
linear part (Lu et al. 2022, "DPM-Solver", eq. 3.4; Lu et al. 2022b, "DPM-Solver++",
eq. 9):

    noise form: x_t = (alpha_t/alpha_s) x_s - alpha_t int e^{-lambda} eps dlambda,
    data form:  x_t = (sigma_t/sigma_s) x_s + sigma_t int e^{lambda} x0 dlambda,

integrals over [lambda_s, lambda_t].

Expanding the prediction in Taylor series in lambda about lambda_s and integrating term by
term with int_0^h e^{-(h-u)} u^k/k! du = h^{k+1} phi_{k+1}(-h) gives

    x_t = (alpha_t/alpha_s) x_s - sigma_t sum_k h phi_{k+1}(h)  (h^k eps^{(k)}(lambda_s))
    x_t = (sigma_t/sigma_s) x_s + alpha_t sum_k h phi_{k+1}(-h) (h^k x0^{(k)}(lambda_s)),

with the phi-functions of `jaxsci.integrate.phi_functions` (the same ones ETDRK uses for
stiff PDEs). A method of order p replaces h^k m^{(k)} (k < p) by differences of model
outputs (at earlier grid points: multistep; at intermediate points: singlestep).

Multistep samplers keep the last model outputs and lambdas in `state.history`; they warm
up with lower orders (the effective order at step i is at most i + 1 history points) or,
with `warmup=SinglestepWarmup()`, DPM-Solver-3 steps, and `lower_order_final` (see
`AbstractSampler`) caps the order near the end of short grids.
Variable orders are `lax.switch` branches, so the step is jit/vmap/grad friendly.
"""

import abc
import math
from collections.abc import Callable
from typing import ClassVar, Protocol, runtime_checkable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._checks import check_callable, check_choice, check_range, float_or_inf
from .._custom_types import Array, Bool, Float, Int, Key
from ..integrate import phi_functions
from ._base import AbstractSchedule, RealLike
from ._parameterization import Denoiser
from ._sampler import (
    LOWER_ORDER_FINAL_STEPS,
    AbstractMultistepSampler,
    AbstractSinglestepSampler,
    GridArrays,
    SamplerState,
    StepInfo,
    check_lower_order_final_below,
    grid_arrays,
    lower_order_final_applies,
    lower_order_final_below_field,
    lower_order_final_field,
    lower_order_final_ratio_field,
    step_info,
)

Grid = Float[Array, " n1"]
Example = Float[Array, "*shape"]

# Weight of D2 = h^2 x0''/2 + O(h^3) in DPM-Solver++(3M) as h -> 0: the Taylor term
# h^3 phi_3 x0'' is 2 h phi_3 D2 (derivation in `DPMSolverPPMultistep`, which uses
# 1 + (_D2_WEIGHT - 1) e^{-h}). The order test sets it to 1 (the published weighting) to
# show that the method is then second order.
_D2_WEIGHT = 2.0
# UniPC-3 caps its final steps on grids of fewer steps than this by default (`UniPC`).
UNIPC3_FINAL_STEPS = 30
# The lambda scale of that damping (a module constant, patched by the scale study of
# `benchmarks/study_diffusion_final_steps.py`).
_D2_DAMPING_SCALE = 1.0
# The damped weight applies on grids of at least this many steps; shorter grids use the
# published weight 1 (`DPMSolverPPMultistep.published_weight_below`).
PUBLISHED_3M_WEIGHT_BELOW = 15


def _check_optional_below(value: float | None) -> float | None:
    """None (the sampler's own default) or `check_lower_order_final_below(value)`."""
    return None if value is None else check_lower_order_final_below(value)


def _check_weight_below(value: float) -> float:
    """`value` as a float if it is a number of steps >= 0 (math.inf allowed), else a
    ValueError naming `published_weight_below`."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
        raise ValueError(
            "`published_weight_below` must be a number of steps >= 0 (0: the third-order "
            f"weight on every grid; math.inf: the published weight on every grid), got {value!r}."
        )
    return float_or_inf(value)  # beyond the float range: inf, above every grid


def _effective_order(order, i, g, lower_order_final, below, ratio, history_limited):
    """The order of step i on the grid `g`: `order`, at most i + 1 (the history) when
    `history_limited`, and at most n_steps - i where `lower_order_final` applies (grids of
    fewer than `below` steps or whose last steps grow by more than `ratio`)."""
    q = jnp.asarray(order)
    if history_limited:
        q = jnp.minimum(q, i + 1)
    applies = lower_order_final_applies(lower_order_final, below, ratio, g.lam)
    return jnp.where(applies, jnp.minimum(q, _n_steps(g) - i), q)


def _single_order(order, i, g, lower_order_final):
    """`_effective_order` of a singlestep sampler: no history limit, diffusers' step-count
    threshold alone (a singlestep step does not extrapolate from earlier, shorter steps)."""
    return _effective_order(
        order, i, g, lower_order_final, LOWER_ORDER_FINAL_STEPS, math.inf, False
    )


def _n_steps(g: GridArrays) -> int:
    return g.t.shape[0] - 1


def _push(buf, new):
    return jnp.concatenate([new[None].astype(buf.dtype), buf[:-1]], axis=0)


def _history_init(x, lam0, size):
    """Buffers of `size` model outputs (zeros) and lambdas. Unused lambda slots hold
    distinct finite values lam0 - 1, lam0 - 2, ... so that branches of `lax.switch`
    evaluated under vmap never divide by zero (no NaN in values or gradients)."""
    ms = jnp.zeros((size,) + jnp.shape(x), dtype=x.dtype)
    lams = lam0 - 1.0 - jnp.arange(size, dtype=jnp.result_type(lam0))
    return ms, lams


def _switch(q, branches, *operands):
    """lax.switch on the effective order q in 1..len(branches)."""
    return jax.lax.switch(jnp.clip(q - 1, 0, len(branches) - 1), branches, *operands)


def _check_structure(order, allowed_orders, warmup=None) -> None:
    """The checks shared by the exponential samplers' static options."""
    check_choice("order", order, allowed_orders)
    if warmup is not None:
        if not isinstance(warmup, AbstractWarmup):
            raise TypeError(
                "`warmup` must be an AbstractWarmup such as jaxsci.diffusion.LowerOrderWarmup() "
                f"or SinglestepWarmup(); got {warmup!r}."
            )


def ddim_transition(
    g: GridArrays, i: Int[Array, ""], x0: Example, eps: Example, eta: RealLike
) -> tuple[Example, Float[Array, ""]]:
    """Mean and noise std c of the DDIM(eta) step from grid point i to i + 1 given the
    predictions (x0, eps) at (t_i, x): mean = alpha_{i+1} x0 + sqrt(sigma_{i+1}^2 - c^2) eps,
    c = eta sigma_{i+1} sqrt(1 - e^{-2h}), h = lambda_{i+1} - lambda_i (see `DDIM`)."""
    h = g.lam[i + 1] - g.lam[i]
    c = jnp.asarray(eta, x0.dtype) * g.sigma[i + 1] * jnp.sqrt(-jnp.expm1(-2.0 * h))
    return g.alpha[i + 1] * x0 + jnp.sqrt(g.sigma[i + 1] ** 2 - c**2) * eps, c


def check_ddim_eta(eta) -> None:
    """Raise unless a concrete `eta` is in [0, 1] (0: deterministic DDIM, 1: DDPM's
    ancestral variance). Above 1, c exceeds sigma_{i+1} on coarse steps
    (eta^2 (1 - e^{-2h}) > 1) and the DDIM mean's sqrt(sigma^2 - c^2) is NaN."""
    check_range("eta", eta, 0.0, 1.0)


def ddim_is_stochastic(eta: RealLike) -> bool:
    """Whether a DDIM(eta) step draws noise (False only for a Python-number 0)."""
    return not (isinstance(eta, (int, float)) and eta == 0)


def _key_normal(key, x):
    return jax.random.normal(key, jnp.shape(x), dtype=x.dtype)


def _dpm_solver_3_step(denoiser, g, i, x, e_s):
    """One DPM-Solver-3 step from grid point i to i + 1 given eps at (t_i, x) (local
    error O(h^4)); see `DPMSolver`. Also the warm-up step of `SinglestepWarmup`."""
    sch = denoiser.schedule
    lam_s = g.lam[i]
    h = g.lam[i + 1] - lam_s
    a_s, a_t, s_t = g.alpha[i], g.alpha[i + 1], g.sigma[i + 1]
    _, p1, p2 = phi_functions(h, 2)
    r1, r2 = 1.0 / 3.0, 2.0 / 3.0
    t1 = sch.t_from_lambda(lam_s + r1 * h)
    t2 = sch.t_from_lambda(lam_s + r2 * h)
    a1, s1, a2, s2 = sch.alpha(t1), sch.sigma(t1), sch.alpha(t2), sch.sigma(t2)
    _, q1 = phi_functions(r1 * h, 1)
    _, w1, w2 = phi_functions(r2 * h, 2)
    x1 = (a1 / a_s) * x - s1 * r1 * h * q1 * e_s
    d1 = denoiser.eps(t1, x1) - e_s
    x2 = (a2 / a_s) * x - s2 * r2 * h * w1 * e_s - s2 * (r2 / r1) * r2 * h * w2 * d1
    d2 = denoiser.eps(t2, x2) - e_s
    return (a_t / a_s) * x - s_t * h * p1 * e_s - (s_t / r2) * h * p2 * d2


class AbstractWarmup(eqx.Module):
    """How a multistep sampler takes its steps while its history is short (see
    `AbstractSampler`, `warmup`)."""

    @abc.abstractmethod
    def __call__(
        self,
        denoiser: Denoiser,
        grid: GridArrays,
        i: Int[Array, ""],
        x: Example,
        e_s: Example,
        multistep_fn: Callable[[Example], Example],
        n_points: int,
    ) -> tuple[Example, Int[Array, ""], Bool[Array, ""]]:
        """The step from grid point i: `(x_{i+1}, nfe, replaced)`. `e_s` is the noise
        prediction at (t_i, x), already evaluated; `multistep_fn(x)` the sampler's own update
        at its effective order; `n_points` the history its full order needs; `replaced`
        whether this step was not the multistep update."""


class LowerOrderWarmup(AbstractWarmup):
    """The published warm-up (and diffusers'): every step is the multistep update, whose
    effective order is limited by the history it has (orders 1, 2, ... at the first steps).
    One model evaluation per step."""

    def __call__(self, denoiser, grid, i, x, e_s, multistep_fn, n_points):
        del denoiser, grid, i, e_s, n_points
        return multistep_fn(x), jnp.asarray(1), jnp.asarray(False)


class SinglestepWarmup(AbstractWarmup):
    """While the history holds fewer than `n_points` outputs, a DPM-Solver-3 step from the
    already-evaluated `e_s` (local error O(h^4), three evaluations); then the multistep
    update. Keeps the theoretical global order up to 4 (see `AbstractSampler`)."""

    def __call__(self, denoiser, grid, i, x, e_s, multistep_fn, n_points):
        warm = i + 1 < n_points
        x_new = jax.lax.cond(
            warm, lambda x: _dpm_solver_3_step(denoiser, grid, i, x, e_s), multistep_fn, x
        )
        return x_new, jnp.where(warm, 3, 1), warm


# ---------------------------------------------------------------------------------------
# DDIM


class DDIM(AbstractSinglestepSampler):
    r"""DDIM (Song, Meng & Ermon 2021), 0 <= eta <= 1.

    x_t = alpha_t x0 + sqrt(sigma_t^2 - c^2) eps + c z, c = eta sigma_t sqrt(1 - e^{-2h}),
    with (x0, eps) predicted at (s, x_s) and z ~ N(0, I). For VP schedules c equals DDIM's
    eta sqrt((1 - abar_t)/(1 - abar_s)) sqrt(1 - abar_s/abar_t); written in lambda it holds
    for any schedule. eta = 0 is the deterministic DDIM = DPM-Solver-1 = DPM-Solver++1
    (first order); eta = 1 is the first-order discretisation of the reverse SDE in data
    form (SDE-DPM-Solver++1). One model evaluation per step.
    """

    eta: RealLike = 0.0

    order: ClassVar[int] = 1
    nfe_per_step: ClassVar[int] = 1

    def __check_init__(self):
        check_ddim_eta(self.eta)

    @property
    def stochastic(self) -> bool:
        return ddim_is_stochastic(self.eta)

    def update(self, key, g, i, x, denoiser):
        x0, eps = denoiser.predict(g.t[i], x)
        x_new, c = ddim_transition(g, i, x0, eps, self.eta)
        if self.stochastic:
            x_new = x_new + c * _key_normal(key, x)
        return x_new, 1


# ---------------------------------------------------------------------------------------
# DPM-Solver (singlestep, noise prediction)


class DPMSolver(AbstractSinglestepSampler):
    r"""DPM-Solver-1/2/3, singlestep, noise prediction (Lu et al. 2022, Algorithms 1, 4, 5).

    With phi_k = phi_k(h) and phi-evaluations at intermediate points lambda_s + r h
    (t_u = t(lambda_u) from the schedule's inverse):

    * order 1: x_t = (a_t/a_s) x_s - s_t h phi_1 e_s  (= DDIM);
    * order 2 (r1 = 1/2): u = (a_u/a_s) x_s - s_u r1 h phi_1(r1 h) e_s,
      x_t = (a_t/a_s) x_s - s_t h phi_1 e_s - s_t/(2 r1) h phi_1 (e_u - e_s);
    * order 3 (r1 = 1/3, r2 = 2/3): u1 as above, D1 = e_{u1} - e_s,
      u2 = (a_{u2}/a_s) x_s - s_{u2} r2 h phi_1(r2 h) e_s - s_{u2} (r2/r1) r2 h phi_2(r2 h) D1,
      D2 = e_{u2} - e_s, x_t = (a_t/a_s) x_s - s_t h phi_1 e_s - (s_t/r2) h phi_2 D2
    (here e^{rh} - 1 = r h phi_1(r h) and (e^{rh} - 1)/(rh) - 1 = r h phi_2(r h)).

    `order` model evaluations per step.
    """

    order: int = eqx.field(default=2, static=True)
    lower_order_final: bool = lower_order_final_field()

    stochastic: ClassVar[bool] = False

    def __check_init__(self):
        _check_structure(self.order, (1, 2, 3))

    @property
    def nfe_per_step(self) -> int:
        return self.order

    def update(self, key, g, i, x, denoiser):
        sch = denoiser.schedule
        lam_s, lam_t = g.lam[i], g.lam[i + 1]
        h = lam_t - lam_s
        a_s, a_t, s_t = g.alpha[i], g.alpha[i + 1], g.sigma[i + 1]
        e_s = denoiser.eps(g.t[i], x)
        _, p1, p2 = phi_functions(h, 2)

        def at(r):
            t_u = sch.t_from_lambda(lam_s + r * h)
            return t_u, sch.alpha(t_u), sch.sigma(t_u)

        def first(x):
            return (a_t / a_s) * x - s_t * h * p1 * e_s

        def second(x):
            r1 = 0.5
            t_u, a_u, s_u = at(r1)
            _, q1 = phi_functions(r1 * h, 1)
            x_u = (a_u / a_s) * x - s_u * r1 * h * q1 * e_s
            e_u = denoiser.eps(t_u, x_u)
            return first(x) - s_t / (2 * r1) * h * p1 * (e_u - e_s)

        def third(x):
            return _dpm_solver_3_step(denoiser, g, i, x, e_s)

        q = _single_order(self.order, i, g, self.lower_order_final)
        return _switch(q, [first, second, third][: self.order], x), q


# ---------------------------------------------------------------------------------------
# DPM-Solver++ (data prediction)


class DPMSolverPP2S(AbstractSinglestepSampler):
    r"""DPM-Solver++(2S), singlestep second order, data prediction (Lu et al. 2022b, Alg. 1).

    With r = 1/2: u = (s_u/s_s) x_s + a_u r h phi_1(-r h) m_s, m_u = x0(u),
    D = (1 - 1/(2r)) m_s + m_u/(2r) (= m_u for r = 1/2),
    x_t = (s_t/s_s) x_s + a_t h phi_1(-h) D. Two model evaluations per step.
    """

    lower_order_final: bool = lower_order_final_field()

    order: ClassVar[int] = 2
    stochastic: ClassVar[bool] = False
    nfe_per_step: ClassVar[int] = 2

    def update(self, key, g, i, x, denoiser):
        sch = denoiser.schedule
        r = 0.5
        h = g.lam[i + 1] - g.lam[i]
        s_s, a_t, s_t = g.sigma[i], g.alpha[i + 1], g.sigma[i + 1]
        m_s = denoiser.x0(g.t[i], x)
        _, p1 = phi_functions(-h, 1)

        def first(x):
            return (s_t / s_s) * x + a_t * h * p1 * m_s

        def second(x):
            t_u = sch.t_from_lambda(g.lam[i] + r * h)
            a_u, s_u = sch.alpha(t_u), sch.sigma(t_u)
            _, q1 = phi_functions(-r * h, 1)
            x_u = (s_u / s_s) * x + a_u * r * h * q1 * m_s
            m_u = denoiser.x0(t_u, x_u)
            d = (1.0 - 1.0 / (2 * r)) * m_s + m_u / (2 * r)
            return (s_t / s_s) * x + a_t * h * p1 * d

        q = _single_order(2, i, g, self.lower_order_final)
        return _switch(q, [first, second], x), q


class DPMSolverPPMultistep(AbstractMultistepSampler):
    r"""DPM-Solver++(2M) and a third-order DPM-Solver++(3M), multistep, data prediction.

    (Lu et al. 2022b, Algorithm 2 for 2M; the 3M coefficients are derived here.) Model
    outputs m_0 = x0(x_s) at lambda_s and m_1, m_2 at lambda_s - a, lambda_s - a - b
    (earlier grid points); h = lambda_t - lambda_s, r0 = a/h, r1 = b/h; phi_k = phi_k(-h).

    * 2M (paper): D = (1 + 1/(2 r0)) m_0 - m_1/(2 r0),
      x_t = (s_t/s_s) x_s + a_t h phi_1 D.
    * 3M: the data form needs D1 = h x0' + O(h^3) and D2 = h^2 x0''/2 + O(h^3) in
      x_t = (s_t/s_s) x_s + a_t [h phi_1 m_0 + h phi_2 D1 + 2 h phi_3 D2] + O(h^4).
      Taylor expansion m(lambda_s - c) = m - c m' + c^2 m''/2 - c^3 m'''/6 gives
          D1_0 = (m_0 - m_1)/r0 = h m' - (a h/2) m'' + O(h^3),
          D1_1 = (m_1 - m_2)/r1 = h m' - h (a + b/2) m'' + O(h^3),
      so D1_0 - D1_1 = h (a + b) m''/2 + O(h^3) and
          D2 = (D1_0 - D1_1)/(r0 + r1) = h^2 m''/2 + O(h^3),
          D1 = D1_0 + r0 (D1_0 - D1_1)/(r0 + r1) = h m' + O(h^3).
      The k = 2 Taylor term is a_t h^3 phi_3 x0'' = a_t h phi_3 (h^2 x0''), i.e.
      2 h phi_3 D2: the factor 2 matters as h -> 0. Implementations that weight D2 by
      h phi_3 alone (e.g. the reference DPM-Solver code's `phi_3` term) leave an O(h^3)
      local error, hence only second order globally.

    **The weight of D2: w(h) = 1 + e^{-h}.** Any weight 2 + O(h) keeps the local error
    O(h^4) (the difference is O(h) h phi_3 D2 = O(h^4)), so the method is third order
    (checked by the order test). Taylor's 2 pays off when the lambda steps are short; over
    long steps the second difference extrapolated from the two previous steps overshoots
    (near the data end of a VP trajectory x0(lambda) relaxes like e^{-2 lambda}, whose
    backward differences exceed its derivatives), and the published weight 1 is the more
    accurate. 1 + e^{-h} = 2 - h + O(h^2) goes from Taylor's 2 to the published 1 over
    steps of about one unit of lambda (the scale of the exponential integrator's e^{-h};
    not fitted to a problem: of the scales 1/4, 1/2, 1 tried, 1 was the most accurate on
    the logSNR-uniform grids of `benchmarks/bench_diffusion_diffusers.py` and all three
    were more accurate than the constant 2 on its time-uniform ones).
    On grids of fewer than `published_weight_below` steps (default 15, the step count
    below which the final steps are capped too) every 3M step uses the published weight 1:
    there the method is DPM-Solver++(3M) exactly as in the DPM-Solver code and diffusers'
    `DPMSolverMultistepScheduler(solver_order=3)` (on the benchmark's mixtures the damped
    weight was 1-5% less accurate than the published one at 5-10 steps).
    `published_weight_below=0` uses the damped weight on every grid, `math.inf` the
    published weight on every grid (second order). Only `order=3` has a D2 term.

    One model evaluation per step; the first steps warm up with orders 1, 2.
    """

    order: int = eqx.field(default=2, static=True)
    lower_order_final: bool = lower_order_final_field()
    warmup: AbstractWarmup = LowerOrderWarmup()
    lower_order_final_below: float = lower_order_final_below_field()
    lower_order_final_ratio: float = lower_order_final_ratio_field()
    published_weight_below: float = eqx.field(
        default=PUBLISHED_3M_WEIGHT_BELOW, static=True, converter=_check_weight_below
    )

    stochastic: ClassVar[bool] = False

    def __check_init__(self):
        _check_structure(self.order, (2, 3), self.warmup)

    @property
    def convergence_order(self) -> int:
        return self.order

    def init(self, denoiser: Denoiser, ts: Grid, x_T: Example) -> SamplerState:
        g = grid_arrays(denoiser.schedule, ts)
        return SamplerState(x_T, jnp.asarray(0), g, _history_init(x_T, g.lam[0], self.order))

    def step(
        self, key: Key | None, state: SamplerState, denoiser: Denoiser
    ) -> tuple[SamplerState, StepInfo]:
        del key
        g, i, x = state.grid, state.i, state.x
        ms, lams = state.history
        ms = _push(ms, denoiser.x0(g.t[i], x))
        lams = _push(lams, g.lam[i])
        h = g.lam[i + 1] - lams[0]
        ratio, a_t = g.sigma[i + 1] / g.sigma[i], g.alpha[i + 1]
        _, p1, p2, p3 = phi_functions(-h, 3)

        def first(x):
            return ratio * x + a_t * h * p1 * ms[0]

        def second(x):
            r0 = (lams[0] - lams[1]) / h
            d = (1.0 + 0.5 / r0) * ms[0] - (0.5 / r0) * ms[1]
            return ratio * x + a_t * h * p1 * d

        def third(x):
            r0 = (lams[0] - lams[1]) / h
            r1 = (lams[1] - lams[2]) / h
            d1_0 = (ms[0] - ms[1]) / r0
            d1_1 = (ms[1] - ms[2]) / r1
            d1 = d1_0 + r0 / (r0 + r1) * (d1_0 - d1_1)
            d2 = (d1_0 - d1_1) / (r0 + r1)
            if _n_steps(g) < self.published_weight_below:
                weight = 1.0
            else:  # 2 - h + O(h^2): third order, and the published 1 on long steps
                weight = 1.0 + (_D2_WEIGHT - 1.0) * jnp.exp(-h / _D2_DAMPING_SCALE)
            return ratio * x + a_t * h * (p1 * ms[0] + p2 * d1 + weight * p3 * d2)

        q = _effective_order(
            self.order,
            i,
            g,
            self.lower_order_final,
            self.lower_order_final_below,
            self.lower_order_final_ratio,
            True,
        )
        e_s = (x - g.alpha[i] * ms[0]) / g.sigma[i]
        x_new, nfe, _ = self.warmup(
            denoiser,
            g,
            i,
            x,
            e_s,
            lambda x: _switch(q, [first, second, third][: self.order], x),
            self.order,
        )
        return SamplerState(x_new, i + 1, g, (ms, lams)), step_info(nfe)


class SDEDPMSolverPP2M(AbstractMultistepSampler):
    r"""SDE-DPM-Solver++(2M) (Lu et al. 2022b, appendix; the "midpoint" form).

    The reverse SDE in data form is solved exactly in its linear and noise parts:
    x_t = (s_t/s_s) e^{-h} x_s + a_t (1 - e^{-2h}) (m_0 + D1/2) + s_t sqrt(1 - e^{-2h}) z,
    D1 = (m_0 - m_1)/r0 (r0 = previous step / h); the first step (and the last under
    `lower_order_final`) drops D1. One model evaluation per step; needs a key.
    """

    lower_order_final: bool = lower_order_final_field()
    lower_order_final_below: float = lower_order_final_below_field()
    lower_order_final_ratio: float = lower_order_final_ratio_field()

    order: ClassVar[int] = 2
    convergence_order: ClassVar[int] = 2
    stochastic: ClassVar[bool] = True

    def init(self, denoiser: Denoiser, ts: Grid, x_T: Example) -> SamplerState:
        g = grid_arrays(denoiser.schedule, ts)
        return SamplerState(x_T, jnp.asarray(0), g, _history_init(x_T, g.lam[0], 2))

    def step(
        self, key: Key | None, state: SamplerState, denoiser: Denoiser
    ) -> tuple[SamplerState, StepInfo]:
        g, i, x = state.grid, state.i, state.x
        ms, lams = state.history
        ms = _push(ms, denoiser.x0(g.t[i], x))
        lams = _push(lams, g.lam[i])
        h = g.lam[i + 1] - lams[0]
        one_m = -jnp.expm1(-2.0 * h)
        q = _effective_order(
            2,
            i,
            g,
            self.lower_order_final,
            self.lower_order_final_below,
            self.lower_order_final_ratio,
            True,
        )
        d1 = (ms[0] - ms[1]) * h / (lams[0] - lams[1])
        d = ms[0] + jnp.where(q >= 2, 0.5, 0.0) * d1
        x_new = (
            g.sigma[i + 1] / g.sigma[i] * jnp.exp(-h) * x
            + g.alpha[i + 1] * one_m * d
            + g.sigma[i + 1] * jnp.sqrt(one_m) * _key_normal(key, x)
        )
        return SamplerState(x_new, i + 1, g, (ms, lams)), step_info(1)


# ---------------------------------------------------------------------------------------
# DEIS

# Gauss-Legendre rule for the t-basis coefficient integrals: 16 nodes integrate degree-31
# polynomials exactly; the integrands (Lagrange polynomial times d(sigma/alpha)/dt) are
# analytic on each step, so the rule converges geometrically (far below float64 rounding
# on logSNR grids, whose steps are small where d(sigma/alpha)/dt varies fast).
_GL_NODES, _GL_WEIGHTS = np.polynomial.legendre.leggauss(16)


@runtime_checkable
class DEISBasis(Protocol):
    """The interpolation basis of a DEIS step (see `DEIS`): `(grid, i, nodes, schedule) ->
    c`, the weights c_l of the noise predictions at grid points `nodes` (the current point
    i first, then earlier ones) in the step from i to i + 1."""

    def __call__(
        self,
        grid: GridArrays,
        i: Int[Array, ""],
        nodes: Int[Array, " q"],
        schedule: AbstractSchedule,
    ) -> Float[Array, " q"]: ...


def deis_lambda_basis(
    grid: GridArrays, i: Int[Array, ""], nodes: Int[Array, " q"], schedule: AbstractSchedule
) -> Float[Array, " q"]:
    """DEIS weights from Lagrange polynomials in lambda, integrated exactly with the
    phi-functions (the default basis; see `DEIS`)."""
    del schedule
    q = nodes.shape[0]
    h = grid.lam[i + 1] - grid.lam[i]
    u = (grid.lam[nodes] - grid.lam[i]) / h
    vand = u[:, None] ** jnp.arange(q)[None, :]
    coef = jnp.linalg.inv(vand)  # coef[k, l]: u^k coefficient of l_l
    phis = jnp.stack(phi_functions(h, q)[1:])  # phi_1..phi_q
    fact = jnp.asarray([math.factorial(k) for k in range(q)], dtype=h.dtype)
    return -grid.sigma[i + 1] * h * jnp.sum((fact * phis)[:, None] * coef, axis=0)


def deis_t_basis(
    grid: GridArrays, i: Int[Array, ""], nodes: Int[Array, " q"], schedule: AbstractSchedule
) -> Float[Array, " q"]:
    """DEIS weights from Lagrange polynomials in t (the paper's tAB), integrated against
    d(sigma/alpha) by 16-point Gauss-Legendre quadrature (see `DEIS`)."""
    q = nodes.shape[0]
    dtype = grid.lam.dtype
    t_nodes = grid.t[nodes]
    t0, t1 = grid.t[i], grid.t[i + 1]
    tau = 0.5 * (t1 + t0) + 0.5 * (t1 - t0) * jnp.asarray(_GL_NODES, dtype)
    w = 0.5 * (t1 - t0) * jnp.asarray(_GL_WEIGHTS, dtype)
    drho = -schedule.d_lambda(tau) * jnp.exp(-schedule.lambda_(tau))
    basis = []
    for m in range(q):
        b = jnp.ones_like(tau)
        for j in range(q):
            if j != m:
                b = b * (tau - t_nodes[j]) / (t_nodes[m] - t_nodes[j])
        basis.append(b)
    return grid.alpha[i + 1] * jnp.sum(w * drho * jnp.stack(basis), axis=1)


class DEIS(AbstractMultistepSampler):
    r"""DEIS with Adams-Bashforth exponential-integrator coefficients (Zhang & Chen 2023).

    "tAB r" fits the polynomial of degree r through the noise predictions at the current
    and r previous grid points, eps(tau) ~ sum_l eps_l l_l(tau), and integrates the
    exact semilinear solution x_t/alpha_t = x_s/alpha_s + int_s^t eps d(sigma/alpha) with
    it: x_t = (a_t/a_s) x_s + sum_l c_l eps_l. Global order r + 1 (r = 0 is DDIM).

    `order` = r + 1 is the number of noise predictions the update combines and the global
    order: the naming of the DEIS paper's "DEIS-k" and of diffusers' `solver_order` (its
    second-order update interpolates two outputs, its third-order one three). So
    `DEIS(order=1)` is DDIM (tAB0), `DEIS(order=2)` tAB1, `DEIS(order=3)` tAB2 (third
    order, the default) and `DEIS(order=4)` tAB3 (fourth order; with
    `warmup=SinglestepWarmup()` to show it asymptotically).

    `basis=deis_lambda_basis` (default): Lagrange polynomials in lambda; with u = (lambda -
    lambda_s)/h and the monomial coefficients C[k, l] of l_l(u) (inverse Vandermonde),
    int e^{-lambda} u^k dlambda over the step equals e^{-lambda_t} h k! phi_{k+1}(h), so
    c_l = -s_t h sum_k k! phi_{k+1}(h) C[k, l] exactly (phi from `jaxsci.integrate`).
    `basis=deis_t_basis`: the paper's tAB, Lagrange polynomials in t; c_l = a_t int_s^t
    rho'(tau) l_l(tau) dtau (rho = sigma/alpha) by 16-point Gauss-Legendre quadrature.
    Any function with the `DEISBasis` signature can be passed.

    The coefficient table (steps x order) is computed once in `init`, warm-up and
    `lower_order_final` rows included; a step is a weighted sum.
    """

    order: int = eqx.field(default=3, static=True)
    basis: DEISBasis = eqx.field(default=deis_lambda_basis, static=True)
    lower_order_final: bool = lower_order_final_field()
    warmup: AbstractWarmup = LowerOrderWarmup()
    lower_order_final_below: float = lower_order_final_below_field()
    lower_order_final_ratio: float = lower_order_final_ratio_field(math.inf)

    stochastic: ClassVar[bool] = False

    def __check_init__(self):
        _check_structure(self.order, (1, 2, 3, 4), self.warmup)
        check_callable(
            "basis", self.basis, "a DEIS basis such as jaxsci.diffusion.deis_lambda_basis"
        )

    @property
    def convergence_order(self) -> int:
        return self.order

    def _row(self, g, i, n, sch):
        k_max = self.order
        # Node j is grid point i - j (j < q); missing history is never selected by q.
        idx = jnp.maximum(i - jnp.arange(k_max), 0)

        def branch(q):
            def f():
                c = self.basis(g, i, idx[:q], sch)
                return jnp.zeros(k_max, g.lam.dtype).at[:q].set(c)

            return f

        q = _effective_order(
            k_max,
            i,
            g,
            self.lower_order_final,
            self.lower_order_final_below,
            self.lower_order_final_ratio,
            True,
        )
        return _switch(q, [branch(q) for q in range(1, k_max + 1)])

    def init(self, denoiser: Denoiser, ts: Grid, x_T: Example) -> SamplerState:
        g = grid_arrays(denoiser.schedule, ts)
        n = g.t.shape[0] - 1
        table = jax.vmap(lambda i: self._row(g, i, n, denoiser.schedule))(jnp.arange(n))
        ms, _ = _history_init(x_T, g.lam[0], self.order)
        return SamplerState(x_T, jnp.asarray(0), g, (ms, table))

    def step(
        self, key: Key | None, state: SamplerState, denoiser: Denoiser
    ) -> tuple[SamplerState, StepInfo]:
        del key
        g, i, x = state.grid, state.i, state.x
        ms, table = state.history
        ms = _push(ms, denoiser.eps(g.t[i], x))
        c = table[i]
        x_new, nfe, _ = self.warmup(
            denoiser,
            g,
            i,
            x,
            ms[0],
            lambda x: (g.alpha[i + 1] / g.alpha[i]) * x + jnp.tensordot(c, ms, axes=1),
            self.order,
        )
        return SamplerState(x_new, i + 1, g, (ms, table)), step_info(nfe)


# ---------------------------------------------------------------------------------------
# UniPC


def unipc_bh1(hh: Float[Array, ""]) -> Float[Array, ""]:
    """UniPC's B(h) = hh (the "bh1" variant; hh = -h, h the step in lambda)."""
    return hh


def unipc_bh2(hh: Float[Array, ""]) -> Float[Array, ""]:
    """UniPC's B(h) = e^{hh} - 1 (the "bh2" variant, UniPC's and diffusers' default)."""
    return jnp.expm1(hh)


class UniPC(AbstractMultistepSampler):
    r"""UniPC: unified predictor-corrector, data prediction (Zhao et al. 2023).

    Predictor UniP-p from x_s with m_0 = x0(x_s) and p - 1 earlier outputs m_k at
    lambda_k (r_k = (lambda_k - lambda_s)/h < 0, D_k = (m_k - m_0)/r_k), hh = -h:
        x~_t = (s_t/s_s) x_s + a_t h phi_1(hh) m_0 - a_t B(h) sum_k rho^p_k D_k,
    B(h) = hh (`variant=unipc_bh1`) or e^{hh} - 1 (`unipc_bh2`, the default, as in
    diffusers), or any function hh -> B(h) passed as `variant`. The rho solve the order conditions
    R rho = b with R[j, k] = r_k^j (j = 0..) and b_j = j! hh phi_{j+1}(hh)/B(h)
    (j = 1..; paper Theorem 3.1, here with the phi-functions of `jaxsci.integrate`);
    for p = 2 the paper takes rho^p = 1/2.
    Corrector UniC-p: the model output at x~_t, m_t, enters as an extra node with r = 1,
    D = m_t - m_0, rho^c from the full p x p system (rho^c = 1/2 for p = 1):
        x_t = (s_t/s_s) x_s + a_t h phi_1(hh) m_0 - a_t B(h) (sum_k rho^c_k D_k + rho^c_p D).
    m_t (at the uncorrected x~_t) is the next step's m_0, so UniPC costs one evaluation
    per step; the last step is not corrected (it would need one more evaluation).

    `order` = p is UniPC-p, diffusers' `solver_order`; the global order of accuracy
    (`convergence_order`) is p + 1 thanks to the corrector (Zhao et al. 2023, Theorem 3.1;
    diffusers: "the effective order of accuracy is solver_order + 1 due to the UniC").

    **Final steps.** `lower_order_final_below=None` (the default) depends on the order:
    for UniPC-1/2 the final steps are capped on every grid (math.inf, as diffusers'
    UniPC does), for UniPC-3 on grids of fewer than 30 steps (`UNIPC3_FINAL_STEPS`) or
    whose last steps grow (`AbstractSampler`). The capped final step of UniPC-2 is first
    order, but its local error is small at the data end of a trajectory (the x0
    prediction hardly moves there): on logSNR-uniform VP grids UniPC-2 keeps its observed
    third order with it (fitted slopes 2.98-3.05 over 20-640 steps on the order test's
    mixture) and was 1-14% more accurate than without it at 20-500 steps on the
    exact-score mixtures of `benchmarks/bench_diffusion_diffusers.py`. For UniPC-3 capping
    on every grid costs the order (slopes falling to 2.4 by 640 steps) and up to 7x the
    error at 500 steps, so it keeps the adaptive rule with a threshold of 30 steps: below
    it the error without the cap was 0.65-1.11 times the error with it, depending on the
    mixture (smaller at 15 steps, larger at 20 or 25); from 30 steps on at most 0.5%
    larger. Pass a number to choose the threshold for any order.
    """

    order: int = eqx.field(default=2, static=True)
    variant: Callable[[Float[Array, ""]], Float[Array, ""]] = eqx.field(
        default=unipc_bh2, static=True
    )
    lower_order_final: bool = lower_order_final_field()
    warmup: AbstractWarmup = LowerOrderWarmup()
    lower_order_final_below: float | None = eqx.field(
        default=None, static=True, converter=_check_optional_below
    )
    lower_order_final_ratio: float = lower_order_final_ratio_field()

    stochastic: ClassVar[bool] = False

    def __check_init__(self):
        _check_structure(self.order, (1, 2, 3), self.warmup)
        check_callable(
            "variant", self.variant, "a function hh -> B(h) such as jaxsci.diffusion.unipc_bh2"
        )

    @property
    def final_steps_below(self) -> float:
        """The `lower_order_final_below` in force: the field, or by default math.inf for
        UniPC-1/2 and `UNIPC3_FINAL_STEPS` (30) for UniPC-3."""
        if self.lower_order_final_below is not None:
            return self.lower_order_final_below
        return math.inf if self.order <= 2 else float(UNIPC3_FINAL_STEPS)

    @property
    def convergence_order(self) -> int:
        return self.order + 1

    def init(self, denoiser: Denoiser, ts: Grid, x_T: Example) -> SamplerState:
        g = grid_arrays(denoiser.schedule, ts)
        p = self.order
        ms, lams = _history_init(x_T, g.lam[0], p)
        return SamplerState(x_T, jnp.asarray(0), g, (ms, lams, x_T, jnp.asarray(1)))

    def _update(self, q, x_s, ms, lams, lam_t, sig_ratio, a_t, m_new=None):
        """UniP-q (m_new None) or UniC-q (m_new the output at the predicted point)."""
        h = lam_t - lams[0]
        hh = -h
        phis = phi_functions(hh, q + 1)
        b_h = self.variant(hh)
        b = jnp.stack([math.factorial(j) * hh * phis[j + 1] for j in range(1, q + 1)]) / b_h
        rs = [(lams[k] - lams[0]) / h for k in range(1, q)]
        ds = [(ms[k] - ms[0]) / rs[k - 1] for k in range(1, q)]
        base = sig_ratio * x_s + a_t * h * phis[1] * ms[0]
        if m_new is not None:
            rs = rs + [jnp.ones_like(h)]
            ds = ds + [m_new - ms[0]]
            if q == 1:
                rho = jnp.asarray([0.5], h.dtype)
            else:
                mat = jnp.stack([jnp.stack(rs) ** j for j in range(q)])
                rho = jnp.linalg.solve(mat, b[:q])
        else:
            if q == 1:
                return base
            if q == 2:
                rho = jnp.asarray([0.5], h.dtype)
            else:
                mat = jnp.stack([jnp.stack(rs) ** j for j in range(q - 1)])
                rho = jnp.linalg.solve(mat, b[: q - 1])
        corr = sum(rho[k] * ds[k] for k in range(len(ds)))
        return base - a_t * b_h * corr

    def step(
        self, key: Key | None, state: SamplerState, denoiser: Denoiser
    ) -> tuple[SamplerState, StepInfo]:
        del key
        return self.step_with(state, denoiser)

    def step_with(
        self,
        state: SamplerState,
        denoiser: Denoiser,
        compensate: Callable[[Array, GridArrays, Array], Array] | None = None,
    ) -> tuple[SamplerState, StepInfo]:
        """`step`, with `compensate(ms, grid, i) -> ms` applied to the history of model
        outputs (newest first) after the corrector and before the predictor uses it: the
        hook of `DCSolver`'s dynamic compensation (None: UniPC itself)."""
        g, i, x_pred = state.grid, state.i, state.x
        ms, lams, x_base, q_prev = state.history
        p = self.order
        m_new = denoiser.x0(g.t[i], x_pred)
        # Corrector for the previous step (i - 1 -> i), skipped at i = 0.
        corrected = _switch(
            q_prev,
            [
                lambda q=q: self._update(
                    q, x_base, ms, lams, g.lam[i], g.sigma[i] / g.sigma[i - 1], g.alpha[i], m_new
                )
                for q in range(1, p + 1)
            ],
        )
        # q_prev = 0 marks a singlestep warm-up step, which is not corrected.
        x_base = jnp.where((i > 0) & (q_prev > 0), corrected, x_pred)
        ms, lams = _push(ms, m_new), _push(lams, g.lam[i])
        if compensate is not None:
            ms = compensate(ms, g, i)
        q = _effective_order(
            p,
            i,
            g,
            self.lower_order_final,
            self.final_steps_below,
            self.lower_order_final_ratio,
            True,
        )

        def predictor(x):
            branches = [
                lambda x, q=q: self._update(
                    q, x, ms, lams, g.lam[i + 1], g.sigma[i + 1] / g.sigma[i], g.alpha[i + 1]
                )
                for q in range(1, p + 1)
            ]
            return _switch(q, branches, x)

        e_s = (x_base - g.alpha[i] * ms[0]) / g.sigma[i]
        x_next, nfe, replaced = self.warmup(denoiser, g, i, x_base, e_s, predictor, p)
        q = jnp.where(replaced, 0, q)  # a replaced (warm-up) step is not corrected
        return SamplerState(x_next, i + 1, g, (ms, lams, x_base, q)), step_info(nfe)
