r"""Pipeline `ks_score_da`: score-based data assimilation on Kuramoto-Sivashinsky.

Built from the public API only:

1. **data**: decorrelated attractor states of KS (`data.ks_trajectories`, states
   `data.save_every` time units apart after a spin-up, every trajectory from its own random
   initial field), pooled into a set of states x (d = `model.num_points`). KS conserves
   the spatial mean (zero here), so the states are used unscaled; their pooled std is the
   climatological std `clim_std` that the observation noise and the table refer to.
2. **training**: a `nn.ScoreMLP` (a v-prediction by default, `training.parameterization`)
   trained by `diffusion.DenoisingScoreMatching` (VP-linear schedule) with `train.fit`.
3. **assimilation** on a new trajectory (its own seed) observed every `observations.interval`
   at every `observations.every_kth`-th grid point with noise std
   `observations.noise_fraction` x clim_std:
   * **DPS** and **TDS** analyses (`diffusion.posterior_draws`): at each analysis time the
     posterior p(x | y_k) under the learned score prior alone -- no forecast, nothing
     carried between times;
   * an ensemble filter (`filter`, e.g. LETKF) cycling with the *true* model
     (`filters.run_filter`, ETDRK4 flow), its initial members drawn from the training
     states (no knowledge of the truth).
4. **metrics** (`metrics.ensemble_scores`) over the analysis times after `experiment.burn_in`
   (the same times for every method): rmse of the posterior/ensemble mean against the truth,
   fair CRPS, the (M+1)/M-calibrated spread and spread/rmse (TDS: its weighted particles,
   scored with their weights, not the resampled draws, whose duplicates are not independent
   members), and the wall time per analysis
   (after compilation, the median over the analyses; for the filter, the whole cycling run
   timed again after a compiling run, divided by the cycles: forecast + analysis).

Outputs: `metrics.json` (the table per method, the climatological std and the noise std;
a method with non-finite analyses at scored times -- a diverged filter -- has null scores,
`diverged: true` in its row and its name in `diverged`),
`diagnostics.json` (wall time per stage, compile times, training losses, TDS ESS),
`ks_score_da.npz` (truth, observations, per-method means, per-time rmse, spread and CRPS, draws at
the plotted time), `analysis.png` (truth, observations, mean and 2-std band per method at one
time) and `rmse.png` (rmse and spread over time per method).
"""

import dataclasses
import json
import logging
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
from matplotlib.figure import Figure

from .. import data, diffusion as jd, dynamics, filters, integrate, train
from ..metrics import ensemble_scores
from ..nn import ScoreMLP
from . import _plots
from ._assimilate import FilterSection, filter_label, make_filter
from ._diffusion_names import DSM_TARGETS, PARAMETERIZATIONS, SPACINGS
from ._plots import PlotSection
from ._schema import ConfigError, option, section

DESCRIPTION = (
    "score-based DA on Kuramoto-Sivashinsky: learned score prior, DPS and twisted SMC vs a "
    "cycling ensemble filter; rmse, CRPS, spread-skill, time per analysis"
)

logger = logging.getLogger("jaxsci.pipelines.ks_score_da")

METHODS = ("dps", "tds", "filter")


@dataclasses.dataclass(frozen=True)
class KSModelSection:
    length: float = option(22.0, gt=0.0, help="domain length (22: chaotic)")
    num_points: int = option(64, ge=4, help="grid points (even)")
    dt: float = option(0.25, gt=0.0, help="ETDRK4 step of the simulator")

    def __post_init__(self):
        if self.num_points % 2:
            raise ConfigError("num_points", f"expected an even number, got {self.num_points}")


@dataclasses.dataclass(frozen=True)
class DataSection:
    num_trajectories: int = option(16, ge=1, help="independent KS trajectories")
    states_per_trajectory: int = option(125, ge=1, help="states saved per trajectory")
    save_every: float = option(
        4.0, gt=0.0, help="time between saved states (decorrelation; time units)"
    )
    spinup: float = option(100.0, ge=0.0, help="time onto the attractor before saving")
    seed: int = option(0, ge=0, help="PRNG seed of the training trajectories")


