"""Drivers: `run_filter` over given observations, and `assimilate`, the twin experiment."""

from collections.abc import Callable, Sequence
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._checks import (
    check_finite,
    check_int,
    check_ndim,
    check_positive,
    check_shape,
    concrete,
    finite_float,
)
from .._custom_types import Array, ArrayLike, Bool, Float, Key
from .._interrupts import interruptible_scan, require_concrete
from .._sharding import batch_sharding, gather, place
from ..integrate import FlattenedFlow, Flow, rollout
from ..observations import AbstractObservation
from ._base import AbstractFilter, Ensemble, FilterState
from ._statistics import check_ensemble

# `flow(y, t0, t1)`: e.g. a `jaxsci.integrate.Flow`, or any jax-traceable model step.
FlowFn = Callable[[Float[Array, " dim"], float, float], Float[Array, " dim"]]

#: `assimilate`'s default divergence rule: a run has lost the truth when its rmse_a exceeds
#: this fraction of the truth's climatological spread (`climatological_spread`). An analysis
#: mean that no longer tracks the truth but stays on the attractor errs by about sqrt(2)
#: climatological spreads (two independent states), one that sits at the climatological mean
#: by about one; a working filter errs by a small fraction of it. 0.5 (an analysis error
#: variance of a quarter of the climatological variance) lies in the gap between working and
#: lost filters on the Lorenz-63, Lorenz-96 and Kuramoto-Sivashinsky twin setups, measured in
#: benchmarks/bench_divergence.py (benchmarks/RESULTS_divergence.md).
DIVERGENCE_FRACTION = 0.5


class FilterResult(eqx.Module):
    """Per-cycle output of `run_filter` (cycles k = 1..K, times t0 + k dt).

    Attributes:
        mean_f, mean_a: forecast and analysis (weighted) ensemble means, (K, dim).
        spread_f, spread_a: sqrt of the state-averaged ensemble variance (ddof 1; the
            unbiased weighted variance for particle filters), (K,).
        log_likelihood: log p(y_k | y_{1:k-1}) as the filter estimates it (`FilterInfo`):
            the Gaussian ensemble estimate log N(y_k; mean h(E_f), Y Y^T/(N-1) + R) for
            ensemble Kalman filters, the particle estimate log sum_i w_i p(y_k | x_i) for
            particle filters; NaN when not computed, (K,).
        ess: effective sample size before resampling (N for ensemble Kalman filters), (K,).
        finite: whether every analysis member is finite, (K,).
        ensembles: analysis ensembles (K, N, dim) when asked for, else None.
        log_weights: their log-weights (K, N) (uniform for ensemble Kalman filters) when
            ensembles are stored, else None.
        completed: whether the cycle ran, (K,): all True unless an `interruptible` run was
            stopped by Ctrl-C, after which the remaining cycles are NaN and False.
    """

    mean_f: Float[Array, "time dim"]
    mean_a: Float[Array, "time dim"]
    spread_f: Float[Array, " time"]
    spread_a: Float[Array, " time"]
    log_likelihood: Float[Array, " time"]
    ess: Float[Array, " time"]
    finite: Bool[Array, " time"]
    ensembles: Float[Array, "time ens dim"] | None
    log_weights: Float[Array, "time ens"] | None
    completed: Bool[Array, " time"]


def _window_map(flow: FlowFn, length: float) -> Callable:
    """`(y, t0) -> flow(y, t0, t0 + length)`; a `jaxsci.integrate.Flow` supplies a faster map
    for a window length fixed at trace time (`Flow.window`)."""
    if isinstance(flow, (Flow, FlattenedFlow)):
        return flow.window(length)
    return lambda y, t0: flow(y, t0, t0 + length)


