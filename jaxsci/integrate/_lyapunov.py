"""Lyapunov exponents by tangent-linear propagation with QR re-orthonormalisation."""

import math
import warnings
from typing import Any

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._checks import is_concrete
from .._custom_types import Array, ArrayLike, Bool, Float, Key
from .._interrupts import interruptible_scan, require_concrete
from ._flow import Flow


class LyapunovResult(eqx.Module):
    """Estimated exponents and their running averages.

    Attributes:
        exponents: the first k exponents, per unit time, leading first, shape (k,). These are
            finite-time averages: they need not come out in decreasing order (close
            exponents can cross within their statistical error). Over the completed
            intervals of an interrupted run (NaN if none completed).
        running: the running estimate after each re-orthonormalisation, shape (n, k); NaN
            for the intervals an interrupted run did not reach.
        times: elapsed time after each re-orthonormalisation (after the transient), (n,).
        final_state: the state at the end of the run (of the completed intervals).
        completed: whether the interval ran, (n,): all True unless an `interruptible` run
            was stopped by Ctrl-C (as `jaxsci.filters.FilterResult.completed`).
    """

    exponents: Float[Array, " k"]
    running: Float[Array, "n k"]
    times: Float[Array, " n"]
    final_state: Float[Array, "..."]
    completed: Bool[Array, " n"]


def lyapunov_exponents(
    flow: Flow,
    y0: Float[Array, "..."],
    *,
    num_exponents: int = 1,
    interval: float = 1.0,
    num_intervals: int = 1000,
    transient: float = 0.0,
    t0: float = 0.0,
    key: Key | None = None,
    interruptible: bool = False,
) -> LyapunovResult:
    r"""The leading `num_exponents` Lyapunov exponents of a model (Benettin et al. 1980).

    The state is advanced by the flow map over `interval`; k tangent vectors Q are
    advanced by its linearisation (`jax.linearize`: one primal solve, k tangent solves),
    then re-orthonormalised W = Q' R. The exponents are the time averages of log|R_ii|:
    lambda_i = (1 / (n interval)) sum_n log|R_ii^(n)|. `transient` time units are run
    first (no averaging) to reach the attractor. The first column is the leading exponent;
    the finite-time estimates need not be in decreasing order (exponents closer than their
    statistical error can cross).

    Resolution: over one interval the k-th tangent direction shrinks relative to the
    leading one by about e^{(lambda_k - lambda_1) interval}; once that ratio nears the
    floating-point epsilon (lambda_k - lambda_1 below about log(eps) / interval: -159 for
    float32 at interval 0.1) the re-orthonormalisation cannot resolve it and its estimate
    saturates near that bound (Lorenz-63 in float32 at interval 2: -7.8 for -14.6). When an
    estimated gap (lambda_k - lambda_1) interval is below log(100 eps), a `UserWarning`
    names the exponents concerned (shorten `interval` or use float64).

    Arguments:
        flow: the model's flow map (`Flow(dynamics, dt, solver)`).
        y0: initial state.
        num_exponents: k, at most the state dimension.
        interval: time between re-orthonormalisations.
        num_intervals: number of intervals averaged over.
        transient: time integrated before averaging.
        t0: start time (for non-autonomous models).
        key: draws the initial tangent vectors (default: the first k unit vectors).
        interruptible: run the transient and the intervals from the host in compiled
            chunks of about `jaxsci._interrupts.CHUNK_SECONDS` each (the same numbers as
            one compiled run) and stop after the running chunk on a Ctrl-C inside a
            `jaxsci.deferred_interrupts()` block (a stop in the transient runs no
            interval); the result is then that of the completed intervals (`completed`):
            the same as a run asked for that many intervals. Needs concrete inputs (a
            TypeError under `jit`, `vmap` or `grad`); no gradient.

    The unresolved-exponent warning is given when the call is not traced (its estimates
    are concrete); called under `jax.jit` or `jax.vmap`, check the returned `exponents`
    yourself (the gap test above).
    """
    y0 = jnp.asarray(y0)
    flow.dynamics.check_state(y0, "y0")
    dim = y0.size
    if not 1 <= num_exponents <= dim:
        raise ValueError(f"`num_exponents` must be in [1, {dim}], got {num_exponents}.")
    if num_intervals < 1 or not interval > 0:
        raise ValueError("`num_intervals` must be >= 1 and `interval` > 0.")
    options = (num_exponents, float(interval), num_intervals, float(transient), float(t0))
    if interruptible:
        require_concrete("lyapunov_exponents(..., interruptible=True)", flow, y0, key)
        result = _lyapunov(flow, y0, key, *options, interruptible=True)
    else:
        result = _lyapunov_jit(flow, y0, key, *options, interruptible=False)
    if is_concrete(result.exponents):
        _warn_unresolved(np.asarray(result.exponents), interval=interval, dtype=y0.dtype)
    return result


