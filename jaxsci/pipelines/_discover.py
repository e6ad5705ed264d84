r"""Pipeline `discover`: find a model's missing physics from sporadic, noisy observations.

A twin experiment around `jaxsci.discovery.discover_model_error` (MEDIDA: Mojgani,
Chattopadhyay & Hassanzadeh 2022, Chaos 32, 061105; the algorithm, its two biases and the
sample kinds are documented there and in `jaxsci.discovery`):

1. a "true" system -- the model class with changed parameters (for Kuramoto-Sivashinsky: a
   changed u_xx coefficient `alpha`, an added dispersion u_xxx, an added growth c u, a
   changed nonlinear coefficient `lam`) -- and the imperfect model (the configured one),
   run with `jaxsci.integrate.rollout`;
2. observations of the truth every `observations.interval`, noise-free or with Gaussian
   noise of std `observations.noise` x the truth's std (`filters.synthetic_observations`);
3. the discovery: with noise, `filter.passes` EnKF + regression passes (`EnKFPasses`: the
   first pass's filter from `filter.inflation`/`filter.rtps`, the later ones' from
   `filter.inflation_corrected`/`filter.rtps_corrected`, samples `filter.samples`), the
   library `library.terms`, the regression `regression.method`;
4. the true coefficients (`discovery.true_coefficients`) to score against;
5. forecasts of truth, model and corrected model from `forecast.count` truth states after
   the observation window, for `forecast.horizon` Lyapunov times: the normalised error and
   its valid time (`jaxsci.metrics`, first E > `forecast.threshold`) in Lyapunov times
   1/lambda_max of the truth (`integrate.lyapunov_exponents` unless given).

`metrics.json` holds exactly the keys below; timings and the rest go to `diagnostics.json`.
"""

import dataclasses
import json
import logging
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from matplotlib.figure import Figure

from .. import discovery, dynamics, filters, integrate
from ..metrics import normalised_error, valid_time
from . import _plots
from ._models import build_model, model_name, model_of, model_params, params_schema, params_section
from ._plots import PlotSection
from ._schema import ConfigError, option, section, to_dict
from ._simulate import SOLVERS

DESCRIPTION = (
    "model-error discovery (MEDIDA): EnKF + sparse Bayesian regression on a term library; "
    "coefficients, forecast skill"
)

logger = logging.getLogger("jaxsci.pipelines.discover")

#: Keys of `metrics.json` (the issue's list, in this order).
METRIC_KEYS = (
    "terms_found",
    "coef_found",
    "coef_true",
    "coef_rel_error_max",
    "spurious_terms",
    "valid_time_model",
    "valid_time_corrected",
)

#: Models with a periodic 1-D spectral state (a term library needs `length`, `num_points`).
DISCOVER_MODELS = ("KuramotoSivashinsky",)
_GRID_KEYS = ("length", "num_points", "dealias")
_MAX_FLOW_STEPS = 4096


@dataclasses.dataclass(frozen=True)
class _NoTruthChanges:
    """The `truth` section when the model is a Python object: nothing to change (give the
    true system as a `truth` object instead)."""


@dataclasses.dataclass(frozen=True)
class ModelSection:
    name: str = option(
        "KuramotoSivashinsky", choices=DISCOVER_MODELS, help="the imperfect model's class"
    )
    params: Any = option(
        factory=dict, section=params_section, help="the imperfect model's parameters"
    )


def truth_section(siblings) -> type:
    """The `truth` section: the model's physical parameters, each optional (None = as model)."""
    if isinstance(siblings["model"], dynamics.AbstractDynamics):
        return _NoTruthChanges  # no keys: a parameter change is refused by name below
    name = siblings["model"].name
    fields = []
    for field in dataclasses.fields(params_schema(name)):
        if field.name in _GRID_KEYS:
            continue
        spec = field.metadata["spec"]
        fields.append(
            (
                field.name,
                float | None,
                option(None, gt=spec.gt, ge=spec.ge, help="(default: as the model)"),
            )
        )
    return dataclasses.make_dataclass(f"{name}Truth", fields, frozen=True)


@dataclasses.dataclass(frozen=True)
class IntegrateSection:
    solver: str = option("ETDRK4", choices=tuple(SOLVERS), help="integrator of all models")
    dt: float = option(0.25, gt=0.0, help="integrator step")
    spinup: float = option(150.0, ge=0.0, help="time from the default state onto the attractor")