@dataclasses.dataclass(frozen=True)
class NetworkSection:
    width: int = option(256, ge=1, help="ScoreMLP hidden units")
    depth: int = option(3, ge=1, help="ScoreMLP hidden layers")
    time_embedding_dim: int = option(32, ge=2, help="sinusoidal time embedding size (even)")

    def __post_init__(self):
        if self.time_embedding_dim % 2:
            raise ConfigError(
                "time_embedding_dim", f"expected an even number, got {self.time_embedding_dim}"
            )


@dataclasses.dataclass(frozen=True)
class TrainingSection:
    steps: int = option(12000, ge=1, help="optimiser steps")
    batch_size: int = option(128, ge=1)
    learning_rate: float = option(1e-3, gt=0.0, help="Adam, cosine decay to 5%")
    ema: float | None = option(0.999, gt=0.0, lt=1.0, help="EMA decay of the weights (null: off)")
    parameterization: str = option(
        "v",
        choices=DSM_TARGETS,
        help="what the network predicts (and regresses): v is well conditioned at both noise "
        "ends; with eps the Tweedie x0 = (x - sigma eps) / alpha amplifies the network's "
        "error by 1 / alpha_T (~150 for VP-linear), which blows up the guidance gradients",
    )
    seed: int = option(0, ge=0, help="PRNG seed of the initialisation and the batches")


@dataclasses.dataclass(frozen=True)
class ObservationsSection:
    every_kth: int = option(4, ge=1, help="observe every k-th grid point")
    noise_fraction: float = option(
        0.1, gt=0.0, help="observation-noise std as a fraction of the climatological std"
    )
    interval: float = option(1.0, gt=0.0, help="time between analyses (time units)")


@dataclasses.dataclass(frozen=True)
class DiffusionSection:
    steps: int = option(100, ge=1, help="reverse-time grid steps of DPS and TDS")
    grid: str = option("logsnr_uniform", choices=tuple(SPACINGS), help="time grid")
    eta: float = option(1.0, gt=0.0, le=1.0, help="DDIM stochasticity (1: ancestral)")


@dataclasses.dataclass(frozen=True)
class DPSSection:
    zeta: float = option(1.0, ge=0.0, help="step size zeta' (the paper's default 1)")
    num_samples: int = option(32, ge=2, help="independent draws per analysis")


@dataclasses.dataclass(frozen=True)
class TDSSection:
    particles: int = option(256, ge=2, help="particles per analysis")
    num_samples: int = option(
        32,
        ge=2,
        help="draws resampled from the weighted particles (at most particles) for the saved "
        "draws; the scores use the weighted particles",
    )
    ess_threshold: float = option(0.5, ge=0.0, le=1.0, help="resample when ESS < threshold N")
    data_std: float | None = option(
        None, gt=0.0, help="prior scale of the pigdm twist (null: the climatological std)"
    )


@dataclasses.dataclass(frozen=True)
class ExperimentSection:
    n_analyses: int = option(40, ge=1, help="analysis times on the new trajectory")
    burn_in: int = option(
        10, ge=0, help="first analysis times left out of the scores (the filter's spin-up)"
    )
    spinup: float = option(100.0, ge=0.0, help="spin-up of the new (truth) trajectory")
    seed: int = option(1, ge=0, help="PRNG seed of the truth, noise, samplers and filter")
    plot_time: int | None = option(
        None, ge=0, help="analysis index shown in analysis.png (null: the last)"
    )