def _lyapunov(
    flow, y0, key, num_exponents, interval, num_intervals, transient, t0, *, interruptible
):
    """`lyapunov_exponents` after its checks: one compiled program, or (interruptible) a host
    sequence of compiled calls with the same numbers."""
    shape = y0.shape
    # Tangents are pushed forward with `jax.jvp`; diffrax's default (checkpointed,
    # reverse-mode) adjoint cannot be differentiated in forward mode, so switch the flow to
    # `diffrax.ForwardMode` (same numerics, forward-mode-capable loop). Intervals and
    # transient pieces run as `Flow.window`s: for a whole number of steps a `lax.scan` of
    # solver steps, whose times may be traced without diffrax's `(t1 - t0) * dt0 >= 0` check
    # (an `eqx.error_if`, a host callback on CPU, which keeps the program out of JAX's
    # persistent compilation cache).
    flow = eqx.tree_at(lambda f: f.adjoint, flow, diffrax.ForwardMode())
    if transient > 0:
        # In chunks of at most `interval`, so one flow call never needs more than the
        # steps of one interval (a single long call could exceed the flow's max_steps and
        # silently return NaN).
        num_chunks = max(1, math.ceil(transient / interval))
        spec = (flow, t0, transient / num_chunks)
        chunks = jnp.arange(num_chunks)
        if interruptible:  # a stop here leaves no interval to run (the first check below)
            y0, _, _ = interruptible_scan(_warm, y0, chunks, num_chunks, operands=spec)
        else:
            y0, _ = jax.lax.scan(lambda y, i: _warm(spec, y, i), y0, chunks)
        t0 = t0 + transient
    start = _lyapunov_start_jit if interruptible else _lyapunov_start
    init = start(y0, key, num_exponents)
    spec = (flow, t0, interval, shape)
    steps = jnp.arange(num_intervals)
    if interruptible:
        (y_end, _, logsum), sums, n_run = interruptible_scan(
            _interval, init, steps, num_intervals, operands=spec
        )
        n_run = jnp.asarray(n_run)
    else:
        (y_end, _, logsum), sums = jax.lax.scan(lambda c, i: _interval(spec, c, i), init, steps)
        n_run = num_intervals
    # The elapsed times in float64 on the host, rounded once to the state's dtype: the
    # estimate after n intervals divides by the same number whether the run was asked for
    # n intervals or stopped after n.
    times = jnp.asarray(interval * np.arange(1, num_intervals + 1), dtype=y0.dtype)
    finish = _lyapunov_finish_jit if interruptible else _lyapunov_finish
    return finish(y_end.reshape(shape), logsum, sums, times, n_run)


def _warm(spec, y, i):
    """One piece of the transient (`spec`: flow, t0, piece length)."""
    flow, t0, piece = spec
    return flow.window(piece)(y, t0 + i * piece), None


