"""Train task `l96_ensemble`: a probabilistic Lorenz-96 forecaster trained with the (fair)
ensemble CRPS.

An `nn.LocalStochastic` (noise-injected local network, one sample per call) learns to
predict x(t + lead) from a noisy observation of x(t) (`data.noisy_input_pairs`); it is
evaluated by CRPS, RMSE of the ensemble mean, spread and a binned spread-skill diagram, with
members drawn by `nn.sample_ensemble`.
"""

import dataclasses
import logging
import time
from pathlib import Path
from typing import Any

import equinox as eqx
import jax
import numpy as np
from matplotlib.figure import Figure

from .. import data as jdata, losses, metrics as metrics_, nn
from . import _plots
from ._schema import option
from ._training import Task, check_multiple, fit, history_figure, network_of

logger = logging.getLogger("jaxsci.pipelines.train")


@dataclasses.dataclass(frozen=True)
class L96Data:
    n: int = option(40, ge=4, help="sites")
    forcing: float = option(8.0, help="forcing F")
    dt: float = option(0.01, gt=0.0, help="RK4 step of the data generation")
    lead: float = option(0.2, gt=0.0, help="forecast lead time (a multiple of dt)")
    obs_noise: float = option(1.0, gt=0.0, help="std of the noise on the forecaster's input")
    num_train: int = option(40, ge=1, help="training trajectories")
    num_test: int = option(10, ge=1, help="test trajectories")
    steps: int = option(100, ge=1, help="forecast pairs per trajectory")
    spinup: float = option(20.0, ge=0.0)
    cache: str | None = option(None, help="cache the trajectories in this .npz file")
    seed: int = option(0, ge=0)

    def __post_init__(self):
        check_multiple("lead", self.lead, self.dt, "dt")


@dataclasses.dataclass(frozen=True)
class EnsembleModel:
    radius: int = option(2, ge=1, help="the stencil x_{i-r..i+r} each site sees")
    noise_dim: int = option(4, ge=1, help="standard normal inputs per site (the randomness)")
    width: int = option(64, ge=1, help="MLP hidden width")
    depth: int = option(2, ge=1, help="MLP hidden layers")
    seed: int = option(1, ge=0)


#: `loss.kind` names of the config -> the ensemble scores of `jaxsci.losses`.
CRPS_KINDS = ("fair", "almost_fair", "standard")


def crps_score(kind: str, alpha: float) -> losses.EnsembleScore:
    """The `CRPSLoss` score of a config's `kind` ("almost_fair" uses `alpha`)."""
    if kind == "almost_fair":
        return losses.AlmostFairCRPS(alpha)
    return {"fair": losses.crps_fair, "standard": losses.crps_ensemble}[kind]


@dataclasses.dataclass(frozen=True)
class CRPSSection:
    kind: str = option("fair", choices=CRPS_KINDS, help="CRPS estimator")
    ensemble_size: int = option(8, ge=2, help="members drawn per example in training")
    alpha: float = option(0.95, ge=0.0, le=1.0, help="almost_fair: the AIFS-CRPS alpha")


@eqx.filter_jit
def _ensembles(model, inputs, keys, size: int):
    """`nn.sample_ensemble` for each input of a batch, (cases, size, n)."""
    return jax.vmap(lambda x, k: nn.sample_ensemble(model, x, size, key=k))(inputs, keys)


