"""Pipeline `simulate`: integrate a zoo model, plot it, and optionally its Lyapunov exponents.

Built only from the public API (`jaxsci.dynamics`, `jaxsci.integrate`): the trajectory is
`integrate.simulate_chunked` (equal compiled chunks, so a progress bar can follow it and
compilation is timed apart from the run; the saved times are labelled t0, t0 + save_every,
..., t1), the exponents `integrate.lyapunov_exponents`. A Ctrl-C during the Lyapunov run stops it
at the end of a host-level chunk of intervals (about 0.2 s of work): the exponents over the
completed intervals are saved (`lyapunov.npz`) and reported as partial metrics
(`lyapunov_intervals` of `lyapunov_intervals_planned`), and the run exits as interrupted.
"""

import dataclasses
import json
import logging
import math
import time
from pathlib import Path
from typing import Any

import diffrax
import jax
import jax.numpy as jnp
import numpy as np

from .. import dynamics, integrate
from .._interrupts import deferred_interrupts
from . import _plots
from ._files import PartialRun, write_netcdf
from ._flow_statistics import (
    StatisticsSection,
    check_model,
    flow_statistics,
    plot_statistics,
    summary,
)
from ._models import (
    MODELS,
    build_model,
    check_default_state,
    is_semilinear,
    model_name,
    model_of,
    model_option,
    model_params,
    params_section,
)
from ._schema import ConfigError, option, section, to_dict

DESCRIPTION = "integrate a zoo model; trajectory, plots, optional Lyapunov exponents"

logger = logging.getLogger("jaxsci.pipelines.simulate")

#: Solver names -> constructors. ETDRK* and AB3 need a semilinear (spectral PDE) model.
SOLVERS = {
    "AB3": integrate.AB3,
    "ETDRK1": integrate.ETDRK1,
    "ETDRK2": integrate.ETDRK2,
    "ETDRK3": integrate.ETDRK3,
    "ETDRK4": integrate.ETDRK4,
    "RK4": integrate.RK4,
    "Euler": diffrax.Euler,
    "Heun": diffrax.Heun,
    "Midpoint": diffrax.Midpoint,
    "Ralston": diffrax.Ralston,
    "Bosh3": diffrax.Bosh3,
    "Tsit5": diffrax.Tsit5,
    "Dopri5": diffrax.Dopri5,
    "Dopri8": diffrax.Dopri8,
}


@dataclasses.dataclass(frozen=True)
class ModelSection:
    name: str = option(help="model class name", choices=tuple(MODELS))
    params: Any = option(
        factory=dict,
        section=params_section,
        help="constructor arguments (defaults from its signature)",
    )


@dataclasses.dataclass(frozen=True)
class InitialConditionSection:
    noise: float = option(0.0, ge=0.0, help="std of a Gaussian perturbation of the default state")
    seed: int = option(0, ge=0, help="PRNG seed of the perturbation")


def solver_option():
    """The `solver` config option shared by the pipelines that integrate a model."""
    return option(
        "auto", choices=("auto", *SOLVERS), help="auto: ETDRK4 for spectral PDEs, RK4 otherwise"
    )


def check_solver(solver: str, model_name: str, model, key: str) -> None:
    """Raise a ConfigError on `key` when an ETDRK solver is asked for a non-spectral model."""
    if _semilinear_solver(solver) and not is_semilinear(model):
        semi = [n for n in MODELS if is_semilinear(build_model(n, {}))]
        raise ConfigError(
            key,
            f"{solver} needs a semilinear spectral model (one of {semi}), "
            f"got {model_name}; use RK4, Tsit5, ...",
        )


