"""Big-ensemble EnKF / DEnKF / ETKF: the same analyses as `EnKF`, `DEnKF` and `ETKF`, with the
ensemble visited in chunks of members, so that no (N, N), (dim, dim) or per-member workspace
of the whole ensemble is ever built; and `run_filter_chunked`, the cycling driver whose
forecast is `integrate.streamed_ensemble`."""

import functools
import math
import time
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.scipy.linalg as jsl
import numpy as np

from .._checks import check_int, check_key, check_ndim, check_positive, check_writable
from .._custom_types import ArrayLike, Float, Key
from ..integrate import streamed_ensemble
from ..integrate._streaming import _pad_chunk, empty_moments, merge_moments
from ..observations import AbstractObservation
from ._assimilate import _window_map
from ._ensemble_filters import ETKF, DEnKF, EnKF
from ._inflation import Inflation
from ._statistics import check_ensemble, gram_cholesky_obs

_KINDS = {EnKF: "enkf", DEnKF: "denkf", ETKF: "etkf"}


def _analysis_kind(filter: Any) -> tuple[str, Any]:
    """('enkf' | 'denkf' | 'etkf', inflation factor or None) of a supported filter."""
    factor = None
    inner = filter
    if isinstance(filter, Inflation):
        inner, factor = filter.filter, filter.factor
    kind = _KINDS.get(type(inner))
    if kind is None or (kind == "etkf" and getattr(inner, "rotate", False)):
        raise ValueError(
            "`filter` must be EnKF(), DEnKF() or ETKF(rotate=False), optionally wrapped in "
            f"Inflation, for a chunked analysis; got {filter!r} (a random rotation needs an "
            "N x N matrix, the other filters the whole ensemble at once)."
        )
    return kind, factor


@eqx.filter_jit
def _observe_chunk(obs_op, ys, valid):
    """Pass 1: the sum of the chunk's valid members and their observations h(E_c)."""
    total = jnp.sum(jnp.where(valid[:, None], ys, 0.0), axis=0)
    return total, jax.vmap(obs_op)(ys)


@eqx.filter_jit
def _observation_space(kind, obs_op, hx, y_obs, key):
    """The whitened observation anomalies Yw, innovation dw, the rows that multiply the
    gain (see `chunked_analysis`) and the P x P Cholesky factor (EnKF, DEnKF) or the
    eigendecomposition of Yw^T Yw (ETKF)."""
    n = hx.shape[0]
    hmean = jnp.mean(hx, axis=0)
    yw = obs_op.whiten(hx - hmean)
    dw = obs_op.whiten(y_obs - hmean)
    if kind == "enkf":  # the same centred draws as EnKF.update
        z = jax.random.normal(key, (n, obs_op.obs_dim), dtype=hx.dtype)
        z = z - jnp.mean(z, axis=0)
        rows = dw[None, :] - yw + z
    elif kind == "denkf":
        rows = -0.5 * yw
    else:
        rows = yw
    if kind == "etkf":
        lam, v = jnp.linalg.eigh(yw.T @ yw)
        factor = (jnp.maximum(lam, 0.0), v)
    else:
        factor = gram_cholesky_obs(yw)
    return yw, dw, rows, factor


@functools.partial(jax.jit, donate_argnums=0)
def _cross_chunk(cross, yw_c, e_c, mean):
    """Pass 2: cross += Yw_c^T (E_c - mean) (padding rows of Yw_c are zero)."""
    return cross + yw_c.T @ (e_c - mean)