def run(config, run_dir: Path) -> dict:
    """Generate the pairs, train the forecaster, draw test ensembles, score, write the outputs."""
    d, m, lc, ev = config.data, config.model, config.loss, config.evaluation
    lead_steps = 1
    logger.info(
        "Lorenz-96 n=%d F=%g: forecast x(t + %g) from x(t) + N(0, %g^2) noise; "
        "%d x %d training pairs",
        d.n,
        d.forcing,
        d.lead,
        d.obs_noise,
        d.num_train,
        d.steps,
    )
    t = time.perf_counter()
    traj = jdata.lorenz96_trajectories(
        jax.random.key(d.seed),
        d.num_train + d.num_test,
        d.steps * lead_steps,
        save_every=d.lead,
        n=d.n,
        forcing=d.forcing,
        dt=d.dt,
        spinup=d.spinup,
        path=d.cache,
    )
    data_seconds = time.perf_counter() - t
    inputs, targets = jdata.noisy_input_pairs(jax.random.key(d.seed + 1), traj, d.obs_noise)
    x_train = inputs[: d.num_train].reshape(-1, d.n)
    y_train = targets[: d.num_train].reshape(-1, d.n)
    x_test = inputs[d.num_train :].reshape(-1, d.n)
    y_test = targets[d.num_train :].reshape(-1, d.n)
    mean, scale = float(traj.mean()), float(traj.std())
    model = network_of(
        m,
        lambda: nn.LocalStochastic(
            m.radius,
            m.noise_dim,
            m.width,
            m.depth,
            mean=mean,
            scale=scale,
            key=jax.random.key(m.seed),
        ),
    )
    loss = losses.CRPSLoss(lc.ensemble_size, crps_score(lc.kind, lc.alpha))
    model, history, wall = fit(config.training, model, loss, (x_train, y_train), run_dir)

    keys = jax.random.split(jax.random.key(config.training.seed + 1), len(x_test))
    ens = np.concatenate(
        [
            np.asarray(_ensembles(model, x_test[i : i + 256], keys[i : i + 256], ev.ensemble_size))
            for i in range(0, len(x_test), 256)
        ]
    )  # (cases, M, n)
    ens_mean = ens.mean(axis=1)  # for the spread-skill figure
    var = ens.var(axis=1, ddof=1)
    mm = ev.ensemble_size
    # rmse of the mean, the (M + 1)/M-calibrated spread (Fortin et al. 2014), fair CRPS
    scores = metrics_.ensemble_scores(ens, y_test)
    rmse, spread = float(scores.rmse), float(scores.spread)
    noisy_rmse = float(np.sqrt(np.mean((x_test - y_test) ** 2)))
    metrics: dict[str, Any] = {
        "task": config.task,
        "test_crps": float(scores.crps),
        "test_rmse": rmse,
        "test_spread": spread,
        "spread_skill_ratio": spread / rmse,
        "persistence_rmse": noisy_rmse,
        "climatology_std": scale,
        # LocalStochastic's mean and scale are data statistics, not parameters
        "params": nn.count_params(model.mlp if isinstance(model, nn.LocalStochastic) else model),
        "train_seconds": float(history["train_seconds"]),
        "compile_seconds": float(history["compile_seconds"]),
        "data_seconds": data_seconds,
    }
    logger.info(
        "test: CRPS %.4g, RMSE %.4g, spread %.4g (ratio %.3f); persistence RMSE %.4g",
        metrics["test_crps"],
        rmse,
        spread,
        spread / rmse,
        noisy_rmse,
    )
    np.savez_compressed(
        run_dir / "forecasts.npz",
        inputs=x_test[:64],
        truth=y_test[:64],
        ensemble=ens[:64],
    )
    if config.plot.enabled:
        with _plots.guard():
            heading = (
                f"Lorenz-96 n={d.n}, F={d.forcing:g}: lead {d.lead:g} from noisy input (std "
                f"{d.obs_noise:g}); trained with {lc.kind} CRPS, {lc.ensemble_size} members"
            )
            _plots._save(
                _spread_skill_figure(ens_mean, var, y_test, mm, ev.bins, heading, metrics),
                run_dir / "spread_skill.png",
                config.plot.dpi,
            )
            _plots._save(
                history_figure({f"{lc.kind} CRPS": history}, "training loss"),
                run_dir / "training.png",
                config.plot.dpi,
            )
    return metrics


def _spread_skill_figure(ens_mean, var, truth, m, bins, heading, metrics) -> Figure:
    """Bin (case, site) pairs by predicted spread; per bin, RMSE of the ensemble mean against
    the (M + 1)/M-corrected spread. A calibrated ensemble lies on the diagonal."""
    s = np.sqrt((m + 1) / m * var).ravel()
    e2 = ((ens_mean - truth) ** 2).ravel()
    edges = np.quantile(s, np.linspace(0, 1, bins + 1))
    which = np.clip(np.searchsorted(edges, s, side="right") - 1, 0, bins - 1)
    spread_b = np.array([np.sqrt(np.mean(s[which == b] ** 2)) for b in range(bins)])
    rmse_b = np.array([np.sqrt(np.mean(e2[which == b])) for b in range(bins)])
    fig = Figure(figsize=(5.6, 5.0), layout="constrained")
    ax = fig.add_subplot()
    top = 1.1 * max(spread_b.max(), rmse_b.max())
    ax.plot([0, top], [0, top], color="0.5", ls="--", lw=0.9, label="perfect calibration")
    ax.plot(spread_b, rmse_b, "o-", color="tab:blue", label=f"{bins} spread bins (equal counts)")
    ax.set_xlim(0, top)
    ax.set_ylim(0, top)
    ax.set_xlabel("ensemble spread  sqrt((M+1)/M var)")
    ax.set_ylabel("RMSE of the ensemble mean")
    ax.set_title(
        f"{heading}\nspread/skill = {metrics['spread_skill_ratio']:.3f}, "
        f"CRPS = {metrics['test_crps']:.3g}",
        fontsize=8,
    )
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return fig


TASK = Task(
    data=L96Data,
    model=EnsembleModel,
    loss=CRPSSection,
    num_train_examples=lambda config: config.data.num_train * config.data.steps,
    run=run,
)
