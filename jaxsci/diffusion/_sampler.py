r"""The sampler interface: a time grid's arrays, the state, the step info, `AbstractSampler`."""

import abc
import math
from typing import ClassVar, NamedTuple

import equinox as eqx
import jax.numpy as jnp

from .._checks import float_or_inf
from .._custom_types import Array, Bool, Float, Int, Key, PyTree
from ._base import AbstractSchedule
from ._parameterization import Denoiser


class GridArrays(NamedTuple):
    """A time grid (noise to data) with its schedule coefficients, each of shape (steps+1,)."""

    t: Float[Array, " n1"]
    lam: Float[Array, " n1"]
    alpha: Float[Array, " n1"]
    sigma: Float[Array, " n1"]


def grid_arrays(schedule: AbstractSchedule, ts: Float[Array, " n1"]) -> GridArrays:
    """Precompute (t, lambda, alpha, sigma) on a time grid."""
    ts = jnp.asarray(ts)
    return GridArrays(ts, schedule.lambda_(ts), schedule.alpha(ts), schedule.sigma(ts))


class SamplerState(NamedTuple):
    """State of a sampler between steps.

    x: the current sample x_{t_i}; i: the index of the current grid time; grid: the grid
    arrays; history: sampler-specific arrays (previous model outputs, lambdas, ...).
    """

    x: Float[Array, "*shape"]
    i: Int[Array, ""]
    grid: GridArrays
    history: PyTree


def initial_state(
    schedule: AbstractSchedule, ts: Float[Array, " n1"], x_T: Float[Array, "*shape"]
) -> SamplerState:
    """The state at `ts[0]` of a sampler without history: x_T, index 0, the grid arrays."""
    return SamplerState(x_T, jnp.asarray(0), grid_arrays(schedule, ts), None)


class StepInfo(NamedTuple):
    """Per-step information of a sampler: `nfe`, the model evaluations the step spent."""

    nfe: Int[Array, ""]


def step_info(nfe: int | Int[Array, ""]) -> StepInfo:
    """`StepInfo` with `nfe` as an integer array."""
    return StepInfo(jnp.asarray(nfe))


# lower_order_final applies to grids shorter than this by default (diffusers' threshold).
LOWER_ORDER_FINAL_STEPS = 15
# ... and, for multistep samplers, to grids whose last lambda steps grow by more than this
# factor (see `AbstractSampler`).
LOWER_ORDER_FINAL_RATIO = 1.4


def check_lower_order_final(value: bool) -> bool:
    """`value` if it is True or False, else a ValueError naming `lower_order_final` (the
    samplers' field converter)."""
    if not (value is True or value is False):
        hint = (
            " (to cap the final steps on every grid, pass lower_order_final_below=math.inf)"
            if isinstance(value, str)
            else ""
        )
        raise ValueError(f"`lower_order_final` must be True or False, got {value!r}{hint}.")
    return value


def check_lower_order_final_below(value: float) -> float:
    """`value` as a float if it is a positive number (math.inf allowed), else a ValueError
    naming `lower_order_final_below`."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(
            f"`lower_order_final_below` must be a positive number of steps (math.inf: every "
            f"grid), got {value!r}."
        )
    return float_or_inf(value)  # beyond the float range: inf, above every grid


def lower_order_final_field(default: bool = True):
    """The `lower_order_final` field of a sampler (see `AbstractSampler`): static, checked
    by `check_lower_order_final` when the sampler is built."""
    return eqx.field(default=default, static=True, converter=check_lower_order_final)


def lower_order_final_below_field(default: float = LOWER_ORDER_FINAL_STEPS):
    """The `lower_order_final_below` field of a sampler (see `AbstractSampler`): static,
    checked by `check_lower_order_final_below`."""
    return eqx.field(default=default, static=True, converter=check_lower_order_final_below)


def lower_order_final_ratio_field(default: float = LOWER_ORDER_FINAL_RATIO):
    """The `lower_order_final_ratio` field of a multistep sampler (see `AbstractSampler`):
    static, checked by `check_lower_order_final_ratio`."""
    return eqx.field(default=default, static=True, converter=check_lower_order_final_ratio)


def check_lower_order_final_ratio(value: float) -> float:
    """`value` as a float if it is a number >= 1 (math.inf: never by the ratio), else a
    ValueError naming `lower_order_final_ratio`."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 1:
        raise ValueError(
            f"`lower_order_final_ratio` must be a step ratio >= 1 (math.inf: the step-count "
            f"rule alone), got {value!r}."
        )
    return float_or_inf(value)  # beyond the float range: inf, above every grid


