r"""`discover_from_increments`: MEDIDA from sparse assimilation increments (MEDIDA-QG).

The model-error discovery of Mojgani, Chattopadhyay & Hassanzadeh (2024, JAMES 16,
e2023MS004033, "Interpretable structural model error discovery from sparse assimilation
increments using spectral bias-reduced neural networks: a quasi-geostrophic turbulence test
case") for a model whose state is a layered 2-D field observed at a sparse set of points:

1. an ensemble filter (e.g. the LETKF) runs the imperfect model M through the noisy sparse
   observations; its analysis increments at the observed points, d_k = H(x^a_k - x^b_k),
   are the correction the observations make to the forecast x^b_k = M_Delta(x^a_{k-1});
2. each layer's increments are interpolated from the observed points onto the grid
   (`interpolate`, e.g. a random-Fourier-feature network, `jaxsci.nn`, which reduces the
   spectral bias of a plain MLP: the increments carry small scales);
3. the interpolated increments per unit time, D_k / Delta, are regressed sparsely on the
   term library evaluated at the background (or previous analysis) states:
   D_k / Delta ~ sum_j xi_j theta_j(x_k) (`LayeredLibrary`, `RVM` / `STLSQ`).

Why the increments measure the model error: with a missing tendency e, x^t_k - x^b_k =
Delta e(x) - (the previous analysis error carried one interval). In a filter's statistically
steady state the analysis error has the bias -(1 - K) Delta e / K for a gain K, and the mean
increment K (x^t - x^b) is then exactly Delta e (the time-mean increments balance the model's
drift; Rodwell & Palmer 2007, "Using numerical weather prediction to assess climate
models", QJRMS 133): at well-observed points (K near 1) the increment follows a
state-dependent error as well, up to zero-mean noise that the regression averages out.

Interpolation from the observed points cannot resolve scales finer than their spacing, and a
smoothed target regressed on full-resolution columns biases the coefficients toward zero;
`lowpass` regresses the resolved scales only: both the target and every library column are
truncated to |m| <= lowpass n / 2 (the same linear projection on both sides leaves xi
unchanged; the paper's spectral filter of the interpolated fields, "keep ratio").

In a twin experiment (`truth` given) the full increments x^t_k - x^b_k on the whole grid are
known, and the interpolation's relative error against them is reported, as is that of the
filter's own full-grid increments (the LETKF's spreading of the observed increments by the
ensemble covariances) for comparison.
"""

import time
from collections.abc import Callable
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._checks import check_choice, check_finite, check_int, check_key, check_positive
from .._custom_types import Array, ArrayLike, Float, Key
from ..filters import AbstractEnsembleFilter, run_filter
from ..losses import relative_l2
from ..observations import IndexObservation
from ._base import AbstractSparseRegression, NormalEquations, SparseRegressionResult, fit_normal_jit
from ._layered_library import LayeredLibrary

STATES = ("background", "analysis")


class IncrementInfo(NamedTuple):
    """Diagnostics of `discover_from_increments`.

    Attributes:
        analysis_rmse, background_rmse: RMS error of the filter's means against `truth`
            after the burn-in (NaN without a truth).
        interpolation_error: ||D - D_full|| / ||D_full|| of the interpolated increments D
            against the full increments D_full = x^t - x^b on the grid, over the regressed
            cycles (after the low-pass when `lowpass` is set; NaN without a truth).
        filter_increment_error: the same for the filter's own full-grid increments
            x^a - x^b (NaN without a truth).
        observed_increment_error: the same at the observed points only (the increments
            that are interpolated against the full ones there; NaN without a truth).
        num_samples: scalar samples of the regression (cycles x grid points x layers).
        seconds: wall time of "assimilation", "interpolation" and "regression" (compile
            included).
    """

    analysis_rmse: float
    background_rmse: float
    interpolation_error: float
    filter_increment_error: float
    observed_increment_error: float
    num_samples: int
    seconds: dict


