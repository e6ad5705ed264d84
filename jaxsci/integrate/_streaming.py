"""`streamed_ensemble`: an ensemble too big for one vmap, run in chunks of members with its
statistics streamed and (optionally) its outputs written into a preallocated array."""

import math
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from .._checks import check_callable, check_int, check_writable
from .._custom_types import Array, ArrayLike, Bool, Float, PyTree
from .._interrupts import check_interrupted
from .._progress import progress_bar


class Moments(NamedTuple):
    """Streaming statistics of the members seen so far, per output entry.

    Attributes:
        count: members merged, () float.
        mean: their mean, (*out).
        m2: the sum of squared deviations from that mean, (*out) (variance = m2 / (count - 1)).
        minimum, maximum: the extremes, (*out).
    """

    count: Float[Array, ""]
    mean: Float[Array, " *out"]
    m2: Float[Array, " *out"]
    minimum: Float[Array, " *out"]
    maximum: Float[Array, " *out"]


def empty_moments(shape: tuple[int, ...], dtype: Any) -> Moments:
    """The `Moments` of no members (count 0; min +inf, max -inf)."""
    # separate buffers (not one zeros array twice): the chunk program donates them
    return Moments(
        count=jnp.zeros((), dtype),
        mean=jnp.zeros(shape, dtype),
        m2=jnp.zeros(shape, dtype),
        minimum=jnp.full(shape, jnp.inf, dtype),
        maximum=jnp.full(shape, -jnp.inf, dtype),
    )


def merge_moments(
    acc: Moments, x: Float[Array, " chunk *out"], valid: Bool[Array, " chunk"]
) -> Moments:
    """Merge the `valid` rows of a chunk `x` into `acc`.

    The chunk's own count n_b, mean and sum of squared deviations M2_b (two passes over the
    chunk, so no cancellation inside it) are combined with the running ones by Chan, Golub &
    LeVeque (1979): delta = mean_b - mean_a, mean = mean_a + delta n_b / n,
    M2 = M2_a + M2_b + delta^2 n_a n_b / n, n = n_a + n_b. Invalid rows (the padding of a last,
    short chunk) count for nothing.
    """
    dtype = acc.mean.dtype
    x = x.astype(dtype)
    w = valid.astype(dtype).reshape((-1,) + (1,) * (x.ndim - 1))
    n_b = jnp.sum(valid.astype(dtype))
    safe_b = jnp.maximum(n_b, 1.0)
    mean_b = jnp.sum(w * x, axis=0) / safe_b
    m2_b = jnp.sum(w * (x - mean_b) ** 2, axis=0)
    n = acc.count + n_b
    safe = jnp.maximum(n, 1.0)
    delta = mean_b - acc.mean
    mask = w.astype(bool)
    return Moments(
        count=n,
        mean=acc.mean + delta * (n_b / safe),
        m2=acc.m2 + m2_b + delta**2 * (acc.count * n_b / safe),
        minimum=jnp.minimum(acc.minimum, jnp.min(jnp.where(mask, x, jnp.inf), axis=0)),
        maximum=jnp.maximum(acc.maximum, jnp.max(jnp.where(mask, x, -jnp.inf), axis=0)),
    )


class StreamedEnsemble(NamedTuple):
    """Output of `streamed_ensemble` (NumPy arrays).

    Attributes:
        final: the members' outputs, (N, *out), when kept (the `out` array when given), else
            None.
        mean: the ensemble mean of the outputs, (*out).
        variance: their ensemble variance (ddof 1), (*out).
        minimum, maximum: their extremes, (*out).
        reduced: the final accumulator of the user's `reduce`, else None.
        num_chunks: the chunks run.
        chunk_bytes: the compiled chunk program's memory (XLA's `memory_analysis`: argument +
            output + temporary bytes), the c W term of the memory formula.
        compile_seconds: tracing and compiling the chunk program.
        run_seconds: wall time of the chunks, compilation excluded.
    """

    final: np.ndarray | None
    mean: np.ndarray
    variance: np.ndarray
    minimum: np.ndarray
    maximum: np.ndarray
    reduced: PyTree
    num_chunks: int
    chunk_bytes: int
    compile_seconds: float
    run_seconds: float


def compiled_bytes(compiled: Any) -> int:
    """Argument + output + temporary bytes of a compiled XLA program (`memory_analysis`);
    aliased (donated) bytes counted once."""
    m = compiled.memory_analysis()
    return int(
        m.argument_size_in_bytes
        + m.output_size_in_bytes
        + m.temp_size_in_bytes
        - m.alias_size_in_bytes
    )


def _pad_chunk(chunk: np.ndarray, size: int) -> np.ndarray:
    """Pad a short last chunk to `size` rows by repeating its last member."""
    short = size - chunk.shape[0]
    if short == 0:
        return chunk
    return np.concatenate([chunk, np.repeat(chunk[-1:], short, axis=0)], axis=0)


