r"""Pipeline `ks_semilinear_operator`: a semilinear neural operator on Kuramoto-Sivashinsky,
as a forecaster and as the forecast model of an ensemble filter.

Built from the public API only:

1. **data**: KS trajectories (`data.ks_trajectories`, ETDRK4 at `model.dt`, saved every
   `data.step` time units after a spin-up), training windows (`data.rollout_windows`).
2. **training**: an `nn.SemilinearOperator` (learned symbol L_theta, initialised from the
   true KS symbol or from the hyper-diffusion -k^4 alone, bounded by `operator.max_real`;
   an `FNO1d` nonlinearity) integrated by ETDRK4 at `operator.dt` and stepped by
   `integrate.FlowMap`, and a plain `nn.Stepper(FNO1d)` of the same FNO architecture, both
   trained by `losses.RolloutLoss` over `training.rollout_steps` steps with `train.fit`
   (Adam, cosine decay), from the same network initialisation.
3. **forecasts** from `forecast.num_initial` test states perturbed by N(0,
   `forecast.perturbation`^2): the true KS model, the learned operator and the FNO stepper
   all start from the same perturbed states; RMSE against the unperturbed truth vs lead
   time (the true model's curve is the predictability limit of that initial error).
4. **filter**: the same observations (every `observations.every_kth` grid point, noise std
   `observations.noise_std`, every `data.step`) of a new truth run, filtered (`filter`,
   e.g. the LETKF settings of the ks_letkf config) by `filters.run_filter` with the true model,
   the learned operator and the FNO stepper as forecast models, from the same initial
   ensemble; rmse_a (time-mean over cycles after `experiment.burn_in` of the RMS error of
   the analysis mean), spread_a, against the observation error and the climatological std.

Outputs: `metrics.json`, `ks_semilinear_operator.npz` (errors per lead time, per-cycle rmse
and spread, the symbols), `forecast_error.png`, `filter_rmse.png`, `linear_operator.png`,
`training.png`.
"""

import dataclasses
import logging
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
from matplotlib.figure import Figure

from .. import data, dynamics, filters, integrate, losses, nn, train
from . import _plots
from ._assimilate import FilterSection, filter_label, make_filter
from ._plots import PlotSection
from ._schema import ConfigError, option, section
from ._training import check_multiple

DESCRIPTION = (
    "semilinear neural operator (learned symbol + FNO nonlinearity, ETDRK4) on KS: forecast "
    "error vs the true model and an FNO stepper; the same three inside an ensemble filter"
)

logger = logging.getLogger("jaxsci.pipelines.ks_semilinear_operator")

MODELS = ("true", "sno", "fno")
_LABELS = {"true": "true KS", "sno": "semilinear operator", "fno": "FNO stepper"}


@dataclasses.dataclass(frozen=True)
class KSModelSection:
    length: float = option(22.0, gt=0.0, help="domain length (22: chaotic)")
    num_points: int = option(64, ge=8, help="grid points (even)")
    dt: float = option(0.25, gt=0.0, help="ETDRK4 step of the true model")

    def __post_init__(self):
        if self.num_points % 2:
            raise ConfigError("num_points", f"expected an even number, got {self.num_points}")


@dataclasses.dataclass(frozen=True)
class DataSection:
    step: float = option(1.0, gt=0.0, help="time between saved states (a multiple of model.dt)")
    num_train: int = option(32, ge=1, help="training trajectories")
    train_steps: int = option(50, ge=2, help="states saved per training trajectory, minus one")
    spinup: float = option(100.0, ge=0.0, help="time onto the attractor before saving")
    seed: int = option(0, ge=0, help="PRNG seed of the training trajectories")


@dataclasses.dataclass(frozen=True)
class OperatorSection:
    linear_init: str = option(
        "diffusion",
        choices=("truth", "diffusion"),
        help="initial symbol: the true KS symbol k^2 - k^4, or the hyper-diffusion -k^4 alone "
        "(the anti-diffusion k^2 is then for the training to find)",
    )
    max_real: float | None = option(
        0.25, help="bound on Re L (KS's largest growth rate is 1/4); null: unbounded"
    )
    dt: float = option(0.5, gt=0.0, help="ETDRK4 step of the learned model (divides data.step)")


