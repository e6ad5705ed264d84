"""Pipeline `assimilate`: a twin experiment with an ensemble Kalman or particle filter.

Built only from the public API (`jaxsci.dynamics`, `jaxsci.integrate`, `jaxsci.filters`).
The truth starts on the attractor: the model's default state integrated for
`experiment.spinup` gives mu0, and each seed draws the truth x0 ~ N(mu0, initial_spread^2 I)
as DAPPER draws its truth from X0. The initial ensemble is drawn around the truth,
N(x0, initial_spread^2 I) (`experiment.ensemble_centre: truth`, the default), or, as in
DAPPER, from the same prior independently of the truth, N(mu0, initial_spread^2 I)
(`ensemble_centre: independent`; see `filters.assimilate`). Every seed is
one `filters.assimilate` call, run host-chunked (`interruptible=True`: a Ctrl-C stops it
within a chunk, and its compiled programs hold no host callback, so the persistent
compilation cache keeps them); a list of seeds runs one seed after another on the same
programs. Compilation (JAX's account of lowering and compiling, `CompileClock`) is reported
apart from the run. After a Ctrl-C, the metrics and arrays cover the seeds that finished
(`complete_seeds`).

Metrics follow DAPPER: `rmse_a` is the time-average, over analysis times after the burn-in,
of the RMS over state components of (analysis mean - truth); `spread_a` the same average of
the analysis spread. With several seeds both are medians over seeds (a diverged seed counts
as +inf in the median of `rmse_a`) and `n_diverged` counts the diverged seeds. A seed has
diverged when its `rmse_a` exceeds `experiment.divergence_threshold`, by default
`filters.DIVERGENCE_FRACTION` (0.5) x the climatological spread of its truth
(`filters.climatological_spread`); the metrics report the threshold and the spread (medians
over seeds) and the rule.
"""

import dataclasses
import json
import logging
import math
import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from .. import dynamics, filters, integrate, smc
from .._compile_clock import CompileClock
from .._interrupts import deferred_interrupts
from . import _plots
from ._files import PartialRun, write_netcdf
from ._models import (
    MODELS,
    check_default_state,
    model_name,
    model_of,
    model_option,
    model_params,
    params_section,
)
from ._schema import ConfigError, option, section, to_dict
from ._simulate import check_solver, make_solver, solver_option

DESCRIPTION = "twin experiment: EnKF / ETKF / LETKF / particle filter on a zoo model; rmse, plots"

logger = logging.getLogger("jaxsci.pipelines.assimilate")

#: Models whose state is a vector (the observation operators act on 1-D states).
ASSIMILATION_MODELS = tuple(n for n in MODELS if n != "NavierStokes2D")

METHODS = ("enkf", "etkf", "denkf", "ensrf", "letkf", "pf")
#: `filter.resampling` names -> the resampling schemes of `jaxsci.smc`.
RESAMPLING_SCHEMES = {
    fn.__name__: fn for fn in (smc.systematic, smc.stratified, smc.multinomial, smc.residual)
}
#: `filter.jitter_rule` names -> the jitter rules of `jaxsci.smc` ("nuj": DAPPER's name).
JITTER_RULES = {
    "nuj": smc.NoUniqueJitter,
    "keep_first": smc.KeepFirstCopyJitter,
    "all": smc.JitterAll,
}
_METHOD_NAMES = {
    "enkf": "EnKF",
    "etkf": "ETKF",
    "denkf": "DEnKF",
    "ensrf": "serial EnSRF",
    "letkf": "LETKF",
    "pf": "particle filter",
}
# `integrate.Flow` takes at most this many steps per call (its default `max_steps`).
_MAX_FLOW_STEPS = 4096


@dataclasses.dataclass(frozen=True)
class ModelSection:
    name: str = option(help="model class name (a vector state)", choices=ASSIMILATION_MODELS)
    params: Any = option(
        factory=dict,
        section=params_section,
        help="constructor arguments (defaults from its signature)",
    )


@dataclasses.dataclass(frozen=True)
class FlowSection:
    solver: str = solver_option()
    dt: float = option(0.05, gt=0.0, help="fixed step of the model integration")


@dataclasses.dataclass(frozen=True)
class ObservationsSection:
    interval: float | None = option(
        None, gt=0.0, help="time between analyses (default: flow.dt, one step per cycle)"
    )
    every_kth: int = option(1, ge=1, help="observe every k-th state variable")
    offset: int = option(0, ge=0, help="first observed variable (with every_kth)")
    indices: list[int] | None = option(
        None, help="observed variables (instead of every_kth/offset)"
    )
    noise_std: float = option(1.0, gt=0.0, help="observation-error std (R = noise_std^2 I)")