@dataclasses.dataclass(frozen=True)
class IntegrateSection:
    solver: str = solver_option()
    dt: float = option(0.01, gt=0.0, help="step size (initial step if adaptive)")
    t0: float = option(0.0, help="time label of the first saved state")
    t1: float = option(10.0, help="end time")
    save_every: float | None = option(None, gt=0.0, help="save interval (default: dt)")
    spinup: float = option(0.0, ge=0.0, help="time integrated first and discarded")
    adaptive: bool = option(False, help="adaptive steps (PID controller) instead of fixed dt")
    rtol: float = option(1e-6, gt=0.0)
    atol: float = option(1e-8, gt=0.0)
    chunks: int = option(20, ge=1, help="chunks of the run (progress-bar granularity)")

    def __post_init__(self):
        if not self.t1 > self.t0:
            raise ConfigError("t1", f"expected t1 > t0 = {self.t0}, got {self.t1}")
        span = self.t1 - self.t0
        every = self.dt if self.save_every is None else self.save_every
        if every > span:
            raise ConfigError("save_every", f"expected <= t1 - t0 = {span:g}, got {every:g}")
        if self.adaptive and not issubclass(
            SOLVERS.get(self.solver, integrate.RK4), diffrax.AbstractAdaptiveSolver
        ):
            adaptive = [
                n for n, s in SOLVERS.items() if issubclass(s, diffrax.AbstractAdaptiveSolver)
            ]
            raise ConfigError(
                "adaptive",
                f"needs an adaptive solver (one of {adaptive}), got solver {self.solver!r}",
            )


@dataclasses.dataclass(frozen=True)
class LyapunovSection:
    num_exponents: int = option(1, ge=1, help="how many leading exponents")
    interval: float = option(1.0, gt=0.0, help="time between QR re-orthonormalisations")
    num_intervals: int = option(1000, ge=1, help="intervals averaged over")
    transient: float = option(0.0, ge=0.0, help="time run before averaging (after spinup)")
    dt: float | None = option(None, gt=0.0, help="step of the tangent flow (default integrate.dt)")
    seed: int | None = option(None, ge=0, help="random initial tangents (default: unit vectors)")


@dataclasses.dataclass(frozen=True)
class PlotSection:
    enabled: bool = option(True, help="write PNG plots")
    snapshots: int = option(4, ge=1, le=8, help="2-D fields: number of snapshots shown")
    dpi: int = option(120, ge=50, le=600)


@dataclasses.dataclass(frozen=True)
class OutputSection:
    netcdf: bool = option(
        True,
        help="also write trajectory.nc (xarray/netCDF-4: dims time and x (PDE grid) or state, "
        "coordinates, model parameters and settings as attributes) beside trajectory.npz",
    )


@dataclasses.dataclass(frozen=True)
class SimulateConfig:
    """Schema of the `simulate` pipeline (the top-level `pipeline:` key is handled apart)."""

    model: ModelSection | dynamics.AbstractDynamics = model_option()
    initial_condition: InitialConditionSection = section(InitialConditionSection)
    integrate: IntegrateSection = section(IntegrateSection)
    lyapunov: LyapunovSection | None = option(
        None, help="present (even empty) to compute Lyapunov exponents"
    )
    statistics: StatisticsSection | None = option(
        None,
        help="present (even empty) for a 2-D flow's steady-state statistics: energy time "
        "series, time-mean kinetic-energy spectrum per layer and its slope",
    )
    plot: PlotSection = section(PlotSection)
    output: OutputSection = section(OutputSection)

    def __post_init__(self):
        model = model_of(self.model)
        if isinstance(self.model, dynamics.AbstractDynamics):  # a user object: zoo models have one
            check_default_state(model)
        check_solver(self.integrate.solver, model_name(self.model), model, "integrate.solver")
        if self.lyapunov is not None:
            dim = math.prod(model.state_shape)
            if self.lyapunov.num_exponents > dim:
                raise ConfigError(
                    "lyapunov.num_exponents",
                    f"expected <= the state dimension {dim}, got {self.lyapunov.num_exponents}",
                )
        if self.statistics is not None:
            check_model(model, model_name(self.model))
            start = self.statistics.start
            if start is not None and not self.integrate.t0 <= start < self.integrate.t1:
                raise ConfigError(
                    "statistics.start",
                    f"expected in [t0, t1) = [{self.integrate.t0:g}, {self.integrate.t1:g}), "
                    f"got {start:g}",
                )