@functools.partial(jax.jit, donate_argnums=0, static_argnums=(1, 6))
def _gain(cross, kind, factor, dw, rows, mean, n):
    """The (obs, dim) matrix Q and the (dim,) shift of E_a,i = E_i + rows_i Q + shift, and
    the analysis mean."""
    c = n - 1.0
    if kind == "etkf":
        lam, v = factor
        root = jnp.sqrt(lam + c)
        g = -1.0 / (root * (jnp.sqrt(c) + root))
        u = (v / (lam + c)) @ (v.T @ dw)
        shift = u @ cross
        q = (v * g) @ (v.T @ cross)
    else:
        q = jsl.cho_solve((factor, True), cross)
        shift = dw @ q if kind == "denkf" else jnp.zeros_like(mean)
    mean_a = mean + jnp.mean(rows, axis=0) @ q + shift
    return q, shift, mean_a


@functools.partial(jax.jit, donate_argnums=0)
def _update_chunk(acc, e_c, rows_c, q, shift, mean_a, factor, valid):
    """Pass 3: the chunk's analysis members (inflated about the analysis mean) and the
    streaming moments of the analysis."""
    e_a = e_c + rows_c @ q + shift
    if factor is not None:
        e_a = mean_a + factor.astype(e_a.dtype) * (e_a - mean_a)
    return merge_moments(acc, e_a, valid), e_a


def analysis_memory_terms(
    n: int, dim: int, obs_dim: int, chunk_size: int, itemsize: int, *, in_place: bool = True
) -> dict[str, int]:
    """The terms (bytes) of `chunked_analysis`'s memory bound, without the constant K:
    'ensemble' (N dim b, twice unless `in_place`), 'observation_space' (5 N P b),
    'gain' (2 P dim b), 'small' (5 P^2 b), 'chunk' (4 c (dim + P) b)."""
    c = min(chunk_size, n)
    return {
        "ensemble": (1 if in_place else 2) * n * dim * itemsize,
        "observation_space": 5 * n * obs_dim * itemsize,
        "gain": 2 * obs_dim * dim * itemsize,
        "small": 5 * obs_dim**2 * itemsize,
        "chunk": 4 * c * (dim + obs_dim) * itemsize,
    }


class ChunkedAnalysis(NamedTuple):
    """Output of `chunked_analysis` (NumPy).

    Attributes:
        ensemble: the analysis ensemble, (N, dim) (the `out` array when given).
        mean: its mean, (dim,).
        spread: sqrt of its state-averaged variance (ddof 1), ().
    """

    ensemble: np.ndarray
    mean: np.ndarray
    spread: float