def _cycle(spec, state: FilterState, xs):
    """One cycle of `run_filter`: forecast from t0 + (k-1) dt to t0 + k dt, process noise,
    analysis, and the cycle's statistics (`spec` as built by `_run_filter`). Module-level, so
    that an interruptible run's compiled chunk is reused across calls."""
    flow, obs_op, filter, t0, dt, noise_factor, store, likelihood, observe, members = spec
    k, inputs, key_k = xs
    dtype = state.ensemble.dtype
    forecast = jax.vmap(_window_map(flow, dt), in_axes=(0, None))
    y = obs_op.sample(*inputs) if observe else inputs
    ens = forecast(state.ensemble, t0 + (k - 1) * dt)
    if noise_factor is not None:
        key_a, key_q = jax.random.split(key_k)
        ens = ens + jax.random.normal(key_q, ens.shape, dtype=dtype) @ noise_factor
    else:
        key_a = key_k
    # members sharded over devices: the analysis' ensemble means and anomaly products are
    # then reductions across devices, which GSPMD turns into collectives
    ens = _constrain(ens, members)
    state = FilterState(ens, state.log_weights)
    mean_f, spread_f = filter.statistics(state)
    state, info = filter.analysis(key_a, state, y, obs_op)
    state = FilterState(_constrain(state.ensemble, members), state.log_weights)
    mean_a, spread_a = filter.statistics(state)
    nan = jnp.asarray(jnp.nan, dtype=dtype)
    out: dict[str, Any] = dict(
        mean_f=mean_f,
        mean_a=mean_a,
        spread_f=spread_f,
        spread_a=spread_a,
        log_likelihood=info.log_likelihood if likelihood else nan,
        ess=info.ess,
        finite=jnp.all(jnp.isfinite(state.ensemble)),
        ensembles=state.ensemble if store else None,
        log_weights=state.log_weights if store else None,
    )
    if observe:
        out["observations"] = y
    return state, out


def _constrain(ensemble, members):
    """`ensemble` laid out with its members over the devices of `members` (a sharding; None:
    as XLA chooses)."""
    if members is None:
        return ensemble
    return jax.lax.with_sharding_constraint(ensemble, members)


def _member_sharding(devices, n_members: int, what: str):
    """The sharding of the member axis over `devices` (None: no placement). The members of a
    filter are coupled by the analysis: a padded copy would change it, so the ensemble size
    must be a multiple of the device count."""
    if devices is None:
        return None
    sharding = batch_sharding(devices)
    if sharding is not None and n_members % sharding.mesh.size:
        raise ValueError(
            f"{what} has {n_members} members, which do not divide evenly over the "
            f"{sharding.mesh.size} `devices`: give a multiple of {sharding.mesh.size} members "
            "or fewer devices (members are coupled by the analysis, so they cannot be padded)."
        )
    return sharding


def _check_interruptible(devices, interruptible: bool) -> None:
    if interruptible and devices is not None and jax.process_count() > 1:
        raise ValueError(
            "`interruptible=True` with `devices` is not supported in a multi-process run: its "
            "chunks are timed on each process separately, and all processes must run the "
            "same programs. Use interruptible=False."
        )


def _filter_start(key, filter, ensemble, n_cycles, noise_chol):
    """The per-cycle inputs of `run_filter` and its initial state."""
    keys = jax.random.split(key, n_cycles)
    noise_factor = None if noise_chol is None else noise_chol.T.astype(ensemble.dtype)
    return jnp.arange(1, n_cycles + 1), keys, noise_factor, filter.init(ensemble)


_filter_start_jit = eqx.filter_jit(_filter_start)