class IncrementDiscovery(NamedTuple):
    """What `discover_from_increments` found.

    Attributes:
        names: the library's column names.
        coefficients: xi, zero for terms not selected, (columns,).
        active: the selected columns.
        regression: the `SparseRegressionResult`.
        column_rms: the RMS of every (low-passed) library column over the regressed
            samples, (columns,): |xi_j| column_rms_j is term j's contribution in the
            target's units, how terms of different units compare.
        analysis, background: the filter's means at the observation times, (K, *state).
        increments: the interpolated increments of the regressed cycles, (cycles, *state).
        full_increments: x^t - x^b of those cycles (None without a truth).
        info: `IncrementInfo`.
    """

    names: tuple[str, ...]
    coefficients: Float[Array, " column"]
    active: Array
    regression: SparseRegressionResult
    column_rms: Float[Array, " column"]
    analysis: Float[Array, "time layer y x"]
    background: Float[Array, "time layer y x"]
    increments: Float[Array, "cycle layer y x"]
    full_increments: Float[Array, "cycle layer y x"] | None
    info: IncrementInfo

    def terms(self) -> dict[str, float]:
        """{name: coefficient} of the selected columns (Python floats)."""
        coef = np.asarray(self.coefficients, dtype=float)
        return {
            n: float(c)
            for n, c, a in zip(self.names, coef, np.asarray(self.active), strict=True)
            if a
        }


class _FlatFlow(eqx.Module):
    """A flow on states of `shape`, acting on their flattened vectors (the filters' layout)."""

    flow: Callable
    shape: tuple[int, ...] = eqx.field(static=True)

    def __call__(self, y, t0, t1):
        return self.flow(y.reshape(self.shape), t0, t1).reshape(-1)


def _lowpass_mask(library: LayeredLibrary, fraction: float | None) -> np.ndarray | None:
    if fraction is None:
        return None
    my, mx = library.grid.mode_numbers()
    n = library.grid.shape[0]
    return (np.abs(my) <= fraction * n / 2) & (np.abs(mx) <= fraction * n / 2)


def _apply_mask(grid, mask, fields, axes):
    """Low-pass `fields` over the grid axes `axes` (2 consecutive axes)."""
    if mask is None:
        return fields
    moved = jnp.moveaxis(fields, axes, (-2, -1))
    out = grid.from_spectral(jnp.where(mask, grid.to_spectral(moved), 0))
    return jnp.moveaxis(out, (-2, -1), axes)


@eqx.filter_jit
def _normal_equations(library, mask, states, targets) -> NormalEquations:
    """Sum over cycles of the normal equations of (library(x_k), target_k), one cycle at a
    time (memory of one design block)."""

    def one(carry, xs):
        state, target = xs
        theta = library.term_fields(state)  # (layer, y, x, term)
        design = library.design(_apply_mask(library.grid, mask, theta, (1, 2)))
        t = target.reshape(-1)
        gram, moment, tsq = carry
        return (gram + design.T @ design, moment + design.T @ t, tsq + t @ t), None

    cols = library.num_terms
    dtype = targets.dtype
    init = (jnp.zeros((cols, cols), dtype), jnp.zeros(cols, dtype), jnp.zeros((), dtype))
    (gram, moment, tsq), _ = jax.lax.scan(one, init, (states, targets))
    return NormalEquations(gram, moment, tsq, targets.shape[0] * targets[0].size)


def _rel(a, b) -> float:
    """`losses.relative_l2` as a float, NaN when the reference `b` is zero."""
    value = float(relative_l2(a, b))
    return value if np.isfinite(value) else float("nan")