@dataclasses.dataclass(frozen=True)
class FilterSection:
    method: str | filters.AbstractFilter = option(
        "etkf",
        choices=METHODS,
        help="the analysis scheme; from Python, a filter object (any filters.AbstractFilter, "
        "with its own inflation, localisation, ...) instead",
        objects=filters.AbstractFilter,
    )
    ensemble_size: int = option(20, ge=2, help="members (particles for pf)")
    inflation: float = option(1.0, gt=0.0, help="multiplicative inflation of analysis anomalies")
    rtps: float = option(0.0, ge=0.0, le=1.0, help="relaxation to prior spread (0: off)")
    rtpp: float = option(0.0, ge=0.0, le=1.0, help="relaxation to prior perturbations (0: off)")
    rotate: bool = option(
        False, help="etkf, letkf: random mean-preserving rotation of the anomalies (DAPPER rot)"
    )
    loc_rad: float | None = option(
        None, gt=0.0, help="letkf: localisation radius in grid units (DAPPER loc_rad)"
    )
    batch_size: int = option(
        1,
        ge=1,
        help="letkf: grid points per local domain (DAPPER's batch_shape; 1: every point)",
    )
    resampling: str = option(
        "systematic", choices=tuple(RESAMPLING_SCHEMES), help="pf: resampling scheme"
    )
    ess_threshold: float = option(
        0.5, ge=0.0, le=1.0, help="pf: resample when ESS <= threshold * N (DAPPER NER)"
    )
    jitter: float = option(0.0, ge=0.0, help="pf: regularisation jitter scale (DAPPER reg)")
    jitter_rule: str = option(
        "nuj",
        choices=tuple(JITTER_RULES),
        help="pf: which resampled particles the jitter moves: nuj = every copy of a particle "
        "drawn twice or more (DAPPER's nuj=True), keep_first = the second and later copies "
        "of such a particle (not DAPPER's), all = every particle (DAPPER's nuj=False)",
    )

    @property
    def is_particle(self) -> bool:
        """Whether the scheme is a particle filter (log-weights, ESS)."""
        if isinstance(self.method, filters.AbstractFilter):
            return isinstance(self.method, filters.AbstractParticleFilter)
        return self.method == "pf"

    def __post_init__(self):
        defaults = {f.name: f.default for f in dataclasses.fields(self)}
        if isinstance(self.method, filters.AbstractFilter):
            for key in defaults:
                if key not in ("method", "ensemble_size") and getattr(self, key) != defaults[key]:
                    raise ConfigError(
                        key,
                        "is not used with a filter object as `method` (set it on the object, "
                        "e.g. wrap it in filters.Inflation / RTPS); remove it",
                    )
            return
        used_by = {
            "rotate": ("etkf", "letkf"),
            "loc_rad": ("letkf",),
            "batch_size": ("letkf",),
            "resampling": ("pf",),
            "ess_threshold": ("pf",),
            "jitter": ("pf",),
            "jitter_rule": ("pf",),
            "inflation": tuple(m for m in METHODS if m != "pf"),
            "rtps": tuple(m for m in METHODS if m != "pf"),
            "rtpp": tuple(m for m in METHODS if m != "pf"),
        }
        for key, methods in used_by.items():
            if self.method not in methods and getattr(self, key) != defaults[key]:
                raise ConfigError(
                    key,
                    f"is not used by method {self.method!r} (only by {list(methods)}); "
                    f"remove it or change filter.method",
                )
        if self.method == "letkf" and self.loc_rad is None:
            raise ConfigError("loc_rad", "required by method 'letkf' (grid units, e.g. 4)")
        if self.rtps > 0 and self.rtpp > 0:
            raise ConfigError("rtpp", "use either rtps or rtpp, not both")


@dataclasses.dataclass(frozen=True)
class ExperimentSection:
    n_cycles: int = option(1000, ge=1, help="analysis cycles")
    burn_in: float = option(0.0, ge=0.0, help="time units left out of rmse_a and spread_a")
    initial_spread: float = option(
        1.0, gt=0.0, help="std of the truth's perturbation and of the initial ensemble"
    )
    spinup: float = option(
        0.0, ge=0.0, help="time integrated from the model's default state to reach the attractor"
    )
    ensemble_centre: str = option(
        "truth",
        choices=("truth", "independent"),
        help="initial ensemble around the truth x0, or (independent, DAPPER) around the "
        "spun-up state, drawn independently of the truth",
    )
    divergence_threshold: float | None = option(
        None,
        gt=0.0,
        help="rmse_a above which a run diverged (default 0.5 x the truth's climatological spread)",
    )


