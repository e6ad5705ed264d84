"""Lyapunov exponents by tangent-linear propagation with QR re-orthonormalisation."""

import functools
import math
import warnings

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._custom_types import Array, Bool, Float, Key
from .._interrupts import interruptible_scan
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


@eqx.filter_jit
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
        interruptible: check for Ctrl-C every few intervals (a host callback) inside a
            `jaxsci.deferred_interrupts()` block; after one, the run stops at the end of an
            interval a few intervals later (a stop in the transient runs none), and the
            result is that of the completed intervals (`completed`): the same as a run
            asked for that many intervals. A while loop: no reverse-mode gradient.
    """
    y0 = jnp.asarray(y0)
    flow.dynamics.check_state(y0, "y0")
    shape = y0.shape
    dim = y0.size
    if not 1 <= num_exponents <= dim:
        raise ValueError(f"`num_exponents` must be in [1, {dim}], got {num_exponents}.")
    if num_intervals < 1 or not interval > 0:
        raise ValueError("`num_intervals` must be >= 1 and `interval` > 0.")

    # Tangents are pushed forward with `jax.jvp`; diffrax's default (checkpointed,
    # reverse-mode) adjoint cannot be differentiated in forward mode, so switch the flow to
    # `diffrax.ForwardMode` (same numerics, forward-mode-capable loop).
    flow = eqx.tree_at(lambda f: f.adjoint, flow, diffrax.ForwardMode())
    if transient > 0:
        # In chunks of at most `interval`, so one flow call never needs more than the
        # steps of one interval (a single long call could exceed the flow's max_steps and
        # silently return NaN).
        num_chunks = max(1, math.ceil(transient / interval))
        chunk = transient / num_chunks

        def warm(y, i):
            return flow(y, t0 + i * chunk, t0 + (i + 1) * chunk), None

        chunks = jnp.arange(num_chunks)
        if interruptible:  # a stop here leaves no interval to run (the first check below)
            y0, _, _ = interruptible_scan(warm, y0, chunks, num_chunks)
        else:
            y0, _ = jax.lax.scan(warm, y0, chunks)
        t0 = t0 + transient
    if key is None:
        q0 = jnp.eye(dim, num_exponents, dtype=y0.dtype)
    else:
        q0, _ = jnp.linalg.qr(jax.random.normal(key, (dim, num_exponents), y0.dtype))

    def body(carry, i):
        y, q, logsum = carry
        t = t0 + i * interval

        def step(yf):
            return flow(yf.reshape(shape), t, t + interval).reshape(-1)

        y1, lin = jax.linearize(step, y)
        w = jax.vmap(lin, in_axes=1, out_axes=1)(q)
        q1, r = jnp.linalg.qr(w)
        d = jnp.diagonal(r)
        q1 = q1 * jnp.where(d < 0, -1.0, 1.0).astype(q1.dtype)
        logsum = logsum + jnp.log(jnp.abs(d))
        return (y1, q1, logsum), logsum

    init = (y0.reshape(-1), q0, jnp.zeros(num_exponents, y0.dtype))
    steps = jnp.arange(num_intervals)
    if interruptible:
        (y_end, _, logsum), sums, n_run = interruptible_scan(body, init, steps, num_intervals)
    else:
        (y_end, _, logsum), sums = jax.lax.scan(body, init, steps)
        n_run = num_intervals
    # The elapsed times in float64 on the host, rounded once to the state's dtype: the
    # estimate after n intervals divides by the same number whether the run was asked for
    # n intervals or stopped after n.
    times = jnp.asarray(interval * np.arange(1, num_intervals + 1), dtype=y0.dtype)
    running = sums / times[:, None]
    completed = jnp.arange(num_intervals) < n_run
    # NaN when no interval completed, never 0
    elapsed = jnp.where(n_run > 0, times[jnp.maximum(n_run, 1) - 1], jnp.nan)
    exponents = logsum / elapsed
    # The run is compiled: the check runs on the host when the values exist.
    jax.debug.callback(
        functools.partial(_warn_unresolved, interval=interval, dtype=y0.dtype), exponents
    )
    return LyapunovResult(
        exponents=exponents,
        running=running,
        times=times,
        final_state=y_end.reshape(shape),
        completed=completed,
    )


def _warn_unresolved(exponents, *, interval: float, dtype) -> None:
    """Warn when an estimated gap (lambda_k - lambda_1) interval is below log(100 eps): that
    direction is not resolved at this `interval` and `dtype` (a host callback; under vmap
    every run's estimates are checked)."""
    values = np.asarray(exponents, dtype=float).reshape(-1, np.shape(exponents)[-1])
    floor = math.log(100 * float(jnp.finfo(dtype).eps))
    gaps = (values - values[:, :1]) * float(interval)
    flags = (gaps < floor).any(axis=0)
    if not flags.any():
        return
    which = np.flatnonzero(flags)
    bound = math.log(float(jnp.finfo(dtype).eps)) / float(interval)
    warnings.warn(
        f"Lyapunov exponent(s) {', '.join(str(int(k) + 1) for k in which)} (estimates "
        f"{', '.join(f'{values[0, k]:.4g}' for k in which)}) are not resolved: over an "
        f"interval of {float(interval):g} their direction shrinks to within 100x the "
        f"{jnp.dtype(dtype).name} rounding of the leading one (exponent gaps below about "
        f"log(eps)/interval = {bound:.4g} cannot be measured). Shorten `interval` or use "
        "float64.",
        UserWarning,
        stacklevel=2,
    )
