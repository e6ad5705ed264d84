r"""Diffusion inversion: data x_0 -> noise x_T along a sampler's grid, and back.

All three methods are built from one affine map, the DDIM transfer of x from grid time
t_k to t_j with a *given* noise prediction e (Song, Meng & Ermon 2021, eq. 12):

    D(x, e; k -> j) = alpha_j (x - sigma_k e) / alpha_k + sigma_j e,

whose inverse for the same e is D(., e; j -> k). A grid `ts` runs from the noise end
(index 0) to the data end (index n), as in `sample`; x_k is the state at ts[k].

* `DDIMInversion`: generation is DDIM, x_{k+1} = D(x_k, eps(t_k, x_k); k -> k+1);
  inversion runs the grid backwards with x_{k-1} = D(x_k, e; k -> k-1), where the noise
  prediction e is taken at the current point and time, e = eps(t_k, x_k) (the explicit
  "DDIM encoding" of Song et al. 2021, sec. 4.3), or, with `eps_at_target=True`, at the
  current point and the *target* time, e = eps(t_{k-1}, x_k), as diffusers'
  `DDIMInverseScheduler` does. Either way e is not the prediction the generating step will
  use at x_{k-1}, so a round trip is only approximate, with an error O(step).
* `BDIA` (Zhang, Lewis & Kleijn 2024, "Exact diffusion inversion via bi-directional
  integration approximation", ECCV, eq. 19; official code github:guoqiang-zhang-x/BDIA):
  after a first DDIM step, with e_k = eps(t_k, x_k),

      x_{k+1} = gamma x_{k-1} - gamma D(x_k, e_k; k -> k-1) + D(x_k, e_k; k -> k+1),

  the DDIM step over the next interval plus a gamma-average of the earlier increment
  x_k - x_{k-1} and its backward DDIM estimate. The update is affine in x_{k-1} given x_k,
  so x_{k-1} = (x_{k+1} - D(x_k, e_k; k -> k+1)) / gamma + D(x_k, e_k; k -> k-1) recovers
  the trajectory exactly from two consecutive states (one model evaluation per step in
  both directions).
* `EDICT` (Wallace, Gokul & Naik 2023, "EDICT: exact diffusion inversion via coupled
  transformations", CVPR, eqs. 14-15): two sequences (x, y), both started at the same
  state, each advanced by DDIM with the other's noise prediction, then mixed with weight
  `mix` = p:

      x' = D(x, eps(t_k, y); k -> k+1),  y' = D(y, eps(t_k, x'); k -> k+1),
      x_{k+1} = p x' + (1 - p) y',  y_{k+1} = p y' + (1 - p) x_{k+1},

  every stage an affine coupling, inverted stage by stage (two model evaluations per
  step).

The exact methods need a second state besides x to invert: the **companion** (BDIA: the
state one grid point before, x_1 next to the noise x_0 or x_{n-1} next to the data x_n;
EDICT: the second sequence y). `generate` and `invert` return it with x, and take it back
to reproduce the other direction to round-off. Started from x alone (no companion), they
begin as the papers do: BDIA's generation with a DDIM step and its inversion with a DDIM
inversion step (e at the current point and time, as the official code), EDICT with y = x.
"""

import abc
from collections.abc import Callable
from typing import ClassVar, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Real, Shaped

from .._checks import check_finite, check_maps_to_own_shape, check_range, concrete
from .._custom_types import Array, ArrayLike, Float, Int, Key
from ._base import AbstractSchedule, RealLike
from ._grids import check_grid
from ._parameterization import AbstractParameterization, Denoiser, EpsPrediction, as_denoiser
from ._sampler import (
    AbstractMultistepSampler,
    GridArrays,
    SamplerState,
    StepInfo,
    grid_arrays,
    step_info,
)

Example = Float[Array, "*shape"]


def ddim_transfer(g: GridArrays, k, j, x: Example, e: Example) -> Example:
    """D(x, e; k -> j) = alpha_j (x - sigma_k e)/alpha_k + sigma_j e: the DDIM map of x from
    grid point k to j with the noise prediction e (affine in x; its inverse for the same e
    is the map from j to k)."""
    out = g.alpha[j] * (x - g.sigma[k] * e) / g.alpha[k] + g.sigma[j] * e
    return out.astype(x.dtype)  # x's dtype, whatever the model's (the scan carries it)


