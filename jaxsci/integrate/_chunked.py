"""`simulate_chunked`: a long trajectory of an autonomous model as equal compiled chunks."""

import math
import time
from typing import NamedTuple

import diffrax
import equinox as eqx
import jax.numpy as jnp
import numpy as np

from .._checks import check_int, check_positive
from .._custom_types import Array, Float
from .._interrupts import check_interrupted
from .._progress import progress_bar
from ..dynamics import AbstractDynamics
from ._simulate import raise_if_failed, simulate


class ChunkedSimulation(NamedTuple):
    """Output of `simulate_chunked`.

    Attributes:
        ts: save times t0, t0 + every, ..., (saves,).
        ys: the states at them, the initial state (after the spin-up) first, (saves, *state).
        every: the save interval used (span / number of saves).
        num_steps, num_steps_spinup: solver steps of the run and of the spin-up.
        compile_seconds: the first chunk's excess wall time over the median later chunk
            (its compilation; 0 with one chunk).
        run_seconds: wall time of the chunks, compilation excluded.
        spinup_seconds: wall time of the spin-up, its compilation included.
    """

    ts: Float[np.ndarray, " save"]
    ys: Float[np.ndarray, " save *state"]
    every: float
    num_steps: int
    num_steps_spinup: int
    compile_seconds: float
    run_seconds: float
    spinup_seconds: float


def _chunk_plan(span: float | int, every: float | int, chunks: int) -> tuple[int, int, int]:
    """(number of saves after t0, saves per chunk, number of chunks) for `span` saved every
    `every` in at most `chunks` equal chunks (the last chunk may run past the span)."""
    n_saves = max(1, round(span / every))
    per_chunk = math.ceil(n_saves / chunks)
    return n_saves, per_chunk, math.ceil(n_saves / per_chunk)


def simulate_chunked(
    dynamics: AbstractDynamics,
    y0: Float[Array, " *state"],
    span: float,
    every: float,
    *,
    chunks: int = 20,
    t0: float = 0.0,
    spinup: float = 0.0,
    solver: diffrax.AbstractSolver | None = None,
    dt0: float | None = None,
    stepsize_controller: diffrax.AbstractStepSizeController | None = None,
    max_steps: int | None = None,
    progress: bool = False,
    description: str = "simulate",
) -> ChunkedSimulation:
    """Integrate an autonomous model over `span`, saving every `every`, in equal chunks.

    One `simulate` call per chunk with the same compiled program (chunk k integrates
    `per_chunk` saves from the last state of chunk k - 1), so a progress bar can follow a
    long run and compilation is timed apart from it. Each chunk restarts the clock at zero,
    which is exact for an autonomous model (a vector field that does not read t), as every
    `jaxsci.dynamics` model is; the saved times are labelled t0, t0 + every, ... The run
    starts after `spinup` time units integrated from `y0` and discarded. When `every` does
    not divide `span`, the saves are spaced span / round(span / every) apart (`every` in
    the result).

    Arguments:
        dynamics: an autonomous model.
        y0: the initial state (before the spin-up).
        span: the time integrated after the spin-up (> 0).
        every: the save interval (> 0).
        chunks: the most chunks to use (>= 1).
        t0: the time label of the first saved state.
        spinup: time integrated first and discarded (>= 0).
        solver, dt0, stepsize_controller, max_steps: as `simulate`.
        progress: show a tqdm progress bar in time units.
        description: the progress bar's label.

    Returns:
        `ChunkedSimulation` with NumPy arrays.
    """
    check_positive("span", span)
    check_positive("every", every)
    check_positive("spinup", spinup, allow_zero=True)
    chunks = check_int("chunks", chunks)
    n_saves, per_chunk, n_chunks = _chunk_plan(span, every, chunks)
    every = span / n_saves if not math.isclose(n_saves * every, span, rel_tol=1e-6) else every
    y0 = jnp.asarray(y0)

    def advance(y, ts):
        # throw=False, and simulate's errors raised on the host after each call
        # (`checked`): the compiled chunk holds no `eqx.error_if` of simulate's own
        return simulate(
            dynamics,
            y,
            ts,
            solver=solver,
            dt0=dt0,
            stepsize_controller=stepsize_controller,
            max_steps=max_steps,
            throw=False,
        )

    def checked(traj):
        raise_if_failed(traj, max_steps)
        return traj.ys, traj.num_steps

    chunk_ts = jnp.asarray(every * np.arange(per_chunk + 1), dtype=y0.dtype)
    chunk = eqx.filter_jit(lambda y: advance(y, chunk_ts))
    n_steps_spinup, spinup_seconds = 0, 0.0
    if spinup > 0:
        spin_ts = jnp.asarray([0.0, spinup], dtype=y0.dtype)
        start = time.perf_counter()
        ys, steps = checked(eqx.filter_jit(lambda y: advance(y, spin_ts))(y0))
        y0, n_steps_spinup = ys[-1], int(steps)
        spinup_seconds = time.perf_counter() - start
    pieces, n_steps, y, seconds = [np.asarray(y0)[None]], 0, y0, []
    bar = progress_bar(progress, total=round(span, 6), desc=description, unit="t")
    with bar:
        for _ in range(n_chunks):
            check_interrupted()  # a Ctrl-C that jax's tracing swallowed
            start = time.perf_counter()
            ys, steps = checked(chunk(y))
            y = ys[-1]
            pieces.append(np.asarray(ys[1:]))
            seconds.append(time.perf_counter() - start)
            n_steps += int(steps)
            bar.update(round(per_chunk * every, 6))
    steady = float(np.median(seconds[1:])) if len(seconds) > 1 else 0.0
    compile_seconds = max(seconds[0] - steady, 0.0)
    return ChunkedSimulation(
        ts=t0 + every * np.arange(n_saves + 1),
        ys=np.concatenate(pieces)[: n_saves + 1],
        every=every,
        num_steps=n_steps,
        num_steps_spinup=n_steps_spinup,
        compile_seconds=compile_seconds,
        run_seconds=sum(seconds) - compile_seconds,
        spinup_seconds=spinup_seconds,
    )