def _semilinear_solver(name: str) -> bool:
    return name.startswith("ETDRK") or name == "AB3"


def make_solver(name: str, model) -> diffrax.AbstractSolver:
    """The solver `name` for `model`. A model with a post-step spectral filter (a
    `spectral_filter()` method, e.g. TwoLayerQG's, pyqg's scheme) gets it after every step
    of AB3 (its `filter`) and of the ETDRK solvers (`integrate.Filtered`); other solvers
    run without it."""
    if name == "auto":
        name = "ETDRK4" if is_semilinear(model) else "RK4"
    filt = model.spectral_filter() if callable(getattr(model, "spectral_filter", None)) else None
    if name == "AB3":
        return integrate.AB3(filter=filt)
    solver = SOLVERS[name]()
    if filt is not None and _semilinear_solver(name):
        return integrate.Filtered(solver, filt)
    return solver


def _initial_state(config: SimulateConfig, model) -> jax.Array:
    y0 = jnp.asarray(model.default_initial_state())
    ic = config.initial_condition
    if ic.noise > 0:
        key = jax.random.key(ic.seed)
        y0 = y0 + ic.noise * jax.random.normal(key, y0.shape, y0.dtype)
    return y0


def run(config: SimulateConfig, run_dir: Path) -> dict:
    """Integrate, save `trajectory.npz` (and `trajectory.nc` unless `output.netcdf` is false)
    and plots, estimate Lyapunov exponents if asked."""
    start = time.perf_counter()
    model, name = model_of(config.model), model_name(config.model)
    cfg = config.integrate
    solver = make_solver(cfg.solver, model)
    every = cfg.dt if cfg.save_every is None else cfg.save_every
    params = model_params(config.model)
    logger.info("model %s %s, state shape %s", name, params, tuple(model.state_shape))
    sim = integrate.simulate_chunked(
        model,
        _initial_state(config, model),
        cfg.t1 - cfg.t0,
        every,
        chunks=cfg.chunks,
        t0=cfg.t0,
        spinup=cfg.spinup,
        solver=solver,
        dt0=cfg.dt,
        stepsize_controller=(
            diffrax.PIDController(rtol=cfg.rtol, atol=cfg.atol) if cfg.adaptive else None
        ),
        max_steps=16**5 if cfg.adaptive else None,
        progress=True,
        description=f"simulate {name}",
    )
    if sim.every != every:
        logger.warning(
            "save_every=%g does not divide t1 - t0 = %g; saved every %g",
            every,
            cfg.t1 - cfg.t0,
            sim.every,
        )
    ts, ys = sim.ts, sim.ys
    np.savez_compressed(run_dir / "trajectory.npz", ts=ts, ys=ys)
    if config.output.netcdf:
        settings = {
            "solver": type(solver).__name__,
            "dt": cfg.dt,
            "save_every": sim.every,
            "spinup": cfg.spinup,
            "adaptive": cfg.adaptive,
            "initial_noise": config.initial_condition.noise,
            "seed": config.initial_condition.seed,
            "config": json.dumps(to_dict(config)),
        }
        dataset = integrate.trajectory_dataset(ts, ys, model, attrs=settings)
        write_netcdf(run_dir / "trajectory.nc", dataset)
    logger.info(
        "solver %s, dt=%g, t=[%g, %g], spin-up %g (%d steps, %.2f s with compile), "
        "%d saves every %g",
        type(solver).__name__,
        cfg.dt,
        cfg.t0,
        cfg.t1,
        cfg.spinup,
        sim.num_steps_spinup,
        sim.spinup_seconds,
        ys.shape[0],
        sim.every,
    )
    logger.info(
        "integrated %d steps in %.2f s (+ %.2f s compile)",
        sim.num_steps,
        sim.run_seconds,
        sim.compile_seconds,
    )

    metrics: dict[str, Any] = {
        "model": name,
        "solver": type(solver).__name__,
        "n_steps": sim.num_steps,
        "n_steps_spinup": sim.num_steps_spinup,
        "n_saves": int(ys.shape[0]),
        "compile_seconds": sim.compile_seconds,
        "run_seconds": sim.run_seconds,
        "spinup_seconds": sim.spinup_seconds,
        "steps_per_second": sim.num_steps / max(sim.run_seconds, 1e-9),
        "state_mean": float(ys.mean()),
        "state_std": float(ys.std()),
        "state_min": float(ys.min()),
        "state_max": float(ys.max()),
        "finite": bool(np.all(np.isfinite(ys))),
    }

    stats, stats_config = None, config.statistics
    if stats_config is not None:
        stats_metrics, stats = flow_statistics(model, ts, ys, stats_config)
        np.savez_compressed(run_dir / "statistics.npz", allow_pickle=False, **stats)
        metrics.update(stats_metrics)
        logger.info("%s", summary(stats_metrics))

    lyap = None
    if config.lyapunov is not None:
        lyap = _lyapunov(config.lyapunov, config.integrate.dt, model, solver, ys[0], run_dir)
        metrics.update(lyap["metrics"])
        if lyap["interrupted"]:  # the exponents of the intervals that ran are saved
            metrics["wall_seconds"] = time.perf_counter() - start
            raise PartialRun(metrics)

    if config.plot.enabled:
        with _plots.guard():
            title = _plots.title(name, params, type(solver).__name__, cfg.dt)
            _plots.plot_trajectory(model, ts, ys, title, run_dir, config.plot)
            if lyap is not None:
                _plots.plot_lyapunov(lyap["times"], lyap["running"], title, run_dir, config.plot)
            if stats is not None and stats_config is not None:
                plot_statistics(
                    stats, metrics, stats_config, model, title, run_dir, config.plot.dpi
                )
    metrics["wall_seconds"] = time.perf_counter() - start
    return metrics


