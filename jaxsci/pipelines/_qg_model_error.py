r"""Pipeline `qg_model_error`: MEDIDA-QG, a missing term of two-layer QG turbulence found from
sparse, noisy observations (after Mojgani, Chattopadhyay & Hassanzadeh 2024, JAMES 16,
e2023MS004033).

A twin experiment around `jaxsci.discovery.discover_in_filter` (`estimator.method:
in_filter`, the default) or `jaxsci.discovery.discover_from_increments` (`increments`, the
paper's route):

1. the truth, `dynamics.TwoLayerQG` with pyqg's parameters, spun up from pyqg's random
   start for `model.spinup_days` into statistically steady turbulence and run on through the
   observation window (`model.solver`: ETDRK4, or pyqg's AB3, with pyqg's spectral filter);
   the imperfect model is the same with `error.term` removed ("rek": no bottom drag) or
   changed ("beta": beta x (1 + `error.beta_change`));
2. observations of q at every `observations.every_kth`-th grid point of both layers
   (`observations.every_kth_grid`) every `observations.interval_steps` model steps, with
   Gaussian noise of std `observations.noise` x each layer's std;
3. the LETKF (2-D periodic localisation over the grid columns, `filters.grid_domains`) runs
   the imperfect model, started from `filter.ensemble_size` truth states from before the
   window, `filter.member_spacing_days` apart (climatology);
4. in_filter: every member also carries coefficients of the `discovery.LayeredLibrary`
   (`library.terms`) and is forecast by the model plus those terms; the LETKF's local
   transforms averaged over the observed columns update them (the `estimator` keys); the
   estimate is their time mean. As a diagnostic, the increments of the last
   `interpolation.cycles_per_fit` cycles are interpolated onto the grid (RFF network) and
   compared with the full increments;
5. increments: the analysis increments at the observed points are interpolated onto the grid
   per layer and cycle (`interpolation.method`: a random-Fourier-feature network,
   `jaxsci.nn`) and regressed sparsely (`regression.method`) per unit time on the library:
   at the background states (`library.design: state`) or the integrated design
   (`library.design: integrated`, with `library.refinements` Gauss-Newton
   re-linearisations), optionally on the scales |m| <= `library.lowpass` n / 2 only, or at
   the observed points only (`interpolation.method: none`); `filter.passes` > 1 re-runs the
   filter and regression with the model corrected by the terms found.

Metrics: the found and true coefficients (`discovery.true_coefficients`), the relative error
of the injected term, the largest other coefficient's contribution relative to the injected
term's (|xi_j| x its column's RMS; every column, selected or not), the interpolation's
relative error against the full increments and the wall time of simulation, assimilation,
interpolation and regression.
"""

import dataclasses
import json
import logging
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from matplotlib.figure import Figure

from .. import discovery, dynamics, filters, integrate, nn, observations
from . import _plots
from ._plots import PlotSection
from ._schema import ConfigError, option, section

DESCRIPTION = (
    "MEDIDA-QG: a missing term of two-layer QG found from sparse noisy observations, with the "
    "library coefficients inside the LETKF (or via increments, RFF interpolation and sparse "
    "regression)"
)

logger = logging.getLogger("jaxsci.pipelines.qg_model_error")

SECONDS_PER_DAY = 86400.0


@dataclasses.dataclass(frozen=True)
class ModelSection:
    num_points: int = option(64, ge=8, help="grid points per side (pyqg's nx)")
    dt: float = option(7200.0, gt=0.0, help="model step in s (pyqg's default)")
    solver: str = option(
        "ETDRK4",
        choices=("ETDRK4", "AB3"),
        help="ETDRK4 (RK4 here: no stiff part) or pyqg's AB3, each with pyqg's filter; every "
        "forecast restarts the solver, so AB3 over one step is its Euler start",
    )
    spinup_days: float = option(
        1825.0, ge=0.0, help="spin-up of the truth from pyqg's random start (days)"
    )


