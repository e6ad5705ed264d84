r"""Pipeline `l96_closure`: learn a closure of Lorenz-96 through a differentiable filter.

A twin experiment of `jaxsci.discovery.learn_closure`:

1. truth: the two-scale Lorenz-96 model (`truth`: K slow, J fast per slow, F, h, c, b;
   RK4 step `truth.dt`), after `truth.spinup` time units; observed: every
   `observations.every_kth` slow variable every `observations.interval` with Gaussian
   noise of std `observations.noise`, `observations.train` cycles to learn from, then
   `observations.test` held-out cycles to score the filters on;
2. the model: one-scale Lorenz-96 (K, F) plus a closure of the local slow state, compared
   four ways:
   * `none`: no closure;
   * `learned`: a `jaxsci.nn.LocalMLP` (`closure`) trained end to end through the ensemble
     filter (`filter`) on the training observations alone (`learn_closure`, `training`);
   * `oracle`: the same network fitted offline by MSE to the true subgrid tendencies
     -(h c / b) sum_j Y_{j,k} of the training cycles (`oracle`; uses the truth);
   * `polynomial`: a cubic (`polynomial.degree`) of X_k regressed on the filter's analysis
     increments, `polynomial.passes` passes (`fit_closure_to_increments`);
3. scores: the filter's mean analysis RMSE over the held-out cycles (after
   `filter.burn_in` cycles from a climatological ensemble), and the forecast valid time
   from `forecast.count` truth slow states after the held-out cycles: the first lead at
   which the RMS error over the slow variables exceeds `forecast.threshold` times their
   climatological std (Vlachas et al. 2020, Neural Netw. 126, "valid prediction time"), in
   Lyapunov times 1/lambda_max of the one-scale model (the predictability time of the
   slow variables; the two-scale system's own leading exponent belongs to its fast
   variables, c times faster). Forecasts start from the true slow state (the model
   error alone).

`metrics.json` holds the two scores of each model and the must-show checks;
`diagnostics.json` the wall time per stage, the Lyapunov exponent, the training history
summary; `closure.npz` the arrays; `closure_learned.eqx` the learned hybrid model's weights
(`eqx.tree_deserialise_leaves` into the same `HybridVectorField`).
"""

import dataclasses
import json
import logging
import math
import time
from pathlib import Path
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from matplotlib.figure import Figure

from .. import discovery, filters, integrate, losses, nn, train
from .._compile_clock import CompileClock
from ..dynamics import Lorenz96, Lorenz96TwoScale
from ..metrics import normalised_error, valid_time
from . import _plots
from ._discover import _trajectories
from ._plots import PlotSection
from ._schema import ConfigError, option, section

DESCRIPTION = (
    "learn a Lorenz-96 closure through a differentiable EnKF from sparse noisy observations; "
    "vs none, oracle and polynomial: rmse_a, forecast valid time"
)

logger = logging.getLogger("jaxsci.pipelines.l96_closure")

#: The four models, in the order of every table and plot.
MODELS = ("none", "learned", "oracle", "polynomial")


@dataclasses.dataclass(frozen=True)
class TruthSection:
    k: int = option(36, ge=4, help="slow variables K")
    j: int = option(10, ge=1, help="fast variables per slow variable J")
    forcing: float = option(10.0, help="F")
    coupling: float = option(1.0, help="h")
    time_scale: float = option(10.0, gt=0.0, help="c (fast variables c times faster)")
    amplitude_scale: float = option(10.0, gt=0.0, help="b")
    dt: float = option(0.005, gt=0.0, help="RK4 step of the truth (resolves the fast scale)")
    spinup: float = option(10.0, ge=0.0, help="time from the default state to the attractor")


@dataclasses.dataclass(frozen=True)
class ObservationsSection:
    interval: float = option(0.05, gt=0.0, help="time between observations")
    every_kth: int = option(2, ge=1, help="observe every k-th slow variable")
    noise: float = option(1.0, gt=0.0, help="observation noise std")
    train: int = option(2000, ge=10, help="cycles to learn from")
    test: int = option(300, ge=10, help="held-out cycles the filters are scored on")


@dataclasses.dataclass(frozen=True)
class FilterSection:
    ensemble_size: int = option(30, ge=2, help="DEnKF members")
    inflation: float = option(1.2, ge=1.0, help="multiplicative inflation")
    burn_in: int = option(20, ge=0, help="held-out cycles left out of rmse_a (spin-up)")