def _run_filter(
    key,
    flow,
    obs_op,
    filter,
    ensemble,
    ys,
    t0,
    dt,
    noise_chol,
    store,
    likelihood,
    interruptible,
    observe=False,
    members=None,
):
    """`run_filter` after its checks (positional, for `eqx.filter_jit` and `assimilate`).

    Returns the `FilterResult` and the observations. Without `observe`, `ys` are the
    observations (K, obs); with it, `ys` is (keys, states) with leading axis K and cycle k's
    observation is `obs_op.sample(keys[k], states[k])`, drawn inside the loop just before its
    analysis (so an interrupted loop stops the drawing too; NaN for the cycles that did not
    run). `interruptible`: a host loop of compiled chunks (`interruptible_scan`), called
    outside jit with concrete inputs; otherwise one `lax.scan`, traceable.
    """
    n_cycles = jax.tree.leaves(ys)[0].shape[0]
    start = _filter_start_jit if interruptible else _filter_start
    steps, keys, noise_factor, state0 = start(key, filter, ensemble, n_cycles, noise_chol)
    state0 = FilterState(_constrain(state0.ensemble, members), state0.log_weights)
    spec = (flow, obs_op, filter, t0, dt, noise_factor, store, likelihood, observe, members)
    xs = (steps, ys, keys)
    if interruptible:
        _, out, n_run = interruptible_scan(_cycle, state0, xs, n_cycles, operands=spec)
        out["completed"] = jnp.asarray(np.arange(n_cycles) < n_run)
    else:
        _, out = jax.lax.scan(lambda state, x: _cycle(spec, state, x), state0, xs)
        out["completed"] = jnp.ones(n_cycles, dtype=bool)
    observations = out.pop("observations") if observe else ys
    return FilterResult(**out), observations


@eqx.filter_jit
def _run_filter_jit(*args) -> FilterResult:
    return _run_filter(*args)[0]


def _check_filter(filter) -> None:
    if not isinstance(filter, AbstractFilter):
        raise TypeError(
            f"`filter` must be an AbstractFilter (an ensemble Kalman or particle filter), got "
            f"{type(filter).__name__}."
        )


def run_filter(
    key: Key,
    flow: FlowFn,
    obs_op: AbstractObservation,
    filter: AbstractFilter,
    initial_ensemble: Ensemble,
    observations: Float[Array, "time obs"],
    *,
    t0: float = 0.0,
    dt: float,
    process_noise_chol: Float[Array, "dim dim"] | None = None,
    store_ensembles: bool = False,
    compute_likelihood: bool = True,
    interruptible: bool = False,
    devices: Sequence[Any] | None = None,
) -> FilterResult:
    """Filter a sequence of observations: `lax.scan` over cycles of forecast and analysis.

    Cycle k (1..K) forecasts every member with `vmap(flow)` from t0 + (k-1) dt to t0 + k dt,
    adds process noise `process_noise_chol @ z` if given, then calls the analysis with
    `observations[k-1]`. Works for real data (no truth needed) and is differentiable with
    respect to anything inside `flow` (e.g. model parameters) for filters whose analysis is.

    Arguments:
        key: PRNG key (split once per cycle).
        flow: the model step `flow(y, t0, t1)`.
        obs_op: the observation model.
        filter: an ensemble Kalman filter or a particle filter.
        initial_ensemble: members at t0, (N >= 2, dim), equally weighted.
        observations: (K, obs).
        dt: time between observations.
        process_noise_chol: optional Cholesky factor of additive model noise per cycle.
        store_ensembles: keep every analysis ensemble and its log-weights (memory K N dim).
        compute_likelihood: report the filter's per-cycle log-likelihood (`FilterInfo`;
            NaN when off, and the ensemble Kalman filters' Gaussian likelihood is then not
            computed).
        interruptible: run the cycles from the host in compiled chunks of about
            `jaxsci._interrupts.CHUNK_SECONDS` each (the same numbers as one compiled scan)
            and stop after the running chunk on a Ctrl-C inside a
            `jaxsci.deferred_interrupts()` block: the remaining cycles are then NaN
            (`completed` False). Needs concrete inputs (a TypeError under `jit`, `vmap` or
            `grad`); not differentiable.
        devices: shard the members over these devices (e.g. `jax.devices()`: all of them,
            those of every process in a multi-process run, see `jaxsci.distributed`); the
            ensemble size must be a multiple of their number. The forecasts run in parallel
            and the analysis' ensemble means and anomaly products become reductions across
            devices (collectives); the results are those of one device up to floating-point
            rounding (a different summation order), and come back whole on every process.
            None (default): no placement.
    """
    _check_filter(filter)
    check_ensemble(initial_ensemble, obs_op, "initial_ensemble")
    _check_interruptible(devices, interruptible)
    members = _member_sharding(devices, initial_ensemble.shape[0], "`initial_ensemble`")
    obs_op.check_observation(observations, "observations")
    check_ndim("observations", observations, 2, "(time, obs)")
    check_positive("dt", dt)
    options = (
        t0,
        float(dt),
        process_noise_chol,
        bool(store_ensembles),
        bool(compute_likelihood),
        bool(interruptible),
    )
    if members is not None:
        initial_ensemble = place(initial_ensemble, members)
    args = (key, flow, obs_op, filter, initial_ensemble, observations, *options)
    if interruptible:
        require_concrete("run_filter(..., interruptible=True)", args)
        return gather(_run_filter(*args, False, members)[0])
    return gather(_run_filter_jit(*args, False, members))


