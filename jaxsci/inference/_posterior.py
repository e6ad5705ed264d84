"""`posterior`: run several MCMC chains (vmapped, sharded over devices) with warmup.

The driver is backend-agnostic: a sampler's `Kernel` (one chain's init/step) is vmapped over
the chain axis, and the run is a `lax.scan` over steps, split into chunks of `chunk_size`
steps so that a progress bar can follow it. Every chunk is the same compiled function (a
step beyond the run's end is skipped by an unbatched `lax.cond`), so a run compiles once and
later runs with the same target and sampler reuse it. Step t of chain c uses the key
fold_in(fold_in(key, c), t): a chain's draws do not depend on the chunking, on the device
count or on how many other chains run, up to floating-point rounding (a different batch shape
per device can change XLA's rounding, which an MCMC trajectory amplifies over many steps).
The chain axis is sharded over `devices` with `jax.sharding` (GSPMD), the path multi-host
JAX uses, through `jaxsci._sharding`: chains that do not divide the devices are padded with
copies of the last chain (dropped from the result), so no device is left out; a single
device is the same code.
"""

import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._checks import check_int, check_key
from .._compile_clock import CompileClock
from .._custom_types import Array, Key
from .._interrupts import check_interrupted
from .._progress import progress_bar as make_progress_bar
from .._sharding import shard_batch, unpad_batch
from ._init import _fold, initial_positions
from ._result import PosteriorResult
from ._samplers import AbstractSampler, WarmupStage, as_sampler, warmup_schedule
from ._target import AbstractTarget, make_target, safe_logdensity

logger = logging.getLogger("jaxsci.inference")


def _kernel(sampler: AbstractSampler, target: AbstractTarget, num_warmup: int):
    return sampler.build(lambda u: safe_logdensity(target, u), target.dim, num_warmup)


@eqx.filter_jit
def _init_states(sampler, target, num_warmup: int, keys, u0, lp0, grad0):
    return jax.vmap(_kernel(sampler, target, num_warmup).init)(keys, u0, lp0, grad0)


@eqx.filter_jit
def _run_chunk(sampler, target, num_warmup: int, states, chain_keys, steps, stages, active):
    """Steps `steps` (chunk,) of all chains; inactive steps (past the end) are skipped."""
    kernel = _kernel(sampler, target, num_warmup)

    def one(states, t, stage):
        keys = jax.vmap(lambda k: jax.random.fold_in(k, t))(chain_keys)
        new, info = jax.vmap(kernel.step, in_axes=(0, 0, None))(keys, states, stage)
        return new, (jax.vmap(kernel.position)(new), info)

    def body(states, xs):
        t, stage, act = xs
        out_shape = jax.eval_shape(one, states, t, stage)[1]
        skip = lambda s: (
            s,
            jax.tree_util.tree_map(lambda a: jnp.zeros(a.shape, a.dtype), out_shape),
        )
        return jax.lax.cond(act, lambda s: one(s, t, stage), skip, states)

    return jax.lax.scan(body, states, (steps, stages, active))