@dataclasses.dataclass(frozen=True)
class ClosureSection:
    radius: int = option(0, ge=0, help="stencil X_{k-r..k+r} the closure sees")
    width: int = option(16, ge=1, help="hidden units of the MLP")
    depth: int = option(2, ge=1, help="hidden layers of the MLP")


@dataclasses.dataclass(frozen=True)
class TrainingSection:
    window: int = option(20, ge=2, help="cycles per training window")
    stride: int = option(10, ge=1, help="cycles between window starts")
    burn_in: int = option(5, ge=0, help="cycles of each window left out of the loss")
    skip: int = option(20, ge=0, help="record cycles before the first window (spin-up)")
    steps: int = option(800, ge=1, help="Adam steps")
    batch_size: int = option(8, ge=1, help="windows per step")
    learning_rate: float = option(1e-2, gt=0.0, help="Adam learning rate")
    train_inflation: bool = option(
        True, help="train the filter's inflation with the closure (needs filter.inflation > 1)"
    )
    checkpoint: bool = option(False, help="checkpoint the training in the run folder")


@dataclasses.dataclass(frozen=True)
class OracleSection:
    steps: int = option(1500, ge=1, help="Adam steps of the offline fit")
    batch_size: int = option(32, ge=1, help="states per step")
    learning_rate: float = option(3e-3, gt=0.0, help="Adam learning rate")


@dataclasses.dataclass(frozen=True)
class PolynomialSection:
    degree: int = option(3, ge=0, le=9, help="degree of the polynomial of X_k (3: a cubic)")
    passes: int = option(4, ge=1, help="filter + regression passes (secant steps)")
    burn_in: int = option(20, ge=1, help="cycles of each filter run left out of the fit")


@dataclasses.dataclass(frozen=True)
class ForecastSection:
    count: int = option(20, ge=1, help="forecasts from truth states after the test cycles")
    spacing: float = option(2.5, gt=0.0, help="time between their initial states")
    horizon: float = option(10.0, gt=0.0, help="forecast length in Lyapunov times")
    threshold: float = option(
        0.5, gt=0.0, help="RMS error / climatological std that ends the valid time"
    )
    lyapunov_exponent: float | None = option(
        None, gt=0.0, help="lambda_max of one-scale Lorenz-96 (null: estimate it)"
    )
    lyapunov_intervals: int = option(400, ge=10, help="re-orthonormalisations of the estimate")


@dataclasses.dataclass(frozen=True)
class L96ClosureConfig:
    """Schema of the `l96_closure` pipeline."""

    seed: int = option(0, ge=0, help="PRNG seed (truth, noise, filters, networks)")
    truth: TruthSection = section(TruthSection, help="the two-scale Lorenz-96 truth")
    observations: ObservationsSection = section(ObservationsSection)
    filter: FilterSection = section(FilterSection, help="the DEnKF of every run")
    closure: ClosureSection = section(ClosureSection, help="the LocalMLP closure")
    training: TrainingSection = section(TrainingSection, help="learned: through the filter")
    oracle: OracleSection = section(OracleSection, help="oracle: MSE on true tendencies")
    polynomial: PolynomialSection = section(PolynomialSection, help="fit to increments")
    forecast: ForecastSection = section(ForecastSection)
    plot: PlotSection = section(PlotSection)

    def __post_init__(self):
        steps = self.observations.interval / self.truth.dt
        if not math.isclose(steps, round(steps), rel_tol=1e-6):
            raise ConfigError(
                "observations.interval",
                f"expected a multiple of truth.dt={self.truth.dt:g}, "
                f"got {self.observations.interval:g}",
            )
        if self.observations.every_kth >= self.truth.k:
            raise ConfigError(
                "observations.every_kth", f"expected fewer than truth.k={self.truth.k}"
            )
        if self.filter.burn_in >= self.observations.test:
            raise ConfigError(
                "filter.burn_in", f"leaves no held-out cycle of {self.observations.test}"
            )
        if self.polynomial.burn_in + self.polynomial.degree + 2 > self.observations.train:
            raise ConfigError(
                "polynomial.burn_in",
                f"leaves too few of {self.observations.train} cycles for the fit",
            )
        t = self.training
        if t.train_inflation and self.filter.inflation <= 1.0:
            raise ConfigError(
                "filter.inflation",
                "expected > 1 with training.train_inflation (the trained factor 1 + exp(s) "
                "starts there)",
            )
        if 2 * self.closure.radius + 1 > self.truth.k:
            raise ConfigError(
                "closure.radius", f"expected a stencil 2 r + 1 <= truth.k = {self.truth.k}"
            )
        if t.burn_in >= t.window:
            raise ConfigError("training.burn_in", f"expected fewer than window={t.window}")
        starts = losses.window_starts(self.observations.train, t.window, t.stride)
        if not (starts > t.skip).any():
            raise ConfigError(
                "training.skip",
                f"with window={t.window}, stride={t.stride} leaves no window in "
                f"{self.observations.train} cycles",
            )