def discover_from_increments(
    flow: Callable,
    library: LayeredLibrary,
    regression: AbstractSparseRegression,
    obs_op: IndexObservation,
    filter: AbstractEnsembleFilter,
    initial_ensemble: Float[ArrayLike, "..."],
    observations: Float[ArrayLike, "..."],
    interval: float,
    *,
    interpolate: Callable,
    key: Key,
    burn_in: int = 0,
    states: str = "background",
    lowpass: float | None = None,
    truth: Float[ArrayLike, "..."] | None = None,
) -> IncrementDiscovery:
    r"""Discover the error of a layered 2-D model from sparse analysis increments (MEDIDA-QG).

    See the module docstring for the steps and why they work.

    Arguments:
        flow: the imperfect model's step `flow(q, t0, t1)` on states of
            `library.state_shape` (e.g. `jaxsci.integrate.Flow(model, dt, solver)`).
        library: the candidate terms (`LayeredLibrary` with the model's `streamfunction`).
        regression: the sparse regression (`RVM`, `STLSQ`).
        obs_op: the observation of grid points, an `IndexObservation` of the flattened state
            (`q.ravel()` order), e.g. `jaxsci.observations.every_kth_grid`.
        filter: the ensemble filter (e.g. `jaxsci.filters.LETKF` with 2-D localisation).
        initial_ensemble: the members at t_0, (ens, dim) flattened states.
        observations: y_1..y_K at t_k = k `interval`, (K, obs).
        interval: Delta, the time between observations.
        interpolate: `interpolate(coordinates, values, key) -> fields`: fits scattered
            values at `coordinates` (P, 2) -- (y, x) positions in the domain's units -- one
            set per row of `values` (batch, P), and returns them on the grid,
            (batch, ny, nx) (e.g. a random-Fourier-feature network fit).
        key: PRNG key (split between the filter and the interpolation).
        burn_in: cycles left out of the regression and the diagnostics.
        states: where the library is evaluated: "background" (x^b_k, the time of the
            increment) or "analysis" (x^a_{k-1}, the forecast's start).
        lowpass: regress only |m| <= lowpass n / 2 of target and columns (None: all).
        truth: the true states at t_1..t_K, (K, *state), for the diagnostics (twins).

    Returns:
        `IncrementDiscovery`.

    Raises:
        ValueError: bad shapes or arguments (naming them), a diverged filter.
    """
    if not isinstance(library, LayeredLibrary):
        raise TypeError(f"`library` must be a LayeredLibrary, got {type(library).__name__}.")
    if not isinstance(obs_op, IndexObservation):
        raise TypeError(
            f"`obs_op` must be an IndexObservation of grid points, got {type(obs_op).__name__}."
        )
    if not callable(interpolate):
        raise TypeError(f"`interpolate` must be callable, got {type(interpolate).__name__}.")
    check_choice("states", states, STATES)
    check_positive("interval", interval)
    key = check_key("key", key)
    shape = library.state_shape
    dim = int(np.prod(shape))
    if obs_op.state_dim != dim:
        raise ValueError(
            f"`obs_op` observes states of dimension {obs_op.state_dim}, but the library's "
            f"state {shape} has {dim}."
        )
    observations = jnp.asarray(observations)
    if observations.ndim != 2 or observations.shape[1] != obs_op.obs_dim:
        raise ValueError(
            f"`observations` must be (time, {obs_op.obs_dim}), got shape {observations.shape}."
        )
    num_cycles = observations.shape[0]
    burn_in = check_int("burn_in", burn_in, minimum=0)
    if burn_in + 2 > num_cycles + (states == "background"):
        raise ValueError(
            f"`burn_in` = {burn_in} leaves no cycles of {num_cycles} observations to regress."
        )
    if lowpass is not None:
        check_positive("lowpass", lowpass)
        if lowpass > 1:
            raise ValueError(f"`lowpass` must be in (0, 1], got {lowpass}.")
    initial_ensemble = jnp.asarray(initial_ensemble)
    if initial_ensemble.ndim != 2 or initial_ensemble.shape[1] != dim:
        raise ValueError(
            f"`initial_ensemble` must be (ens, {dim}), got shape {initial_ensemble.shape}."
        )
    if truth is not None:
        truth = jnp.asarray(truth)
        if truth.shape != (num_cycles, *shape):
            raise ValueError(
                f"`truth` has shape {truth.shape}, expected {(num_cycles, *shape)} (the states "
                "at the observation times)."
            )
        check_finite("truth", truth)
    key_filter, key_interp = jax.random.split(key)
    seconds = {}

    # 1. the filter with the imperfect model
    t = time.perf_counter()
    res = run_filter(
        key_filter,
        _FlatFlow(flow, shape),
        obs_op,
        filter,
        initial_ensemble,
        observations,
        dt=float(interval),
        compute_likelihood=False,
    )
    jax.block_until_ready(res.mean_a)
    seconds["assimilation"] = time.perf_counter() - t
    if not bool(jnp.all(res.finite)):
        raise ValueError(
            "the filter diverged (a non-finite analysis): increase its inflation or ensemble size."
        )
    analysis = res.mean_a.reshape(num_cycles, *shape)
    background = res.mean_f.reshape(num_cycles, *shape)
    start = max(burn_in, 1) if states == "analysis" else burn_in
    cycles = np.arange(start, num_cycles)
    idx = np.asarray(obs_op.indices)
    increment_obs = (res.mean_a - res.mean_f)[cycles][:, idx]  # (cycles, obs)

    # 2. interpolation of each layer's increments onto the grid
    t = time.perf_counter()
    layer, iy, ix = np.unravel_index(idx, shape)
    spacing = library.grid.length / library.grid.shape[0]
    grids = []
    keys = jax.random.split(key_interp, shape[0])
    for lay in range(shape[0]):
        sel = layer == lay
        if not sel.any():
            raise ValueError(
                f"`obs_op` observes no point of layer {lay + 1}: every layer needs observations."
            )
        coords = jnp.asarray(np.stack([iy[sel], ix[sel]], axis=-1) * spacing)
        fields = jnp.asarray(interpolate(coords, increment_obs[:, sel], keys[lay]))
        if fields.shape != (cycles.size, *shape[1:]):
            raise ValueError(
                f"`interpolate` returned shape {fields.shape}, expected "
                f"{(cycles.size, *shape[1:])}."
            )
        grids.append(fields)
    increments = jnp.stack(grids, axis=1)
    jax.block_until_ready(increments)
    seconds["interpolation"] = time.perf_counter() - t

    # 3. the sparse regression of D_k / Delta on the library at the chosen states
    t = time.perf_counter()
    mask = _lowpass_mask(library, lowpass)
    grid = library.grid
    target = _apply_mask(grid, mask, increments, (2, 3)) / interval
    where = background[cycles] if states == "background" else analysis[cycles - 1]
    ne = _normal_equations(library, mask, where, target)
    if regression.jittable:
        result = fit_normal_jit(regression, ne, None)
    else:
        result = regression.fit_normal(ne, None)
    jax.block_until_ready(result.coefficients)
    seconds["regression"] = time.perf_counter() - t

    # diagnostics against the truth (twin experiments)
    nan = float("nan")
    rmse_a = rmse_b = err_interp = err_filter = err_obs = nan
    full = None
    if truth is not None:
        rmse_a = float(jnp.sqrt(jnp.mean((analysis[burn_in:] - truth[burn_in:]) ** 2)))
        rmse_b = float(jnp.sqrt(jnp.mean((background[burn_in:] - truth[burn_in:]) ** 2)))
        full = truth[cycles] - background[cycles]
        full_lp = _apply_mask(grid, mask, full, (2, 3))
        err_interp = _rel(_apply_mask(grid, mask, increments, (2, 3)), full_lp)
        own = (analysis - background)[cycles]
        err_filter = _rel(_apply_mask(grid, mask, own, (2, 3)), full_lp)
        err_obs = _rel(increment_obs, full.reshape(cycles.size, -1)[:, idx])
    info = IncrementInfo(
        analysis_rmse=rmse_a,
        background_rmse=rmse_b,
        interpolation_error=err_interp,
        filter_increment_error=err_filter,
        observed_increment_error=err_obs,
        num_samples=int(cycles.size * dim),
        seconds=seconds,
    )
    return IncrementDiscovery(
        names=library.names,
        coefficients=result.coefficients,
        active=result.active,
        regression=result,
        column_rms=jnp.sqrt(jnp.diag(ne.gram) / ne.num_samples),
        analysis=analysis,
        background=background,
        increments=increments,
        full_increments=full,
        info=info,
    )