class InversionResult(NamedTuple):
    """Output of `generate` and `invert`.

    x: the state at the end of the grid (the data x_n after `generate`, the noise x_0 after
    `invert`); companion: the second state an exact inversion needs (BDIA: the neighbouring
    grid state, x_{n-1} or x_1; EDICT: the second sequence y), None for `DDIMInversion`;
    nfe: model evaluations spent (scalar).
    """

    x: Float[Array, "*shape"]
    companion: Float[Array, "*shape"] | None
    nfe: Int[Array, ""]


class AbstractInversion(eqx.Module):
    """A generator over a time grid with its inversion: `generate_init`/`generate_step`
    move from the noise end ts[0] to the data end ts[n], `invert_init`/`invert_step` from
    ts[n] back to ts[0]. The state is a `SamplerState` (x at grid point `i`; `history` the
    companion, or None). Acts on one example; vmap outside. Run through `generate` and
    `invert`."""

    nfe_per_step: eqx.AbstractVar[int]
    # Grid steps a companion at the start stands for (BDIA's companion is the state one
    # grid point further, so the run starts one step later).
    companion_steps: ClassVar[int] = 0

    @abc.abstractmethod
    def generate_init(
        self, denoiser: Denoiser, ts: Float[Array, " n1"], x: Example, companion: Example | None
    ) -> SamplerState:
        """The state at ts[companion_steps] (ts[0] without a companion)."""

    @abc.abstractmethod
    def generate_step(
        self, state: SamplerState, denoiser: Denoiser
    ) -> tuple[SamplerState, StepInfo]:
        """One step from ts[i] to ts[i+1]."""

    @abc.abstractmethod
    def invert_init(
        self, denoiser: Denoiser, ts: Float[Array, " n1"], x: Example, companion: Example | None
    ) -> SamplerState:
        """The state at ts[n - companion_steps] (ts[n] without a companion)."""

    @abc.abstractmethod
    def invert_step(self, state: SamplerState, denoiser: Denoiser) -> tuple[SamplerState, StepInfo]:
        """One step from ts[i] to ts[i-1]."""

    def companion(self, state: SamplerState) -> Example | None:
        """The companion of the final state (default: the history)."""
        return state.history


class DDIMInversion(AbstractInversion):
    """DDIM and its (approximate) inversion, the baseline of the exact methods (see the
    module docstring for the maths).

    Inversion step from t_k to t_{k-1}: x_{k-1} = D(x_k, e; k -> k-1) with
    e = eps(t_k, x_k) (default: the noise prediction at the current point and time, the
    explicit inverse Euler step of DDIM's ODE) or, with `eps_at_target=True`,
    e = eps(t_{k-1}, x_k), the model at the current point and the target time, as diffusers'
    `DDIMInverseScheduler.step` (it is called with the model output at the target timestep
    and converts it with the source timestep's coefficients: for eps-prediction models that
    is this convention exactly; for v- or x0-prediction models the conversion to eps here
    uses the target time's coefficients, through the `Denoiser`). Generation is DDIM
    (eta = 0). The round trip error is O(step) (first order). One model evaluation per
    step; no companion.
    """

    eps_at_target: bool = eqx.field(default=False, static=True)
    nfe_per_step: ClassVar[int] = 1

    def __check_init__(self):
        if not isinstance(self.eps_at_target, bool):
            raise TypeError(f"`eps_at_target` must be True or False, got {self.eps_at_target!r}.")

    def generate_init(self, denoiser, ts, x, companion):
        return SamplerState(x, jnp.asarray(0), grid_arrays(denoiser.schedule, ts), None)

    def generate_step(self, state, denoiser):
        g, k, x = state.grid, state.i, state.x
        e = denoiser.eps(g.t[k], x)
        return state._replace(x=ddim_transfer(g, k, k + 1, x, e), i=k + 1), step_info(1)

    def invert_init(self, denoiser, ts, x, companion):
        n = ts.shape[0] - 1
        return SamplerState(x, jnp.asarray(n), grid_arrays(denoiser.schedule, ts), None)

    def invert_step(self, state, denoiser):
        g, k, x = state.grid, state.i, state.x
        e = denoiser.eps(g.t[k - 1] if self.eps_at_target else g.t[k], x)
        return state._replace(x=ddim_transfer(g, k, k - 1, x, e), i=k - 1), step_info(1)


