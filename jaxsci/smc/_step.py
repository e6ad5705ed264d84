"""One generic sequential Monte Carlo step: reweight, and resample when the ESS is low."""

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

from .._custom_types import Array, ArrayLike, Bool, Float, Int, Key, PyTree
from ._base import AbstractResampler
from ._ess import effective_sample_size

#: `move(key, particles, ancestors, log_weights) -> particles`: a kernel applied to the
#: resampled particles (resample-move), given their ancestors and the normalised
#: log-weights before the draw.
MoveFn = Callable[[Key, PyTree, Int[Array, " n"], Float[Array, " n"]], PyTree]


class SMCInfo(NamedTuple):
    """Diagnostics of one `smc_step`.

    Attributes:
        ess: the effective sample size after reweighting, before resampling.
        resampled: whether the population was resampled.
        log_increment: log of the incremental normaliser estimate,
            log sum_i W_i exp(g_i) with W the normalised weights before the step and g the
            log-potentials (plus the resampler's `log_mass`); its sum over steps is the log of
            an unbiased estimate of the normalising constant (Del Moral 2004).
        num_nonfinite: log-weights that were NaN after reweighting (set to -inf: dropped).
        ancestors: the parent of each particle (the identity when not resampled).
    """

    ess: Float[Array, ""]
    resampled: Bool[Array, ""]
    log_increment: Float[Array, ""]
    num_nonfinite: Int[Array, ""]
    ancestors: Int[Array, " n"]


def reweight(
    log_weights: Float[Array, " n"], log_potentials: Float[Array, " n"]
) -> tuple[Float[Array, " n"], Float[Array, ""], Int[Array, ""]]:
    """Multiply the weights by the potentials exp(g_i) and normalise.

    Returns the normalised log-weights log W_i + g_i - log sum_j W_j exp(g_j), the log of the
    incremental normaliser log sum_i W_i exp(g_i) (W = the normalised input weights) and the
    number of NaN log-weights, which are set to -inf (the particle is dropped) so that one
    failed particle does not poison the population.
    """
    joint = log_weights + log_potentials
    bad = jnp.isnan(joint)
    joint = jnp.where(bad, -jnp.inf, joint)
    log_norm = jax.nn.logsumexp(joint)
    return joint - log_norm, log_norm - jax.nn.logsumexp(log_weights), jnp.sum(bad)


def _resample(key, particles, log_weights, resampler, move):
    """Resample every leaf of `particles` along its leading axis (one index gather), then
    apply `move`. The key goes to the resampler, or is split between it and `move`."""
    if move is None:
        key_draw = key_move = key
    else:
        key_draw, key_move = jax.random.split(key)
    ancestors, new_log_weights, log_mass = resampler(key_draw, log_weights)
    resampled = jax.tree_util.tree_map(lambda x: x[ancestors], particles)
    if move is not None:
        resampled = move(key_move, resampled, ancestors, log_weights)
    return resampled, new_log_weights, ancestors, log_mass


def smc_step(
    key: Key,
    particles: PyTree,
    log_weights: Float[Array, " n"],
    log_potentials: Float[Array, " n"] | None,
    *,
    resampler: AbstractResampler,
    ess_threshold: Float[ArrayLike, ""],
    move: MoveFn | None = None,
) -> tuple[PyTree, Float[Array, " n"], SMCInfo]:
    r"""Reweight a particle population, and resample it when its ESS is low.

    With normalised weights W and log-potentials g (e.g. log p(y | x_i) in a bootstrap
    particle filter, an incremental importance weight in an SMC sampler):

        W_i <- W_i exp(g_i) / sum_j W_j exp(g_j)      (NaN log-weights -> -inf)
        ESS = 1 / sum_i W_i^2
        if ESS <= ess_threshold * n: resample with `resampler`, then apply `move`

    (Doucet & Johansen 2009, "A tutorial on particle filtering and smoothing", algorithm
    "SMC with adaptive resampling"). The resampling runs under `lax.cond`, so only steps that
    resample pay for it (under `vmap` both branches run and one is selected).
    `blackjax.smc.base.step` fixes the other order (resample, move, weight) and resamples
    every step; this step serves filters (reweight by an observation, then resample) and,
    with `log_potentials=None`, samplers that resample before they propagate.

    Arguments:
        key: PRNG key for the resampler (split with `move` when there is one).
        particles: a pytree of arrays whose leading axis is the n particles; all leaves
            are resampled together.
        log_weights: (n,) log-weights, normalised or not.
        log_potentials: (n,) log-potentials g, or None (no reweighting; only the weights are
            normalised).
        resampler: how to resample (e.g. `Resampler(systematic)`).
        ess_threshold: resample when ESS <= ess_threshold * n, in [0, 1] (0: never; 1:
            every step, except by rounding when the weights are exactly equal).
        move: optional kernel applied to the resampled particles (see `MoveFn`).

    Returns:
        The particles, their normalised log-weights and an `SMCInfo`.
    """
    if log_potentials is None:
        log_potentials = jnp.zeros_like(log_weights)
    log_w, log_increment, num_nonfinite = reweight(log_weights, log_potentials)
    n = log_w.shape[0]
    ess = effective_sample_size(log_w)
    do = ess <= jnp.asarray(ess_threshold).astype(ess.dtype) * n

    def keep(key, particles, log_w):
        return particles, log_w, jnp.arange(n, dtype=jnp.int32), jnp.zeros((), log_w.dtype)

    def draw(key, particles, log_w):
        return _resample(key, particles, log_w, resampler, move)

    particles, log_w, ancestors, log_mass = jax.lax.cond(do, draw, keep, key, particles, log_w)
    info = SMCInfo(ess, do, log_increment + log_mass, num_nonfinite, ancestors)
    return particles, log_w, info