class _Stages:
    """Wall and CPU time per stage (compile included), and the part of the wall time JAX
    spent lowering and compiling (`CompileClock`; a persistent-cache hit counts as its read)."""

    def __init__(self):
        self.seconds: dict[str, float] = {}
        self.cpu_seconds: dict[str, float] = {}
        self.compile_seconds: dict[str, float] = {}

    def run(self, stage: str, fn, *args, **kwargs):
        t, c = time.perf_counter(), time.process_time()
        with CompileClock() as clock:
            out = jax.block_until_ready(fn(*args, **kwargs))
        for record, value in (
            (self.seconds, time.perf_counter() - t),
            (self.cpu_seconds, time.process_time() - c),
            (self.compile_seconds, clock.seconds),
        ):
            record[stage] = record.get(stage, 0.0) + value
        return out


@eqx.filter_jit
def _trajectory(flow, x0, interval: float, count: int):
    return integrate.rollout(flow, x0, count, dt=interval)


def _truth(config: L96ClosureConfig, key, lam: float) -> tuple[Lorenz96TwoScale, jax.Array]:
    """The truth model and its states every interval: the training and test cycles, then
    the forecast region, (cycles + 1, dim) from time 0 (cycle 0)."""
    tc, oc = config.truth, config.observations
    model = Lorenz96TwoScale(tc.k, tc.j, tc.forcing, tc.coupling, tc.time_scale, tc.amplitude_scale)
    flow = integrate.Flow(model, tc.dt, max_steps=round(oc.interval / tc.dt) + 1)
    x = model.default_initial_state()
    x = x.at[: tc.k].add(0.1 * jax.random.normal(key, (tc.k,)))
    n_spin = math.ceil(tc.spinup / oc.interval - 1e-9)
    if n_spin:
        x = _trajectory(flow, x, oc.interval, n_spin)[-1]
    spacing, horizon = _forecast_steps(config, lam)
    n_total = oc.train + oc.test + spacing * config.forecast.count + horizon + 1
    states = jnp.concatenate([x[None], _trajectory(flow, x, oc.interval, n_total)])
    if not bool(jnp.all(jnp.isfinite(states))):
        raise ValueError("the two-scale truth blew up: reduce truth.dt")
    return model, states


def _forecast_steps(config: L96ClosureConfig, lam: float) -> tuple[int, int]:
    """(spacing, horizon) in cycles: between forecast starts, and `forecast.horizon`
    Lyapunov times at lambda_max = `lam`. The forecast region after the test cycles holds
    `count` starts and one horizon: spacing * count + horizon + 1 cycles."""
    fc, interval = config.forecast, config.observations.interval
    return max(1, round(fc.spacing / interval)), math.ceil(fc.horizon / lam / interval)


def _lyapunov(config: L96ClosureConfig, physics: Lorenz96) -> float:
    """lambda_max of one-scale Lorenz-96: given, or estimated from its default state after
    10 time units of transient, re-orthonormalising every 0.5 (a few e-foldings, well
    inside float32's range) over `forecast.lyapunov_intervals` intervals."""
    fc = config.forecast
    if fc.lyapunov_exponent is not None:
        return fc.lyapunov_exponent
    lyap = integrate.lyapunov_exponents(
        integrate.Flow(physics, config.observations.interval, max_steps=4),
        physics.default_initial_state(),
        interval=0.5,
        num_intervals=fc.lyapunov_intervals,
        transient=10.0,
        interruptible=True,
    )
    lam = float(lyap.exponents[0])
    if not lam > 0:
        raise ValueError(
            f"one-scale Lorenz-96's leading Lyapunov exponent is {lam:.3g} <= 0 (not "
            "chaotic at this forcing): valid times in Lyapunov times are undefined; set "
            "forecast.lyapunov_exponent"
        )
    return lam