def climatological_spread(
    trajectory: Float[ArrayLike, "time dim"], where: Bool[ArrayLike, " time"] | None = None
) -> Float[Array, ""]:
    """The climatological spread of a trajectory: sqrt(mean_i var_t x_i(t)).

    The root of the time variance of each state component (population variance, ddof 0, about
    that component's time mean), averaged over components: the RMS error of the best constant
    estimate of the state (the time mean), the scale against which `assimilate` judges whether
    a filter has lost the truth. Computed from a twin experiment's own truth it needs a run
    long enough to visit the attractor; for short runs pass a threshold computed from a long
    free run, `DIVERGENCE_FRACTION * climatological_spread(rollout(flow, x0, n, dt=dt))`.
    NaN when the trajectory is not finite; 0 for a steady one.

    Arguments:
        trajectory: states at successive times, (time >= 1, dim).
        where: optional mask of the times to use, (time,) (e.g. the completed cycles of an
            interrupted run); NaN when it selects none.

    Returns:
        A scalar of the trajectory's dtype.
    """
    trajectory = jnp.asarray(trajectory)
    check_ndim("trajectory", trajectory, 2, "(time, dim)")
    if where is None:
        return jnp.sqrt(jnp.mean(jnp.var(trajectory, axis=0)))
    mask = jnp.broadcast_to(jnp.asarray(where, dtype=bool)[:, None], trajectory.shape)
    return jnp.sqrt(jnp.mean(jnp.var(trajectory, axis=0, where=mask)))


class AssimilationResult(eqx.Module):
    """Output of the twin experiment `assimilate`.

    Attributes:
        times: analysis times t_k = k dt, (K,).
        truth: the true state at the analysis times, (K, dim).
        observations: (K, obs).
        filter: the per-cycle `FilterResult`.
        rmse_f, rmse_a: per-cycle RMS over state components of (mean - truth), (K,).
        rmse_a_mean: DAPPER's rmse.a: the plain time-average of `rmse_a` over cycles with
            t_k > burn_in (not the root of an averaged MSE).
        spread_a_mean: the same average of the analysis spread.
        diverged_cycles: per cycle, non-finite members or rmse_a > threshold, (K,).
        diverged: any non-finite analysis, or `rmse_a_mean` > threshold (or non-finite).
        divergence_threshold: the threshold used: the user's, or `DIVERGENCE_FRACTION` x
            `climatological_spread`.
        climatological_spread: `climatological_spread(truth)` over all K cycles (the
            completed ones of an interrupted run).
        divergence_rule: how the threshold was obtained, in words.
    """

    times: Float[Array, " time"]
    truth: Float[Array, "time dim"]
    observations: Float[Array, "time obs"]
    filter: FilterResult
    rmse_f: Float[Array, " time"]
    rmse_a: Float[Array, " time"]
    rmse_a_mean: Float[Array, ""]
    spread_a_mean: Float[Array, ""]
    diverged_cycles: Bool[Array, " time"]
    diverged: Bool[Array, ""]
    divergence_threshold: Float[Array, ""]
    climatological_spread: Float[Array, ""]
    divergence_rule: str = eqx.field(static=True)

    def metrics(self) -> dict:
        """rmse_a, spread_a, n_cycles, diverged (and mean ESS, rmse_f, the divergence
        threshold, the truth's climatological spread and the rule in words) as Python
        scalars, over the completed cycles; an interrupted run adds `partial: True` and the
        planned `n_cycles_planned`."""
        done = self.filter.completed
        n_done = int(jnp.sum(done))
        out = {
            "rmse_a": float(self.rmse_a_mean),
            "spread_a": float(self.spread_a_mean),
            # means over no cycle are NaN, never 0
            "rmse_f": float(jnp.mean(self.rmse_f, where=done)),
            "ess_mean": float(jnp.mean(self.filter.ess, where=done)),
            "log_likelihood": float(jnp.sum(self.filter.log_likelihood, where=done)),
            "n_cycles": n_done,
            "diverged": bool(self.diverged),
            "divergence_threshold": float(self.divergence_threshold),
            "climatological_spread": float(self.climatological_spread),
            "divergence_rule": self.divergence_rule,
        }
        if n_done < self.times.shape[0]:
            out.update(partial=True, n_cycles_planned=int(self.times.shape[0]))
        return out