def posterior(
    model: AbstractTarget | Callable,
    *,
    key: Key,
    sampler: AbstractSampler | str = "nuts",
    num_chains: int = 4,
    num_warmup: int = 1000,
    num_samples: int = 1000,
    init: str | Mapping[str, Any] | Any = "map",
    constraints: Mapping[str, Any] | None = None,
    shapes: Mapping[str, tuple[int, ...]] | None = None,
    prior: Mapping[str, Any] | None = None,
    model_args: tuple = (),
    model_kwargs: dict | None = None,
    progress_bar: bool = True,
    chunk_size: int = 50,
    devices: Sequence[Any] | None = None,
) -> PosteriorResult:
    """Sample a posterior with several chains of NUTS or HMC.

    Arguments:
        model: a log-density `params -> scalar` on a dict of constrained parameter arrays
            (give `constraints`, and `prior` for the prior-based inits), a numpyro model
            (give `model_args`/`model_kwargs`), or a ready `LogDensity` / `NumpyroModel`.
        key: PRNG key; the same key gives the same draws.
        sampler: 'nuts' (blackjax), 'hmc' (blackjax), 'numpyro_nuts' (each with its defaults:
            diagonal mass matrix, target_accept 0.8), or a configured
            `NUTS(dense_mass=True, target_accept=0.95, ...)`, `HMC(...)`, `NumpyroNUTS(...)`.
        num_chains: independent chains (vmapped, sharded over `devices`).
        num_warmup: warmup (adaptation) steps per chain, discarded; num_samples: kept draws.
        init: 'map' (default: draws from the Laplace approximation at the best of
            `num_chains` L-BFGS optima started from U(-2, 2); see `_init.py`),
            'prior_median' (median of 15 prior draws per site, per chain), 'prior_draw',
            'uniform' (U(-2, 2) in unconstrained space: numpyro's and Stan's default, which
            can start ODE models in blow-up regions), a dict of parameter values (all
            chains), a `MAPResult` (its mode) / `LaplaceResult` (draws from it), or an
            array (num_chains, dim) of unconstrained starts (e.g. a previous run's last draws).
        constraints, shapes, prior: for a log-density, see `LogDensity`.
        progress_bar: show a tqdm bar (updated per chunk).
        chunk_size: steps per compiled chunk (progress granularity).
        devices: devices for the chain axis (default all). Chains that do not divide
            evenly are padded with copies of the last chain, so that every device is used;
            the copies are dropped from the result. In a multi-process run
            (`jaxsci.distributed`) the default spans the devices of every process, and every
            process gets the whole result.

    Returns:
        A `PosteriorResult`; its `diagnose()` lists the failed post-run checks (divergences,
        R-hat > 1.01, low ESS, ...) with what to change (e.g. `NUTS(target_accept=0.95)`,
        `NUTS(dense_mass=True)` for a correlated posterior, a non-centred model).
    """
    key = check_key("key", key)
    num_chains = check_int("num_chains", num_chains, 1)
    num_warmup = check_int("num_warmup", num_warmup, 0)
    num_samples = check_int("num_samples", num_samples, 1)
    chunk_size = check_int("chunk_size", chunk_size, 1)
    sampler = as_sampler(sampler)
    target = make_target(model, constraints, shapes, prior, model_args, model_kwargs)
    # Kernels that take the warmup schedule per step (blackjax) do not depend on num_warmup:
    # build them with 0, so that runs of any length share one compiled chunk.
    build_warmup = num_warmup if sampler.needs_num_warmup else 0
    key_init, key_kernel, key_run = jax.random.split(key, 3)
    u0, lp0, grad0 = initial_positions(target, key_init, num_chains, init)
    # The chain axis over all devices, padded by copies of the last chain (dropped below).
    (chain_keys, kernel_keys, *start), _ = shard_batch(
        (_fold(key_run, num_chains), _fold(key_kernel, num_chains), u0, lp0, grad0), devices
    )
    states = _init_states(sampler, target, build_warmup, kernel_keys, *map(jnp.asarray, start))
    stages = warmup_schedule(num_warmup, num_samples)
    total = num_warmup + num_samples
    n_chunks = math.ceil(total / chunk_size)
    padded = n_chunks * chunk_size

    def pad(a):
        return np.concatenate([a, np.zeros(padded - total, dtype=a.dtype)])

    steps = np.arange(padded, dtype=np.int32)
    schedule = [pad(np.asarray(s)) for s in stages]
    active = steps < total
    positions, infos, seconds, compiling = [], [], [], []
    bar = make_progress_bar(progress_bar, total=total, desc="warmup" if num_warmup else "sampling")
    divergent = 0
    with bar:
        for i in range(n_chunks):
            check_interrupted()  # a Ctrl-C that jax's tracing swallowed
            sl = slice(i * chunk_size, (i + 1) * chunk_size)
            t = time.perf_counter()
            with CompileClock() as clock:
                states, (pos, info) = _run_chunk(
                    sampler,
                    target,
                    build_warmup,
                    states,
                    chain_keys,
                    jnp.asarray(steps[sl]),
                    WarmupStage(*(jnp.asarray(s[sl]) for s in schedule)),
                    jnp.asarray(active[sl]),
                )
                # (steps, chains, ...): keep the real chains (whole on every process)
                pos, info = jax.device_get(unpad_batch((pos, info), num_chains, axis=1))
            seconds.append(time.perf_counter() - t)
            compiling.append(clock.seconds)
            positions.append(np.asarray(pos))
            infos.append(info)
            done = min((i + 1) * chunk_size, total)
            kept = slice(0, done - i * chunk_size)
            if done > num_warmup:
                first = max(num_warmup - i * chunk_size, 0)
                divergent += int(np.sum(np.asarray(info.diverging)[first : kept.stop]))
            bar.set_description("warmup" if done < num_warmup else "sampling")
            bar.set_postfix(
                divergences=divergent,
                step_size=f"{float(np.mean(info.step_size[kept.stop - 1])):.3g}",
            )
            bar.update(kept.stop)
    # (steps, chains, ...) -> (chains, steps, ...)
    pos = np.concatenate(positions)[:total].swapaxes(0, 1)
    stats = jax.tree.map(lambda *a: np.concatenate(a)[:total].swapaxes(0, 1), *infos)._asdict()
    compile_seconds, warmup_seconds, sampling_seconds = _phase_seconds(
        seconds, compiling, chunk_size, num_warmup, total
    )
    draws = jax.device_get(_constrain(target, jnp.asarray(pos[:, num_warmup:])))
    step_size, imm = jax.device_get(
        unpad_batch(_adapted(sampler, target, build_warmup, states), num_chains)
    )
    return PosteriorResult(
        draws={k: np.asarray(v) for k, v in draws.items()},
        unconstrained=pos[:, num_warmup:],
        sample_stats={k: v[:, num_warmup:] for k, v in stats.items()},
        warmup_stats={k: v[:, :num_warmup] for k, v in stats.items()},
        step_size=np.asarray(step_size),
        inverse_mass_matrix=np.asarray(imm),
        init=np.asarray(u0),
        compile_seconds=compile_seconds,
        warmup_seconds=warmup_seconds,
        sampling_seconds=sampling_seconds,
        target=target,
        sampler=sampler,
    )


