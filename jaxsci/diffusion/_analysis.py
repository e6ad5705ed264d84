r"""Score-based analyses: posterior draws of a state from a diffusion prior, one per observation.

Score-based data assimilation without a forecast (the "analysis" of a filter whose prior is a
learned climatology; Rozet & Louppe 2023, "Score-based data assimilation", use the same idea
over trajectory windows): at every analysis time k the prior is the diffusion model p(x) and
the posterior p(x | y_k) is sampled by `DPS` or by `TDS` (twisted SMC, `smc_sample`). The
analyses are independent: nothing is carried from one time to the next.

`posterior_draws` runs one sampler over a sequence of observations with the same observation
model, replacing only the observed values `y` of the sampler (an array field, so one compiled
program serves every time), and returns unweighted draws -- DPS draws are independent; the TDS
weighted particles are resampled (systematic) to `num_samples` draws, duplicates included --
and the weighted particles themselves (DPS: its draws with equal weights). Score the weighted
particles (`metrics.ensemble_scores(..., weights=...)`): the resampled draws are not
independent members.
"""

from collections.abc import Callable
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Real

from .._checks import check_finite, check_int, check_key
from .._custom_types import Array, ArrayLike, Bool, Float, Key
from ._base import AbstractSchedule
from ._grids import check_grid
from ._parameterization import AbstractParameterization, Denoiser, EpsPrediction, as_denoiser
from ._posterior import DPS, TDS, smc_sample
from ._sample import sample

_EPS = EpsPrediction()


class PosteriorDraws(NamedTuple):
    """Output of `posterior_draws`.

    samples: unweighted draws per analysis, (time, num_samples, d); ess: the effective sample
    size of each analysis (TDS: the final ESS of the weighted particles before resampling;
    DPS: num_samples, its draws are independent), (time,); min_ess: TDS's smallest ESS over
    the steps (DPS: num_samples), (time,); collapsed: TDS's weights collapsed (DPS: False),
    (time,); particles: the weighted particles (TDS: the `num_particles` final particles; DPS:
    `samples`), (time, P, d); weights: their normalised weights (DPS: 1 / num_samples),
    (time, P).
    """

    samples: Float[Array, "time N d"]
    ess: Float[Array, " time"]
    min_ess: Float[Array, " time"]
    collapsed: Bool[Array, " time"]
    particles: Float[Array, "time P d"]
    weights: Float[Array, "time P"]


@eqx.filter_jit
def _draws(sampler, denoiser, grid, observations, keys, num_samples, num_particles):
    dim = sampler.observation.state_dim
    dtype = observations.dtype

    def one(args):
        key, y = args
        s = eqx.tree_at(lambda s: s.y, sampler, y)
        k1, k2 = jax.random.split(key)
        if isinstance(s, TDS):
            res = smc_sample(s, denoiser, denoiser.schedule, grid, num_particles, key=k1)
            draws = res.resample(k2, num_samples)
            return draws, res.ess, res.min_ess, res.collapsed, res.particles, res.weights()
        x_T = denoiser.schedule.prior_std() * jax.random.normal(k1, (num_samples, dim), dtype)
        x = jax.vmap(lambda k, x: sample(s, denoiser, denoiser.schedule, grid, x, key=k).x)(
            jax.random.split(k2, num_samples), x_T
        )
        n = jnp.asarray(num_samples, dtype)
        return x, n, n, jnp.asarray(False), x, jnp.full((num_samples,), 1 / n, dtype)

    return PosteriorDraws(*jax.lax.map(one, (keys, observations)))


def posterior_draws(
    sampler: DPS | TDS,
    model: Callable | Denoiser,
    schedule: AbstractSchedule,
    grid: Real[ArrayLike, " n1"],
    observations: Float[ArrayLike, "time m"],
    num_samples: int,
    *,
    key: Key,
    num_particles: int | None = None,
    parameterization: AbstractParameterization = _EPS,
) -> PosteriorDraws:
    """Posterior draws of the state at every analysis time from a diffusion prior.

    For each row y_k of `observations` the sampler (with its observation model and
    hyperparameters) is run with `y = y_k`: DPS `num_samples` times from independent noise,
    or TDS once with `num_particles` particles resampled to `num_samples` draws. One jitted
    program, a `lax.map` over the times (memory of one analysis at a time).

    Arguments:
        sampler: a `DPS` or a `TDS`; its `y` is replaced (its observation model is kept).
        model: a callable (t, x) -> output of kind `parameterization` for one state x (d,),
            or a `Denoiser` (its own parameterisation is used).
        schedule: the noise schedule the model was trained for (for a `Denoiser`, its
            schedule; another one is refused rather than silently ignored).
        grid: strictly decreasing times from the noise end to the data end.
        observations: (time, m), m the observation model's obs_dim.
        num_samples: draws per analysis (>= 1).
        key: PRNG key (split once per analysis).
        num_particles: TDS particles (default `num_samples`); not used by DPS.
        parameterization: what the model outputs (default `EpsPrediction()`).

    Returns:
        `PosteriorDraws`.
    """
    if not isinstance(sampler, DPS | TDS):
        raise TypeError(f"`sampler` must be a DPS or a TDS, got {type(sampler).__name__}.")
    key = check_key("key", key)
    num_samples = check_int("num_samples", num_samples, 1)
    num_particles = (
        num_samples if num_particles is None else check_int("num_particles", num_particles, 1)
    )
    if isinstance(sampler, DPS) and num_particles != num_samples:
        raise ValueError("`num_particles` is a TDS option; DPS draws `num_samples` directly.")
    observations = jnp.asarray(observations)
    m = sampler.observation.obs_dim
    if observations.ndim != 2 or observations.shape[1] != m:
        raise ValueError(
            f"`observations` must have shape (time, m) = (time, {m}) (m the observation "
            f"model's obs_dim), got {observations.shape}."
        )
    if not jnp.issubdtype(observations.dtype, jnp.floating):
        raise TypeError(f"`observations` must be floating, got dtype {observations.dtype}.")
    check_finite("observations", observations)
    if isinstance(model, Denoiser) and eqx.tree_equal(model.schedule, schedule) is not True:
        raise ValueError(
            "`schedule` must be the schedule of the `Denoiser` passed as `model` (its own "
            f"would be used): got {type(schedule).__name__}, the denoiser has "
            f"{type(model.schedule).__name__} with other parameters or type."
        )
    denoiser = as_denoiser(model, schedule, parameterization)
    ts = check_grid(denoiser.schedule, grid).astype(observations.dtype)
    keys = jax.random.split(key, observations.shape[0])
    return _draws(sampler, denoiser, ts, observations, keys, num_samples, num_particles)