#: Compiled chunk programs of recent `streamed_ensemble` calls, keyed on the function, the
#: reduction and the shapes, so that a driver calling it once per cycle with the same `fn`
#: (and time in `args`) compiles once. Few entries: each holds its function alive.
_COMPILED: dict[Any, Any] = {}
_CACHE_SIZE = 8


def _avals(tree: PyTree) -> Any:
    leaves, treedef = jax.tree.flatten(tree)
    return treedef, tuple((jnp.shape(x), jnp.result_type(x)) for x in leaves)


def streamed_ensemble(
    fn: Callable[..., Float[Array, " *out"]],
    members: Float[ArrayLike, " ens *state"],
    *,
    chunk_size: int,
    args: PyTree = None,
    keep: bool = True,
    out: ArrayLike | None = None,  # checked: a writable np.ndarray (named ValueError)
    reduce: Callable[[PyTree, Float[Array, " chunk *out"], Bool[Array, " chunk"]], PyTree]
    | None = None,
    reduce_init: PyTree = None,
    progress: bool = False,
) -> StreamedEnsemble:
    """Run `fn` on every member of a large ensemble, `chunk_size` members at a time.

    Each chunk of members goes through one compiled program, `jit(vmap(fn))` on `chunk_size`
    members (a short last chunk is padded by repeating its last member; the padding is
    dropped), which also merges the chunk's outputs into streaming statistics (mean,
    variance, min, max: `merge_moments`, Chan et al. 1979) and, if given, the user's
    reduction `acc = reduce(acc, outputs, valid)` (`valid` marks the real members of the
    chunk). The chunks run from a Python loop, so a progress bar can follow them, and each
    chunk's outputs are copied into `out` (a preallocated array, e.g. `members` itself for an
    in-place update, or a `np.memmap` on disk) or a new host array when `keep`, and dropped
    otherwise. Only one chunk's workspace is ever live, however many members there are.

    **Memory.** With N members, S_in and S_out the bytes of one member's input and output,
    and c = `chunk_size`, the peak resident memory is bounded by

        bytes <= N S_in + N S_out + c W + 5 S_out + R + K,

    - N S_in: `members`, when the caller holds them in RAM (a `np.memmap` is paged in one
      chunk at a time instead; a device array is first copied to the host).
    - N S_out: the kept outputs, in a new array when `keep` and no `out` is given (0 when
      `out` is given: it is the caller's array, e.g. `members` for an update in place, and 0
      when `keep=False`).
    - c W: the compiled chunk program: its arguments (the c members' inputs, S_in each),
      its outputs (their c outputs, S_out each) and its temporaries. For a fixed-step solver
      of s stages the temporaries are about 2 (s + 1) states per member (the s stage
      derivatives, the stage input, and the scan carry held twice), so W ~ S_in + S_out +
      2 (s + 1) S: 12 states for RK4 (XLA's figure for the RK4 `Flow.window` of Lorenz-96 is
      11.3). It is measured, not assumed: XLA's `memory_analysis` of the compiled program is
      returned as `chunk_bytes` (the accumulators' few S_out are included in it).
    - 5 S_out: the running accumulators (count, mean, M2, min, max) and their update.
    - R: the user's reduction accumulator, if any.
    - K: a constant, independent of N: the Python and JAX runtime and the compiled code
      (about 200-400 MB on CPU), and what the C allocator keeps of freed chunk buffers:
      glibc raises its mmap threshold after a large free (up to 32 MiB), so later chunk
      buffers come from per-thread heap arenas that stay resident (measured: ~13 MB for
      2,000-member Lorenz-96 chunks, ~50 MB for 10,000-member ones, ~150 MB for 100-member
      chunks of a 128^2 Navier-Stokes field); the environment variable
      MALLOC_MMAP_THRESHOLD_=65536 returns them.

    Arguments:
        fn: a function of one member's state (e.g. `lambda y: flow.window(10.0)(y, 0.0)`),
            returning one array, jax-traceable; `fn(y, args)` when `args` is given. The
            compiled program is cached for the same `fn` object (and shapes), so a loop that
            calls this with one `fn` and changing `args` (e.g. a start time) compiles once.
        members: the members' states, (N, *state): a NumPy array (or memmap) or a JAX array.
        chunk_size: members per compiled chunk (>= 1; capped at N).
        args: shared (not batched) arguments passed to every member, traced (a new value
            does not recompile).
        keep: store the outputs (else only the statistics are returned).
        out: a preallocated, writable (N, *out) NumPy array (or `np.memmap`) for the
            outputs (implies `keep`); may be
            `members` itself when fn preserves shape and dtype (each chunk is read before it
            is written, and chunks do not overlap).
        reduce: an optional extra streaming reduction `(acc, outputs, valid) -> acc`, traced
            into the chunk program.
        reduce_init: its initial accumulator (required with `reduce`; copied, so the
            caller's arrays stay usable).
        progress: show a progress bar over members.

    Returns:
        `StreamedEnsemble`.

    Raises:
        ValueError: naming `chunk_size`, `members`, `out` or `reduce_init` when invalid.
    """
    check_callable("fn", fn, "a function of one member's state")
    chunk_size = check_int("chunk_size", chunk_size, minimum=1)
    host = np.asarray(members)
    if host.ndim < 1 or host.shape[0] < 1:
        raise ValueError(
            f"`members` must have a leading member axis of size >= 1, got shape {host.shape}."
        )
    if reduce is not None and reduce_init is None:
        raise ValueError("`reduce_init` is required with `reduce`, got None.")
    n = host.shape[0]
    c = min(chunk_size, n)
    n_chunks = math.ceil(n / c)
    in_struct = jax.ShapeDtypeStruct((c, *host.shape[1:]), host.dtype)
    member = fn if args is None else (lambda y, a: fn(y, a))
    call_args = () if args is None else (args,)
    out_one = jax.eval_shape(member, jax.ShapeDtypeStruct(host.shape[1:], host.dtype), *call_args)
    if not isinstance(out_one, jax.ShapeDtypeStruct):
        raise ValueError(f"`fn` must return one array, got {type(out_one).__name__}.")
    out_shape, out_dtype = (n, *out_one.shape), np.dtype(out_one.dtype)
    if out is not None:
        out = check_writable("out", out, "the chunks are copied into")
        if tuple(out.shape) != out_shape or np.dtype(out.dtype) != out_dtype:
            raise ValueError(
                f"`out` must have shape {out_shape} and dtype {out_dtype}, got "
                f"{tuple(out.shape)} and {np.dtype(out.dtype)}."
            )
        keep = True
    elif keep:
        out = np.empty(out_shape, out_dtype)
    stat_dtype = out_dtype if jnp.issubdtype(out_dtype, jnp.floating) else jnp.result_type(float)

    def chunk_program(acc, extra, ys, count, shared):
        if args is None:
            outputs = jax.vmap(fn)(ys)
        else:
            outputs = jax.vmap(fn, in_axes=(0, None))(ys, shared)
        valid = jnp.arange(c) < count
        acc = merge_moments(acc, outputs, valid)
        if reduce is not None:
            extra = reduce(extra, outputs, valid)
        return acc, extra, outputs

    start = time.perf_counter()
    acc = empty_moments(out_one.shape, stat_dtype)
    # a copy: the chunk program donates (deletes) its accumulator, not the caller's init
    extra = None if reduce is None else jax.tree.map(lambda a: jnp.array(a, copy=True), reduce_init)
    cache_key = (fn, reduce, in_struct.shape, in_struct.dtype, _avals(extra), _avals(args))
    try:
        compiled = _COMPILED.get(cache_key)
    except TypeError:  # an unhashable `fn` (e.g. a module with array fields): no caching
        cache_key, compiled = None, None
    if compiled is None:
        compiled = (
            jax.jit(chunk_program, donate_argnums=(0, 1))
            .lower(acc, extra, in_struct, jax.ShapeDtypeStruct((), jnp.int32), args)
            .compile()
        )
        if cache_key is not None:
            if len(_COMPILED) >= _CACHE_SIZE:
                _COMPILED.pop(next(iter(_COMPILED)))
            _COMPILED[cache_key] = compiled
    compile_seconds = time.perf_counter() - start

    start = time.perf_counter()
    bar = progress_bar(progress, total=n, desc="members", unit="member")
    with bar:
        for k in range(n_chunks):
            check_interrupted()
            lo, hi = k * c, min((k + 1) * c, n)
            ys = _pad_chunk(np.asarray(host[lo:hi]), c)
            acc, extra, outputs = compiled(acc, extra, ys, np.int32(hi - lo), args)
            if keep:
                assert out is not None
                out[lo:hi] = np.asarray(outputs)[: hi - lo]
            bar.update(hi - lo)
    acc = jax.block_until_ready(acc)
    run_seconds = time.perf_counter() - start
    variance = (
        acc.m2 / jnp.maximum(acc.count - 1.0, 1.0) if n > 1 else jnp.full_like(acc.m2, jnp.nan)
    )
    return StreamedEnsemble(
        final=out if keep else None,
        mean=np.asarray(acc.mean),
        variance=np.asarray(variance),
        minimum=np.asarray(acc.minimum),
        maximum=np.asarray(acc.maximum),
        reduced=None if reduce is None else jax.tree.map(np.asarray, extra),
        num_chunks=n_chunks,
        chunk_bytes=compiled_bytes(compiled),
        compile_seconds=compile_seconds,
        run_seconds=run_seconds,
    )