@dataclasses.dataclass(frozen=True)
class PlotSection:
    enabled: bool = option(True, help="write PNG plots")
    window: int = option(400, ge=2, help="cycles (at the end) shown in the Hovmöller / series")
    dpi: int = option(120, ge=50, le=600)


@dataclasses.dataclass(frozen=True)
class OutputSection:
    netcdf: bool = option(
        True,
        help="also write assimilation.nc (xarray/netCDF-4: every seed's truth, observations, "
        "forecast/analysis means and spreads over dims seed, time, state or x, obs; settings "
        "as attributes) beside assimilation.npz",
    )
    ensemble: bool = option(
        False,
        help="also store the analysis ensemble of every cycle (and its log-weights) in "
        "assimilation.nc: seeds x cycles x members x state values",
    )

    def __post_init__(self):
        if self.ensemble and not self.netcdf:
            raise ConfigError("ensemble", "is written to assimilation.nc: needs netcdf: true")


@dataclasses.dataclass(frozen=True)
class AssimilateConfig:
    """Schema of the `assimilate` pipeline (the top-level `pipeline:` key is handled apart)."""

    model: ModelSection | dynamics.AbstractDynamics = model_option()
    seed: int | list[int] = option(
        0, help="PRNG seed, or a list of seeds run one after another (median rmse_a)"
    )
    flow: FlowSection = section(FlowSection)
    observations: ObservationsSection = section(ObservationsSection)
    filter: FilterSection = section(FilterSection)
    experiment: ExperimentSection = section(ExperimentSection)
    plot: PlotSection = section(PlotSection)
    output: OutputSection = section(OutputSection)

    def __post_init__(self):
        seeds = self.seed if isinstance(self.seed, list) else [self.seed]
        if not seeds:
            raise ConfigError("seed", "expected at least one seed, got []")
        if any(s < 0 for s in seeds):
            raise ConfigError("seed", f"expected seeds >= 0, got {self.seed}")
        if len(set(seeds)) != len(seeds):
            raise ConfigError("seed", f"expected distinct seeds, got {self.seed}")
        model = model_of(self.model)
        if isinstance(self.model, dynamics.AbstractDynamics):  # a user object: zoo models have one
            check_default_state(model)
        if len(model.state_shape) != 1:
            raise ConfigError(
                "model",
                f"expected a model with a vector state, got state shape {model.state_shape}",
            )
        dim = math.prod(model.state_shape)
        check_solver(self.flow.solver, model_name(self.model), model, "flow.solver")
        obs = self.observations
        if obs.indices is not None:
            bad = [i for i in obs.indices if not 0 <= i < dim]
            if not obs.indices or bad:
                raise ConfigError(
                    "observations.indices",
                    f"expected a non-empty list of integers in [0, {dim}), got {obs.indices}",
                )
            if len(set(obs.indices)) != len(obs.indices):
                raise ConfigError("observations.indices", "expected distinct indices")
        elif obs.offset >= dim:
            raise ConfigError("observations.offset", f"expected < the state dimension {dim}")
        interval = self.flow.dt if obs.interval is None else obs.interval
        if interval / self.flow.dt > _MAX_FLOW_STEPS:
            raise ConfigError(
                "observations.interval",
                f"expected at most {_MAX_FLOW_STEPS} flow steps per cycle, got "
                f"{interval:g} / flow.dt {self.flow.dt:g}",
            )
        run_length = self.experiment.n_cycles * interval
        if self.experiment.burn_in >= run_length:
            raise ConfigError(
                "experiment.burn_in",
                f"expected less than the run length n_cycles x observations.interval = "
                f"{self.experiment.n_cycles} x {interval:g} = {run_length:g}, got "
                f"{self.experiment.burn_in:g} (no cycle would be left to score)",
            )
        if self.filter.method == "letkf" and model_name(self.model) == "Lorenz63":
            raise ConfigError("filter.method", "letkf needs a spatial model, not Lorenz63")
        if self.filter.batch_size > dim:
            raise ConfigError(
                "filter.batch_size",
                f"expected at most the state dimension {dim}, got {self.filter.batch_size}",
            )