@dataclasses.dataclass(frozen=True)
class ErrorSection:
    term: str = option(
        "rek",
        choices=("rek", "beta"),
        help="rek: the model has no bottom drag; beta: the model's beta is changed",
    )
    beta_change: float = option(0.1, help="beta: relative change of the model's beta")


@dataclasses.dataclass(frozen=True)
class ObservationsSection:
    every_kth: int = option(2, ge=1, help="observe every k-th grid point along x and y")
    noise: float = option(0.01, gt=0.0, help="noise std as a fraction of each layer's std")
    interval_steps: int = option(6, ge=1, help="model steps between observations (Delta)")
    count: int = option(200, ge=4, help="number of observation times")


@dataclasses.dataclass(frozen=True)
class FilterSection:
    ensemble_size: int = option(20, ge=2, help="LETKF members")
    loc_rad: float = option(4.0, gt=0.0, help="localisation radius in grid points")
    inflation: float = option(1.05, ge=1.0, help="multiplicative inflation")
    rtps: float = option(0.7, ge=0.0, le=1.0, help="relaxation to prior spread (0: off)")
    obs_error_factor: float = option(
        1.0,
        ge=1.0,
        help="the filter's observation error std over the true noise std (R inflation: a "
        "20-member ensemble overfits 1%-noise observations and its spread collapses)",
    )
    burn_in: int = option(20, ge=0, help="cycles left out of the regression")
    passes: int = option(
        1,
        ge=1,
        help="filter + regression passes; each later pass runs the model corrected by the "
        "terms found so far",
    )
    member_spacing_days: float = option(
        10.0, gt=0.0, help="time between the truth states that start the members (days)"
    )


@dataclasses.dataclass(frozen=True)
class InterpolationSection:
    method: str = option(
        "rff",
        choices=("rff", "none"),
        help="rff: a random-Fourier-feature network per fit; none: regress at the observed "
        "points only (needs library.lowpass: null)",
    )
    fourier_scale: float | None = option(
        None, gt=0.0, help="std of the RFF wavenumbers, modes per box (null: nn's default)"
    )
    num_steps: int = option(2000, ge=1, help="Adam steps per fit")
    learning_rate: float = option(1e-3, gt=0.0, help="peak Adam learning rate")
    cycles_per_fit: int = option(
        8, ge=1, help="cycles fitted together as the channels of one network"
    )


@dataclasses.dataclass(frozen=True)
class LibrarySection:
    terms: list[str] = option(
        factory=lambda: list(discovery.QG_TERMS), help="candidate terms per layer"
    )
    design: str = option(
        "state",
        choices=discovery.INCREMENT_DESIGNS,
        help="state: the library at one state; integrated: the sensitivity of the interval's "
        "forecast to each term (forward mode through the model)",
    )
    refinements: int = option(
        1, ge=0, help="integrated: Gauss-Newton re-linearisations about the found terms"
    )
    states: str | None = option(
        None,
        choices=discovery.STATES,
        help="state design: where the library is evaluated (null: background); the "
        "integrated design starts at the analysis",
    )
    lowpass: float | None = option(
        0.25, gt=0.0, le=1.0, help="regress |m| <= lowpass n/2 only (null: every scale)"
    )


@dataclasses.dataclass(frozen=True)
class EstimatorSection:
    method: str = option(
        "in_filter",
        choices=("in_filter", "increments"),
        help="in_filter: the library coefficients estimated inside the LETKF "
        "(discovery.discover_in_filter); increments: interpolated increments regressed on the "
        "library (discovery.discover_from_increments)",
    )
    tendency_days: float = option(
        20.0,
        gt=0.0,
        help="in_filter: a unit scaled coefficient changes a layer by its RMS in this many days",
    )
    prior_std: float = option(0.1, gt=0.0, help="in_filter: prior std of the scaled coefficients")
    spread_floor: float = option(
        0.05, ge=0.0, help="in_filter: smallest spread of a scaled coefficient after an analysis"
    )
    start: int = option(
        20, ge=0, help="in_filter: the first cycle whose analysis updates the coefficients"
    )
    average_from: float = option(
        0.5, ge=0.0, lt=1.0, help="in_filter: the estimate averages the cycles from this fraction"
    )
    threshold: float = option(
        0.1,
        ge=0.0,
        le=1.0,
        help="in_filter: terms found are those with a contribution of at least this fraction of "
        "the largest (the metrics read every coefficient)",
    )