def _lyapunov(lc: LyapunovSection, step: float, model, solver, y0, run_dir: Path) -> dict:
    dt = step if lc.dt is None else lc.dt
    # One flow call covers an interval or the transient; the bound is static loop structure.
    max_steps = math.ceil(max(lc.interval, lc.transient) / dt) + 16
    flow = integrate.Flow(model, dt, solver, max_steps=max_steps)
    key = None if lc.seed is None else jax.random.key(lc.seed)
    logger.info(
        "Lyapunov: %d exponent(s), %d intervals of %g (+ %g transient), dt=%g",
        lc.num_exponents,
        lc.num_intervals,
        lc.interval,
        lc.transient,
        dt,
    )
    t = time.perf_counter()
    with deferred_interrupts() as interrupt:
        result = integrate.lyapunov_exponents(
            flow,
            jnp.asarray(y0),
            num_exponents=lc.num_exponents,
            interval=lc.interval,
            num_intervals=lc.num_intervals,
            transient=lc.transient,
            key=key,
            interruptible=True,  # Ctrl-C stops the run within a chunk (~0.2 s)
        )
        result = jax.block_until_ready(result)
    seconds = time.perf_counter() - t
    n_done = int(np.sum(result.completed))
    if interrupt.requested:
        logger.warning(
            "Lyapunov run interrupted after %d of %d intervals", n_done, lc.num_intervals
        )
    exponents = np.asarray(result.exponents, dtype=float)
    # the intervals that ran (all of them unless interrupted)
    running, times = np.asarray(result.running)[:n_done], np.asarray(result.times)[:n_done]
    np.savez_compressed(run_dir / "lyapunov.npz", exponents=exponents, running=running, times=times)
    logger.info("Lyapunov exponents %s (%.2f s)", np.array2string(exponents, precision=4), seconds)
    metrics: dict[str, Any] = {"lyapunov_max": float(exponents[0])}
    if lc.num_exponents > 1:
        metrics["lyapunov"] = exponents.tolist()
    metrics["lyapunov_intervals"] = n_done
    if n_done < lc.num_intervals:
        metrics["lyapunov_intervals_planned"] = lc.num_intervals
    metrics["lyapunov_seconds"] = seconds
    return {
        "metrics": metrics,
        "running": running,
        "times": times,
        "interrupted": interrupt.requested,
    }