def chunked_analysis(
    filter: Any,
    key: Key,
    ensemble: Float[ArrayLike, "ens dim"],
    y_obs: Float[ArrayLike, " obs"],
    obs_op: AbstractObservation,
    *,
    chunk_size: int,
    out: ArrayLike | None = None,  # checked: a writable np.ndarray (named ValueError)
) -> ChunkedAnalysis:
    """The analysis `filter.update(key, ensemble, y_obs, obs_op)` of an EnKF, DEnKF or ETKF
    (optionally in `Inflation`), computed over chunks of members.

    With the filters' notation (`jaxsci.filters._ensemble_filters`: anomalies A = E - mean,
    whitened observation anomalies Yw = L^{-1}(h(E) - mean h(E)), innovation dw, c = N - 1)
    every one of these analyses, in observation space, is E_a,i = E_i + r_i Q + s with one
    (obs, dim) matrix Q built from the cross product G = Yw^T A:

    - EnKF (perturbed observations): r_i = dw - Yw_i + z_i (the same centred draws z as
      `EnKF.update` for the same key), Q = (Yw^T Yw + c I)^{-1} G, s = 0;
    - DEnKF: r_i = -Yw_i / 2, Q = (Yw^T Yw + c I)^{-1} G, s = dw^T Q;
    - ETKF (symmetric square root, Hunt et al. 2007 in the observation-space form of
      `ETKF` for N > P): with Yw^T Yw = V diag(lam) V^T, r_i = Yw_i,
      Q = V diag(g) V^T G, g = -1 / (sqrt(lam + c) (sqrt(c) + sqrt(lam + c))),
      s = (V diag(1/(lam + c)) V^T dw)^T G;

    and `Inflation(f, factor)` then scales the anomalies about the analysis mean
    mean + mean(r) Q + s. The passes: (1) per chunk, the sum of the members and h(E_c)
    (stored: N x P); (2) G accumulated as sum_c Yw_c^T (E_c - mean); (3) the P x P
    factorisation and Q; (4) per chunk, E_c <- E_c + r_c Q + s, written into `out`. These
    are algebraically the filters' own observation-space updates (which `EnKF`/`DEnKF`/
    `ETKF` use when N > P; for N <= P they use the equal N x N form), so the result equals
    `filter.update` to floating-point rounding (tested in float64).

    **Memory** (bytes; itemsize b, chunk c), `analysis_memory_terms`:

        bytes <= N dim b [+ N dim b] + 5 N P b + 2 P dim b + 5 P^2 b + 4 c (dim + P) b + K

    - N dim b: the ensemble (the caller's array); another N dim b when `out` is a new array,
      none when `out` is `ensemble` (the in-place update).
    - 5 N P b: h(E), Yw, the EnKF's perturbations z and the rows r, and one temporary of
      their forming (N x P each).
    - 2 P dim b: the cross product G = Yw^T A and the matrix Q (the size of a Kalman gain).
    - 5 P^2 b: Yw^T Yw and its Cholesky factor (or eigenvectors), and R, L, L^{-1} of the
      observation model.
    - 4 c (dim + P) b: the chunk programs' workspace: a chunk of members, its anomalies, its
      observations and its update (and their host copies).
    - K: a constant (runtime and compiled code).

    No (N, N), (dim, dim) or second (N, dim) array is built.

    Arguments:
        filter: `EnKF()`, `DEnKF()`, `ETKF()` (rotate=False), or `Inflation` of one.
        key: PRNG key (the EnKF's perturbations; unused otherwise).
        ensemble: the forecast, (N >= 2, dim), a NumPy array (or memmap).
        y_obs: the observation, (obs,).
        obs_op: the observation model.
        chunk_size: members per chunk (>= 1).
        out: where to write the analysis (default: a new array); may be `ensemble`.

    Returns:
        `ChunkedAnalysis`.
    """
    kind, factor = _analysis_kind(filter)
    key = check_key("key", key)
    chunk_size = check_int("chunk_size", chunk_size, minimum=1)
    ens = np.asarray(ensemble) if not isinstance(ensemble, np.ndarray) else ensemble
    check_ensemble(ens, obs_op, "ensemble")
    obs_op.check_observation(y_obs, "y_obs")
    n, dim = ens.shape
    if out is None:
        out = np.empty_like(ens)
    else:
        out = check_writable("out", out, "for the analysis")
    if out.shape != ens.shape or out.dtype != ens.dtype:
        raise ValueError(
            f"`out` must have shape {ens.shape} and dtype {ens.dtype}, got {out.shape} and "
            f"{out.dtype}."
        )
    c = min(chunk_size, n)
    bounds = [(lo, min(lo + c, n)) for lo in range(0, n, c)]
    arange = np.arange(c)

    total = jnp.zeros((dim,), ens.dtype)
    hx = np.empty((n, obs_op.obs_dim), ens.dtype)
    for lo, hi in bounds:
        part, hx_c = _observe_chunk(obs_op, _pad_chunk(ens[lo:hi], c), arange < hi - lo)
        total = total + part
        hx[lo:hi] = np.asarray(hx_c)[: hi - lo]
    mean = total / n
    y_obs = jnp.asarray(y_obs, ens.dtype)
    yw, dw, rows, fac = _observation_space(kind, obs_op, jnp.asarray(hx), y_obs, key)
    del hx
    yw_host = np.asarray(yw)
    cross = jnp.zeros((obs_op.obs_dim, dim), ens.dtype)
    for lo, hi in bounds:
        yw_c = np.zeros((c, obs_op.obs_dim), ens.dtype)
        yw_c[: hi - lo] = yw_host[lo:hi]
        cross = _cross_chunk(cross, yw_c, _pad_chunk(ens[lo:hi], c), mean)
    del yw, yw_host
    q, shift, mean_a = _gain(cross, kind, fac, dw, rows, mean, float(n))
    rows_host = np.asarray(rows)
    acc = empty_moments((dim,), ens.dtype)
    for lo, hi in bounds:
        acc, e_a = _update_chunk(
            acc,
            _pad_chunk(ens[lo:hi], c),
            _pad_chunk(rows_host[lo:hi], c),
            q,
            shift,
            mean_a,
            factor,
            arange < hi - lo,
        )
        out[lo:hi] = np.asarray(e_a)[: hi - lo]
    variance = acc.m2 / max(n - 1.0, 1.0)
    return ChunkedAnalysis(
        ensemble=out, mean=np.asarray(acc.mean), spread=float(jnp.sqrt(jnp.mean(variance)))
    )