@dataclasses.dataclass(frozen=True)
class KSScoreDAConfig:
    """Schema of the `ks_score_da` pipeline."""

    model: KSModelSection = section(KSModelSection, help="the Kuramoto-Sivashinsky simulator")
    data: DataSection = section(DataSection, help="training states of the score prior")
    network: NetworkSection = section(NetworkSection, help="the score network")
    training: TrainingSection = section(TrainingSection, help="denoising score matching")
    observations: ObservationsSection = section(ObservationsSection, help="sparse, noisy")
    diffusion: DiffusionSection = section(DiffusionSection, help="the reverse-time grid")
    dps: DPSSection = section(DPSSection, help="diffusion posterior sampling")
    tds: TDSSection = section(TDSSection, help="twisted SMC (TDS)")
    filter: FilterSection = section(FilterSection, help="the cycling ensemble filter")
    experiment: ExperimentSection = section(ExperimentSection, help="the assimilation run")
    plot: PlotSection = section(PlotSection)

    def __post_init__(self):
        e = self.experiment
        if e.burn_in >= e.n_analyses:
            raise ConfigError(
                "experiment.burn_in",
                f"expected fewer than n_analyses = {e.n_analyses} times, got {e.burn_in}",
            )
        if e.plot_time is not None and e.plot_time >= e.n_analyses:
            raise ConfigError(
                "experiment.plot_time", f"expected an index below {e.n_analyses}, got {e.plot_time}"
            )
        if self.tds.num_samples > self.tds.particles:
            raise ConfigError(
                "tds.num_samples",
                f"expected at most tds.particles = {self.tds.particles}, got "
                f"{self.tds.num_samples} (the draws are resampled from the particles)",
            )
        n_states = self.data.num_trajectories * self.data.states_per_trajectory
        if self.filter.ensemble_size > n_states:
            raise ConfigError(
                "filter.ensemble_size",
                f"expected at most the {n_states} training states (data.num_trajectories x "
                f"data.states_per_trajectory) the initial members are drawn from, got "
                f"{self.filter.ensemble_size}",
            )
        if self.filter.is_particle:
            raise ConfigError("filter.method", "expected an ensemble Kalman filter, not pf")


def _timed_analyses(sampler, model, sch, grid, ys, n, key, **kw):
    """One analysis per call (one compiled program); the first call's time includes the
    compilation. Returns the draws (time, n, d), the weighted particles (time, P, d) and their
    weights (time, P), ESS (time,), collapsed (time,), the time of the first call and the
    median time of the others (the median: the machine may be shared)."""
    samples, ess, collapsed, seconds, particles, weights = [], [], [], [], [], []
    for k in range(ys.shape[0]):
        t0 = time.perf_counter()
        out = jd.posterior_draws(
            sampler, model, sch, grid, ys[k : k + 1], n, key=jax.random.fold_in(key, k), **kw
        )
        out = jax.block_until_ready(out)
        seconds.append(time.perf_counter() - t0)
        samples.append(np.asarray(out.samples[0]))
        particles.append(np.asarray(out.particles[0]))
        weights.append(np.asarray(out.weights[0]))
        ess.append(float(out.ess[0]))
        collapsed.append(bool(out.collapsed[0]))
    rest = seconds[1:] or seconds
    return (
        np.stack(samples),
        np.stack(particles),
        np.stack(weights),
        np.asarray(ess),
        np.asarray(collapsed),
        seconds[0],
        float(np.median(rest)),
    )


def _finite_case(ens, w):
    """Cases (times) whose members and weights are finite, with two positive weights."""
    ok = np.all(np.isfinite(ens), axis=(1, 2)) & np.all(np.isfinite(w), axis=1)
    return ok & (np.sum(np.where(np.isfinite(w), w, 0.0) > 0, axis=1) >= 2)


def _scores(ens, w, truth, burn_in):
    """The table row of one method over the times from `burn_in` on, and its rmse, spread and
    CRPS per time (a dict; NaN at non-finite times). A non-finite analysis at a scored time
    (a diverged filter, collapsed weights) gives rmse, crps, spread and spread_skill null and
    `diverged` true, not a NaN average."""
    ok = _finite_case(ens, w)
    rmse_t, spread_t, crps_t = (np.full(len(ens), np.nan) for _ in range(3))
    if np.any(ok):
        full = ensemble_scores(ens[ok], truth[ok], w[ok])
        rmse_t[ok], spread_t[ok] = np.asarray(full.rmse_per_case), np.asarray(full.spread_per_case)
        for k in np.flatnonzero(ok):
            crps_t[k] = float(ensemble_scores(ens[k : k + 1], truth[k : k + 1], w[k : k + 1]).crps)
    per_time = {"rmse": rmse_t, "spread": spread_t, "crps": crps_t}
    if not np.all(ok[burn_in:]):
        row = dict.fromkeys(("rmse", "crps", "spread", "spread_skill"), None)
        return {**row, "effective_members": None, "diverged": True}, per_time
    s = ensemble_scores(ens[burn_in:], truth[burn_in:], w[burn_in:])
    row = {
        "rmse": float(s.rmse),
        "crps": float(s.crps),
        "spread": float(s.spread),
        "spread_skill": float(s.spread_skill),
        "effective_members": float(np.median(1 / np.sum(w[burn_in:] ** 2, axis=1))),
        "diverged": False,
    }
    return row, per_time