@dataclasses.dataclass(frozen=True)
class RegressionSection:
    method: str = option("rvm", choices=("rvm", "stlsq"), help="sparse regression")
    threshold: float = option(0.05, ge=0.0, help="stlsq: normalised coefficient threshold")


@dataclasses.dataclass(frozen=True)
class QGModelErrorConfig:
    """Schema of the `qg_model_error` pipeline."""

    seed: int = option(0, ge=0, help="PRNG seed")
    model: ModelSection = section(ModelSection)
    error: ErrorSection = section(ErrorSection)
    observations: ObservationsSection = section(ObservationsSection)
    filter: FilterSection = section(FilterSection)
    interpolation: InterpolationSection = section(InterpolationSection)
    library: LibrarySection = section(LibrarySection)
    estimator: EstimatorSection = section(EstimatorSection)
    regression: RegressionSection = section(RegressionSection)
    plot: PlotSection = section(PlotSection)

    def __post_init__(self):
        n = self.model.num_points
        if n % 2:
            raise ConfigError("model.num_points", f"expected an even number, got {n}")
        if n % self.observations.every_kth:
            raise ConfigError(
                "observations.every_kth",
                f"expected a divisor of model.num_points={n}, got {self.observations.every_kth}",
            )
        try:
            discovery.LayeredLibrary(self.library.terms, 1.0, n)
        except (TypeError, ValueError) as err:
            raise ConfigError("library.terms", str(err)) from None
        if self.interpolation.method == "none" and self.library.lowpass is not None:
            raise ConfigError(
                "library.lowpass",
                "must be null with interpolation.method=none (the observed points only)",
            )
        if self.library.design == "integrated" and self.library.states == "background":
            raise ConfigError(
                "library.states", "the integrated design starts at the analysis (null)"
            )
        if self.estimator.method == "in_filter" and self.filter.passes > 1:
            raise ConfigError(
                "filter.passes",
                "passes are the increments estimator's (estimator.method: increments); the "
                "in_filter estimator runs once",
            )
        if self.estimator.method == "in_filter":
            first = max(
                self.estimator.start, int(self.estimator.average_from * self.observations.count)
            )
            if first >= self.observations.count:
                raise ConfigError(
                    "estimator.start",
                    f"with estimator.average_from leaves no cycle of {self.observations.count} "
                    "to average",
                )
        if self.filter.burn_in + 2 > self.observations.count:
            raise ConfigError(
                "filter.burn_in",
                f"leaves no cycles of {self.observations.count} observations to regress",
            )


def _models(config: QGModelErrorConfig):
    n = config.model.num_points
    truth = dynamics.TwoLayerQG(n)
    if config.error.term == "rek":
        model = dynamics.TwoLayerQG(n, rek=0.0)
    else:
        model = dynamics.TwoLayerQG(n, beta=float(truth.beta) * (1 + config.error.beta_change))
    return truth, model


def _regression(cfg: RegressionSection) -> discovery.AbstractSparseRegression:
    if cfg.method == "rvm":
        return discovery.RVM()
    return discovery.STLSQ(threshold=cfg.threshold)