def run(config: L96ClosureConfig, run_dir: Path) -> dict:
    """Run the study; save `closure.npz`, `closure_learned.eqx`, `diagnostics.json`, plots;
    return the metrics."""
    start = time.perf_counter()
    stages = _Stages()
    tc, oc, fcfg = config.truth, config.observations, config.filter
    # k_net initialises both the learned and the oracle network (the same start), and
    # k_eval drives every scoring filter run (common random numbers across the models)
    keys = jax.random.split(jax.random.key(config.seed), 8)
    k_truth, k_obs, k_ens, k_net, k_learn, k_oracle, k_poly, k_eval = keys
    interval = oc.interval
    physics = Lorenz96(tc.k, tc.forcing)

    # --- 1. truth, observations --------------------------------------------------------
    lam = stages.run("simulation", _lyapunov, config, physics)
    truth_model, states = stages.run("simulation", _truth, config, k_truth, lam)
    slow = states[:, : tc.k]  # cycle 0..: the slow variables
    u = stages.run("simulation", jax.vmap(truth_model.subgrid_tendency), states)
    idx = np.arange(0, tc.k, oc.every_kth)
    obs_op = filters.IndexObservation(tc.k, idx, noise_cov=oc.noise**2)
    n_obs = oc.train + oc.test
    ys = filters.synthetic_observations(k_obs, obs_op, slow[1 : n_obs + 1])
    train_slow = slow[: oc.train + 1]
    # the statistics the learned closure and the filters start from: the training
    # observations' (their variance minus the noise's), never the truth's
    train_ys = np.asarray(ys[: oc.train])
    mean = float(train_ys.mean())
    std = float(np.sqrt(max(train_ys.var() - oc.noise**2, 0.01 * train_ys.var())))
    u_std = float(jnp.std(u[: oc.train + 1]))  # the oracle's output scale (uses the truth)
    ens0 = mean + std * jax.random.normal(k_ens, (fcfg.ensemble_size, tc.k))
    filt = filters.Inflation(filters.DEnKF(), fcfg.inflation)
    logger.info(
        "truth: two-scale Lorenz-96 K=%d J=%d F=%g h=%g c=%g b=%g; slow std %.3g, subgrid "
        "tendency std %.3g; %d of %d slow variables observed every %g, noise std %g; %d "
        "training + %d test cycles",
        tc.k,
        tc.j,
        tc.forcing,
        tc.coupling,
        tc.time_scale,
        tc.amplitude_scale,
        std,
        u_std,
        idx.size,
        tc.k,
        interval,
        oc.noise,
        oc.train,
        oc.test,
    )

    def new_closure(output_scale: float):
        cc = config.closure
        return nn.LocalMLP(
            cc.radius,
            cc.width,
            cc.depth,
            mean=mean,
            scale=std,
            output_scale=output_scale,
            zero_init=True,
            key=k_net,
        )

    # --- 2. the closures ---------------------------------------------------------------
    tcfg = config.training
    learned = stages.run(
        "learned",
        discovery.learn_closure,
        physics,
        new_closure(1.0),  # a tendency of order 1 (the scale is learned)
        obs_op,
        filt,
        ys[: oc.train],
        ens0,
        interval,
        key=k_learn,
        window=tcfg.window,
        stride=tcfg.stride,
        burn_in=tcfg.burn_in,
        skip=tcfg.skip,
        optimizer=optax.adam(tcfg.learning_rate),
        num_steps=tcfg.steps,
        batch_size=tcfg.batch_size,
        train_inflation=tcfg.train_inflation,
        checkpoint_dir=run_dir / "checkpoint" if tcfg.checkpoint else None,
        progress=logger.isEnabledFor(logging.INFO),
    )
    ocfg = config.oracle
    oracle_closure, oracle_hist = stages.run(
        "oracle",
        train.fit,
        new_closure(u_std),
        losses.MSELoss(),
        (train_slow, u[: oc.train + 1]),
        optimizer=optax.adam(ocfg.learning_rate),
        key=k_oracle,
        batch_size=min(ocfg.batch_size, oc.train + 1),
        num_steps=ocfg.steps,
        progress=False,
    )
    pcfg = config.polynomial
    poly = stages.run(
        "polynomial",
        discovery.fit_closure_to_increments,
        physics,
        obs_op,
        filt,
        ys[: oc.train],
        ens0,
        interval,
        key=k_poly,
        degree=pcfg.degree,
        passes=pcfg.passes,
        burn_in=pcfg.burn_in,
    )
    poly_closure = poly.model.closure
    assert isinstance(poly_closure, nn.LocalPolynomial)
    models = {
        "none": physics,
        "learned": learned.model,
        "oracle": nn.HybridVectorField(physics, oracle_closure),
        "polynomial": poly.model,
    }

    # --- 3. scores ---------------------------------------------------------------------
    test_truth = slow[oc.train + 1 : n_obs + 1]
    rmse_series, rmse_a = {}, {}
    for name, model in models.items():
        res = stages.run(
            "evaluation",
            filters.run_filter,
            k_eval,
            integrate.Flow(model, interval, max_steps=4),
            obs_op,
            filt,
            ens0,
            ys[oc.train :],
            dt=interval,
        )
        series = np.asarray(jnp.sqrt(jnp.mean((res.mean_a - test_truth) ** 2, axis=-1)))
        rmse_series[name] = series
        if bool(jnp.all(res.finite)):
            rmse_a[name] = float(np.mean(series[fcfg.burn_in :]))
        else:  # reported, not averaged into a NaN
            rmse_a[name] = None
            logger.warning("the DEnKF with the %s model diverged on the held-out cycles", name)
    # the learned model once more, with the inflation it was trained with
    res = stages.run(
        "evaluation",
        filters.run_filter,
        k_eval,
        integrate.Flow(learned.model, interval, max_steps=4),
        obs_op,
        learned.filter,
        ens0,
        ys[oc.train :],
        dt=interval,
    )
    err = jnp.sqrt(jnp.mean((res.mean_a - test_truth) ** 2, axis=-1))
    rmse_a_trained_inflation = float(jnp.mean(err[fcfg.burn_in :]))  # NaN if diverged
    fc = config.forecast
    spacing, horizon = _forecast_steps(config, lam)
    first = n_obs + spacing
    starts = first + spacing * np.arange(fc.count)
    assert starts[-1] + horizon < slow.shape[0]  # the truth was sized with this lambda
    truth_fc = jnp.stack([slow[s : s + horizon + 1] for s in starts])
    climate_std = float(jnp.std(slow[: n_obs + 1]))
    lead = interval * np.arange(horizon + 1) * lam
    errors, vt = {}, {}
    for name, model in models.items():
        fc_states = stages.run(
            "evaluation",
            _trajectories,
            integrate.Flow(model, interval, max_steps=4),
            slow[starts],
            interval,
            horizon + 1,
        )
        errors[name] = np.asarray(normalised_error(fc_states, truth_fc, climate_std))
        vt[name] = np.asarray(valid_time(errors[name], lead, fc.threshold))

    # --- metrics, arrays, plots ---------------------------------------------------------
    metrics: dict[str, Any] = {f"rmse_a_{n}": rmse_a[n] for n in MODELS}
    metrics.update({f"valid_time_{n}": float(np.mean(vt[n])) for n in MODELS})
    learned_a, none_a = rmse_a["learned"], rmse_a["none"]
    metrics["learned_beats_none"] = bool(
        learned_a is not None
        and (none_a is None or learned_a < none_a)
        and metrics["valid_time_learned"] > metrics["valid_time_none"]
    )
    ratio = metrics["valid_time_learned"] / metrics["valid_time_oracle"]
    metrics["learned_over_oracle_valid_time"] = ratio
    # the must-show: within 25% of the oracle's valid time
    metrics["learned_within_25pct_of_oracle"] = bool(ratio >= 0.75)
    metrics["filter_diverged"] = [n for n in MODELS if rmse_a[n] is None]
    hist = learned.history
    diagnostics = {
        "valid_time_per_forecast": {n: vt[n].tolist() for n in MODELS},
        "valid_time_sem": {n: float(np.std(vt[n]) / math.sqrt(vt[n].size)) for n in MODELS},
        "valid_time_censored_at": float(lead[-1]),
        "lyapunov_exponent": lam,
        "lyapunov_time": 1.0 / lam,
        "slow_std": climate_std,
        "subgrid_tendency_std": u_std,
        "noise_std": oc.noise,
        "training_windows": learned.num_windows,
        "learned_inflation": float(learned.filter.factor),
        "rmse_a_learned_at_learned_inflation": rmse_a_trained_inflation,
        "training_loss_first_last_20": [
            float(np.mean(hist["loss"][:20])),
            float(np.mean(hist["loss"][-20:])),
        ],
        "training_stopped": hist["stopped"],
        "oracle_loss_last_100": float(np.mean(oracle_hist["loss"][-100:])),
        "polynomial_coefficients_per_pass": poly.coefficients.tolist(),
        "polynomial_normalisation": [
            float(poly.model.closure.mean),
            float(poly.model.closure.scale),
        ],
        "increment_rms_per_pass": poly.increment_rms.tolist(),
        "seconds": dict(stages.seconds),
        "cpu_seconds": dict(stages.cpu_seconds),
        "compile_seconds": dict(stages.compile_seconds),
    }
    logger.info(
        "rmse_a (noise std %g): %s",
        oc.noise,
        ", ".join(f"{n} {_fmt(rmse_a[n])}" for n in MODELS),
    )
    logger.info(
        "valid time (Lyapunov times, mean of %d): %s",
        fc.count,
        ", ".join(f"{n} {metrics[f'valid_time_{n}']:.2f}" for n in MODELS),
    )
    # the closures on the test states: c(x)_k against X_k, and the true subgrid tendency
    closures = {
        n: np.asarray(jax.vmap(models[n].closure)(test_truth)) for n in MODELS if n != "none"
    }
    np.savez_compressed(
        run_dir / "closure.npz",
        models=np.asarray(MODELS),
        observations=np.asarray(ys),
        observed_indices=idx,
        truth_slow=np.asarray(slow[: n_obs + 1]),
        subgrid_tendency=np.asarray(u[: n_obs + 1]),
        test_slow=np.asarray(test_truth),
        test_subgrid_tendency=np.asarray(u[oc.train + 1 : n_obs + 1]),
        **{f"closure_{n}": c for n, c in closures.items()},
        **{f"rmse_a_series_{n}": rmse_series[n] for n in MODELS},
        lead_lyapunov=lead,
        **{f"forecast_error_{n}": errors[n] for n in MODELS},
        training_loss=np.asarray(hist["loss"]),
        polynomial_coefficients=poly.coefficients,
    )
    eqx.tree_serialise_leaves(run_dir / "closure_learned.eqx", learned.model)
    if config.plot.enabled:
        with _plots.guard():
            heading = (
                f"two-scale Lorenz-96 K={tc.k}, J={tc.j}, F={tc.forcing:g}; "
                f"{idx.size}/{tc.k} slow variables every {interval:g}, noise std {oc.noise:g}; "
                f"DEnKF N={fcfg.ensemble_size}, inflation {fcfg.inflation:g}"
            )
            dpi = config.plot.dpi
            _plots._save(
                _closure_figure(test_truth, u[oc.train + 1 : n_obs + 1], closures, heading),
                run_dir / "closure.png",
                dpi,
            )
            _plots._save(
                _error_figure(lead, errors, metrics, fc.threshold, heading),
                run_dir / "forecast_error.png",
                dpi,
            )
            _plots._save(
                _rmse_figure(rmse_series, rmse_a, oc.noise, fcfg.burn_in, interval, heading),
                run_dir / "rmse_a.png",
                dpi,
            )
            _plots._save(
                _training_figure(np.asarray(hist["loss"]), heading),
                run_dir / "training.png",
                dpi,
            )
    diagnostics["seconds"]["total"] = time.perf_counter() - start
    (run_dir / "diagnostics.json").write_text(json.dumps(diagnostics, indent=2) + "\n")
    logger.info(
        "wall time per stage (s, compile included): %s",
        ", ".join(f"{k} {v:.1f}" for k, v in diagnostics["seconds"].items()),
    )
    return metrics


