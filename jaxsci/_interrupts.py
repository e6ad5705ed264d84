"""Ctrl-C inside long compiled loops: `deferred_interrupts` and host-chunked `interruptible_scan`.

While the main thread waits on a compiled call, CPython runs no Python signal handler: a
Ctrl-C (SIGINT) raises `KeyboardInterrupt` only once the call returns, which for a long
`lax.scan` can be minutes. So a long loop that must stop on Ctrl-C (`interruptible_scan`) is
run from the host as repeated calls of one compiled chunk program, each a short stretch of
the loop (about `CHUNK_SECONDS`), with the loop state carried from call to call; between two
chunks the host checks for a Ctrl-C (`stop_requested`). The compiled program holds no host
callback, so JAX's persistent compilation cache can store it (JAX never stores a program
with a callback).

Inside `deferred_interrupts()` a Ctrl-C is recorded instead of raised: the C-level handler
writes it to a wakeup pipe (`signal.set_wakeup_fd`) at once, the chunk loop sees it after the
running chunk and stops, the caller then sees `flag.requested`, keeps what was computed and
raises `KeyboardInterrupt` itself. A second Ctrl-C raises at once (when the main thread next
runs Python). Outside such a block a Ctrl-C raises `KeyboardInterrupt` between two chunks.
"""

import contextlib
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp

from ._checks import is_concrete
from ._custom_types import Array, PyTree

#: Target wall time (seconds) of one compiled chunk of `interruptible_scan`: a Ctrl-C stops
#: the loop at the end of the running chunk, so within about this time. A chunk call costs
#: about 0.1 ms of dispatch and synchronisation, under 0.1 % of a chunk this long.
CHUNK_SECONDS = 0.2
#: Steps per chunk of every `interruptible_scan` called without `chunk` (the interruptible
#: drivers); None (default) adapts the length to `CHUNK_SECONDS`. A fixed length makes where
#: an interrupted run stops predictable (tests).
CHUNK_STEPS: int | None = None
#: Growth bound of the chunk length from one call to the next (the first call also compiles
#: and is timed long, so the length grows from 1 step by at most this factor per call).
_CHUNK_GROWTH = 4


class InterruptFlag:
    """Whether a Ctrl-C arrived inside a `deferred_interrupts()` block."""

    def __init__(self) -> None:
        self._requested = False
        self._handled = 0  # SIGINTs seen by the Python-level handler
        self._read_fd: int | None = None

    @property
    def requested(self) -> bool:
        """True once a SIGINT was received in the block (also read from the wakeup pipe, so
        it is true while the main thread is still blocked in a compiled call)."""
        if not self._requested and self._read_fd is not None:
            try:
                data = os.read(self._read_fd, 512)
            except (BlockingIOError, OSError):
                data = b""
            if signal.SIGINT in data:
                self._requested = True
        return self._requested

    def _record(self) -> None:
        self._handled += 1
        self._requested = True
        if self._handled > 1:
            raise KeyboardInterrupt


_active: list[InterruptFlag] = []
#: Whether a Ctrl-C arrived inside `remembered_interrupts()` (raised then, but perhaps lost).
_remembered = [False]