@dataclasses.dataclass(frozen=True)
class NetworkSection:
    width: int = option(16, ge=1, help="FNO channels (both models)")
    modes: int = option(16, ge=1, help="Fourier modes per layer")
    depth: int = option(2, ge=1, help="Fourier layers")
    seed: int = option(1, ge=0, help="PRNG seed of the initialisation (the same for both)")


@dataclasses.dataclass(frozen=True)
class TrainingSection:
    steps: int = option(1500, ge=1, help="optimiser steps (each model)")
    batch_size: int = option(32, ge=1)
    learning_rate: float = option(3e-3, gt=0.0, help="Adam, cosine decay to 5%")
    rollout_steps: int = option(2, ge=1, help="steps unrolled in the loss")
    seed: int = option(2, ge=0, help="PRNG seed of the batches")


@dataclasses.dataclass(frozen=True)
class ForecastSection:
    num_initial: int = option(16, ge=1, help="test initial states")
    horizon: int = option(30, ge=1, help="lead times, in data.step units")
    perturbation: float = option(0.01, ge=0.0, help="std of the initial-state perturbation")


@dataclasses.dataclass(frozen=True)
class ObservationsSection:
    every_kth: int = option(4, ge=1, help="observe every k-th grid point")
    noise_std: float = option(0.1, gt=0.0, help="observation-noise std")


@dataclasses.dataclass(frozen=True)
class ExperimentSection:
    n_cycles: int = option(200, ge=1, help="analysis cycles (one per data.step)")
    burn_in: int = option(20, ge=0, help="first cycles left out of rmse_a / spread_a")
    initial_spread: float = option(0.5, ge=0.0, help="initial ensemble std around the truth")
    seed: int = option(3, ge=0, help="PRNG seed of the truth, test states, noise and filter")


def _default_filter() -> FilterSection:
    return FilterSection(method="letkf", ensemble_size=10, inflation=1.05, loc_rad=4.0)


@dataclasses.dataclass(frozen=True)
class KSSemilinearOperatorConfig:
    """Schema of the `ks_semilinear_operator` pipeline."""

    model: KSModelSection = section(KSModelSection, help="the true Kuramoto-Sivashinsky model")
    data: DataSection = section(DataSection, help="training trajectories")
    operator: OperatorSection = section(OperatorSection, help="the learned linear part")
    network: NetworkSection = section(NetworkSection, help="FNO of both learned models")
    training: TrainingSection = section(TrainingSection, help="rollout training")
    forecast: ForecastSection = section(ForecastSection, help="forecast-error experiment")
    observations: ObservationsSection = section(ObservationsSection, help="sparse, noisy")
    filter: FilterSection = option(factory=_default_filter, help="the ensemble filter")
    experiment: ExperimentSection = section(ExperimentSection, help="the filter run")
    plot: PlotSection = section(PlotSection)

    def __post_init__(self):
        check_multiple("data.step", self.data.step, self.model.dt, "model.dt")
        check_multiple("data.step", self.data.step, self.operator.dt, "operator.dt")
        if self.training.rollout_steps > self.data.train_steps:
            raise ConfigError(
                "training.rollout_steps",
                f"expected at most data.train_steps = {self.data.train_steps}, got "
                f"{self.training.rollout_steps}",
            )
        if self.experiment.burn_in >= self.experiment.n_cycles:
            raise ConfigError(
                "experiment.burn_in",
                f"expected fewer than n_cycles = {self.experiment.n_cycles}, got "
                f"{self.experiment.burn_in}",
            )
        if self.filter.is_particle:
            raise ConfigError("filter.method", "expected an ensemble Kalman filter, not pf")


def _fno(nc: NetworkSection) -> nn.FNO:
    return nn.FNO1d(1, 1, nc.width, nc.modes, nc.depth, key=jax.random.key(nc.seed), grid=False)


def _train(model, windows, tc: TrainingSection, tag: str):
    """`train.fit` through `tc.rollout_steps`-step rollouts; (model, loss history, seconds)."""
    start = time.perf_counter()
    schedule = optax.cosine_decay_schedule(tc.learning_rate, tc.steps, alpha=0.05)
    model, hist = train.fit(
        model,
        losses.RolloutLoss(tc.rollout_steps),
        windows,
        optimizer=optax.adam(schedule),
        key=jax.random.key(tc.seed),
        batch_size=min(tc.batch_size, len(windows[0])),
        num_steps=tc.steps,
        progress=True,
    )
    wall = time.perf_counter() - start
    loss = np.asarray(hist["loss"])
    logger.info("%s: %d steps in %.1f s, final loss %.3e", tag, tc.steps, wall, loss[-1])
    return model, loss, wall, float(hist["compile_seconds"])