def _check_gamma(gamma) -> None:
    check_range("gamma", gamma, 0.0, 1.0, lower_open=True)


class BDIA(AbstractMultistepSampler, AbstractInversion):
    r"""BDIA-DDIM (Zhang, Lewis & Kleijn 2024, ECCV, eq. 19): a time-reversible DDIM.

    With e_k = eps(t_k, x_k) and D the DDIM map of the module docstring, the first step is
    DDIM and then

        x_{k+1} = gamma x_{k-1} - gamma D(x_k, e_k; k -> k-1) + D(x_k, e_k; k -> k+1),

    i.e. x_{k+1} = x_{k-1} + [DDIM's increment over (t_k, t_{k+1})] + [the increment over
    (t_{k-1}, t_k), a (1 - gamma, gamma) average of the one taken, x_k - x_{k-1}, and DDIM's
    backward estimate from x_k]. Given (x_k, x_{k+1}) the update solves for x_{k-1}
    exactly, so `invert` reproduces a generated trajectory to round-off (and `generate` an
    inverted one), one model evaluation per step either way.

    `order` is 1 (one model output per step); `convergence_order` 2 at gamma = 1 and 1
    below (measured: tests/diffusion/test_inversion.py).

    `gamma` in (0, 1] (an array field): gamma = 1 (default, the official code's
    `BDIA_stablediffusion` default and its README's choice for 40 or more steps) makes the
    update symmetric in time, x_{k+1} - x_{k-1} = D(x_k; k -> k+1) - D(x_k; k -> k-1): the
    first-order error terms of the two DDIM increments cancel on uniform grids (a
    leapfrog-type two-step method); the README prefers gamma = 0.5 for about 10 steps.
    Inversion divides by gamma, so round-off grows like gamma^{-n} for gamma < 1.

    As a sampler (`sample`) it is multistep: `history` holds x_{k-1} (x_T before the first
    step, which is DDIM, so on a one-step grid BDIA is DDIM).
    """

    gamma: RealLike = 1.0

    order: ClassVar[int] = 1
    stochastic: ClassVar[bool] = False
    nfe_per_step: ClassVar[int] = 1
    companion_steps: ClassVar[int] = 1

    def __check_init__(self):
        _check_gamma(self.gamma)

    @property
    def convergence_order(self) -> int:
        """2 for gamma = 1 (the time-symmetric update; on grids uniform in lambda, the
        order test's), else 1 (a traced gamma counts as < 1)."""
        g = concrete(self.gamma)
        return 2 if g is not None and bool(np.all(g == 1)) else 1

    # --- the sampler interface (generation from x_T alone)
    def init(self, denoiser, ts, x_T):
        return self.generate_init(denoiser, ts, x_T, None)

    def step(self, key: Key | None, state: SamplerState, denoiser: Denoiser):
        return self.generate_step(state, denoiser)

    # --- generation and exact inversion
    def generate_init(self, denoiser, ts, x, companion):
        g = grid_arrays(denoiser.schedule, ts)
        if companion is None:  # x at ts[0]; the first step is DDIM
            return SamplerState(x, jnp.asarray(0), g, x)
        return SamplerState(companion, jnp.asarray(1), g, x)  # (x_0, x_1) given

    def generate_step(self, state, denoiser):
        g, k, x, prev = state.grid, state.i, state.x, state.history
        e = denoiser.eps(g.t[k], x)
        fwd = ddim_transfer(g, k, k + 1, x, e)
        gamma = jnp.asarray(self.gamma, x.dtype)
        back = ddim_transfer(g, k, jnp.maximum(k - 1, 0), x, e)
        x_new = jnp.where(k == 0, fwd, gamma * (prev - back) + fwd)
        return SamplerState(x_new, k + 1, g, x), step_info(1)

    def invert_init(self, denoiser, ts, x, companion):
        g = grid_arrays(denoiser.schedule, ts)
        n = ts.shape[0] - 1
        if companion is None:  # x at ts[n]; the first step is a DDIM inversion step
            return SamplerState(x, jnp.asarray(n), g, x)
        return SamplerState(companion, jnp.asarray(n - 1), g, x)  # (x_n, x_{n-1}) given

    def invert_step(self, state, denoiser):
        g, k, x, nxt = state.grid, state.i, state.x, state.history
        n = g.t.shape[0] - 1
        e = denoiser.eps(g.t[k], x)
        back = ddim_transfer(g, k, k - 1, x, e)
        fwd = ddim_transfer(g, k, jnp.minimum(k + 1, n), x, e)
        gamma = jnp.asarray(self.gamma, x.dtype)
        x_new = jnp.where(k == n, back, (nxt - fwd) / gamma + back)
        return SamplerState(x_new, k - 1, g, x), step_info(1)