@dataclasses.dataclass(frozen=True)
class ObservationsSection:
    interval: float = option(1.0, gt=0.0, help="time between observations (Delta)")
    count: int = option(500, ge=3, help="number of observation times")
    noise: float = option(
        0.05, ge=0.0, help="noise std as a fraction of the truth's std (0: noise-free)"
    )
    every_kth: int = option(1, ge=1, help="observe every k-th grid point (noisy case only)")


@dataclasses.dataclass(frozen=True)
class FilterSection:
    ensemble_size: int = option(32, ge=2, help="EnKF members")
    inflation: float = option(
        1.1, gt=0.0, help="first pass (imperfect model): multiplicative inflation"
    )
    rtps: float = option(
        0.9, ge=0.0, le=1.0, help="first pass: relaxation to prior spread (0: off)"
    )
    inflation_corrected: float = option(
        1.2, gt=0.0, help="later passes (corrected model): multiplicative inflation"
    )
    rtps_corrected: float = option(
        0.5, ge=0.0, le=1.0, help="later passes: relaxation to prior spread (0: off)"
    )
    initial_spread: float = option(
        1.0, gt=0.0, help="initial ensemble std around the first observation (x noise std)"
    )
    burn_in: int = option(20, ge=0, help="analysis cycles left out of the samples")
    passes: int = option(2, ge=1, help="EnKF + regression passes (each with the corrected model)")
    samples: str = option(
        "instrumental",
        choices=("instrumental", "observation", "analysis"),
        help="model-error samples from the EnKF states (see the pipeline docstring)",
    )


@dataclasses.dataclass(frozen=True)
class LibrarySection:
    terms: list[str] = option(
        factory=lambda: list(discovery.DEFAULT_TERMS), help="candidate terms, e.g. u, u_xx, u*u_x"
    )
    design: str = option(
        "integrated",
        choices=discovery.DESIGNS,
        help="integrated: step sensitivities (exact for any Delta); instantaneous: MEDIDA",
    )
    refinements: int = option(2, ge=0, help="Gauss-Newton re-linearisations (integrated)")


@dataclasses.dataclass(frozen=True)
class RegressionSection:
    method: str = option("rvm", choices=("rvm", "stlsq", "horseshoe"), help="sparse regression")
    tolerance: float = option(1e-4, gt=0.0, help="rvm: convergence on |d log alpha|")
    max_iterations: int = option(500, ge=1, help="rvm / stlsq iteration cap")
    threshold: float = option(0.05, ge=0.0, help="stlsq: normalised coefficient threshold")
    num_warmup: int = option(300, ge=1, help="horseshoe: NUTS warm-up")
    num_samples: int = option(300, ge=2, help="horseshoe: NUTS draws")

    def __post_init__(self):
        defaults = {f.name: f.default for f in dataclasses.fields(self)}
        used_by = {
            "tolerance": ("rvm",),
            "threshold": ("stlsq",),
            "num_warmup": ("horseshoe",),
            "num_samples": ("horseshoe",),
            "max_iterations": ("rvm", "stlsq"),
        }
        for key, methods in used_by.items():
            if self.method not in methods and getattr(self, key) != defaults[key]:
                raise ConfigError(
                    key, f"is not used by method {self.method!r} (only by {list(methods)})"
                )


@dataclasses.dataclass(frozen=True)
class ForecastSection:
    count: int = option(8, ge=1, help="forecasts from truth states after the observations")
    spacing: float = option(20.0, gt=0.0, help="time between their initial states")
    horizon: float = option(10.0, gt=0.0, help="forecast length in Lyapunov times")
    threshold: float = option(0.5, gt=0.0, help="normalised error that ends the valid time")
    lyapunov_exponent: float | None = option(
        None, gt=0.0, help="lambda_max of the truth (null: estimate it)"
    )
    lyapunov_intervals: int = option(1000, ge=10, help="averaging time units of the estimate")