def _divergence_rule(divergence_threshold: float | None) -> str:
    if divergence_threshold is None:
        return f"rmse_a > {DIVERGENCE_FRACTION:g} x climatological spread of the truth"
    return "rmse_a > the given divergence_threshold"


def _assimilate_start(key, x0, n_cycles, dt, ensemble_size, init_std, centre):
    """`assimilate`'s draws: the filter's key, the analysis times, the per-cycle observation
    keys and the initial ensemble."""
    key_obs, key_init, key_filter = jax.random.split(key, 3)
    dtype = x0.dtype
    times = (jnp.arange(1, n_cycles + 1) * dt).astype(dtype)
    # y_k = h(x_k) + r_k as `synthetic_observations(key_obs, obs_op, truth)` (the same key
    # per cycle, so the same numbers), but drawn cycle by cycle in the filter's loop: after
    # a Ctrl-C, no draws for the cycles that will not run.
    obs_keys = jax.random.split(key_obs, n_cycles)
    centre = x0 if centre is None else centre.astype(dtype)
    init = centre + init_std * jax.random.normal(
        key_init, (ensemble_size, x0.shape[0]), dtype=dtype
    )
    return key_filter, times, obs_keys, init


def _assimilate_score(times, truth, ys, res, burn_in, divergence_threshold, interruptible):
    """`assimilate`'s errors, averages and divergence verdict from the truth and the filter."""
    dtype = truth.dtype
    rmse_f = jnp.sqrt(jnp.mean((res.mean_f - truth) ** 2, axis=-1))
    rmse_a = jnp.sqrt(jnp.mean((res.mean_a - truth) ** 2, axis=-1))
    after = (times > burn_in) & res.completed  # completed: all unless interrupted
    count = jnp.sum(after)
    # An empty window (burn_in traced past the end) scores NaN, never 0.
    empty = count == 0
    safe = jnp.maximum(count, 1)
    rmse_a_mean = jnp.where(empty, jnp.nan, jnp.sum(jnp.where(after, rmse_a, 0.0)) / safe)
    spread_a_mean = jnp.where(empty, jnp.nan, jnp.sum(jnp.where(after, res.spread_a, 0.0)) / safe)
    clim = climatological_spread(truth, where=res.completed if interruptible else None)
    if divergence_threshold is None:
        # Lost = no better than a fraction of climatology (see DIVERGENCE_FRACTION); not a
        # multiple of the observation error, which misses a lost filter whenever the
        # observations are as noisy as the field itself varies.
        thr = DIVERGENCE_FRACTION * clim
    else:
        thr = jnp.asarray(divergence_threshold)
    thr = thr.astype(dtype)
    bad = res.completed & (~res.finite | ~jnp.isfinite(rmse_a))
    diverged_cycles = bad | (rmse_a > thr)
    # an empty window because the run was interrupted before it says nothing of divergence
    interrupted_early = empty & ~jnp.all(res.completed)
    diverged = jnp.any(bad) | (~interrupted_early & ~(rmse_a_mean <= thr))
    return AssimilationResult(
        times,
        truth,
        ys,
        res,
        rmse_f,
        rmse_a,
        rmse_a_mean,
        spread_a_mean,
        diverged_cycles,
        diverged,
        thr,
        clim,
        _divergence_rule(divergence_threshold),
    )


