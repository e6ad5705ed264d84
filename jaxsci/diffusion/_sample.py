"""The sampling driver and the sampler registry."""

from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp

from .._custom_types import Array, Float, Key
from ._base import AbstractSampler, AbstractSchedule
from ._exponential import (
    DDIM,
    DEIS,
    DPMSolver,
    DPMSolverPP2S,
    DPMSolverPPMultistep,
    SDEDPMSolverPP2M,
    UniPC,
)
from ._grids import check_grid
from ._parameterization import as_denoiser
from ._probability_flow import ProbabilityFlowODE
from ._time_samplers import Euler, EulerMaruyama, Heun, PredictorCorrector


class SampleResult(NamedTuple):
    """x: the sample at the data end (or its x0 prediction with `denoise_final`);
    trajectory: x at every grid time (steps+1, ...) when requested, else None;
    info: per-step sampler info (arrays with a leading steps axis); nfe: total model
    evaluations (scalar)."""

    x: Float[Array, "..."]
    trajectory: Float[Array, "n1 ..."] | None
    info: dict
    nfe: Array


@eqx.filter_jit
def _run(sampler, denoiser, ts, x_T, keys, denoise_final, save_trajectory):
    state = sampler.init(denoiser, ts, x_T)

    def body(state, key):
        state, info = sampler.step(key, state, denoiser)
        return state, (info, state.x if save_trajectory else None)

    state, (info, traj) = jax.lax.scan(body, state, keys)
    x = state.x
    nfe = jnp.sum(info["nfe"])
    if denoise_final:
        x = denoiser.x0(ts[-1], x)
        nfe = nfe + 1
    if save_trajectory:
        traj = jnp.concatenate([x_T[None], traj], axis=0)
    return SampleResult(x, traj, info, nfe)


def sample(
    sampler: AbstractSampler,
    model,
    schedule: AbstractSchedule,
    grid: Float[Array, " n1"],
    x_T: Float[Array, "..."],
    *,
    key: Key | None = None,
    parameterization: str = "eps",
    denoise_final: bool = False,
    save_trajectory: bool = False,
) -> SampleResult:
    """Run `sampler` over `grid` from the noise `x_T` (one example; vmap outside).

    A jitted `lax.scan` over `sampler.step`; differentiable with respect to x_T, the
    model's parameters and (unchecked) traced grids.

    Arguments:
        sampler: an `AbstractSampler` (see `SAMPLERS`).
        model: a callable (t, x) -> output of kind `parameterization`, or a `Denoiser`
            (then `parameterization` and `schedule` are taken from it).
        schedule: the noise schedule.
        grid: strictly decreasing times from the noise end to the data end (`time_grid`).
        x_T: the initial noise, one example.
        key: PRNG key, required by stochastic samplers (split once per step).
        parameterization: "eps", "x0", "v", "score" or "flow".
        denoise_final: return the x0 prediction at the last grid time (one more NFE).
        save_trajectory: also return x at every grid time.
    """
    if not isinstance(sampler, AbstractSampler):
        raise TypeError(f"`sampler` must be an AbstractSampler, got {type(sampler).__name__}.")
    denoiser = as_denoiser(model, schedule, parameterization)
    ts = check_grid(denoiser.schedule, grid)
    n = ts.shape[0] - 1
    sampler.check_steps(n)
    x_T = jnp.asarray(x_T)
    if not jnp.issubdtype(x_T.dtype, jnp.floating):
        raise TypeError(f"`x_T` must be a floating array, got dtype {x_T.dtype}.")
    ts = ts.astype(x_T.dtype)
    if key is None:
        if sampler.stochastic:
            raise ValueError(f"{type(sampler).__name__} is stochastic: pass `key`.")
        keys = jax.random.split(jax.random.key(0), n)  # unused by deterministic samplers
    else:
        keys = jax.random.split(key, n)
    return _run(sampler, denoiser, ts, x_T, keys, denoise_final, save_trajectory)


SAMPLERS: dict[str, type[AbstractSampler] | tuple] = {
    "ddim": (DDIM, {}),
    "dpm_solver_1": (DPMSolver, {"order": 1}),
    "dpm_solver_2": (DPMSolver, {"order": 2}),
    "dpm_solver_3": (DPMSolver, {"order": 3}),
    "dpmpp_2s": (DPMSolverPP2S, {}),
    "dpmpp_2m": (DPMSolverPPMultistep, {"order": 2}),
    "dpmpp_3m": (DPMSolverPPMultistep, {"order": 3}),
    "sde_dpmpp_2m": (SDEDPMSolverPP2M, {}),
    "deis_1": (DEIS, {"tab_order": 1}),
    "deis_2": (DEIS, {"tab_order": 2}),
    "deis_3": (DEIS, {"tab_order": 3}),
    "unipc_1": (UniPC, {"predictor_order": 1}),
    "unipc_2": (UniPC, {"predictor_order": 2}),
    "unipc_3": (UniPC, {"predictor_order": 3}),
    "euler": (Euler, {}),
    "heun": (Heun, {}),
    "euler_maruyama": (EulerMaruyama, {}),
    "predictor_corrector": (PredictorCorrector, {}),
    "probability_flow": (ProbabilityFlowODE, {}),
}


def get_sampler(name: str, **kwargs) -> AbstractSampler:
    """The sampler registered under `name` (see `SAMPLERS`), with `kwargs` overriding its
    defaults (e.g. `get_sampler("unipc_2", variant="bh1", lower_order_final=False)`)."""
    if name not in SAMPLERS:
        raise ValueError(f"Unknown sampler {name!r}; expected one of {sorted(SAMPLERS)}.")
    cls, defaults = SAMPLERS[name]
    return cls(**{**defaults, **kwargs})