def final_step_growth(lam: Float[Array, " n1"]) -> Float[Array, ""]:
    """The largest growth ratio h_k / h_{k-1} of the lambda steps h_k = lam[k+1] - lam[k]
    among the last two steps of a grid (1 on grids of one step; the one ratio on two)."""
    h = jnp.diff(lam)
    if h.shape[0] < 2:
        return jnp.ones((), lam.dtype)
    k = min(2, h.shape[0] - 1)
    return jnp.max(h[-k:] / h[-k - 1 : -1])


def lower_order_final_applies(
    lower_order_final: bool, below: float, ratio: float, lam: Float[Array, " n1"]
) -> Bool[Array, ""]:
    """Whether the final steps' orders are capped on the grid with log-SNRs `lam`: when
    `lower_order_final` is True and the grid has fewer than `below` steps or its last lambda
    steps grow by more than `ratio` (`final_step_growth`)."""
    n_steps = lam.shape[0] - 1
    if not lower_order_final:
        return jnp.asarray(False)
    if n_steps < below:
        return jnp.asarray(True)
    if math.isinf(ratio):
        return jnp.asarray(False)
    return final_step_growth(lam) > ratio


class AbstractSampler(eqx.Module):
    """A sampler over a time grid: `state = init(denoiser, ts, x_T)`,
    `state, info = step(key, state, denoiser)`.

    The grid `ts` runs from the noise end to the data end (strictly decreasing); one
    `step` moves from `ts[i]` to `ts[i + 1]` using `nfe_per_step` model evaluations. Acts
    on one example (any shape); vmap outside. `info` is a typed NamedTuple (`StepInfo` or
    a sampler-specific one) with at least `nfe`.

    **Order.** `order` is the method's order parameter with the meaning of diffusers'
    `solver_order` and of the papers: the number of model outputs (current and previous,
    for multistep methods; per step, for singlestep ones) that the update combines, so
    `deis_3` / `DEIS(order=3)` is the third-order DEIS of Zhang & Chen (2023) (tAB2: a
    quadratic through three outputs), `DPMSolverPPMultistep(order=3)` is DPM-Solver++(3M)
    and `UniPC(order=p)` is UniPC-p (Zhao et al. 2023). `convergence_order` is the global
    order of accuracy: equal to `order` for every sampler except UniPC, whose corrector
    adds one (UniPC-p converges at order p + 1, as diffusers documents for its
    `solver_order`). Multistep methods warm up with lower orders (the effective order at
    step i is at most i + 1, the outputs the history holds), so they run on any grid, even
    one shorter than their order, as diffusers' schedulers do: on a single step every
    exponential multistep sampler is DDIM (with `LowerOrderWarmup`), on two steps DDIM then
    its two-point second-order step.

    `lower_order_final` (all samplers that have the option, default True): where it
    applies, the effective order at step i is capped at n_steps - i, so the final step is
    first order, the one before at most second order, ... (Lu et al. 2022b, section 5). It
    applies on grids of fewer than `lower_order_final_below` steps (default 15, diffusers'
    threshold, `LOWER_ORDER_FINAL_STEPS`) and, for multistep samplers, on grids whose last
    lambda steps grow: when `final_step_growth` (the larger of h_n/h_{n-1} and
    h_{n-1}/h_{n-2}, h_k the k-th step in lambda) exceeds `lower_order_final_ratio`
    (`LOWER_ORDER_FINAL_RATIO` = 1.4 for the data-prediction samplers DPM-Solver++(2M/3M),
    SDE-DPM-Solver++(2M) and UniPC-3; `math.inf`, the step count alone, for DEIS). UniPC-1/2
    cap on every grid by default, as diffusers' UniPC does, and UniPC-3 below 30 steps
    (see `UniPC`: the observed orders are kept).

    Why the ratio: a multistep step extrapolates the model outputs of the earlier, shorter
    steps over the current one; when the steps grow fast toward the data end the
    extrapolation overshoots (the x0 prediction relaxes like e^{-2 lambda} there). On
    time-uniform ("trailing") grids such as diffusers' linear-beta DDPM grids the growth is
    at least 1.5 at every step count (at 20 steps the last step spans h = 2.85 against 0.67
    for the one before), and the capped final steps make DPM-Solver++(2M/3M) and UniPC up to
    an order of magnitude more accurate at 20-500 NFE. On logSNR-uniform grids the growth
    is 1 and on Karras (rho = 7) grids of 15 steps or more below 1.25, so nothing changes
    there and the asymptotic orders are kept (capping on every grid would bound the global
    order by 2: the first-order final step has local error O(h^2)). DEIS (noise
    prediction) keeps the step-count rule: on trailing grids its two-point final step over
    the long last step is more accurate than the first-order one at 20 NFE.

    The older rules stay available: `lower_order_final_ratio=math.inf` is diffusers' rule
    for its DPM-Solver and DEIS schedulers (fewer than 15 steps only);
    `lower_order_final_below=math.inf` caps the final steps on every grid, as diffusers'
    UniPC does; `lower_order_final=False` never caps (order studies on short grids).

    `warmup` (multistep exponential samplers, an `AbstractWarmup`): how the first steps are
    taken while the history holds fewer outputs than the order needs. `LowerOrderWarmup()`
    (default; the published methods and diffusers) uses orders 1, 2, ..., so the first step
    has local error O(h^2). Its constant is tiny at the noise end, but it bounds the
    asymptotic global order by 2: visible for DEIS(order=4) / UniPC(order=3) (global order
    4), and eventually for any order >= 3. `SinglestepWarmup()` takes those steps with
    DPM-Solver-3 (local error O(h^4), 2 extra evaluations per warm-up step), which keeps the
    theoretical global order up to 4.
    """

    order: eqx.AbstractVar[int]
    convergence_order: eqx.AbstractVar[int]
    multistep: eqx.AbstractVar[bool]
    stochastic: eqx.AbstractVar[bool]
    nfe_per_step: eqx.AbstractVar[int]

    @abc.abstractmethod
    def init(
        self, denoiser: Denoiser, ts: Float[Array, " n1"], x_T: Float[Array, "*shape"]
    ) -> SamplerState:
        """Initial state at `ts[0]`."""

    @abc.abstractmethod
    def step(
        self, key: Key | None, state: SamplerState, denoiser: Denoiser
    ) -> tuple[SamplerState, PyTree]:
        """Advance from ts[i] to ts[i+1]; returns the new state and the step's info."""

    def min_steps(self) -> int:
        """The fewest grid steps this sampler accepts: one (multistep samplers lower their
        order on grids shorter than it)."""
        return 1

    def check_x_T(self, x_T: Float[Array, "*shape"]) -> None:
        """Raise a ValueError naming `x_T` when this sampler cannot start from it (default:
        any shape; `sample` checks it against the model)."""

    def check_steps(self, n_steps: int) -> None:
        """Raise a ValueError when a grid of `n_steps` steps is too short for this sampler."""
        need = self.min_steps()
        if n_steps < need:
            raise ValueError(
                f"{type(self).__name__} needs a grid of at least {need} step(s); got a grid "
                f"of {n_steps} step(s) (NFE {n_steps * self.nfe_per_step})."
            )