def _assimilate(key, flow, obs_op, filter, x0, n_cycles, dt, ensemble_size, *options):
    """`assimilate` after its checks (positional, for `eqx.filter_jit`). Interruptible: a
    host-level sequence of compiled calls (the draws, the truth's and the filter's chunked
    loops, the scores), the same numbers as the one compiled call."""
    (
        init_std,
        burn_in,
        store,
        divergence_threshold,
        noise_chol,
        likelihood,
        interruptible,
        centre,
        members,
    ) = options
    start = _assimilate_start_jit if interruptible else _assimilate_start
    key_filter, times, obs_keys, init = start(
        key, x0, n_cycles, dt, ensemble_size, init_std, centre
    )
    init = _constrain(init, members)
    truth = rollout(flow, x0, n_cycles, dt=dt, interruptible=interruptible)
    res, ys = _run_filter(
        key_filter,
        flow,
        obs_op,
        filter,
        init,
        (obs_keys, truth),
        0.0,
        dt,
        noise_chol,
        store,
        likelihood,
        interruptible,
        True,
        members,
    )
    score = _assimilate_score_jit if interruptible else _assimilate_score
    return score(times, truth, ys, res, burn_in, divergence_threshold, interruptible)


_assimilate_start_jit = eqx.filter_jit(_assimilate_start)
_assimilate_score_jit = eqx.filter_jit(_assimilate_score)
_assimilate_jit = eqx.filter_jit(_assimilate)