def _rmse(a, b):
    return np.sqrt(np.mean((np.asarray(a) - np.asarray(b)) ** 2, axis=-1))


def run(config: KSSemilinearOperatorConfig, run_dir: Path) -> dict:
    """Data, training of both learned models, forecasts, the filter comparison, plots."""
    start = time.perf_counter()
    mc, dc, oc, nc, tc = config.model, config.data, config.operator, config.network, config.training
    fc, ec, obs_c = config.forecast, config.experiment, config.observations
    n = mc.num_points
    ks = dynamics.KuramotoSivashinsky(length=mc.length, num_points=n)
    stages: dict[str, float] = {}

    # 1. data
    t0 = time.perf_counter()
    traj = data.ks_trajectories(
        jax.random.key(dc.seed),
        dc.num_train,
        dc.train_steps,
        save_every=dc.step,
        length=mc.length,
        num_points=n,
        dt=mc.dt,
        spinup=dc.spinup,
    )
    clim_std = float(np.std(traj))
    inputs, targets = data.rollout_windows(traj, tc.rollout_steps)
    stages["data"] = time.perf_counter() - t0
    logger.info("data: %d windows, climatological std %.3f", len(inputs), clim_std)

    # 2. the two learned models, from the same FNO initialisation
    true_symbol = np.asarray(ks.linear_operator())
    (k,) = ks.grid.wavenumbers()
    init_symbol = true_symbol if oc.linear_init == "truth" else -(k**4) + 0j
    sno = nn.SemilinearOperator(
        ks.grid, _fno(nc), init_symbol, max_real=oc.max_real, network_shape=(1, n)
    )
    sno_step = integrate.FlowMap(integrate.Flow(sno, oc.dt), dc.step)
    fno_step = nn.Stepper(_fno(nc))
    n_params = {"sno": nn.count_params(sno), "fno": nn.count_params(fno_step)}
    t0 = time.perf_counter()
    windows = (jnp.asarray(inputs), jnp.asarray(targets))
    sno_step, sno_loss, sno_wall, sno_compile = _train(sno_step, windows, tc, "semilinear op")
    stages["train_sno"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    windows = (jnp.asarray(inputs[:, None]), jnp.asarray(targets[:, :, None]))
    fno_step, fno_loss, fno_wall, fno_compile = _train(fno_step, windows, tc, "FNO stepper")
    stages["train_fno"] = time.perf_counter() - t0
    learned = sno_step.flow.dynamics
    learned_symbol = np.asarray(learned.linear_operator())

    # 3. forecasts from perturbed test states
    t0 = time.perf_counter()
    k_test, k_pert, k_truth, k_obs, k_init, k_filt = jax.random.split(jax.random.key(ec.seed), 6)
    horizon = fc.horizon
    test = data.ks_trajectories(
        k_test,
        fc.num_initial,
        horizon,
        save_every=dc.step,
        length=mc.length,
        num_points=n,
        dt=mc.dt,
        spinup=dc.spinup,
    )
    x0 = jnp.asarray(test[:, 0])
    x0p = x0 + fc.perturbation * jax.random.normal(k_pert, x0.shape, dtype=x0.dtype)
    true_flow = integrate.Flow(ks, mc.dt)
    forecasts = {
        "true": jax.vmap(lambda u: integrate.rollout(true_flow, u, horizon, dt=dc.step))(x0p),
        "sno": jax.vmap(lambda u: integrate.rollout(sno_step, u, horizon))(x0p),
        "fno": jax.vmap(lambda u: integrate.rollout(fno_step, u[None], horizon)[:, 0])(x0p),
    }
    truth_f = test[:, 1:]
    lead = dc.step * np.arange(1, horizon + 1)
    fc_err = {m: np.mean(_rmse(forecasts[m], truth_f), axis=0) for m in MODELS}  # (horizon,)
    stages["forecast"] = time.perf_counter() - t0

    # 4. the filter with each model, on the same observations and initial ensemble
    t0 = time.perf_counter()
    truth = data.ks_trajectories(
        k_truth,
        1,
        ec.n_cycles,
        save_every=dc.step,
        length=mc.length,
        num_points=n,
        dt=mc.dt,
        spinup=dc.spinup,
    )[0]
    x_true0, truth = jnp.asarray(truth[0]), jnp.asarray(truth[1:])
    obs = filters.every_kth(n, obs_c.every_kth, noise_std=obs_c.noise_std)
    ys = filters.synthetic_observations(k_obs, obs, truth)
    fcfg = config.filter
    init = x_true0 + ec.initial_spread * jax.random.normal(
        k_init, (fcfg.ensemble_size, n), dtype=x_true0.dtype
    )

    def fno_flow(y, t0, t1):
        # the stepper on (1, n) fields as a flow on (n,) states: one step per call, the
        # cycles being one data step long
        return fno_step(y[None])[0]

    flows = {"true": true_flow, "sno": integrate.Flow(learned, oc.dt), "fno": fno_flow}
    filt = make_filter(fcfg, obs)
    runs = {}
    for m in MODELS:
        runs[m] = filters.run_filter(
            k_filt, flows[m], obs, filt, init, ys, dt=dc.step, compute_likelihood=False
        )
    after = slice(ec.burn_in, None)
    table = {}
    rmse_a_t, spread_a_t = {}, {}
    for m in MODELS:
        res = runs[m]
        rmse_a_t[m] = _rmse(res.mean_a, truth)
        spread_a_t[m] = np.asarray(res.spread_a)
        finite = bool(np.all(np.asarray(res.finite)))
        table[m] = {
            "rmse_a": float(np.mean(rmse_a_t[m][after])) if finite else None,
            "spread_a": float(np.mean(spread_a_t[m][after])) if finite else None,
            "rmse_f": float(np.mean(_rmse(res.mean_f, truth)[after])) if finite else None,
            "finite": finite,
        }
    stages["filter"] = time.perf_counter() - t0
    for m in MODELS:
        logger.info(
            "filter with %-20s rmse_a %s  spread_a %s",
            _LABELS[m],
            table[m]["rmse_a"],
            table[m]["spread_a"],
        )

    np.savez(
        run_dir / "ks_semilinear_operator.npz",
        lead_time=lead,
        **{f"forecast_rmse_{m}": fc_err[m] for m in MODELS},
        **{f"rmse_a_{m}": rmse_a_t[m] for m in MODELS},
        **{f"spread_a_{m}": spread_a_t[m] for m in MODELS},
        wavenumbers=k,
        true_symbol=true_symbol,
        initial_symbol=init_symbol,
        learned_symbol=learned_symbol,
        loss_sno=sno_loss,
        loss_fno=fno_loss,
    )
    if config.plot.enabled:
        dpi = config.plot.dpi
        with _plots.guard():
            _plots._save(
                _forecast_figure(lead, fc_err, clim_std, fc), run_dir / "forecast_error.png", dpi
            )
        with _plots.guard():
            _plots._save(
                _filter_figure(rmse_a_t, spread_a_t, dc.step, ec, obs_c, clim_std, fcfg),
                run_dir / "filter_rmse.png",
                dpi,
            )
        with _plots.guard():
            _plots._save(
                _symbol_figure(k, true_symbol, init_symbol, learned_symbol, oc),
                run_dir / "linear_operator.png",
                dpi,
            )
        with _plots.guard():
            _plots._save(_loss_figure(sno_loss, fno_loss), run_dir / "training.png", dpi)

    def at(err, t):
        i = int(np.searchsorted(lead, t - 1e-9))
        return float(err[i]) if i < len(lead) else None

    leads = sorted({dc.step, *[t for t in (5.0, 10.0, 20.0) if t <= lead[-1]]})
    keep = np.abs(np.real(true_symbol)) < 10.0  # the slow modes where L matters over a step
    return {
        "clim_std": clim_std,
        "noise_std": obs_c.noise_std,
        "filter": filter_label(fcfg),
        "filter_table": table,
        "forecast_rmse": {m: {f"t={t:g}": at(fc_err[m], t) for t in leads} for m in MODELS},
        "params": n_params,
        "training": {
            "sno": {
                "final_loss": float(sno_loss[-1]),
                "seconds": sno_wall,
                "compile_seconds": sno_compile,
            },
            "fno": {
                "final_loss": float(fno_loss[-1]),
                "seconds": fno_wall,
                "compile_seconds": fno_compile,
            },
        },
        "symbol_error": {
            "initial": float(np.max(np.abs(init_symbol - true_symbol)[keep])),
            "learned": float(np.max(np.abs(learned_symbol - true_symbol)[keep])),
            "modes": int(np.sum(keep)),
            "max_real_learned": float(np.max(np.real(learned_symbol))),
        },
        "stage_seconds": stages,
        "wall_seconds": time.perf_counter() - start,
    }


# ---------------------------------------------------------------------------------- plots


def _forecast_figure(lead, err, clim_std, fc) -> Figure:
    fig = Figure(figsize=(6.4, 4.0), layout="constrained")
    ax = fig.subplots()
    for i, m in enumerate(MODELS):
        ax.plot(lead, err[m], color=f"C{i}", label=_LABELS[m])
    ax.axhline(clim_std, color="gray", lw=0.8, ls="--", label="climatological std")
    ax.axhline(np.sqrt(2) * clim_std, color="gray", lw=0.8, ls=":", label="sqrt(2) x clim. std")
    ax.set_yscale("log")
    ax.set_xlabel("lead time")
    ax.set_ylabel("RMSE")
    ax.set_title(
        f"KS forecasts from {fc.num_initial} states perturbed by N(0, {fc.perturbation:g}^2)",
        fontsize=10,
    )
    ax.legend(fontsize=8)
    return fig


def _filter_figure(rmse, spread, step, ec, obs_c, clim_std, fcfg) -> Figure:
    fig = Figure(figsize=(8, 3.8), layout="constrained")
    ax = fig.subplots()
    t = step * np.arange(1, ec.n_cycles + 1)
    for i, m in enumerate(MODELS):
        ax.plot(t, rmse[m], color=f"C{i}", lw=1.0, label=f"{_LABELS[m]} rmse_a")
        ax.plot(t, spread[m], color=f"C{i}", lw=0.8, ls=":", label=f"{_LABELS[m]} spread_a")
    ax.axhline(obs_c.noise_std, color="k", ls="--", lw=0.8, label="observation error")
    ax.axhline(clim_std, color="gray", lw=0.8, label="climatological std")
    ax.axvline(step * (ec.burn_in + 0.5), color="k", lw=0.5, ls="-.")
    ax.set_yscale("log")
    ax.set_xlabel("time")
    ax.set_ylabel("rmse / spread")
    ax.set_title(f"{filter_label(fcfg)}, the same observations, three forecast models", fontsize=10)
    ax.legend(fontsize=7, ncol=3, loc="lower center")
    return fig


def _symbol_figure(k, true, init, learned, oc) -> Figure:
    fig = Figure(figsize=(9, 3.8), layout="constrained")
    ax1, ax2 = fig.subplots(1, 2)
    for sym, style, label in (
        (true, "k-", "true"),
        (init, "C7--", f"initial ({oc.linear_init})"),
        (learned, "C1o-", "learned"),
    ):
        ax1.plot(k, sym.real, style, ms=3, lw=1.0, label=label)
        ax2.plot(k, sym.imag, style, ms=3, lw=1.0, label=label)
    ax1.set_ylim(min(-2.0, float(np.min(true.real[k < 2.0])) - 0.5), 0.6)
    ax1.set_xlim(0, 2.0)
    ax1.set_xlabel("k")
    ax1.set_ylabel("Re L(k)")
    ax1.set_title("growth / decay rate (slow modes)", fontsize=10)
    ax1.legend(fontsize=8)
    ax2.set_xlabel("k")
    ax2.set_ylabel("Im L(k)")
    ax2.set_title("phase speed x k (all modes)", fontsize=10)
    return fig


def _loss_figure(sno_loss, fno_loss) -> Figure:
    fig = Figure(figsize=(6, 3.6), layout="constrained")
    ax = fig.subplots()
    ax.plot(sno_loss, label=_LABELS["sno"])
    ax.plot(fno_loss, label=_LABELS["fno"])
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("rollout loss")
    ax.legend()
    return fig