def _phase_seconds(
    seconds: list[float], compiling: list[float], chunk_size: int, num_warmup: int, total: int
) -> tuple[float, float, float]:
    """(compile, warmup, sampling) seconds from the wall time of each chunk and the time JAX
    reported lowering and compiling during it (`CompileClock`).

    Each chunk's time less its compilation is split between warmup and sampling by its
    share of steps of each phase. (An earlier estimate took compilation as the first chunk's
    excess over the later chunks' time per step, which counted the warmup's deeper early
    trees as compilation whenever the first chunk was warmup: 300 s "compile" for 256 chains
    on the LV posterior, benchmarks/RESULTS.md section 7.)
    """
    run = [max(sec - c, 0.0) for sec, c in zip(seconds, compiling, strict=True)]
    compile_seconds = sum(sec - r for sec, r in zip(seconds, run, strict=True))
    warmup_seconds = sampling_seconds = 0.0
    for i, sec in enumerate(run):
        lo, hi = i * chunk_size, min((i + 1) * chunk_size, total)
        n_warm = max(0, min(hi, num_warmup) - lo)
        warmup_seconds += sec * n_warm / (hi - lo)
        sampling_seconds += sec * (hi - lo - n_warm) / (hi - lo)
    return float(compile_seconds), float(warmup_seconds), float(sampling_seconds)


@eqx.filter_jit
def _constrain(target: AbstractTarget, u: Array) -> dict[str, Array]:
    return jax.vmap(jax.vmap(target.constrain))(u)


@eqx.filter_jit
def _adapted(sampler: AbstractSampler, target: AbstractTarget, num_warmup: int, states):
    """(chains,) step sizes and (chains, dim[, dim]) inverse mass matrices of the states."""
    return jax.vmap(_kernel(sampler, target, num_warmup).adapted)(states)