def assimilate(
    key: Key,
    flow: FlowFn,
    obs_op: AbstractObservation,
    filter: AbstractFilter,
    x0: Float[ArrayLike, " dim"],
    *,
    n_cycles: int,
    dt: float,
    ensemble_size: int,
    init_std: float = 1.0,
    burn_in: float = 0.0,
    store_ensembles: bool = False,
    divergence_threshold: float | None = None,
    process_noise_chol: Float[Array, "dim dim"] | None = None,
    compute_likelihood: bool = True,
    interruptible: bool = False,
    ensemble_centre: Float[ArrayLike, " dim"] | None = None,
    devices: Sequence[Any] | None = None,
) -> AssimilationResult:
    """Twin experiment: truth run, synthetic observations, and the filter over them.

    The truth starts at `x0` (no observation at t = 0) and is advanced with `flow` over
    `n_cycles` windows of length `dt` (`jaxsci.integrate.rollout`); y_k = h(x_k) + r_k. The
    initial ensemble is N(c, init_std^2 I) around a centre c. Then `run_filter`. Only means,
    spreads and scalars are stored unless `store_ensembles`.

    Two conventions for the start (DAPPER's Sakov & Oke 2008 setup has mu0 on the attractor
    and init_std^2 = 0.001):

    - centred on the truth (the default, `ensemble_centre=None`): c = x0, the members are
      x0 + init_std z_i, so the initial mean misses the truth by N(0, init_std^2 / N I) only,
      while the spread says init_std: the filter starts nearly exact and over-dispersed.
    - DAPPER's (`HiddenMarkovModel.simulate` draws the truth from X0, the filters draw their
      ensemble from X0 again): draw the truth x0 ~ N(mu0, init_std^2 I) yourself and pass
      `ensemble_centre=mu0`; truth and members are then independent draws from the same
      prior, the initial mean misses the truth by N(0, init_std^2 (1 + 1/N) I) and the
      spread is consistent with that error.

    Divergence: a cycle is flagged when a member is non-finite or its rmse_a exceeds the
    threshold, the run (`diverged`) when any cycle is non-finite or `rmse_a_mean` exceeds it.
    The threshold is `divergence_threshold` if given, else `DIVERGENCE_FRACTION` (0.5) times
    the truth's `climatological_spread` over the whole run: an analysis error above half the
    climatological spread leaves more than a quarter of the climatological variance
    unexplained, and the filter has lost the truth, at least for part of the run (a mean that
    tracks nothing errs by 1 to sqrt(2) spreads, a working filter by far less than 0.5). For
    a steady truth (spread 0) every error counts as diverged: pass a threshold there. The
    result reports the threshold, the spread and the rule (`AssimilationResult.metrics`).

    Pure and jitted; `jax.vmap` it over keys (seeds) and over array fields of `filter`
    (e.g. `Inflation(ETKF(), factor)`) to run a whole sweep as one compiled call.

    Arguments:
        key: PRNG key for observations, the initial ensemble and the filter.
        flow: model step `flow(y, t0, t1)` (e.g. `jaxsci.integrate.Flow`; for a field
            model, `jaxsci.integrate.FlattenedFlow`, so that states are vectors).
        obs_op: observation model.
        filter: ensemble Kalman filter (possibly wrapped in inflation) or particle filter.
        x0: initial truth.
        n_cycles, dt: number and length of assimilation windows.
        ensemble_size: members N (>= 2).
        init_std: standard deviation (>= 0) of the initial ensemble around its centre.
        burn_in: time before which cycles are left out of `rmse_a_mean` (t_k > burn_in kept).
        store_ensembles: also return all analysis ensembles.
        divergence_threshold: rmse (> 0) above which a run counts as diverged (default
            `DIVERGENCE_FRACTION` x the truth's climatological spread, see above).
        process_noise_chol: optional additive model noise for the filter's forecast.
        compute_likelihood: also compute the per-cycle log-likelihood.
        interruptible: as `run_filter` (the truth run too: `rollout(..., interruptible=True)`;
            the same numbers as a plain run): after a Ctrl-C in a
            `jaxsci.deferred_interrupts()` block the remaining cycles are skipped, and
            `rmse_a_mean`, `spread_a_mean` and `diverged` cover the completed cycles after
            `burn_in` (`filter.completed`).
        ensemble_centre: centre of the initial ensemble, shape of `x0` (default `x0`, the
            truth); the prior mean mu0 for DAPPER's convention (see above).
        devices: shard the members over these devices, as `run_filter` (the truth run is
            not sharded); `ensemble_size` must be a multiple of their number.
    """
    _check_filter(filter)
    x0 = jnp.asarray(x0)
    obs_op.check_state(x0, "x0")
    check_finite("x0", x0)
    ensemble_size = check_int("ensemble_size", ensemble_size, 2)
    n_cycles = check_int("n_cycles", n_cycles, 1)
    check_positive("dt", dt)
    check_positive("init_std", init_std, allow_zero=True)
    if divergence_threshold is not None:
        check_positive("divergence_threshold", divergence_threshold)
    if ensemble_centre is not None:
        ensemble_centre = jnp.asarray(ensemble_centre)
        check_shape("ensemble_centre", ensemble_centre, x0.shape, f"{tuple(x0.shape)} (that of x0)")
        check_finite("ensemble_centre", ensemble_centre)
    burn_in = finite_float("burn_in", burn_in)
    _check_interruptible(devices, interruptible)
    members = _member_sharding(devices, ensemble_size, "`ensemble_size`")
    dt_value = concrete(dt)
    if dt_value is not None and burn_in >= n_cycles * float(dt_value):
        length = n_cycles * float(dt_value)
        raise ValueError(
            f"`burn_in` must be less than the run length n_cycles x dt = {n_cycles} x "
            f"{float(dt_value):g} = {length:g}, got {burn_in:g}: no cycle would be left for "
            "rmse_a_mean and spread_a_mean."
        )
    options = (
        float(init_std),
        burn_in,
        bool(store_ensembles),
        divergence_threshold,
        process_noise_chol,
        bool(compute_likelihood),
        bool(interruptible),
        ensemble_centre,
        members,
    )
    args = (key, flow, obs_op, filter, x0, n_cycles, float(dt), ensemble_size, *options)
    if interruptible:
        require_concrete("assimilate(..., interruptible=True)", args)
        return gather(_assimilate(*args))
    return gather(_assimilate_jit(*args))
