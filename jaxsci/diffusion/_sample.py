"""The sampling driver: a jitted scan of a sampler's steps over a time grid."""

from collections.abc import Callable
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Real, Shaped

from .._checks import check_finite, check_maps_to_own_shape
from .._custom_types import Array, ArrayLike, Float, Int, Key, PyTree
from ._base import AbstractSchedule
from ._grids import check_grid
from ._parameterization import AbstractParameterization, Denoiser, EpsPrediction, as_denoiser
from ._sampler import AbstractSampler


class SampleResult(NamedTuple):
    """Output of `sample`.

    x: the sample at the data end (or its x0 prediction with `denoise_final`);
    trajectory: x at every grid time (steps+1, ...) when requested, else None;
    info: the sampler's per-step info NamedTuple (`StepInfo`, `ODEStepInfo`, `DPSInfo`)
    with a leading steps axis on every field; nfe: total model evaluations (scalar).
    """

    x: Float[Array, "*shape"]
    trajectory: Float[Array, " n1 *shape"] | None
    info: PyTree
    nfe: Int[Array, ""]


@eqx.filter_jit
def _run(sampler, denoiser, ts, x_T, keys, denoise_final, save_trajectory):
    state = sampler.init(denoiser, ts, x_T)

    def body(state, key):
        state, info = sampler.step(key, state, denoiser)
        return state, (info, state.x if save_trajectory else None)

    state, (info, traj) = jax.lax.scan(body, state, keys)
    x = state.x
    nfe = jnp.sum(info.nfe)
    if denoise_final:
        x = denoiser.x0(ts[-1], x)
        nfe = nfe + 1
    if traj is not None:  # save_trajectory
        traj = jnp.concatenate([x_T[None], traj], axis=0)
    return SampleResult(x, traj, info, nfe)


_EPS = EpsPrediction()


def sample(
    sampler: AbstractSampler,
    model: Callable | Denoiser,
    schedule: AbstractSchedule,
    grid: Real[ArrayLike, " n1"],
    x_T: Shaped[ArrayLike, "*shape"],
    *,
    key: Key | None = None,
    parameterization: AbstractParameterization = _EPS,
    denoise_final: bool = False,
    save_trajectory: bool = False,
) -> SampleResult:
    """Run `sampler` over `grid` from the noise `x_T` (one example; vmap outside).

    A jitted `lax.scan` over `sampler.step`; differentiable with respect to x_T, the
    model's parameters and (unchecked) traced grids.

    Arguments:
        sampler: an `AbstractSampler`.
        model: a callable (t, x) -> output of kind `parameterization`, or a `Denoiser`
            (then `parameterization` and `schedule` are taken from it).
        schedule: the noise schedule.
        grid: strictly decreasing times from the noise end to the data end (`time_grid`).
        x_T: the initial noise, one example (a floating array; its dtype is kept).
        key: PRNG key, required by stochastic samplers (split once per step).
        parameterization: what the model outputs (default `EpsPrediction()`).
        denoise_final: return the x0 prediction at the last grid time (one more NFE).
        save_trajectory: also return x at every grid time.

    Returns:
        A `SampleResult`.
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
    sampler.check_x_T(x_T)
    check_finite("x_T", x_T)
    check_maps_to_own_shape(
        "x_T", denoiser.model, ts[0], x_T, hint="one example: vmap over examples outside"
    )
    if key is None:
        if sampler.stochastic:
            raise ValueError(f"{type(sampler).__name__} is stochastic: pass `key`.")
        keys = jax.random.split(jax.random.key(0), n)  # unused by deterministic samplers
    else:
        keys = jax.random.split(key, n)
    return _run(sampler, denoiser, ts, x_T, keys, denoise_final, save_trajectory)