#: The member forecasts of recent `run_filter_chunked` calls, keyed on (id(flow), dt) and
#: holding the flow (so the id stays its own): the same function object lets
#: `streamed_ensemble` reuse its compiled chunk program across calls.
_FORECASTS: dict[tuple[int, float], tuple[Any, Any]] = {}


def _forecast_fn(flow: Any, dt: float):
    """`(y, t) -> flow(y, t, t + dt)` (`run_filter`'s own member forecast, `_window_map`:
    a `Flow`'s `window(dt)` fast path), one plain function object per (flow, dt), hashed by
    identity, so that `streamed_ensemble` reuses its compiled chunk program across calls."""
    hit = _FORECASTS.get((id(flow), dt))
    if hit is not None and hit[0] is flow:
        return hit[1]
    step = _window_map(flow, dt)

    def forecast(y, start):
        return step(y, start)

    if len(_FORECASTS) >= 8:
        _FORECASTS.pop(next(iter(_FORECASTS)))
    _FORECASTS[(id(flow), dt)] = (flow, forecast)
    return forecast


class ChunkedFilterResult(NamedTuple):
    """Output of `run_filter_chunked` (NumPy; cycles k = 1..K).

    Attributes:
        mean_f, mean_a: forecast and analysis ensemble means, (K, dim).
        spread_f, spread_a: sqrt of the state-averaged ensemble variance (ddof 1), (K,).
        ensemble: the last analysis ensemble, (N, dim) (the initial ensemble's array,
            updated in place, when `in_place`).
        forecast_seconds, analysis_seconds: wall time per cycle, (K,) (the first cycle's
            forecast includes compiling its chunk program).
        forecast_chunk_bytes: the forecast's compiled chunk program (`streamed_ensemble`'s
            `chunk_bytes`, its c W memory term; the same program every cycle).
    """

    mean_f: np.ndarray
    mean_a: np.ndarray
    spread_f: np.ndarray
    spread_a: np.ndarray
    ensemble: np.ndarray
    forecast_seconds: np.ndarray
    analysis_seconds: np.ndarray
    forecast_chunk_bytes: int