@dataclasses.dataclass(frozen=True)
class DiscoverConfig:
    """Schema of the `discover` pipeline."""

    seed: int = option(0, ge=0, help="PRNG seed (initial state, noise, filter)")
    model: ModelSection | dynamics.AbstractSemilinear = section(
        ModelSection,
        help="the imperfect model; from Python, a model object instead (an "
        "AbstractSemilinear on a 1-D periodic grid, as the term library needs)",
        objects=dynamics.AbstractSemilinear,
    )
    truth: Any = option(
        factory=dict,
        section=truth_section,
        help="the true system: changed model parameters; from Python, a model object (any "
        "AbstractDynamics with the model's state shape) instead",
        objects=dynamics.AbstractDynamics,
    )
    integrate: IntegrateSection = section(IntegrateSection)
    observations: ObservationsSection = section(ObservationsSection)
    filter: FilterSection = section(FilterSection, help="EnKF (noisy observations only)")
    library: LibrarySection = section(LibrarySection)
    regression: RegressionSection = section(RegressionSection)
    forecast: ForecastSection = section(ForecastSection)
    plot: PlotSection = section(PlotSection)

    def __post_init__(self):
        try:
            library = discovery.SpectralLibrary(self.library.terms)
        except (TypeError, ValueError) as err:
            raise ConfigError("library.terms", str(err)) from None
        model, truth = _semilinear(self.model), truth_of(self)
        if model.grid.ndim != 1:
            raise ConfigError("model", f"expected a 1-D grid, got shape {model.grid.shape}")
        if tuple(truth.state_shape) != tuple(model.state_shape):
            raise ConfigError(
                "truth",
                f"expected the model's state shape {model.state_shape}, got {truth.state_shape}",
            )
        del library
        obs = self.observations
        if obs.noise == 0 and obs.every_kth != 1:
            raise ConfigError(
                "observations.every_kth",
                "noise-free samples need the full state observed (every_kth 1); partial "
                "observations need the EnKF (observations.noise > 0)",
            )
        if obs.interval / self.integrate.dt > _MAX_FLOW_STEPS:
            raise ConfigError(
                "observations.interval",
                f"expected at most {_MAX_FLOW_STEPS} integrator steps per interval "
                f"(integrate.dt = {self.integrate.dt:g})",
            )
        steps = obs.interval / self.integrate.dt
        if not math.isclose(steps, round(steps), rel_tol=1e-6):
            raise ConfigError(
                "observations.interval",
                f"expected a multiple of integrate.dt={self.integrate.dt:g}, got {obs.interval:g}",
            )
        if obs.every_kth != 1 and self.filter.samples != "analysis":
            raise ConfigError(
                "filter.samples",
                f"{self.filter.samples!r} needs the full state observed "
                "(observations.every_kth 1); use 'analysis' with partial observations",
            )
        if obs.noise > 0 and self.filter.burn_in + 3 > obs.count:
            raise ConfigError(
                "filter.burn_in", f"leaves fewer than 2 sample pairs of {obs.count} observations"
            )


def _semilinear(value: Any) -> dynamics.AbstractSemilinear:
    """The imperfect model (a zoo spectral model or a semilinear object)."""
    model = model_of(value)
    if not isinstance(model, dynamics.AbstractSemilinear):
        raise ConfigError("model", f"expected a semilinear model, got {type(model).__name__}")
    return model


def truth_of(config: DiscoverConfig) -> dynamics.AbstractDynamics:
    """The true system: the `truth` object, the model object itself, or the zoo model with
    the `truth` section's parameter changes."""
    if isinstance(config.truth, dynamics.AbstractDynamics):
        return config.truth
    if isinstance(config.model, dynamics.AbstractDynamics):
        return config.model
    return build_model(config.model.name, truth_params(config), key="truth")


def truth_params(config: DiscoverConfig) -> dict:
    """The truth's constructor arguments: the model's, with the `truth` section's changes."""
    params = model_params(config.model)
    for key, value in to_dict(config.truth).items():
        if value is not None:
            params[key] = value
    return params


def _regression(cfg: RegressionSection) -> discovery.AbstractSparseRegression:
    if cfg.method == "rvm":
        return discovery.RVM(max_iterations=cfg.max_iterations, tolerance=cfg.tolerance)
    if cfg.method == "stlsq":
        return discovery.STLSQ(threshold=cfg.threshold, max_iterations=cfg.max_iterations)
    return discovery.HorseshoeRegression(num_warmup=cfg.num_warmup, num_samples=cfg.num_samples)


#: `filter.samples` -> the sample kind.
SAMPLES: dict[str, Callable[[], discovery.AbstractSamplePairs]] = {
    "instrumental": discovery.InstrumentalPairs,
    "observation": discovery.ObservationPairs,
    "analysis": discovery.AnalysisPairs,
}