class AbstractSinglestepSampler(AbstractSampler):
    """A sampler whose step from t_i uses x_i alone (no history of model outputs).

    Final subclasses implement `update(key, grid, i, x, denoiser) -> (x_{i+1}, nfe)`; the
    state is the plain `SamplerState` of `init` and `step` records `StepInfo(nfe)`.
    """

    multistep: ClassVar[bool] = False

    @property
    def convergence_order(self) -> int:
        """`order`: without a corrector, a singlestep method converges at its order."""
        return self.order

    def init(
        self, denoiser: Denoiser, ts: Float[Array, " n1"], x_T: Float[Array, "*shape"]
    ) -> SamplerState:
        return initial_state(denoiser.schedule, ts, x_T)

    @abc.abstractmethod
    def update(
        self,
        key: Key | None,
        grid: GridArrays,
        i: Int[Array, ""],
        x: Float[Array, "*shape"],
        denoiser: Denoiser,
    ) -> tuple[Float[Array, "*shape"], int | Int[Array, ""]]:
        """x_{i+1} from x_i = x at grid point i, and the model evaluations spent."""

    def step(
        self, key: Key | None, state: SamplerState, denoiser: Denoiser
    ) -> tuple[SamplerState, StepInfo]:
        x_new, nfe = self.update(key, state.grid, state.i, state.x, denoiser)
        return state._replace(x=x_new, i=state.i + 1), step_info(nfe)


class AbstractMultistepSampler(AbstractSampler):
    """A sampler that reuses the model outputs of earlier grid points (kept in
    `state.history`): one model evaluation per step after the warm-up."""

    multistep: ClassVar[bool] = True
    nfe_per_step: ClassVar[int] = 1
