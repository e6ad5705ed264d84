"""Ctrl-C inside long compiled loops: `deferred_interrupts` and the in-graph `stop_requested`.

While the main thread waits on a compiled call, CPython runs no Python signal handler: a
Ctrl-C (SIGINT) raises `KeyboardInterrupt` only once the call returns, which for a long
`lax.scan` can be minutes. Inside `deferred_interrupts()` the signal is instead recorded:
the C-level handler writes it to a wakeup pipe (`signal.set_wakeup_fd`) at once, and a
compiled loop that calls `stop_requested(step)` reads that pipe from a host callback every
`every` steps and can end early (`interruptible_scan`: a `lax.scan` that stops). The caller
then sees `flag.requested`, keeps what was computed and raises `KeyboardInterrupt` itself. A
second Ctrl-C raises at once (when the main thread next runs Python).
"""

import contextlib
import os
import signal
import threading
from collections.abc import Callable, Iterator
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ._custom_types import Array, Bool, Int, PyTree

#: Steps between two host checks of `stop_requested` (a few microseconds each).
CHECK_EVERY = 16


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
    `check_interrupted()` or `deferred_interrupts()`, and compiled loops stop at their next
    `stop_requested`. Main thread only; elsewhere a no-op."""
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

    Yields an `InterruptFlag`; compiled loops that call `stop_requested` see the interrupt
    within one check interval, even while the main thread is blocked in the compiled call.
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


def _poll(step) -> np.ndarray:
    del step  # an operand only so that the call is not hoisted out of the loop
    return np.asarray(_remembered[0] or any(flag.requested for flag in _active))


def stop_requested(step: Int[Array, ""], every: int = CHECK_EVERY) -> Bool[Array, ""]:
    """In a compiled loop: whether a Ctrl-C arrived in an enclosing `deferred_interrupts()`.

    Checked on the host (a callback) at steps that are multiples of `every`, False in
    between and whenever no `deferred_interrupts()` block is active. `step` must not be
    batched (a loop counter), so that the check is one callback per step even under
    `jax.vmap`. No gradient flows through it.
    """
    step = jax.lax.stop_gradient(jnp.asarray(step))
    shape = jax.ShapeDtypeStruct((), jnp.bool_)

    def check():
        return jax.pure_callback(_poll, shape, step, vmap_method="broadcast_all")

    return jax.lax.cond(step % every == 0, check, lambda: jnp.asarray(False))


def _empty_like(shape: jax.ShapeDtypeStruct, length: int) -> Array:
    """(length, *shape) filled with NaN (inexact dtypes), else zeros (False for bool)."""
    fill = jnp.nan if jnp.issubdtype(shape.dtype, jnp.inexact) else 0
    return jnp.full((length, *shape.shape), fill, dtype=shape.dtype)


def interruptible_scan(
    f: Callable[[Any, Any], tuple[Any, Any]], init: PyTree, xs: PyTree, length: int
) -> tuple[PyTree, PyTree, Int[Array, ""]]:
    """`lax.scan(f, init, xs, length)` that ends early after a Ctrl-C in an enclosing
    `deferred_interrupts()` block (checked with `stop_requested` every `CHECK_EVERY` steps).

    A `lax.while_loop` writing each step's output into preallocated arrays: the outputs of
    the steps that did not run are NaN (zeros for integer and boolean outputs). Returns
    (final carry, stacked outputs, number of steps run). Like any while loop it supports
    forward-mode but not reverse-mode differentiation; use `lax.scan` where gradients are
    needed. `xs` may be None (then `length` steps with x = None).
    """
    x_first = jax.tree.map(lambda x: x[0], xs)
    out_shapes = jax.eval_shape(f, init, x_first)[1]
    outputs = jax.tree.map(lambda s: _empty_like(s, length), out_shapes)

    def cond(state):
        k, _, _, stopped = state
        return (k < length) & ~stopped

    def body(state):
        k, carry, outputs, _ = state
        x = jax.tree.map(lambda xs_leaf: xs_leaf[k], xs)
        carry, y = f(carry, x)
        outputs = jax.tree.map(lambda buf, v: buf.at[k].set(v), outputs, y)
        return k + 1, carry, outputs, stop_requested(k + 1)

    start = (jnp.asarray(0), init, outputs, stop_requested(jnp.asarray(0)))
    n_run, carry, outputs, _ = jax.lax.while_loop(cond, body, start)
    return carry, outputs, n_run