def _fmt(value: float | None) -> str:
    return "diverged" if value is None else f"{value:.3f}"


_COLORS = {"none": "tab:red", "learned": "tab:blue", "oracle": "k", "polynomial": "tab:green"}


def _binned(x: np.ndarray, y: np.ndarray, edges: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean of y in bins of x (bins with at least 20 points): (centres, means)."""
    which = np.digitize(x, edges)
    centres, means = [], []
    for b in range(1, edges.size):
        sel = which == b
        if sel.sum() >= 20:
            centres.append(0.5 * (edges[b - 1] + edges[b]))
            means.append(y[sel].mean())
    return np.asarray(centres), np.asarray(means)


def _closure_figure(xs, u, closures, heading) -> Figure:
    x, u = np.asarray(xs).ravel(), np.asarray(u).ravel()
    edges = np.linspace(np.percentile(x, 0.5), np.percentile(x, 99.5), 25)
    fig = Figure(figsize=(8.5, 5.0), layout="constrained")
    ax = fig.add_subplot()
    ax.scatter(x, u, s=1, color="0.75", alpha=0.4, rasterized=True, label="true subgrid tendency")
    c, m = _binned(x, u, edges)
    ax.plot(c, m, color="0.3", lw=2.5, label="true: mean given $X_k$")
    for name, values in closures.items():
        c, m = _binned(x, values.ravel(), edges)
        ax.plot(
            c,
            m,
            color=_COLORS[name],
            lw=1.6,
            ls="--" if name == "oracle" else "-",
            label=f"{name} closure: mean given $X_k$",
        )
    ax.set_xlabel("$X_k$ (held-out truth)")
    ax.set_ylabel("closure $U_k$")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    ax.set_title(f"{heading}\nthe closures against the true subgrid tendency", fontsize=9)
    return fig


def _error_figure(lead, errors, metrics, threshold, heading) -> Figure:
    fig = Figure(figsize=(8.5, 4.6), layout="constrained")
    ax = fig.add_subplot()
    for name in MODELS:
        ax.plot(
            lead,
            np.mean(errors[name], axis=0),
            color=_COLORS[name],
            lw=1.8,
            label=f"{name} (valid time {metrics[f'valid_time_{name}']:.2f})",
        )
    ax.axhline(threshold, color="k", ls=":", lw=0.9, label=f"threshold {threshold:g}")
    ax.set_xlabel("lead time (Lyapunov times of one-scale Lorenz-96)")
    ax.set_ylabel("RMS error / climatological std (mean over forecasts)")
    ax.set_xlim(lead[0], lead[-1])
    ax.set_ylim(0, None)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    ax.set_title(f"{heading}\nforecasts from the true slow state", fontsize=9)
    return fig


def _rmse_figure(series, rmse_a, noise, burn_in, interval, heading) -> Figure:
    fig = Figure(figsize=(8.5, 4.6), layout="constrained")
    ax = fig.add_subplot()
    t = interval * np.arange(1, next(iter(series.values())).size + 1)
    for name in MODELS:
        ax.plot(
            t, series[name], color=_COLORS[name], lw=1.0, label=f"{name} (mean {rmse_a[name]:.3f})"
        )
    ax.axhline(noise, color="k", ls=":", lw=0.9, label=f"observation noise std {noise:g}")
    ax.axvline(interval * burn_in, color="0.5", lw=0.8)
    ax.set_xlabel("time into the held-out cycles")
    ax.set_ylabel("analysis RMSE (all slow variables)")
    ax.set_ylim(0, None)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    ax.set_title(f"{heading}\nfilter analysis error with each model", fontsize=9)
    return fig


def _training_figure(loss, heading) -> Figure:
    fig = Figure(figsize=(8.5, 4.0), layout="constrained")
    ax = fig.add_subplot()
    ax.plot(np.arange(1, loss.size + 1), loss, color="tab:blue", lw=0.6, alpha=0.5)
    width = max(1, loss.size // 20)
    if loss.size > width:
        smooth = np.convolve(loss, np.ones(width) / width, mode="valid")
        ax.plot(
            np.arange(width, loss.size + 1),
            smooth,
            color="tab:blue",
            lw=1.8,
            label=f"moving mean over {width} steps",
        )
        ax.legend(fontsize=8)
    ax.set_xlabel("Adam step")
    ax.set_ylabel("minus filter log-likelihood per cycle")
    ax.grid(alpha=0.3)
    ax.set_title(f"{heading}\ntraining the closure through the filter", fontsize=9)
    return fig