def _lyapunov_start(y0, key, num_exponents):
    """The initial (state, tangents, log sums) of the averaging."""
    dim = y0.size
    if key is None:
        q0 = jnp.eye(dim, num_exponents, dtype=y0.dtype)
    else:
        q0, _ = jnp.linalg.qr(jax.random.normal(key, (dim, num_exponents), y0.dtype))
    return y0.reshape(-1), q0, jnp.zeros(num_exponents, y0.dtype)


def _interval(spec, carry, i):
    """Interval i: advance the state and its tangents, re-orthonormalise, add log|R_ii|
    (`spec`: flow, t0 after the transient, interval, state shape)."""
    flow, t0, interval, shape = spec
    y, q, logsum = carry
    t = t0 + i * interval

    window = flow.window(interval)

    def step(yf):
        return window(yf.reshape(shape), t).reshape(-1)

    y1, lin = jax.linearize(step, y)
    w = jax.vmap(lin, in_axes=1, out_axes=1)(q)
    q1, r = jnp.linalg.qr(w)
    d = jnp.diagonal(r)
    q1 = q1 * jnp.where(d < 0, -1.0, 1.0).astype(q1.dtype)
    logsum = logsum + jnp.log(jnp.abs(d))
    return (y1, q1, logsum), logsum


def _lyapunov_finish(final_state, logsum, sums, times, n_run):
    """The result from the log sums of the intervals that ran (`n_run`)."""
    num_intervals = times.shape[0]
    running = sums / times[:, None]
    completed = jnp.arange(num_intervals) < n_run
    # NaN when no interval completed, never 0
    elapsed = jnp.where(n_run > 0, times[jnp.maximum(n_run, 1) - 1], jnp.nan)
    return LyapunovResult(
        exponents=logsum / elapsed,
        running=running,
        times=times,
        final_state=final_state,
        completed=completed,
    )


_lyapunov_jit = eqx.filter_jit(_lyapunov)
_lyapunov_start_jit = eqx.filter_jit(_lyapunov_start)
_lyapunov_finish_jit = eqx.filter_jit(_lyapunov_finish)


def _unresolved(
    exponents: Float[ArrayLike, "... k"], interval: float, dtype: Any = None
) -> list[int]:
    """The (0-based) exponents not resolved at this `interval` and `dtype`: those whose
    estimated gap to the leading one, (lambda_k - lambda_1) interval, is below log(100 eps),
    in any of the runs when `exponents` holds several (leading axes). `dtype` defaults to
    that of `exponents`."""
    values = np.asarray(exponents, dtype=float)
    values = values.reshape(-1, values.shape[-1])
    eps = float(jnp.finfo(np.asarray(exponents).dtype if dtype is None else dtype).eps)
    gaps = (values - values[:, :1]) * float(interval)
    return np.flatnonzero((gaps < math.log(100 * eps)).any(axis=0)).tolist()


def _warn_unresolved(exponents: np.ndarray, *, interval: float, dtype) -> None:
    """Warn when an estimated gap (lambda_k - lambda_1) interval is below log(100 eps): that
    direction is not resolved at this `interval` and `dtype` (`_unresolved`; on the
    host after the compiled run, so that the program holds no callback)."""
    which = _unresolved(exponents, interval, dtype)
    if not which:
        return
    values = np.asarray(exponents, dtype=float).reshape(-1, np.shape(exponents)[-1])
    bound = math.log(float(jnp.finfo(dtype).eps)) / float(interval)
    warnings.warn(
        f"Lyapunov exponent(s) {', '.join(str(int(k) + 1) for k in which)} (estimates "
        f"{', '.join(f'{values[0, k]:.4g}' for k in which)}) are not resolved: over an "
        f"interval of {float(interval):g} their direction shrinks to within 100x the "
        f"{jnp.dtype(dtype).name} rounding of the leading one (exponent gaps below about "
        f"log(eps)/interval = {bound:.4g} cannot be measured). Shorten `interval` or use "
        "float64.",
        UserWarning,
        stacklevel=3,
    )