def _interpolator(cfg: InterpolationSection, grid):
    """`discover_from_increments`'s `interpolate`: `nn.interpolate_scattered` with
    `cycles_per_fit` cycles as the channels of one network."""

    def interpolate(coords, values, key):
        fields = []
        chunks = range(0, values.shape[0], cfg.cycles_per_fit)
        for i, k in zip(chunks, jax.random.split(key, len(chunks)), strict=True):
            chunk = values[i : i + cfg.cycles_per_fit]
            field, _ = nn.interpolate_scattered(
                k,
                coords,
                chunk.T,
                grid,
                fourier_scale=cfg.fourier_scale,
                num_steps=cfg.num_steps,
                learning_rate=cfg.learning_rate,
                progress=False,
            )
            fields.append(field)
        return jnp.concatenate(fields)

    return interpolate


class _Found(NamedTuple):
    """What either estimator found, in the form the metrics and plots read."""

    coefficients: Any
    active: Any
    column_rms: Any
    terms: dict
    history: Any
    increments: Any  # (cycles, *state) interpolated increments, or None
    full_increments: Any  # x^t - x^b of those cycles, or None
    arrays: dict  # extra arrays for the .npz
    info: SimpleNamespace


def _from_increments(config, flow, library, obs_op, filt, members, y, interval, key, truth):
    fc = config.filter
    found = discovery.discover_from_increments(
        flow,
        library,
        _regression(config.regression),
        obs_op,
        filt,
        members,
        y,
        interval,
        interpolate=(
            None
            if config.interpolation.method == "none"
            else _interpolator(config.interpolation, library.grid)
        ),
        key=key,
        burn_in=fc.burn_in,
        states=config.library.states,
        lowpass=config.library.lowpass,
        design=config.library.design,
        refinements=config.library.refinements,
        passes=fc.passes,
        truth=truth[1:],
    )
    info = found.info
    return _Found(
        coefficients=found.coefficients,
        active=found.active,
        column_rms=found.column_rms,
        terms=found.terms(),
        history=found.history,
        increments=found.increments,
        full_increments=found.full_increments,
        arrays={},
        info=SimpleNamespace(
            seconds=dict(info.seconds),
            interpolation_error=info.interpolation_error,
            filter_increment_error=info.filter_increment_error,
            observed_increment_error=info.observed_increment_error,
            analysis_rmse=info.analysis_rmse,
            num_samples=info.num_samples,
        ),
    )


def _in_filter(config, flow, library, obs_op, filt, members, y, interval, key, truth):
    """`discovery.discover_in_filter`, and, as a diagnostic, the interpolation of the
    increments of its last `interpolation.cycles_per_fit` cycles against the full ones."""
    ec = config.estimator
    key_est, key_interp = jax.random.split(key)
    found = discovery.discover_in_filter(
        flow,
        library,
        filt,
        obs_op,
        members,
        y,
        interval,
        key=key_est,
        tendency_time=ec.tendency_days * SECONDS_PER_DAY,
        prior_std=ec.prior_std,
        spread_floor=ec.spread_floor,
        start=ec.start,
        average_from=ec.average_from,
        threshold=ec.threshold,
        truth=truth[1:],
    )
    seconds = {"assimilation": found.info.seconds["assimilation"], "regression": 0.0}
    count = y.shape[0]
    cycles = np.arange(max(0, count - config.interpolation.cycles_per_fit), count)
    idx = np.asarray(obs_op.indices)
    own = (found.analysis - found.background)[cycles]
    full = truth[1:][cycles] - found.background[cycles]
    inc_obs = own.reshape(cycles.size, -1)[:, idx]
    full_obs = full.reshape(cycles.size, -1)[:, idx]
    lowpass = config.library.lowpass
    t = time.perf_counter()
    increments = None
    err_interp = float("nan")
    if config.interpolation.method == "rff":
        increments = discovery.interpolate_layers(
            library,
            obs_op,
            inc_obs,
            _interpolator(config.interpolation, library.grid),
            key_interp,
        )
        err_interp = discovery.lowpass_relative_error(library, increments, full, lowpass)
    seconds["interpolation"] = time.perf_counter() - t
    obs_err = float(jnp.linalg.norm(inc_obs - full_obs) / jnp.linalg.norm(full_obs))
    return _Found(
        coefficients=found.coefficients,
        active=found.active,
        column_rms=found.column_rms,
        terms=found.terms(),
        history=found.coefficients[None],
        increments=increments,
        full_increments=full if increments is not None else None,
        arrays={
            "trajectory": np.asarray(found.trajectory),
            "spread": np.asarray(found.spread),
            "averaged_cycles": np.asarray(found.info.averaged_cycles),
        },
        info=SimpleNamespace(
            seconds=seconds,
            interpolation_error=err_interp,
            filter_increment_error=discovery.lowpass_relative_error(library, own, full, lowpass),
            observed_increment_error=obs_err,
            analysis_rmse=found.info.analysis_rmse,
            num_samples=int(count * members.shape[0]),
        ),
    )