def _enkf(inflation: float, rtps: float) -> filters.AbstractEnsembleFilter:
    return filters.Inflation(filters.RTPS(filters.EnKF(), rtps), inflation)


class _Timer:
    """Wall and CPU (process) time per phase, compile included. On a shared machine the CPU
    time is the steadier figure; the discovery's wall time is split into assimilation and
    regression by `DiscoveryInfo`, its CPU time is one figure."""

    def __init__(self):
        self.seconds = {"simulation": 0.0, "assimilation": 0.0, "regression": 0.0}
        self.cpu_seconds = {"simulation": 0.0, "discovery": 0.0}

    def start(self) -> tuple[float, float]:
        return time.perf_counter(), time.process_time()

    def add(self, phase: str, since: tuple[float, float]) -> None:
        self.seconds[phase] += time.perf_counter() - since[0]
        self.cpu_seconds[phase] += time.process_time() - since[1]

    def add_discovery(self, since: tuple[float, float], info: discovery.DiscoveryInfo) -> None:
        self.seconds["assimilation"] += info.assimilation_seconds
        self.seconds["regression"] += info.regression_seconds
        self.cpu_seconds["discovery"] += time.process_time() - since[1]


@eqx.filter_jit
def _trajectories(flow, starts, interval: float, count: int):
    """From each of `starts` (batch, dim): the start and `count` - 1 further states every
    `interval`, (batch, count, dim)."""
    return jax.vmap(
        lambda x: integrate.rollout(flow, x, count - 1, dt=interval, include_initial=True)
    )(starts)