def _check_mix(mix) -> None:
    check_range("mix", mix, 0.0, 1.0, lower_open=True)


class EDICT(AbstractInversion):
    r"""EDICT (Wallace, Gokul & Naik 2023, CVPR, eqs. 14-15): exact inversion by two
    coupled DDIM sequences (see the module docstring).

    Each step from t_k to t_{k+1} evaluates the model twice at t_k:
    x' = D(x, eps(t_k, y)), y' = D(y, eps(t_k, x')), then mixes x <- p x' + (1 - p) y',
    y <- p y' + (1 - p) x. Every stage is an affine coupling, so `invert` undoes a step
    exactly (the mixing first, then y, then x, with the same predictions at t_k).

    `mix` = p in (0, 1] (an array field), default 0.93, the paper's; the mixing keeps the
    two sequences close (it contracts x - y by 2p - 1 per step), and inversion divides by
    p. The companion is the second sequence y (y = x when none is given). The paper's
    equations are implemented; the official code's option of alternating which sequence
    is updated first ("leapfrog" steps) is not.
    """

    mix: RealLike = 0.93
    nfe_per_step: ClassVar[int] = 2

    def __check_init__(self):
        _check_mix(self.mix)

    def generate_init(self, denoiser, ts, x, companion):
        y = x if companion is None else companion
        return SamplerState(x, jnp.asarray(0), grid_arrays(denoiser.schedule, ts), y)

    def generate_step(self, state, denoiser):
        g, k, x, y = state.grid, state.i, state.x, state.history
        p = jnp.asarray(self.mix, x.dtype)
        x_i = ddim_transfer(g, k, k + 1, x, denoiser.eps(g.t[k], y))
        y_i = ddim_transfer(g, k, k + 1, y, denoiser.eps(g.t[k], x_i))
        x_new = p * x_i + (1 - p) * y_i
        y_new = p * y_i + (1 - p) * x_new
        return SamplerState(x_new, k + 1, g, y_new), step_info(2)

    def invert_init(self, denoiser, ts, x, companion):
        y = x if companion is None else companion
        n = ts.shape[0] - 1
        return SamplerState(x, jnp.asarray(n), grid_arrays(denoiser.schedule, ts), y)

    def invert_step(self, state, denoiser):
        g, k, x, y = state.grid, state.i, state.x, state.history
        p = jnp.asarray(self.mix, x.dtype)
        y_i = (y - (1 - p) * x) / p
        x_i = (x - (1 - p) * y_i) / p
        y_old = ddim_transfer(g, k, k - 1, y_i, denoiser.eps(g.t[k - 1], x_i))
        x_old = ddim_transfer(g, k, k - 1, x_i, denoiser.eps(g.t[k - 1], y_old))
        return SamplerState(x_old, k - 1, g, y_old), step_info(2)


@eqx.filter_jit
def _run(method, denoiser, ts, x, companion, inverse, n_scan):
    if inverse:
        state = method.invert_init(denoiser, ts, x, companion)
        step = method.invert_step
    else:
        state = method.generate_init(denoiser, ts, x, companion)
        step = method.generate_step

    def body(state, _):
        state, info = step(state, denoiser)
        return state, info.nfe

    state, nfe = jax.lax.scan(body, state, None, length=n_scan)
    return InversionResult(state.x, method.companion(state), jnp.sum(nfe))