def run_filter_chunked(
    key: Key,
    flow: Any,
    obs_op: AbstractObservation,
    filter: Any,
    initial_ensemble: Float[ArrayLike, "ens dim"],
    observations: Float[ArrayLike, "time obs"],
    *,
    dt: float,
    chunk_size: int,
    t0: float = 0.0,
    in_place: bool = False,
    progress: bool = False,
) -> ChunkedFilterResult:
    """`run_filter` for ensembles too large to hold more than once: forecast and analysis in
    chunks of members, the ensemble updated in place.

    Cycle k forecasts the members from t0 + (k-1) dt to t0 + k dt with
    `integrate.streamed_ensemble` (one compiled program on `chunk_size` members, fed chunk
    by chunk, written back into the ensemble array, with the forecast mean and spread
    streamed), then runs `chunked_analysis` in place with the cycle's key. The keys, the
    forecast and the analysis are those of `run_filter` (`jax.random.split(key, K)`, no
    process noise), so the means and spreads equal `run_filter`'s to rounding.

    **Memory**: the `chunked_analysis` bound (`analysis_memory_terms`; the ensemble once,
    plus N dim b more unless `in_place`) with its chunk term replaced by the larger of the
    analysis chunk term and the forecast's chunk program (`streamed_ensemble`'s c W, the
    compiled program's `memory_analysis`; for `Flow` with RK4 about 12 states per member,
    more for ETDRK4 on a 2-D field), plus K (2 dim + 2) b for the statistics.

    Arguments:
        key: PRNG key (split once per cycle).
        flow: the model step `flow(y, t0, t1)` on flattened states (e.g.
            `integrate.FlattenedFlow`); its `window(dt)` fast path is used when it has one.
        obs_op, filter: as `chunked_analysis`.
        initial_ensemble: members at t0, (N >= 2, dim), a NumPy array (a writable one, e.g.
            a `np.memmap`, when `in_place`).
        observations: (K >= 1, obs).
        dt: time between observations (> 0).
        chunk_size: members per chunk (>= 1).
        t0: the start time.
        in_place: update `initial_ensemble` itself (saves N dim b).
        progress: progress bars over the forecast's members.

    Returns:
        `ChunkedFilterResult`.
    """
    _analysis_kind(filter)
    key = check_key("key", key)
    check_positive("dt", dt)
    # ndarray subclasses (np.memmap) as they are: np.asarray would give a base-class view
    ens = (
        initial_ensemble
        if isinstance(initial_ensemble, np.ndarray)
        else np.asarray(initial_ensemble)
    )
    check_ensemble(ens, obs_op, "initial_ensemble")
    obs_op.check_observation(observations, "observations")
    check_ndim("observations", observations, 2, "(time, obs)")
    observations = np.asarray(observations)
    if observations.shape[0] < 1:
        raise ValueError(
            "`observations` must have at least one row (one per cycle), got shape "
            f"{observations.shape}."
        )
    if in_place:
        hint = "; pass in_place=False to work on a copy"
        check_writable("initial_ensemble", initial_ensemble, "with in_place=True", hint)
    if not in_place:
        ens = np.array(ens, copy=True)
    n_cycles = observations.shape[0]
    keys = jax.random.split(key, n_cycles)
    forecast = _forecast_fn(flow, float(dt))
    stats: dict[str, list] = {k: [] for k in ("mean_f", "mean_a", "spread_f", "spread_a")}
    seconds: dict[str, list] = {"f": [], "a": []}
    for k in range(n_cycles):
        start = time.perf_counter()
        fc = streamed_ensemble(
            forecast,
            ens,
            chunk_size=chunk_size,
            args=jnp.asarray(t0 + k * dt, ens.dtype),
            out=ens,
            progress=progress,
        )
        seconds["f"].append(time.perf_counter() - start)
        stats["mean_f"].append(fc.mean)
        stats["spread_f"].append(math.sqrt(float(np.mean(fc.variance))))
        start = time.perf_counter()
        an = chunked_analysis(
            filter, keys[k], ens, observations[k], obs_op, chunk_size=chunk_size, out=ens
        )
        seconds["a"].append(time.perf_counter() - start)
        stats["mean_a"].append(an.mean)
        stats["spread_a"].append(an.spread)
    return ChunkedFilterResult(
        mean_f=np.stack(stats["mean_f"]),
        mean_a=np.stack(stats["mean_a"]),
        spread_f=np.asarray(stats["spread_f"]),
        spread_a=np.asarray(stats["spread_a"]),
        ensemble=ens,
        forecast_seconds=np.asarray(seconds["f"]),
        analysis_seconds=np.asarray(seconds["a"]),
        forecast_chunk_bytes=fc.chunk_bytes,
    )