def seeds_of(config: AssimilateConfig) -> list[int]:
    return config.seed if isinstance(config.seed, list) else [config.seed]


def observed_indices(cfg: ObservationsSection, dim: int) -> np.ndarray:
    if cfg.indices is not None:
        return np.asarray(sorted(cfg.indices))
    return np.arange(cfg.offset, dim, cfg.every_kth)


def make_filter(cfg: FilterSection, obs_op) -> filters.AbstractFilter:
    """The analysis scheme of `cfg`, with its relaxation and inflation wrappers."""
    if isinstance(cfg.method, filters.AbstractFilter):
        return cfg.method
    if cfg.method == "pf":
        return filters.BootstrapPF(
            RESAMPLING_SCHEMES[cfg.resampling],
            ess_threshold=cfg.ess_threshold,
            reg=cfg.jitter,
            jitter_rule=JITTER_RULES[cfg.jitter_rule](),
        )
    base = {
        "enkf": lambda: filters.EnKF(),
        "etkf": lambda: filters.ETKF(rotate=cfg.rotate),
        "denkf": lambda: filters.DEnKF(),
        "ensrf": lambda: filters.SerialEnSRF(),
        "letkf": lambda: filters.LETKF(
            float(cfg.loc_rad or 0.0), obs_op, batch_size=cfg.batch_size, rotate=cfg.rotate
        ),
    }[cfg.method]()
    if cfg.rtps > 0:
        base = filters.RTPS(base, cfg.rtps)
    if cfg.rtpp > 0:
        base = filters.RTPP(base, cfg.rtpp)
    if cfg.inflation != 1.0:
        base = filters.Inflation(base, cfg.inflation)
    return base


def filter_label(cfg: FilterSection) -> str:
    """'LETKF N=7, infl 1.04, loc_rad 4' style description of the filter settings."""
    if isinstance(cfg.method, filters.AbstractFilter):
        return f"{type(cfg.method).__name__} N={cfg.ensemble_size}"
    parts = [f"{_METHOD_NAMES[cfg.method]} N={cfg.ensemble_size}"]
    if cfg.method == "pf":
        parts.append(f"{cfg.resampling}, NER {cfg.ess_threshold:g}")
        if cfg.jitter > 0:
            parts.append(f"reg {cfg.jitter:g} ({cfg.jitter_rule})")
        return ", ".join(parts)
    if cfg.inflation != 1.0:
        parts.append(f"infl {cfg.inflation:g}")
    if cfg.rtps > 0:
        parts.append(f"RTPS {cfg.rtps:g}")
    if cfg.rtpp > 0:
        parts.append(f"RTPP {cfg.rtpp:g}")
    if cfg.rotate:
        parts.append("rot")
    if cfg.loc_rad is not None:
        parts.append(f"loc_rad {cfg.loc_rad:g}")
    if cfg.batch_size != 1:
        parts.append(f"batch {cfg.batch_size}")
    return ", ".join(parts)


def complete_seeds(runs: list) -> list:
    """The runs of an interrupted multi-seed experiment that its metrics cover: the seeds that
    finished every cycle, dropping the one the Ctrl-C cut short (its cycles would truncate
    every seed's arrays and mix partial with whole-run means); only when the first seed was
    cut short is that partial run kept (then the only one)."""
    whole = [r for r in runs if bool(np.all(np.asarray(r.filter.completed)))]
    return whole if whole else runs[:1]


def _spun_up_state(model, flow, interval: float, spinup: float) -> jax.Array:
    """The model's default state advanced over `spinup` (whole observation intervals)."""
    x = jnp.asarray(model.default_initial_state())
    n = math.ceil(spinup / interval - 1e-9) if spinup > 0 else 0
    if n == 0:
        return x
    return jax.jit(lambda x: integrate.rollout(flow, x, n, dt=interval)[-1])(x)