_EPS = EpsPrediction()


def _drive(
    method, model, schedule, grid, x, companion, parameterization, inverse, name
) -> InversionResult:
    if not isinstance(method, AbstractInversion):
        raise TypeError(
            "`method` must be an AbstractInversion (jaxsci.diffusion.BDIA(), EDICT() or "
            f"DDIMInversion()), got {type(method).__name__}."
        )
    denoiser = as_denoiser(model, schedule, parameterization)
    ts = check_grid(denoiser.schedule, grid)
    n = ts.shape[0] - 1
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise TypeError(f"`{name}` must be a floating array, got dtype {x.dtype}.")
    ts = ts.astype(x.dtype)
    check_finite(name, x)
    check_maps_to_own_shape(
        name, denoiser.model, ts[0], x, hint="one example: vmap over examples outside"
    )
    skip = 0
    if companion is not None:
        if isinstance(method, DDIMInversion):
            raise ValueError(
                "`companion` is not used by DDIMInversion (its inversion is approximate and "
                "needs no second state); pass companion=None."
            )
        companion = jnp.asarray(companion)
        if companion.shape != x.shape or companion.dtype != x.dtype:
            raise ValueError(
                f"`companion` must have the shape and dtype of `{name}` {x.shape} {x.dtype}, "
                f"got {companion.shape} {companion.dtype}."
            )
        check_finite("companion", companion)
        skip = method.companion_steps
    if n - skip < 1:
        raise ValueError(
            f"{type(method).__name__} with a companion needs a grid of at least {skip + 1} "
            f"steps; got a grid of {n} step(s)."
        )
    return _run(method, denoiser, ts, x, companion, inverse, n - skip)


def generate(
    method: AbstractInversion,
    model: Callable | Denoiser,
    schedule: AbstractSchedule,
    grid: Real[ArrayLike, " n1"],
    x_T: Shaped[ArrayLike, "*shape"],
    *,
    companion: Shaped[ArrayLike, "*shape"] | None = None,
    parameterization: AbstractParameterization = _EPS,
) -> InversionResult:
    """Generate from the noise `x_T` at grid[0] to the data end grid[-1] with an
    invertible `method` (one example; vmap outside).

    Arguments:
        method: `BDIA()`, `EDICT()` or `DDIMInversion()` (DDIM).
        model, schedule, parameterization: as for `sample` (a `Denoiser` carries its own).
        grid: strictly decreasing times, noise end to data end (`time_grid`).
        x_T: the noise, one example (a floating array; its dtype is kept).
        companion: the second state returned by `invert` (BDIA: the state at grid[1];
            EDICT: the second sequence), to reproduce an inverted trajectory exactly; None
            to start from `x_T` alone.

    Returns:
        An `InversionResult` (x at grid[-1], its companion, nfe).
    """
    return _drive(method, model, schedule, grid, x_T, companion, parameterization, False, "x_T")


def invert(
    method: AbstractInversion,
    model: Callable | Denoiser,
    schedule: AbstractSchedule,
    grid: Real[ArrayLike, " n1"],
    x_0: Shaped[ArrayLike, "*shape"],
    *,
    companion: Shaped[ArrayLike, "*shape"] | None = None,
    parameterization: AbstractParameterization = _EPS,
) -> InversionResult:
    """Invert the data `x_0` at the grid's data end grid[-1] to the noise end grid[0]:
    the state from which `generate` with the same `method` and grid returns `x_0` (exactly,
    to round-off, for `BDIA` and `EDICT` given the returned companion; to O(step) for
    `DDIMInversion`).

    Arguments:
        method: `BDIA()`, `EDICT()` or `DDIMInversion()`.
        model, schedule, parameterization: as for `sample`.
        grid: the generation grid (strictly decreasing, noise end to data end); it is run
            from its end to its start.
        x_0: the data, one example.
        companion: the second state returned by `generate` (BDIA: the state at grid[-2];
            EDICT: the second sequence), to invert a generated trajectory exactly; None to
            start from `x_0` alone (a real image).

    Returns:
        An `InversionResult` (x at grid[0], its companion, nfe).
    """
    return _drive(method, model, schedule, grid, x_0, companion, parameterization, True, "x_0")