def run(config: QGModelErrorConfig, run_dir: Path) -> dict:
    start = time.perf_counter()
    key = jax.random.key(config.seed)
    k_init, k_obs, k_disc = jax.random.split(key, 3)
    mc, oc, fc = config.model, config.observations, config.filter
    n = mc.num_points
    truth_model, model = _models(config)
    spectral_filter = truth_model.spectral_filter()
    solver = (
        integrate.AB3(filter=spectral_filter)
        if mc.solver == "AB3"
        else integrate.Filtered(integrate.ETDRK4(), spectral_filter)
    )
    flow_truth = integrate.Flow(truth_model, mc.dt, solver)
    flow_model = integrate.Flow(model, mc.dt, solver)
    interval = oc.interval_steps * mc.dt

    # --- 1. truth: spin-up, climatological members, the observation window -------------
    t = time.perf_counter()
    q0 = truth_model.default_initial_state(k_init)
    spin_steps = int(round(mc.spinup_days * SECONDS_PER_DAY / interval))
    if spin_steps:
        q0 = integrate.rollout(flow_truth, q0, spin_steps, dt=interval)[-1]
    # members: truth states `member_spacing_days` apart (climatology: nearly independent);
    # the observation window starts one spacing after the last of them
    spacing = fc.member_spacing_days * SECONDS_PER_DAY
    states = integrate.rollout(flow_truth, q0, fc.ensemble_size + 1, dt=spacing)
    members = states[:-1]
    truth = integrate.rollout(flow_truth, states[-1], oc.count, dt=interval, include_initial=True)
    truth = jax.block_until_ready(truth)  # t_0 .. t_K
    simulation_seconds = time.perf_counter() - t
    if not bool(jnp.all(jnp.isfinite(truth))):
        raise ValueError("the truth blew up: reduce model.dt")
    layer_std = np.asarray(jnp.std(truth, axis=(0, 2, 3)))

    # --- 2. observations ------------------------------------------------------------------
    per_layer = (n // oc.every_kth) ** 2
    noise_std = np.repeat(oc.noise * layer_std, per_layer)
    obs_op = observations.every_kth_grid((n, n), oc.every_kth, n_layers=2, noise_std=noise_std)
    y = filters.synthetic_observations(k_obs, obs_op, truth[1:].reshape(oc.count, -1))
    # the filter's R: (obs_error_factor x noise std)^2 (the observations keep the true noise)
    obs_op = observations.every_kth_grid(
        (n, n), oc.every_kth, n_layers=2, noise_std=fc.obs_error_factor * noise_std
    )

    # --- 3-5. LETKF + interpolation + regression ------------------------------------------
    dom = filters.grid_domains((n, n), 2)
    letkf = filters.LETKF(
        fc.loc_rad, obs_op, dom.state_locations, dom.domain_length, domains=dom.domains
    )
    filt: filters.AbstractEnsembleFilter = letkf
    if fc.rtps > 0:
        filt = filters.RTPS(filt, fc.rtps)
    if fc.inflation != 1.0:
        filt = filters.Inflation(filt, fc.inflation)
    library = discovery.LayeredLibrary(
        config.library.terms, truth_model.length, n, streamfunction=truth_model.streamfunction
    )
    flat_members = members.reshape(members.shape[0], -1)
    if config.estimator.method == "in_filter":
        found = _in_filter(
            config, flow_model, library, obs_op, filt, flat_members, y, interval, k_disc, truth
        )
    else:
        found = _from_increments(
            config, flow_model, library, obs_op, filt, flat_members, y, interval, k_disc, truth
        )

    info = found.info
    # --- metrics ----------------------------------------------------------------------------
    t = time.perf_counter()
    true = discovery.true_coefficients(
        truth_model, model, library, truth[:: max(1, oc.count // 20)]
    )
    simulation_seconds += time.perf_counter() - t
    names = library.names
    xi_true = np.asarray(true.coefficients)
    xi = np.asarray(found.coefficients, dtype=float)
    active = np.asarray(found.active)
    # contributions in the units of the columns' RMS: a coefficient times its column's RMS
    scale = np.asarray(found.column_rms, dtype=float)
    injected = [i for i in range(len(names)) if xi_true[i] != 0.0]
    inj = injected[0]
    rel_error = abs(xi[inj] - xi_true[inj]) / abs(xi_true[inj])
    contrib = np.abs(xi) * scale
    spurious = [i for i in np.flatnonzero(active) if i not in injected]
    # every other column counts, selected or not (a pruned RVM column is exactly zero)
    largest_spurious = float(
        max((contrib[i] for i in range(len(names)) if i not in injected), default=0.0)
        / (abs(xi_true[inj]) * scale[inj])
    )
    seconds = {"simulation": simulation_seconds, **info.seconds}
    seconds["total"] = time.perf_counter() - start
    metrics: dict[str, Any] = {
        "injected_term": names[inj],
        "coef_true": float(xi_true[inj]),
        "coef_found": float(xi[inj]),
        "coef_rel_error": float(rel_error),
        "terms_found": found.terms,
        "spurious_terms": [names[i] for i in spurious],
        "largest_spurious_relative": largest_spurious,
        "estimator": config.estimator.method,
        "coef_found_per_pass": [float(h[inj]) for h in np.asarray(found.history)],
        "interpolation_rel_error": info.interpolation_error,
        "filter_increment_rel_error": info.filter_increment_error,
        "observed_increment_rel_error": info.observed_increment_error,
        # the analysis rmse (both layers) over the rms noise std of the two layers
        "analysis_rmse_over_noise": float(
            info.analysis_rmse / (oc.noise * np.sqrt(np.mean(layer_std**2)))
        ),
        "seconds": seconds,
    }
    logger.info(
        "injected %s: true %.4g, found %.4g (rel. error %.3g); spurious %s (largest %.3g of it)",
        names[inj],
        xi_true[inj],
        xi[inj],
        rel_error,
        metrics["spurious_terms"],
        largest_spurious,
    )
    logger.info(
        "interpolation rel. error %.3g (the LETKF's own full-grid increments: %.3g)",
        info.interpolation_error,
        info.filter_increment_error,
    )
    logger.info(
        "wall time: simulation %.1f s, assimilation %.1f s, interpolation %.1f s, "
        "regression %.1f s",
        *(seconds[k] for k in ("simulation", "assimilation", "interpolation", "regression")),
    )
    np.savez_compressed(
        run_dir / "qg_model_error.npz",
        names=np.asarray(names),
        coefficients=xi,
        coefficients_true=xi_true,
        active=active,
        increments=np.asarray(found.increments[-1])
        if found.increments is not None
        else np.zeros(0),
        full_increments=np.asarray(found.full_increments[-1])
        if found.full_increments is not None
        else np.zeros(0),
        layer_std=layer_std,
        **found.arrays,
    )
    (run_dir / "diagnostics.json").write_text(
        json.dumps({"true_residual": true.residual, "num_samples": info.num_samples}, indent=2)
        + "\n"
    )
    if config.plot.enabled:
        with _plots.guard():
            heading = (
                f"MEDIDA-QG: {config.error.term} error, {n}^2, every {oc.every_kth}th point, "
                f"noise {oc.noise:.0%} of std, "
                + (
                    "coefficients in the LETKF"
                    if config.estimator.method == "in_filter"
                    else config.regression.method.upper()
                )
            )
            if found.increments is not None:
                _plots._save(
                    _increments_figure(found, heading),
                    run_dir / "increments.png",
                    config.plot.dpi,
                )
            if "trajectory" in found.arrays:
                _plots._save(
                    _trajectory_figure(names, found.arrays, scale, xi_true, inj, heading),
                    run_dir / "coefficient_trajectories.png",
                    config.plot.dpi,
                )
            _plots._save(
                _coefficients_figure(names, xi, xi_true, active, scale, heading),
                run_dir / "coefficients.png",
                config.plot.dpi,
            )
    return metrics


def _increments_figure(found, heading) -> Figure:
    inc = np.asarray(found.increments[-1])
    full = found.full_increments
    fig = Figure(figsize=(9, 7.5), layout="constrained")
    axes = fig.subplots(2, 2)
    for layer in range(2):
        panels = [(inc[layer], "interpolated increment")]
        if full is not None:
            panels.insert(0, (np.asarray(full[-1, layer]), "full increment (truth - background)"))
        for ax, (field, title) in zip(axes[layer], panels, strict=False):
            # each panel on its own scale: the background's grid-scale error can dwarf the
            # interpolated increment
            vmax = float(np.max(np.abs(field))) or 1.0
            im = ax.imshow(field, origin="lower", cmap="RdBu_r", vmin=-vmax, vmax=vmax)
            ax.set_title(f"layer {layer + 1}: {title}", fontsize=9)
            fig.colorbar(im, ax=ax, shrink=0.8)
    fig.suptitle(heading + "\nlast cycle", fontsize=10)
    return fig


def _coefficients_figure(names, xi, xi_true, active, scale, heading) -> Figure:
    pos = np.arange(len(names))
    fig = Figure(figsize=(max(7.0, 0.5 * len(names) + 2), 4.4), layout="constrained")
    ax = fig.add_subplot()
    ax.bar(pos - 0.2, xi_true * scale, width=0.4, color="0.6", label="true")
    ax.bar(pos + 0.2, np.where(active, xi, 0.0) * scale, width=0.4, label="found")
    ax.axhline(0.0, color="k", lw=0.6)
    ax.set_xticks(pos, names, rotation=60, ha="right", fontsize=8)
    ax.set_ylabel("coefficient x RMS of its column")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, axis="y")
    ax.set_title(heading, fontsize=9)
    return fig


def _trajectory_figure(names, arrays, scale, xi_true, inj, heading) -> Figure:
    """Each coefficient's contribution over the cycles, in units of the true injected term's,
    with the +-5% band and the averaged cycles shaded."""
    traj = arrays["trajectory"] * scale / (abs(xi_true[inj]) * scale[inj])
    first, last = (int(v) for v in arrays["averaged_cycles"])
    cycles = np.arange(1, traj.shape[0] + 1)
    fig = Figure(figsize=(9, 5), layout="constrained")
    ax = fig.add_subplot()
    for j, name in enumerate(names):
        if j == inj:
            ax.plot(cycles, traj[:, j], label=name, lw=2.0, color="k")
        else:
            ax.plot(cycles, traj[:, j], label=name, lw=0.9)
    ax.axhspan(-0.05, 0.05, color="0.85", zorder=0, label="+-5% of the true term")
    ax.axvspan(first + 1, last, color="C0", alpha=0.06, zorder=0, label="averaged")
    ax.axhline(np.sign(xi_true[inj]), color="k", ls="--", lw=0.8)
    ax.set_xlabel("cycle")
    ax.set_ylabel("coefficient x column RMS / true term's")
    ax.set_ylim(-1.5, 1.5)
    ax.legend(fontsize=6, ncol=4, loc="lower right")
    ax.grid(alpha=0.3)
    ax.set_title(heading, fontsize=9)
    return fig
