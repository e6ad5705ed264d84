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
3. the interpolated increments per unit time, D_k / Delta, are regressed sparsely
   (`regress_increments`, `RVM` / `STLSQ`) on a design of the term library
   (`LayeredLibrary`): the library at one state, the background (or previous analysis),
   D_k / Delta ~ sum_j xi_j theta_j(x_k) (`design="state"`, the paper's), or the
   integrated design (`design="integrated"`), the sensitivity of the interval's forecast to
   each term, D_k / Delta ~ Psi_k xi with Psi_k = (1/Delta) d Phi_{M + sum xi_j theta_j}
   (x^a_{k-1}) / d xi (`integrated_design`).

Why the integrated design: over one interval the flow advects and shears the difference
the missing term makes, so x^t_k - x^b_k is not Delta e(x) at any one state. With perfect
analyses of a drag-free QG model against a truth with drag (64^2, 60 intervals), the
one-state design finds the drag 5% / 9% / 17% too small at Delta = 1 / 2 / 4 days and
credits the flow's reshaping to J(psi,q), lap(q), q_x, ... (spurious terms 0.7-1.6x the
drag's contribution); the integrated design is exact to first order in the model error for
any Delta, and `refinements` (Gauss-Newton re-linearisations about the found xi, as in
`fit_model_error`) remove the second-order remainder (benchmarks/RESULTS_discovery.md).

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

import logging
import time
from collections.abc import Callable
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._checks import check_choice, check_finite, check_int, check_key, check_positive
from .._custom_types import Array, ArrayLike, Float, Key
from ..dynamics import AbstractSemilinear
from ..filters import AbstractEnsembleFilter, run_filter
from ..integrate import Flow
from ..losses import relative_l2
from ..observations import IndexObservation
from ._base import AbstractSparseRegression, NormalEquations, SparseRegressionResult, fit_normal
from ._corrected import CorrectedModel
from ._layered_library import LayeredLibrary
from ._samples import integrated_design

logger = logging.getLogger("jaxsci.discovery")

STATES = ("background", "analysis")
#: The designs of `regress_increments`: the library at one state, or the integrated
#: sensitivities of the interval's forecast to each term.
INCREMENT_DESIGNS = ("state", "integrated")


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
        history: the coefficients found by each pass, (passes, columns).
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
    history: Float[Array, "pass column"]

    def terms(self) -> dict[str, float]:
        """{name: coefficient} of the selected columns (Python floats)."""
        return active_terms(self.names, self.coefficients, self.active)


def active_terms(names, coefficients, active) -> dict[str, float]:
    """{name: coefficient} of the `active` columns (Python floats)."""
    coef = np.asarray(coefficients, dtype=float)
    return {n: float(c) for n, c, a in zip(names, coef, np.asarray(active), strict=True) if a}


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
def _normal_equations(library, mask, states, targets, points=None) -> NormalEquations:
    """Sum over cycles of the normal equations of (library(x_k), target_k), one cycle at a
    time (memory of one design block); rows at `points` only when given."""

    def one(carry, xs):
        state, target = xs
        theta = library.term_fields(state)  # (layer, y, x, term)
        design = library.design(_apply_mask(library.grid, mask, theta, (1, 2)))
        t = target.reshape(-1)
        if points is not None:
            design, t = design[points], t[points]
        gram, moment, tsq = carry
        return (gram + design.T @ design, moment + design.T @ t, tsq + t @ t), None

    cols = library.num_terms
    dtype = targets.dtype
    init = (jnp.zeros((cols, cols), dtype), jnp.zeros(cols, dtype), jnp.zeros((), dtype))
    (gram, moment, tsq), _ = jax.lax.scan(one, init, (states, targets))
    rows = targets[0].size if points is None else points.shape[0]
    return NormalEquations(gram, moment, tsq, targets.shape[0] * rows)


def _rel(a, b) -> float:
    """`losses.relative_l2` as a float, NaN when the reference `b` is zero."""
    value = float(relative_l2(a, b))
    return value if np.isfinite(value) else float("nan")


@eqx.filter_jit
def _integrated_block(mask, grid, psi, forecast, reference, target, xi, interval, points, carry):
    """Add a batch of integrated-design rows to the normal equations. psi: (B, layer, y, x,
    col); the target is D / Delta - (Phi_xi(x) - Phi_ref(x)) / Delta + Psi xi, all on the
    low-passed scales (or at `points` only)."""
    psi = _apply_mask(grid, mask, psi, (2, 3))
    shift = _apply_mask(grid, mask, forecast - reference, (2, 3)) / interval
    t = (target - shift + psi @ xi).reshape(psi.shape[0], -1)
    design = psi.reshape(psi.shape[0], -1, psi.shape[-1])
    if points is not None:
        t, design = t[:, points], design[:, points]
    t, design = t.reshape(-1), design.reshape(-1, design.shape[-1])
    gram, moment, tsq = carry
    return gram + design.T @ design, moment + design.T @ t, tsq + t @ t


class IncrementRegression(NamedTuple):
    """What `regress_increments` found.

    Attributes:
        coefficients: xi, zero for columns not selected, (columns,).
        active: the selected columns.
        regression: the last `SparseRegressionResult`.
        column_rms: the RMS of every (low-passed) design column over the samples of the
            last regression, (columns,): |xi_j| column_rms_j is term j's contribution in
            the target's units.
        history: xi after each linearisation (one row for the one-state design),
            (iterations, columns).
    """

    coefficients: Float[Array, " column"]
    active: Array
    regression: SparseRegressionResult
    column_rms: Float[Array, " column"]
    history: Float[Array, "iteration column"]


def regress_increments(
    library: LayeredLibrary,
    regression: AbstractSparseRegression,
    states: Float[ArrayLike, "cycle layer y x"],
    increments: Float[ArrayLike, "cycle layer y x"],
    interval: float,
    *,
    design: str = "state",
    flow: Callable | None = None,
    lowpass: float | None = None,
    points: ArrayLike | None = None,
    refinements: int = 1,
    batch_size: int = 8,
) -> IncrementRegression:
    r"""Sparse regression of increments per unit time on a design of the layered library.

    `increments[k]` is the correction x_k - Phi_M(x_{k-1}) of a forecast of the model M
    over `interval` (an analysis increment, or a truth-minus-forecast difference). With
    `design="state"` the target D_k / Delta is regressed on the library at `states[k]`
    (MEDIDA's design; biased at long intervals, see the module docstring). With
    `design="integrated"`, `states[k]` is the forecast's START x_{k-1} and the design is
    Psi_k = (1/Delta) d Phi_{M(xi)}(x_{k-1}) / d xi (`integrated_design`) of the corrected
    model M(xi) = `CorrectedModel(model, library, xi)`, linearised first about the
    coefficients of `flow`'s model (zero for a plain model; those of a `CorrectedModel` of
    this library, for a pass that ran a corrected model), xi_0:
    D_k / Delta + Psi_k xi_0 ~ Psi_k xi; each of `refinements` re-linearises about the
    found xi_i, with the target moved by the forecasts' difference,
    D_k / Delta - (Phi_{M(xi_i)} - Phi_{M(xi_0)})(x_{k-1}) / Delta + Psi_k(xi_i) xi_i
    (Gauss-Newton, as `fit_model_error`).

    Arguments:
        library: the candidate terms (with the model's `streamfunction`).
        regression: the sparse regression (`RVM`, `STLSQ`).
        states: (K, layer, y, x): where the library is evaluated ("state") or the forecasts'
            starts ("integrated").
        increments: (K, layer, y, x), D_k.
        interval: Delta.
        design: "state" or "integrated".
        flow: the model's `jaxsci.integrate.Flow` (its dynamics, `dt` and solver make the
            forecasts; "integrated" only): of an `AbstractSemilinear` model on the
            library's grid, or of a `CorrectedModel` of it with this library.
        lowpass: regress only |m| <= lowpass n / 2 of target and columns (None: all).
        points: regress only these entries of the flattened state (`q.ravel()` order, e.g.
            the observed points, `obs_op.indices`; the increments elsewhere are not read);
            None: every grid point. Not with `lowpass` (a low-pass needs the whole field).
        refinements: re-linearisations after the first fit ("integrated" only).
        batch_size: forecasts per compiled sensitivity call (memory: batch x columns x
            state; "integrated" only).

    Returns:
        `IncrementRegression`.
    """
    check_choice("design", design, INCREMENT_DESIGNS)
    check_positive("interval", interval)
    interval = float(interval)
    refinements = check_int("refinements", refinements, minimum=0)
    batch_size = check_int("batch_size", batch_size)
    if lowpass is not None:
        check_positive("lowpass", lowpass)
        if lowpass > 1:
            raise ValueError(f"`lowpass` must be in (0, 1], got {lowpass}.")
    states = jnp.asarray(states)
    increments = jnp.asarray(increments, dtype=states.dtype)
    shape = library.state_shape
    if states.ndim != 4 or states.shape[1:] != shape or increments.shape != states.shape:
        raise ValueError(
            f"`states` and `increments` must both be (cycle, *{shape}), got {states.shape} "
            f"and {increments.shape}."
        )
    if points is not None:
        if lowpass is not None:
            raise ValueError(
                "`points` and `lowpass` exclude each other: a low-pass needs the field."
            )
        points = np.asarray(points)
        if (
            points.ndim != 1
            or points.size == 0
            or points.min() < 0
            or points.max() >= np.prod(shape)
        ):
            raise ValueError(
                f"`points` must be a non-empty 1-D array of indices into the {np.prod(shape)} "
                f"entries of a state, got shape {points.shape}."
            )
        points = jnp.asarray(points)
    mask = _lowpass_mask(library, lowpass)
    grid = library.grid
    target = _apply_mask(grid, mask, increments, (2, 3)) / interval
    if design == "state":
        ne = _normal_equations(library, mask, states, target, points)
        result = fit_normal(regression, ne, None)
        return IncrementRegression(
            coefficients=result.coefficients,
            active=result.active,
            regression=result,
            column_rms=jnp.sqrt(jnp.diag(ne.gram) / ne.num_samples),
            history=result.coefficients[None],
        )
    corrected = _corrected_of(flow, library)
    assert isinstance(flow, Flow)  # _corrected_of checked it
    xi0 = corrected.coefficients
    xi = xi0
    cols = library.num_terms
    reference = None  # Phi_{M(xi_0)} of every start, from the first linearisation
    history = []
    result = ne = None
    for _ in range(refinements + 1):
        model_i = corrected.with_coefficients(xi)
        dtype = target.dtype
        carry = (jnp.zeros((cols, cols), dtype), jnp.zeros(cols, dtype), jnp.zeros((), dtype))
        forecasts = []
        for i in range(0, states.shape[0], batch_size):
            start = states[i : i + batch_size]
            forecast, psi = integrated_design(
                model_i, start, interval, dt=flow.dt, solver=flow.solver, batch_size=batch_size
            )
            ref = forecast if reference is None else reference[i : i + batch_size]
            carry = _integrated_block(
                mask,
                grid,
                psi,
                forecast,
                ref,
                target[i : i + batch_size],
                xi,
                interval,
                points,
                carry,
            )
            forecasts.append(forecast)
        if reference is None:
            reference = jnp.concatenate(forecasts)
        gram, moment, tsq = carry
        if not bool(jnp.all(jnp.isfinite(gram))):
            raise ValueError(
                "the integrated design is not finite: a forecast of the corrected model blew "
                "up; check the states and the flow's dt."
            )
        rows = target.size if points is None else target.shape[0] * points.size
        ne = NormalEquations(gram, moment, tsq, rows)
        result = fit_normal(regression, ne, None)
        xi = result.coefficients
        history.append(xi)
    assert result is not None and ne is not None
    return IncrementRegression(
        coefficients=result.coefficients,
        active=result.active,
        regression=result,
        column_rms=jnp.sqrt(jnp.diag(ne.gram) / ne.num_samples),
        history=jnp.stack(history),
    )


def _corrected_of(flow, library: LayeredLibrary) -> CorrectedModel:
    """The corrected model of `flow`'s dynamics (a plain model: coefficients zero)."""
    if not isinstance(flow, Flow):
        raise TypeError(
            '`flow` must be a jaxsci.integrate.Flow of the model for design="integrated" (its '
            f"dynamics, dt and solver make the forecasts), got {type(flow).__name__}."
        )
    dyn = flow.dynamics
    if isinstance(dyn, CorrectedModel):
        if dyn.library.names != library.names or dyn.state_shape != library.state_shape:
            raise ValueError(
                "`flow`'s model is a CorrectedModel of another library than `library`: "
                "the coefficients it carries belong to other columns."
            )
        return dyn
    if not isinstance(dyn, AbstractSemilinear):
        raise TypeError(
            f"`flow`'s dynamics must be a semilinear model (e.g. TwoLayerQG) for "
            f'design="integrated", got {type(dyn).__name__}.'
        )
    return CorrectedModel(dyn, library)


def check_twin_inputs(library, obs_op, observations, initial_ensemble, truth):
    """The shapes shared by the layered discovery drivers: `obs_op` of the library's state,
    observations (time, obs), initial_ensemble (ens, dim), truth (time, *state) or None
    (finite); returns the three as arrays."""
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
    initial_ensemble = jnp.asarray(initial_ensemble)
    if initial_ensemble.ndim != 2 or initial_ensemble.shape[1] != dim:
        raise ValueError(
            f"`initial_ensemble` must be (ens, {dim}), got shape {initial_ensemble.shape}."
        )
    if truth is not None:
        truth = jnp.asarray(truth)
        expected = (observations.shape[0], *shape)
        if truth.shape != expected:
            raise ValueError(
                f"`truth` has shape {truth.shape}, expected {expected} (the states at the "
                "observation times)."
            )
        check_finite("truth", truth)
    return observations, initial_ensemble, truth


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
    interpolate: Callable | None,
    key: Key,
    burn_in: int = 0,
    states: str | None = None,
    lowpass: float | None = None,
    truth: Float[ArrayLike, "..."] | None = None,
    design: str = "state",
    refinements: int = 1,
    batch_size: int = 8,
    passes: int = 1,
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
            (batch, ny, nx) (e.g. a random-Fourier-feature network fit). None: no
            interpolation, the regression uses the observed points only.
        key: PRNG key (split between the filter and the interpolation).
        burn_in: cycles left out of the regression and the diagnostics.
        states: where the one-state design evaluates the library: "background" (x^b_k,
            the time of the increment; the default) or "analysis" (x^a_{k-1}, the
            forecast's start). The integrated design always starts the forecasts at the
            analysis means x^a_{k-1} ("analysis", the default there).
        lowpass: regress only |m| <= lowpass n / 2 of target and columns (None: all).
        truth: the true states at t_1..t_K, (K, *state), for the diagnostics (twins).
        design: "state" (the library at one state) or "integrated" (the sensitivity of
            the interval's forecast to each term; `flow` must then be a
            `jaxsci.integrate.Flow`, see `regress_increments`).
        refinements: Gauss-Newton re-linearisations of the integrated design.
        batch_size: forecasts per compiled sensitivity call of the integrated design.
        passes: filter + regression passes; each pass after the first runs the filter with
            the model corrected by the previous pass's terms (`CorrectedModel`; `flow` must
            be a `jaxsci.integrate.Flow`), whose increments then measure what is left, and
            the integrated design is linearised about those terms (as the KS driver's
            `EnKFPasses`). The interpolation and diagnostics are the last pass's.

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
    if interpolate is not None and not callable(interpolate):
        raise TypeError(
            f"`interpolate` must be callable (or None: regress at the observed points only), "
            f"got {type(interpolate).__name__}."
        )
    passes = check_int("passes", passes)
    check_choice("design", design, INCREMENT_DESIGNS)
    if states is None:
        states = "analysis" if design == "integrated" else "background"
    check_choice("states", states, STATES)
    if interpolate is None and lowpass is not None:
        raise ValueError(
            "`lowpass` needs the interpolated field: without `interpolate` (regression at the "
            "observed points) give lowpass=None."
        )
    if passes > 1:
        _corrected_of(flow, library)
    if design == "integrated":
        if states != "analysis":
            raise ValueError(
                '`states` must be "analysis" with design="integrated" (its forecasts start at '
                f"the previous analysis), got {states!r}."
            )
        _corrected_of(flow, library)
    check_positive("interval", interval)
    key = check_key("key", key)
    shape = library.state_shape
    dim = int(np.prod(shape))
    observations, initial_ensemble, truth = check_twin_inputs(
        library, obs_op, observations, initial_ensemble, truth
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
    key_filter, key_interp = jax.random.split(key)
    seconds = {"assimilation": 0.0, "interpolation": 0.0, "regression": 0.0}
    idx = np.asarray(obs_op.indices)
    start = max(burn_in, 1) if states == "analysis" else burn_in

    def one_pass(pass_flow):
        res, increment_obs, increments, cycles, t_a, t_i = _assimilate_and_interpolate(
            pass_flow,
            library,
            obs_op,
            filter,
            initial_ensemble,
            observations,
            interval,
            interpolate,
            key_filter,
            key_interp,
            start,
        )
        seconds["assimilation"] += t_a
        seconds["interpolation"] += t_i
        analysis = res.mean_a.reshape(num_cycles, *shape)
        background = res.mean_f.reshape(num_cycles, *shape)
        # 3. the sparse regression of D_k / Delta on the design at the chosen states
        t = time.perf_counter()
        if states == "background":
            where = background[cycles]
        else:  # the forecast's start; the first cycle's is the initial ensemble's mean
            start_mean = jnp.mean(initial_ensemble, axis=0).reshape(1, *shape)
            where = jnp.concatenate([start_mean, analysis])[cycles]
        fit = regress_increments(
            library,
            regression,
            where,
            increments,
            interval,
            design=design,
            flow=pass_flow if design == "integrated" else None,
            lowpass=lowpass,
            points=idx if interpolate is None else None,
            refinements=refinements,
            batch_size=batch_size,
        )
        jax.block_until_ready(fit.coefficients)
        seconds["regression"] += time.perf_counter() - t
        return analysis, background, increments, increment_obs, cycles, fit

    analysis, background, increments, increment_obs, cycles, fit = one_pass(flow)
    history = [fit.coefficients]
    for p in range(1, passes):
        # the next pass runs the model corrected by the terms found so far
        corrected = _corrected_of(flow, library).with_coefficients(fit.coefficients)
        assert isinstance(flow, Flow)
        out = one_pass(Flow(corrected, flow.dt, flow.solver))
        analysis, background, increments, increment_obs, cycles, fit = out
        history.append(fit.coefficients)
        logger.info("pass %d of %d done", p + 1, passes)
    result = fit.regression

    # diagnostics against the truth (twin experiments)
    nan = float("nan")
    rmse_a = rmse_b = err_interp = err_filter = err_obs = nan
    full = None
    if truth is not None:
        rmse_a = float(jnp.sqrt(jnp.mean((analysis[burn_in:] - truth[burn_in:]) ** 2)))
        rmse_b = float(jnp.sqrt(jnp.mean((background[burn_in:] - truth[burn_in:]) ** 2)))
        full = truth[cycles] - background[cycles]
        if interpolate is not None:
            err_interp = lowpass_relative_error(library, increments, full, lowpass)
        own = (analysis - background)[cycles]
        err_filter = lowpass_relative_error(library, own, full, lowpass)
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
        column_rms=fit.column_rms,
        analysis=analysis,
        background=background,
        increments=increments,
        full_increments=full,
        info=info,
        history=jnp.stack(history),
    )


def _assimilate_and_interpolate(
    flow,
    library,
    obs_op,
    filter,
    initial_ensemble,
    observations,
    interval,
    interpolate,
    key_filter,
    key_interp,
    start,
):
    """Steps 1-2 of `discover_from_increments`: the filter's run with `flow`, the increments
    at the observed points of cycles start..K-1, and their interpolation onto the grid (or,
    without `interpolate`, scattered on a zero grid: the regression reads the points only)."""
    shape = library.state_shape
    num_cycles = observations.shape[0]
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
    t_assim = time.perf_counter() - t
    if not bool(jnp.all(res.finite)):
        raise ValueError(
            "the filter diverged (a non-finite analysis): increase its inflation or ensemble size."
        )
    cycles = np.arange(start, num_cycles)
    idx = np.asarray(obs_op.indices)
    increment_obs = (res.mean_a - res.mean_f)[cycles][:, idx]  # (cycles, obs)

    t = time.perf_counter()
    if interpolate is None:
        flat = jnp.zeros((cycles.size, int(np.prod(shape))), increment_obs.dtype)
        increments = flat.at[:, idx].set(increment_obs).reshape(cycles.size, *shape)
        return res, increment_obs, increments, cycles, t_assim, time.perf_counter() - t
    increments = interpolate_layers(library, obs_op, increment_obs, interpolate, key_interp)
    jax.block_until_ready(increments)
    return res, increment_obs, increments, cycles, t_assim, time.perf_counter() - t


def interpolate_layers(
    library: LayeredLibrary,
    obs_op: IndexObservation,
    values: Float[ArrayLike, "batch obs"],
    interpolate: Callable,
    key: Key,
) -> Float[Array, "batch layer y x"]:
    """Values at `obs_op`'s observed grid points (e.g. increments) interpolated onto the grid,
    each layer from its own points: `interpolate(coordinates, values, key) -> fields` as in
    `discover_from_increments`, called once per layer; returns (batch, *state)."""
    shape = library.state_shape
    idx = np.asarray(obs_op.indices)
    values = jnp.asarray(values)
    if values.ndim != 2 or values.shape[1] != idx.size:
        raise ValueError(f"`values` must be (batch, {idx.size}), got shape {values.shape}.")
    layer, iy, ix = np.unravel_index(idx, shape)
    spacing = library.grid.length / library.grid.shape[0]
    grids = []
    keys = jax.random.split(key, shape[0])
    for lay in range(shape[0]):
        sel = layer == lay
        if not sel.any():
            raise ValueError(
                f"`obs_op` observes no point of layer {lay + 1}: every layer needs observations."
            )
        coords = jnp.asarray(np.stack([iy[sel], ix[sel]], axis=-1) * spacing)
        fields = jnp.asarray(interpolate(coords, values[:, sel], keys[lay]))
        if fields.shape != (values.shape[0], *shape[1:]):
            raise ValueError(
                f"`interpolate` returned shape {fields.shape}, expected "
                f"{(values.shape[0], *shape[1:])}."
            )
        grids.append(fields)
    return jnp.stack(grids, axis=1)


def lowpass_relative_error(
    library: LayeredLibrary,
    fields: Float[ArrayLike, "batch layer y x"],
    reference: Float[ArrayLike, "batch layer y x"],
    lowpass: float | None,
) -> float:
    """||P(fields - reference)|| / ||P reference||, P the truncation to |m| <= lowpass n / 2
    (`discover_from_increments`'s `lowpass`; None: every scale): how the interpolation error
    against the full increments is measured."""
    mask = _lowpass_mask(library, lowpass)
    grid = library.grid
    return _rel(
        _apply_mask(grid, mask, jnp.asarray(fields), (2, 3)),
        _apply_mask(grid, mask, jnp.asarray(reference), (2, 3)),
    )