def run(config: KSScoreDAConfig, run_dir: Path) -> dict:
    """Data, training, assimilation by DPS / TDS / the filter, scores, plots."""
    start = time.perf_counter()
    stages: dict[str, float] = {}
    mc, dc, ec, oc = config.model, config.data, config.experiment, config.observations

    # 1. data: decorrelated attractor states
    t0 = time.perf_counter()
    states = data.ks_trajectories(
        jax.random.key(dc.seed),
        dc.num_trajectories,
        dc.states_per_trajectory - 1,
        save_every=dc.save_every,
        length=mc.length,
        num_points=mc.num_points,
        dt=mc.dt,
        spinup=dc.spinup,
    ).reshape(-1, mc.num_points)
    clim_std = float(np.std(states))
    stages["data"] = time.perf_counter() - t0
    logger.info("data: %d KS states, climatological std %.4f", len(states), clim_std)

    # 2. training: DSM on a ScoreMLP
    t0 = time.perf_counter()
    tc, nc = config.training, config.network
    sch = jd.VPLinear()
    k_net, k_fit = jax.random.split(jax.random.key(tc.seed))
    param = PARAMETERIZATIONS[tc.parameterization]()
    net = ScoreMLP(mc.num_points, nc.width, nc.depth, nc.time_embedding_dim, key=k_net)
    model, hist = train.fit(
        net,
        jd.DenoisingScoreMatching(sch, param),
        jnp.asarray(states),
        optimizer=optax.adam(optax.cosine_decay_schedule(tc.learning_rate, tc.steps, alpha=0.05)),
        key=k_fit,
        batch_size=min(tc.batch_size, len(states)),
        num_steps=tc.steps,
        ema=tc.ema,
        progress=True,
    )
    stages["training"] = time.perf_counter() - t0
    loss = np.asarray(hist["loss"])
    final_loss = float(np.mean(loss[-max(1, len(loss) // 20) :]))
    logger.info("training: %d steps, final DSM loss %.4f", tc.steps, final_loss)

    # 3. the truth and its observations
    t0 = time.perf_counter()
    k_truth, k_obs, k_dps, k_tds, k_filt, k_init = jax.random.split(jax.random.key(ec.seed), 6)
    traj = data.ks_trajectories(
        k_truth,
        1,
        ec.n_analyses,
        save_every=oc.interval,
        length=mc.length,
        num_points=mc.num_points,
        dt=mc.dt,
        spinup=ec.spinup,
    )[0]
    truth = traj[1:]  # the analysis times t0 + k interval, k = 1..K
    noise_std = oc.noise_fraction * clim_std
    obs = filters.every_kth(mc.num_points, oc.every_kth, noise_std=noise_std)
    ys = filters.synthetic_observations(k_obs, obs, jnp.asarray(truth))
    stages["truth"] = time.perf_counter() - t0

    grid = jd.time_grid(sch, config.diffusion.steps, SPACINGS[config.diffusion.grid]())
    y0 = ys[0]
    ensembles: dict[str, np.ndarray] = {}  # the members or particles, (time, M, d)
    weights: dict[str, np.ndarray] = {}  # their weights, (time, M)
    timing: dict[str, dict[str, float]] = {}
    diag: dict[str, object] = {}

    # 4a. DPS
    t0 = time.perf_counter()
    dps = jd.DPS(obs, y0, zeta=config.dps.zeta, eta=config.diffusion.eta)  # pyright: ignore[reportCallIssue]
    _, ens, w, _, _, first, per = _timed_analyses(
        dps, model, sch, grid, ys, config.dps.num_samples, k_dps, parameterization=param
    )
    ensembles["dps"], weights["dps"] = ens, w
    timing["dps"] = {"first_call_seconds": first, "seconds_per_analysis": per}
    stages["dps"] = time.perf_counter() - t0
    logger.info("dps: %.3f s per analysis (first call %.2f s)", per, first)

    # 4b. TDS
    t0 = time.perf_counter()
    tsc = config.tds
    tds = jd.TDS(
        obs,
        y0,
        eta=config.diffusion.eta,
        twist=jd.PiGDMTwist(tsc.data_std or clim_std),
        ess_threshold=tsc.ess_threshold,
    )
    draws, ens, w, ess, collapsed, first, per = _timed_analyses(
        tds,
        model,
        sch,
        grid,
        ys,
        tsc.num_samples,
        k_tds,
        num_particles=tsc.particles,
        parameterization=param,
    )
    ensembles["tds"], weights["tds"], tds_draws = ens, w, draws
    timing["tds"] = {"first_call_seconds": first, "seconds_per_analysis": per}
    diag["tds_final_ess"] = {
        "median": float(np.median(ess)),
        "min": float(np.min(ess)),
        "particles": tsc.particles,
    }
    diag["tds_collapsed_analyses"] = int(np.sum(collapsed))
    stages["tds"] = time.perf_counter() - t0
    logger.info(
        "tds: %.3f s per analysis (first call %.2f s), final ESS median %.1f of %d",
        per,
        first,
        float(np.median(ess)),
        tsc.particles,
    )

    # 4c. the cycling filter with the true model
    t0 = time.perf_counter()
    fc = config.filter
    ks = dynamics.KuramotoSivashinsky(length=mc.length, num_points=mc.num_points)
    flow = integrate.Flow(ks, mc.dt, integrate.ETDRK4())
    pick = jax.random.choice(k_init, len(states), (fc.ensemble_size,), replace=False)
    x0 = jnp.asarray(states)[pick]
    filt = make_filter(fc, obs)

    def run_filt():
        return jax.block_until_ready(
            filters.run_filter(
                k_filt,
                flow,
                obs,
                filt,
                x0,
                ys,
                dt=oc.interval,
                store_ensembles=True,
                compute_likelihood=False,
            )
        )

    t1 = time.perf_counter()
    res = run_filt()  # compiles
    first = time.perf_counter() - t1
    t1 = time.perf_counter()
    res = run_filt()
    per = (time.perf_counter() - t1) / ec.n_analyses
    assert res.ensembles is not None  # store_ensembles=True
    ensembles["filter"] = np.asarray(res.ensembles)
    weights["filter"] = np.full(ensembles["filter"].shape[:2], 1 / fc.ensemble_size)
    timing["filter"] = {"first_call_seconds": first, "seconds_per_analysis": per}
    stages["filter"] = time.perf_counter() - t0
    logger.info("filter (%s): %.4f s per cycle", filter_label(fc), per)

    # 5. scores over the same times
    t0 = time.perf_counter()
    table: dict[str, dict] = {}
    per_time: dict[str, np.ndarray] = {}
    spread_time: dict[str, np.ndarray] = {}
    crps_time: dict[str, np.ndarray] = {}
    for name in METHODS:
        row, series = _scores(ensembles[name], weights[name], truth, ec.burn_in)
        per_time[name], spread_time[name], crps_time[name] = (
            series["rmse"],
            series["spread"],
            series["crps"],
        )
        table[name] = {
            **row,
            "seconds_per_analysis": timing[name]["seconds_per_analysis"],
            "members": int(ensembles[name].shape[1]),
        }
        if row["diverged"]:
            logger.warning("%s: non-finite analyses at scored times: rmse reported as null", name)
        else:
            logger.info(
                "%-6s rmse %.4f  crps %.4f  spread %.4f  spread/skill %.3f  %.4f s/analysis",
                name,
                row["rmse"],
                row["crps"],
                row["spread"],
                row["spread_skill"],
                timing[name]["seconds_per_analysis"],
            )
    k_plot = ec.n_analyses - 1 if ec.plot_time is None else ec.plot_time
    draws_of = {**ensembles, "tds": tds_draws}  # unweighted draws (TDS: resampled)
    np.savez(
        run_dir / "ks_score_da.npz",
        truth=truth,
        observations=np.asarray(ys),
        observed_indices=np.asarray(obs.indices),
        plot_time=k_plot,
        **{f"{n}_mean": np.einsum("tm,tmd->td", weights[n], ensembles[n]) for n in METHODS},
        **{f"{n}_rmse": per_time[n] for n in METHODS},
        **{f"{n}_spread": spread_time[n] for n in METHODS},
        **{f"{n}_crps": crps_time[n] for n in METHODS},
        **{f"{n}_draws_at_plot_time": draws_of[n][k_plot] for n in METHODS},
    )
    if config.plot.enabled:
        with _plots.guard():
            _plots._save(
                _analysis_figure(truth, ys, obs, ensembles, weights, k_plot, mc, oc),
                run_dir / "analysis.png",
                config.plot.dpi,
            )
            _plots._save(
                _rmse_figure(per_time, spread_time, clim_std, noise_std, oc, ec, fc),
                run_dir / "rmse.png",
                config.plot.dpi,
            )
    stages["metrics_and_plots"] = time.perf_counter() - t0
    diagnostics = {
        "stage_seconds": stages,
        "timing": timing,
        "training": {
            "final_loss": final_loss,
            "compile_seconds": float(hist["compile_seconds"]),
            "train_seconds": float(hist["train_seconds"]),
            "num_states": int(len(states)),
        },
        "filter": filter_label(fc),
        "filter_finite": bool(np.all(np.asarray(res.finite))),
        **diag,
        "wall_seconds": time.perf_counter() - start,
    }
    (run_dir / "diagnostics.json").write_text(json.dumps(diagnostics, indent=2))
    return {
        "table": table,
        "clim_std": clim_std,
        "noise_std": noise_std,
        "observed": f"every {oc.every_kth}th of {mc.num_points} points",
        "scored_times": ec.n_analyses - ec.burn_in,
        "diverged": [n for n in METHODS if table[n]["diverged"]],
        "stage_seconds": stages,
        "wall_seconds": time.perf_counter() - start,
    }


# ---------------------------------------------------------------------------------- plots

_TITLES = {"dps": "DPS (learned prior, no forecast)", "tds": "TDS / twisted SMC (learned prior)"}


def _analysis_figure(truth, ys, obs, ensembles, weights, k, mc, oc) -> Figure:
    xs = np.arange(mc.num_points) * mc.length / mc.num_points
    x_obs = xs[np.asarray(obs.indices)]
    fig = Figure(figsize=(4.2 * len(METHODS), 3.6), layout="constrained")
    axes = fig.subplots(1, len(METHODS), sharey=True)
    for ax, name in zip(axes, METHODS, strict=True):
        ens, w = ensembles[name][k], weights[name][k]
        m = w @ ens
        s = np.sqrt(w @ (ens - m) ** 2 / (1 - np.sum(w**2)))  # ddof 1 at equal weights
        ax.fill_between(xs, m - 2 * s, m + 2 * s, color="tab:blue", alpha=0.25, label="+-2 std")
        ax.plot(xs, m, color="tab:blue", label="posterior mean")
        ax.plot(xs, truth[k], "k--", lw=1.0, label="truth")
        ax.plot(x_obs, np.asarray(ys[k]), "o", ms=3, color="tab:red", label="observations")
        ax.set_title(_TITLES.get(name, "cycling filter (true model)"), fontsize=9)
        ax.set_xlabel("x")
    axes[0].set_ylabel("u")
    axes[0].legend(fontsize=7)
    fig.suptitle(
        f"KS analysis at time index {k}: every {oc.every_kth}th point observed", fontsize=10
    )
    return fig


def _rmse_figure(per_time, spread_time, clim_std, noise_std, oc, ec, fc) -> Figure:
    fig = Figure(figsize=(8, 3.8), layout="constrained")
    ax = fig.subplots()
    t = oc.interval * np.arange(1, ec.n_analyses + 1)
    for i, name in enumerate(METHODS):
        label = name if name != "filter" else filter_label(fc)
        ax.plot(t, per_time[name], color=f"C{i}", label=f"{label} rmse")
        ax.plot(t, spread_time[name], color=f"C{i}", ls=":", lw=1.0, label=f"{label} spread")
    ax.axhline(clim_std, color="gray", lw=0.8, label="climatological std")
    ax.axhline(noise_std, color="gray", ls="--", lw=0.8, label="observation noise std")
    ax.axvline(oc.interval * (ec.burn_in + 0.5), color="k", lw=0.5, ls="-.")
    ax.set_yscale("log")
    ax.set_xlabel("time")
    ax.set_ylabel("rmse / spread")
    ax.legend(fontsize=7, ncol=2)
    ax.set_title("analysis error over time (scores after the dash-dotted line)", fontsize=10)
    return fig