@contextlib.contextmanager
def remembered_interrupts() -> Iterator[None]:
    """Ctrl-C raises `KeyboardInterrupt` as usual inside the block, and is also remembered:
    a `KeyboardInterrupt` swallowed by a bare `except:` in a dependency (jax's tracing has a
    few, e.g. around `operator.index` of every shape dimension) is raised again by the next
    `check_interrupted()` or `deferred_interrupts()`, and `interruptible_scan` loops stop
    after their running chunk. Main thread only; elsewhere a no-op."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        _remembered[0] = True
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        _remembered[0] = False


def check_interrupted() -> None:
    """Raise `KeyboardInterrupt` if a Ctrl-C arrived in an enclosing
    `remembered_interrupts()` block (a host check between compiled calls)."""
    if _remembered[0]:
        raise KeyboardInterrupt


@contextlib.contextmanager
def deferred_interrupts() -> Iterator[InterruptFlag]:
    """Record Ctrl-C inside the block instead of raising `KeyboardInterrupt`.

    Yields an `InterruptFlag`; `interruptible_scan` loops see the interrupt at the end of
    their running chunk (the main thread is blocked in the chunk's compiled call until then).
    After the block the caller checks `flag.requested`, saves what it has, and raises
    `KeyboardInterrupt`. A second Ctrl-C in the block raises at once. Outside the main
    thread the block is a no-op (the flag stays False) and the signal is left alone.
    """
    check_interrupted()  # one that a dependency swallowed before the block
    flag = InterruptFlag()
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return

    def handler(signum, frame):
        flag._record()

    read_fd, write_fd = os.pipe()
    os.set_blocking(read_fd, False)
    os.set_blocking(write_fd, False)
    previous_handler = signal.signal(signal.SIGINT, handler)
    previous_fd = signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
    flag._read_fd = read_fd
    _active.append(flag)
    try:
        yield flag
    finally:
        _active.remove(flag)
        # reading it once more catches a signal whose Python handler has not run yet
        _ = flag.requested
        signal.set_wakeup_fd(previous_fd)
        signal.signal(signal.SIGINT, previous_handler)
        flag._read_fd = None
        os.close(read_fd)
        os.close(write_fd)


def stop_requested() -> bool:
    """On the host: whether a Ctrl-C arrived in an enclosing `deferred_interrupts()` block
    (read from its wakeup pipe, so also while no Python handler has run yet) or in a
    `remembered_interrupts()` block."""
    return _remembered[0] or any(flag.requested for flag in _active)


def _empty_like(shape: jax.ShapeDtypeStruct, length: int) -> Array:
    """(length, *shape) filled with NaN (inexact dtypes), else zeros (False for bool)."""
    fill = jnp.nan if jnp.issubdtype(shape.dtype, jnp.inexact) else 0
    return jnp.full((length, *shape.shape), fill, dtype=shape.dtype)


@eqx.filter_jit(donate="all-except-first")
def _run_chunk(fixed, carry, outputs):
    """Steps start..stop-1 of the loop: one compiled program for every chunk of a loop (the
    bounds are array operands), updating the carry and the output buffers in place (both
    donated)."""
    f, operands, xs, start, stop = fixed

    def body(k, state):
        carry, outputs = state
        x = jax.tree.map(lambda leaf: leaf[k], xs)
        carry, y = f(operands, carry, x)
        outputs = jax.tree.map(lambda buf, v: buf.at[k].set(v), outputs, y)
        return carry, outputs

    return jax.lax.fori_loop(start, stop, body, (carry, outputs))


def _next_chunk(steps: int, seconds: float) -> int:
    """The next chunk length: `steps` scaled to last `CHUNK_SECONDS` at the rate just seen,
    grown at most `_CHUNK_GROWTH`-fold, at least 1."""
    target = int(steps * CHUNK_SECONDS / max(seconds, 1e-6))
    return max(1, min(_CHUNK_GROWTH * steps, target))


def require_concrete(what: str, *values: Any) -> None:
    """Raise a TypeError naming `what` if any of `values` is traced: a host loop of compiled
    chunks (`interruptible_scan`) cannot run under `jax.jit`, `jax.vmap` or `jax.grad`."""
    if not is_concrete(values):
        raise TypeError(
            f"{what} runs a host loop of compiled chunks (to stop on Ctrl-C) and needs "
            "concrete inputs: it cannot be called under jax.jit, jax.vmap or jax.grad. Call "
            "it outside any transformation, or pass interruptible=False (a single compiled "
            "lax.scan)."
        )


def interruptible_scan(
    f: Callable[[Any, Any, Any], tuple[Any, Any]],
    init: PyTree,
    xs: PyTree,
    length: int,
    *,
    operands: PyTree = None,
    chunk: int | None = None,
) -> tuple[PyTree, PyTree, int]:
    """`lax.scan(lambda c, x: f(operands, c, x), init, xs, length)` run from the host in
    compiled chunks, ending early after a Ctrl-C (`stop_requested`, checked between chunks).

    One compiled program (a `fori_loop` over steps start..stop-1, the bounds being operands)
    serves every chunk; the carry and preallocated output buffers are passed from call to
    call (donated: no copies), so the numbers do not depend on where the chunks end. The
    program holds no host callback: JAX's persistent compilation cache can keep it. The
    outputs of the steps that did not run are NaN (zeros for integer and boolean outputs).
    Returns (final carry, stacked outputs, number of steps run).

    `f` is part of the compiled program's identity: pass a module-level function and put
    everything it uses in `operands` (a pytree: arrays are operands of the program, other
    leaves are static), so that repeated calls reuse the compiled chunk. A host loop cannot be
    traced: `init`, `xs` and `operands` must be concrete (a TypeError otherwise). No
    gradients flow through it.

    Arguments:
        f: the step, `f(operands, carry, x) -> (carry, y)`.
        init: the initial carry (not modified: the first chunk works on a copy).
        xs: per-step inputs with leading axis `length`, or None.
        length: number of steps.
        operands: what `f` reads besides the carry and `x`.
        chunk: steps per compiled call; None (default): `CHUNK_STEPS`, whose default None
            adapts it so that a call lasts about `CHUNK_SECONDS` (starting from 1 step and
            growing at most 4-fold per call).
    """
    require_concrete("interruptible_scan", init, xs, operands)
    length = int(length)
    chunk = CHUNK_STEPS if chunk is None else chunk
    if chunk is not None and chunk < 1:
        raise ValueError(f"`chunk` must be a positive number of steps or None, got {chunk}.")
    carry = jax.tree.map(lambda leaf: jnp.array(leaf, copy=True), init)
    if length == 0:
        return carry, None, 0
    x_first = jax.tree.map(lambda leaf: leaf[0], xs)
    out_shapes = eqx.filter_eval_shape(f, operands, carry, x_first)[1]
    outputs = jax.tree.map(lambda s: _empty_like(s, length), out_shapes)
    start, steps = 0, 1 if chunk is None else int(chunk)
    while start < length and not stop_requested():
        stop = min(length, start + steps)
        bounds = (jnp.asarray(start, jnp.int32), jnp.asarray(stop, jnp.int32))
        seconds = time.perf_counter()
        carry, outputs = _run_chunk((f, operands, xs, *bounds), carry, outputs)
        jax.block_until_ready((carry, outputs))
        seconds = time.perf_counter() - seconds
        if chunk is None:
            steps = _next_chunk(stop - start, seconds)
        start = stop
    return carry, outputs, start