def run(config: DiscoverConfig, run_dir: Path) -> dict:
    """Run the discovery; save `discovery.npz`, `diagnostics.json`, plots; return metrics."""
    start = time.perf_counter()
    timer = _Timer()
    model, truth = _semilinear(config.model), truth_of(config)
    num_points = model.grid.shape[0]
    library = discovery.SpectralLibrary(
        config.library.terms, model.grid.length, num_points, model.grid.dealias
    )
    icfg, ocfg, fcfg = config.integrate, config.observations, config.filter
    solver = SOLVERS[icfg.solver]()
    dt, interval = icfg.dt, ocfg.interval
    flow_truth = integrate.Flow(truth, dt, solver, max_steps=_MAX_FLOW_STEPS)
    flow_model = integrate.Flow(model, dt, solver, max_steps=_MAX_FLOW_STEPS)
    key = jax.random.key(config.seed)
    key_x0, key_obs, key_filter, key_init, key_reg = jax.random.split(key, 5)
    logger.info("model %s %s", model_name(config.model), model_params(config.model))
    if isinstance(config.truth, dynamics.AbstractDynamics):
        logger.info("truth: %s %s", type(truth).__name__, model_params(config.truth))
    else:
        changes = {k: v for k, v in to_dict(config.truth).items() if v is not None}
        logger.info("truth: %s", changes or "same as model")
    logger.info("library (%d terms): %s", library.num_terms, ", ".join(library.names))

    # --- 1-2. truth run and observations ------------------------------------------------
    t = timer.start()
    x0 = model.default_initial_state() + 0.01 * jax.random.normal(key_x0, model.state_shape)
    n_spin = math.ceil(icfg.spinup / interval - 1e-9)
    if n_spin > 0:
        x0 = _trajectories(flow_truth, x0[None], interval, n_spin + 1)[0, -1]
    fc = config.forecast
    # the truth over the observation window, then on through the forecast window
    spacing_steps = max(1, round(fc.spacing / interval))
    verify_start = ocfg.count + spacing_steps
    total = verify_start + (fc.count - 1) * spacing_steps + 1
    truth_states = _trajectories(flow_truth, x0[None], interval, total)[0]
    jax.block_until_ready(truth_states)
    if not np.all(np.isfinite(np.asarray(truth_states))):
        raise ValueError("the true system blew up: reduce integrate.dt or change truth")
    observed_truth = truth_states[: ocfg.count]
    std = float(jnp.std(observed_truth))
    sigma = ocfg.noise * std
    idx = np.arange(0, num_points, ocfg.every_kth)
    assimilation = None
    if sigma > 0:
        obs_op = filters.IndexObservation(num_points, idx, noise_cov=sigma**2)
        observations = filters.synthetic_observations(key_obs, obs_op, observed_truth)
        # the first pass runs the imperfect model, which needs heavy inflation to keep
        # track of the truth; later passes run the corrected model, nearly perfect
        first = jnp.zeros(num_points).at[idx].set(observations[0])
        noise = jax.random.normal(key_init, (fcfg.ensemble_size, num_points))
        assimilation = discovery.EnKFPasses(
            obs_op,
            _enkf(fcfg.inflation_corrected, fcfg.rtps_corrected),
            first + fcfg.initial_spread * sigma * noise,
            first_filter=_enkf(fcfg.inflation, fcfg.rtps),
            passes=fcfg.passes,
            burn_in=fcfg.burn_in,
            samples=SAMPLES[fcfg.samples](),
        )
    else:
        observations = observed_truth
    true = discovery.true_coefficients(
        truth, model, library, observed_truth[:: max(1, ocfg.count // 200)]
    )
    xi_true, outside = true.coefficients, true.residual
    coef_true = {n: float(c) for n, c in zip(library.names, xi_true, strict=True) if c != 0.0}
    timer.add("simulation", t)
    logger.info(
        "truth std %.4g; %d observations every %g (%d of %d points, noise std %.3g)",
        std,
        ocfg.count,
        interval,
        idx.size,
        num_points,
        sigma,
    )
    logger.info("true model error: %s (residual outside the library %.2g)", coef_true, outside)
    if outside > 1e-3:
        logger.warning(
            "the truth differs from the model by terms outside the library (relative "
            "residual %.2g): coef_true is its least-squares projection",
            outside,
        )

    # --- 3-6. (EnKF +) samples + sparse regression ---------------------------------------
    t = timer.start()
    try:
        found_all = discovery.discover_model_error(
            model,
            library,
            _regression(config.regression),
            observations,
            interval,
            dt=dt,
            solver=solver,
            design=config.library.design,
            refinements=config.library.refinements,
            assimilation=assimilation,
            truth=observed_truth,
            key=key_filter,
            regression_key=key_reg,
        )
    except ValueError as err:
        if "diverged" in str(err):
            raise ValueError(f"{err} (filter.inflation, filter.ensemble_size)") from err
        raise
    info = found_all.info
    timer.add_discovery(t, info)
    fit = found_all.fit
    if sigma > 0:
        logger.info(
            "EnKF analysis rmse per pass %s x the noise std",
            np.array2string(np.asarray(info.analysis_rmse) / sigma, precision=3),
        )

    # --- 7. forecasts of truth, model, corrected model -----------------------------------
    t = timer.start()
    flow_corrected = integrate.Flow(found_all.corrected, dt, solver, max_steps=_MAX_FLOW_STEPS)
    lam = fc.lyapunov_exponent
    if lam is None:
        lyap = integrate.lyapunov_exponents(
            flow_truth,
            truth_states[0],
            num_exponents=1,
            interval=1.0,
            num_intervals=fc.lyapunov_intervals,
            transient=10.0,
            # host-chunked: a Ctrl-C stops it within a chunk (~0.2 s), and its compiled
            # program holds no callback, so the persistent compilation cache keeps it
            interruptible=True,
        )
        lam = float(lyap.exponents[0])
        if not lam > 0:
            raise ValueError(
                f"the truth's leading Lyapunov exponent is {lam:.3g} <= 0: it is not chaotic, "
                "so valid times in Lyapunov times are undefined; set "
                "forecast.lyapunov_exponent"
            )
    steps = math.ceil(fc.horizon / lam / interval) + 1
    starts_idx = verify_start + spacing_steps * np.arange(fc.count)
    verify = jnp.stack([truth_states[i : i + 1] for i in starts_idx])[:, 0]
    truth_fc = _trajectories(flow_truth, verify, interval, steps)
    model_fc = _trajectories(flow_model, verify, interval, steps)
    corrected_fc = _trajectories(flow_corrected, verify, interval, steps)
    lead = interval * np.arange(steps)
    scale = float(jnp.sqrt(jnp.mean(truth_fc**2)))
    err_model = np.asarray(normalised_error(model_fc, truth_fc, scale))
    err_corrected = np.asarray(normalised_error(corrected_fc, truth_fc, scale))
    vt_model = valid_time(err_model, lead, fc.threshold) * lam
    vt_corrected = valid_time(err_corrected, lead, fc.threshold) * lam
    timer.add("simulation", t)

    # --- metrics ------------------------------------------------------------------------
    found = fit.terms()
    rel = [abs(found.get(n, 0.0) - c) / abs(c) for n, c in coef_true.items()]
    metrics: dict[str, Any] = {
        "terms_found": list(found),
        "coef_found": found,
        "coef_true": coef_true,
        "coef_rel_error_max": max(rel) if rel else (0.0 if not found else float("inf")),
        "spurious_terms": [n for n in found if n not in coef_true],
        "valid_time_model": float(np.mean(vt_model)),
        "valid_time_corrected": float(np.mean(vt_corrected)),
    }
    assert tuple(metrics) == METRIC_KEYS
    std_found = {
        n: float(s)
        for n, s, a in zip(library.names, np.asarray(fit.std), np.asarray(fit.active), strict=True)
        if a
    }
    diagnostics = {
        "coef_std": std_found,
        "valid_time_model_per_forecast": np.asarray(vt_model).tolist(),
        "valid_time_corrected_per_forecast": np.asarray(vt_corrected).tolist(),
        "valid_time_censored_at": fc.horizon,
        "lyapunov_exponent": lam,
        "lyapunov_time": 1.0 / lam,
        "truth_std": std,
        "noise_std": sigma,
        "n_samples": info.num_samples,
        "analysis_rmse_per_pass": np.asarray(info.analysis_rmse).tolist(),
        "coefficients_per_pass": np.asarray(found_all.coefficients).tolist(),
        "truth_outside_library": outside,
        "regression_iterations": int(fit.regression.num_iterations),
        "regression_converged": bool(fit.regression.converged),
        "seconds": dict(timer.seconds),
        "cpu_seconds": dict(timer.cpu_seconds),
    }
    logger.info(
        "found %s; true %s; max relative error %.3g; spurious %s",
        _fmt(found),
        _fmt(coef_true),
        metrics["coef_rel_error_max"],
        metrics["spurious_terms"],
    )
    logger.info(
        "valid time (Lyapunov times, mean of %d): model %.3g, corrected %.3g (horizon %g)",
        fc.count,
        metrics["valid_time_model"],
        metrics["valid_time_corrected"],
        fc.horizon,
    )
    analysis = found_all.analysis
    np.savez_compressed(
        run_dir / "discovery.npz",
        names=np.asarray(library.names),
        coefficients=np.asarray(fit.coefficients),
        covariance=np.asarray(fit.covariance),
        active=np.asarray(fit.active),
        coefficients_true=xi_true,
        observations=np.asarray(observations),
        truth=np.asarray(observed_truth),
        analysis=np.zeros((0,)) if analysis is None else np.asarray(analysis),
        lead_times=lead * lam,
        error_model=err_model,
        error_corrected=err_corrected,
    )
    if config.plot.enabled:
        with _plots.guard():
            heading = _heading(config, model, coef_true, sigma, std)
            _plot_all(
                model,
                library,
                fit,
                xi_true,
                lead * lam,
                (np.asarray(truth_fc[0]), np.asarray(model_fc[0]), np.asarray(corrected_fc[0])),
                err_model,
                err_corrected,
                fc.threshold,
                metrics,
                heading,
                run_dir,
                config.plot.dpi,
            )
    diagnostics["seconds"]["total"] = time.perf_counter() - start
    (run_dir / "diagnostics.json").write_text(json.dumps(diagnostics, indent=2) + "\n")
    logger.info(
        "wall time: simulation %.2f s, assimilation %.2f s, regression %.2f s (compile included)",
        *(timer.seconds[k] for k in ("simulation", "assimilation", "regression")),
    )
    return metrics


def _tex(name: str) -> str:
    """A term name as mathtext: 'u*u_xx^2' -> '$u\\,u_{xx}^{2}$'."""
    parts = []
    for factor in name.split("*"):
        base, _, power = factor.partition("^")
        sym, _, sub = base.partition("_")
        parts.append(sym + (f"_{{{sub}}}" if sub else "") + (f"^{{{power}}}" if power else ""))
    return "$" + "\\,".join(parts) + "$"


def _fmt(coefs: dict) -> str:
    return "{" + ", ".join(f"{k}: {v:+.4g}" for k, v in coefs.items()) + "}"


def _heading(config, model, coef_true, sigma, std) -> str:
    noise = "noise-free" if sigma == 0 else f"noise {config.observations.noise:.0%} of std"
    true = " ".join(f"{c:+.3g} {n}" for n, c in coef_true.items()) or "none"
    return (
        f"{model_name(config.model)}, L={model.grid.length:g}, "
        f"{model.grid.shape[0]} points   |   true model error: {true}\n"
        f"observations every {config.observations.interval:g} ({noise}), "
        f"{config.regression.method.upper()}, {config.library.design} design"
    )


def _plot_all(
    model,
    library,
    fit,
    xi_true,
    lead,
    fields,
    err_model,
    err_corrected,
    threshold,
    metrics,
    heading,
    run_dir,
    dpi,
) -> list[Path]:
    return [
        _plots._save(_hovmoller(model, lead, fields, heading), run_dir / "hovmoller.png", dpi),
        _plots._save(
            _coefficients(library, fit, xi_true, heading), run_dir / "coefficients.png", dpi
        ),
        _plots._save(
            _forecast_error(lead, err_model, err_corrected, threshold, metrics, heading),
            run_dir / "forecast_error.png",
            dpi,
        ),
    ]


def _hovmoller(model, lead, fields, heading) -> Figure:
    truth, plain, corrected = fields
    xs = model.grid.coordinates()[0]
    scale = _plots._field_norm(np.concatenate([truth.ravel(), plain.ravel(), corrected.ravel()]))
    fig = Figure(figsize=(10, 8.4), layout="constrained")
    axes = fig.subplots(3, 1, sharex=True)
    panels = (
        (truth, "truth"),
        (plain, "model (uncorrected)"),
        (corrected, "corrected model (model + discovered terms)"),
    )
    for ax, (field, name) in zip(axes, panels, strict=True):
        _plots._hovmoller(ax, lead, xs, field, "x", "$u$", fig, scale=scale)
        ax.set_title(f"{name}, from the same initial state", fontsize=10, loc="left")
        ax.set_xlabel("")
    axes[-1].set_xlabel("lead time (Lyapunov times)")
    fig.suptitle(heading, fontsize=10)
    return fig


def _coefficients(library, fit, xi_true, heading) -> Figure:
    names = list(library.names)
    found = np.asarray(fit.coefficients, dtype=float)
    std = np.asarray(fit.std, dtype=float)
    active = np.asarray(fit.active)
    pos = np.arange(len(names))
    fig = Figure(figsize=(max(6.0, 0.9 * len(names) + 2), 4.4), layout="constrained")
    ax = fig.add_subplot()
    ax.bar(pos - 0.2, xi_true, width=0.4, color="0.65", label="true")
    ax.bar(
        pos + 0.2,
        np.where(active, found, 0.0),
        width=0.4,
        color="tab:blue",
        yerr=np.where(active, 2 * std, 0.0),
        capsize=4,
        label="found (± 2 posterior std; samples taken as independent)",
    )
    for i in np.flatnonzero(active):
        ax.annotate(
            f"{found[i]:+.4g}", (pos[i] + 0.2, found[i]), ha="center", va="bottom", fontsize=7
        )
    ax.axhline(0.0, color="k", lw=0.6)
    ax.set_xticks(pos, [_tex(n) for n in names])
    ax.set_ylabel("coefficient of the model error")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, axis="y")
    ax.set_title(f"{heading}\ncoefficients: true vs found", fontsize=9)
    return fig


def _forecast_error(lead, err_model, err_corrected, threshold, metrics, heading) -> Figure:
    fig = Figure(figsize=(8.5, 4.4), layout="constrained")
    ax = fig.add_subplot()
    for errs, color, name, key in (
        (err_model, "tab:red", "model", "valid_time_model"),
        (err_corrected, "tab:blue", "corrected model", "valid_time_corrected"),
    ):
        for e in errs:
            ax.plot(lead, e, color=color, lw=0.5, alpha=0.35)
        ax.plot(
            lead,
            np.mean(errs, axis=0),
            color=color,
            lw=1.8,
            label=f"{name} (mean; valid time {metrics[key]:.3g} Lyapunov times)",
        )
    ax.axhline(threshold, color="k", ls="--", lw=0.9, label=f"threshold {threshold:g}")
    ax.set_xlabel("lead time (Lyapunov times)")
    ax.set_ylabel("normalised forecast error")
    ax.set_xlim(lead[0], lead[-1])
    ax.set_ylim(0, None)
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(alpha=0.3)
    ax.set_title(f"{heading}\nforecast error from truth initial states", fontsize=9)
    return fig