def run(config: AssimilateConfig, run_dir: Path) -> dict:
    """Run the twin experiment(s); save `assimilation.npz` (and `assimilation.nc` unless
    `output.netcdf` is false), plots; return the metrics."""
    start = time.perf_counter()
    model, name = model_of(config.model), model_name(config.model)
    dim = math.prod(model.state_shape)
    solver = make_solver(config.flow.solver, model)
    flow = integrate.Flow(model, config.flow.dt, solver, max_steps=_MAX_FLOW_STEPS)
    ocfg, fcfg, ecfg = config.observations, config.filter, config.experiment
    interval = config.flow.dt if ocfg.interval is None else ocfg.interval
    steps_per_cycle = interval / config.flow.dt
    if not math.isclose(steps_per_cycle, round(steps_per_cycle), rel_tol=1e-6):
        logger.warning(
            "observations.interval=%g is not a multiple of flow.dt=%g: the last step of each "
            "cycle is shortened",
            interval,
            config.flow.dt,
        )
    idx = observed_indices(ocfg, dim)
    obs_op = filters.IndexObservation(dim, idx, noise_cov=ocfg.noise_std**2)
    filt = make_filter(fcfg, obs_op)
    seeds = seeds_of(config)
    params = model_params(config.model)
    logger.info("model %s %s, state dimension %d", name, params, dim)
    logger.info(
        "flow %s dt=%g; %d of %d variables observed every %g (noise std %g)",
        type(solver).__name__,
        config.flow.dt,
        idx.size,
        dim,
        interval,
        ocfg.noise_std,
    )
    logger.info(
        "filter %s; %d cycles, burn-in %g, seed(s) %s",
        filter_label(fcfg),
        ecfg.n_cycles,
        ecfg.burn_in,
        seeds,
    )

    t = time.perf_counter()
    x_start = _spun_up_state(model, flow, interval, ecfg.spinup)
    spinup_seconds = time.perf_counter() - t

    @jax.jit
    def seed_start(key):  # a seed's initial truth and the key of its experiment
        key_x0, key_da = jax.random.split(key)
        x0 = x_start + ecfg.initial_spread * jax.random.normal(key_x0, x_start.shape, x_start.dtype)
        return x0, key_da

    def one(seed):
        x0, key_da = seed_start(jax.random.key(seed))
        return filters.assimilate(
            key_da,
            flow,
            obs_op,
            filt,
            x0,
            n_cycles=ecfg.n_cycles,
            dt=interval,
            ensemble_size=fcfg.ensemble_size,
            init_std=ecfg.initial_spread,
            burn_in=ecfg.burn_in,
            store_ensembles=config.output.ensemble,
            divergence_threshold=ecfg.divergence_threshold,
            compute_likelihood=False,  # not reported by this pipeline
            # host-chunked: Ctrl-C stops the run within a chunk (~0.2 s), and the compiled
            # chunks hold no host callback (so the persistent compilation cache keeps them)
            interruptible=True,
            ensemble_centre=x_start if ecfg.ensemble_centre == "independent" else None,
        )

    # The seeds one after the other (an interruptible run cannot be vmapped); the first
    # compiles, the others reuse its programs. After a Ctrl-C the remaining seeds are
    # skipped (see `complete_seeds` for which runs are kept). Compile time is JAX's own
    # account of lowering and compiling (CompileClock), the run time the rest.
    runs = []
    planned = len(seeds)
    logger.info("running %d seed(s)", planned)
    t = time.perf_counter()
    with deferred_interrupts() as interrupt, CompileClock() as clock:
        for seed in seeds:
            runs.append(jax.block_until_ready(one(seed)))
            if interrupt.requested:
                break
    runs = complete_seeds(runs)
    seeds = seeds[: len(runs)]
    result = jax.tree.map(lambda *leaves: jnp.stack(leaves), *runs)
    compile_seconds = clock.seconds
    run_seconds = max(time.perf_counter() - t - compile_seconds, 0.0)
    logger.info("ran %d seed(s); %.2f s of it compiling", len(runs), compile_seconds)
    completed = np.asarray(result.filter.completed[-1], dtype=bool)
    n_done = int(completed.sum())
    if interrupt.requested:
        logger.warning("interrupted after %d of %d cycles", n_done, ecfg.n_cycles)

    rmse_seeds = np.asarray(result.rmse_a_mean, dtype=float)
    spread_seeds = np.asarray(result.spread_a_mean, dtype=float)
    diverged = np.asarray(result.diverged, dtype=bool)
    ranked = np.where(diverged | ~np.isfinite(rmse_seeds), np.inf, rmse_seeds)
    rmse_a = float(np.median(ranked)) if len(seeds) > 1 else float(rmse_seeds[0])
    if not math.isfinite(rmse_a):
        rmse_a = float("nan")
    cycles_total = n_done * len(seeds)
    rmse_f = np.asarray(result.rmse_f)[:, completed]
    metrics: dict[str, Any] = {
        "rmse_a": rmse_a,
        "spread_a": float(np.median(spread_seeds)),
        "n_cycles": n_done,
        "diverged": bool(diverged.any()),
        "rmse_f": float(np.median(np.mean(rmse_f, axis=1))) if n_done else float("nan"),
        "divergence_threshold": float(np.median(np.asarray(result.divergence_threshold))),
        "climatological_spread": float(np.median(np.asarray(result.climatological_spread))),
        "divergence_rule": result.divergence_rule,
    }
    if n_done < ecfg.n_cycles:
        metrics["n_cycles_planned"] = ecfg.n_cycles
    if fcfg.is_particle:
        ess = np.asarray(result.filter.ess)[:, completed]
        metrics["ess_mean"] = float(np.mean(ess)) if n_done else float("nan")
    if planned > 1:
        metrics["n_seeds"] = len(seeds)
        metrics["n_diverged"] = int(diverged.sum())
        metrics["rmse_a_seeds"] = rmse_seeds.tolist()
    if len(seeds) < planned:  # interrupted: the seeds that finished (see complete_seeds)
        metrics["n_seeds_planned"] = planned
    metrics.update(
        {
            "burn_in_cycles": int(np.sum(np.asarray(result.times[0]) <= ecfg.burn_in)),
            "compile_seconds": compile_seconds,
            "run_seconds": run_seconds,
            "spinup_seconds": spinup_seconds,
            "ms_per_cycle": 1e3 * run_seconds / max(cycles_total, 1),
        }
    )
    logger.info(
        "rmse_a %.4g, spread_a %.4g over %d cycles x %d seed(s) in %.2f s (%.3f ms/cycle)%s",
        metrics["rmse_a"],
        metrics["spread_a"],
        n_done,
        len(seeds),
        run_seconds,
        metrics["ms_per_cycle"],
        f"; {int(diverged.sum())} diverged" if diverged.any() else "",
    )
    logger.info(
        "diverged means %s: threshold %.4g (climatological spread of the truth %.4g)",
        metrics["divergence_rule"],
        metrics["divergence_threshold"],
        metrics["climatological_spread"],
    )

    # the cycles that ran (all of them unless interrupted)
    ran = slice(0, n_done)
    times = np.asarray(result.times[0], dtype=float)[ran]
    np.savez_compressed(
        run_dir / "assimilation.npz",
        seeds=np.asarray(seeds),
        times=times,
        truth=np.asarray(result.truth[0])[ran],
        mean_a=np.asarray(result.filter.mean_a[0])[ran],
        observations=np.asarray(result.observations[0])[ran],
        observed_indices=idx,
        rmse_a=np.asarray(result.rmse_a)[:, ran],
        rmse_f=np.asarray(result.rmse_f)[:, ran],
        spread_a=np.asarray(result.filter.spread_a)[:, ran],
        spread_f=np.asarray(result.filter.spread_f)[:, ran],
        ess=np.asarray(result.filter.ess)[:, ran],
        diverged=diverged,
    )
    if config.output.netcdf:
        settings = {
            "filter": filter_label(fcfg),
            "dt": config.flow.dt,
            "solver": type(solver).__name__,
            "interval": interval,
            "config": json.dumps(to_dict(config)),
        }
        dataset = filters.assimilation_dataset(result, obs_op, model, seeds=seeds, attrs=settings)
        write_netcdf(run_dir / "assimilation.nc", dataset)
    if interrupt.requested:  # the arrays and metrics of the cycles that ran are saved
        raise PartialRun(metrics)

    if config.plot.enabled:
        with _plots.guard():
            heading = _plots.assimilation_title(
                name,
                params,
                filter_label(fcfg),
                f"{idx.size}/{dim} observed every {interval:g}, noise std {ocfg.noise_std:.3g}",
            )
            series = {
                "times": times,
                "rmse_a": np.asarray(result.rmse_a, dtype=float),
                "spread_a": np.asarray(result.filter.spread_a, dtype=float),
                "truth": np.asarray(result.truth[0], dtype=float),
                "mean_a": np.asarray(result.filter.mean_a[0], dtype=float),
                "observations": np.asarray(result.observations[0], dtype=float),
                "observed_indices": idx,
            }
            _plots.plot_assimilation(
                model, series, metrics, ecfg.burn_in, ocfg.noise_std, heading, run_dir, config.plot
            )
    metrics["wall_seconds"] = time.perf_counter() - start
    return metrics
