r"""Pipeline `node_regularisation`: neural ODEs made cheap to solve by regularising the
adaptive solver's own heuristics.

1. data: Lotka-Volterra trajectories (`data`: parameters, initial states uniform in
   [`y0_low`, `y0_high`]^2, `num_times` saves on [0, `t1`]) from `jaxsci.simulate` at tight
   tolerances; `num_train` training and `num_test` test trajectories;
2. models: a `jaxsci.nn.NeuralVectorField` of an `MLP` (`network`), trained for the same
   `training.steps` (Adam) three ways:
   * `plain`: trajectory MSE only (`losses.SolverHeuristicLoss` with weight 0);
   * `global`: + lambda R_E, the accumulated error estimates of the whole solve (ERNODE,
     Pal et al. 2021), one run per weight in `regularisation.error_weights`;
   * `local`: + lambda N E_j |h_j| at one sampled step per example (Pal, Edelman &
     Rackauckas 2023), one run per weight in `regularisation.local_error_weights`;
3. scores (every run): training and test trajectory MSE, and the test NFE of the adaptive
   solver (`solver`: Tsit5/Dopri5 with a PID controller at `rtol`, `atol`), training time.
   A regularised run *matches* the plain one when its training MSE is at most
   (1 + `regularisation.mse_tolerance`) times plain's (equal or better); the selected run
   per method is the matching one with the fewest test NFE (the paper tunes lambda so).

Writes `metrics.json` (every run), `node_regularisation.npz` (histories, trajectories),
`nfe.png` (test NFE against training MSE for every run; NFE over training for the selected
runs) and `trajectories.png` (a test trajectory, truth and the three selected models).
"""

import dataclasses
import logging
import time
from pathlib import Path
from typing import Any

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
import optax
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter

from .. import integrate, losses, nn, train
from ..dynamics import LotkaVolterra
from . import _plots
from ._plots import PlotSection
from ._schema import ConfigError, option, section

DESCRIPTION = (
    "neural ODE on Lotka-Volterra: plain vs solver-heuristic (global ERNODE) vs local "
    "regularisation; test NFE of an adaptive solver at matched training MSE"
)

logger = logging.getLogger("jaxsci.pipelines.node_regularisation")

SOLVERS = {"tsit5": diffrax.Tsit5, "dopri5": diffrax.Dopri5}


@dataclasses.dataclass(frozen=True)
class DataSection:
    alpha: float = option(1.5, gt=0.0, help="Lotka-Volterra prey growth")
    beta: float = option(1.0, gt=0.0, help="predation rate")
    gamma: float = option(3.0, gt=0.0, help="predator death rate")
    delta: float = option(1.0, gt=0.0, help="predator growth per prey")
    y0_low: float = option(0.5, gt=0.0, help="initial states uniform in [y0_low, y0_high]^2")
    y0_high: float = option(2.5, gt=0.0)
    t1: float = option(3.0, gt=0.0, help="trajectory length")
    num_times: int = option(16, ge=2, help="save times on [0, t1]")
    num_train: int = option(64, ge=1)
    num_test: int = option(32, ge=1)


@dataclasses.dataclass(frozen=True)
class NetworkSection:
    width: int = option(32, ge=1)
    depth: int = option(2, ge=1)


@dataclasses.dataclass(frozen=True)
class TrainingSection:
    steps: int = option(600, ge=1, help="Adam steps of every run")
    batch_size: int = option(16, ge=1)
    learning_rate: float = option(3e-3, gt=0.0)


@dataclasses.dataclass(frozen=True)
class SolverSection:
    name: str = option("tsit5", choices=tuple(SOLVERS), help="adaptive solver (train and test)")
    rtol: float = option(1e-5, gt=0.0)
    atol: float = option(1e-7, gt=0.0)
    max_steps: int = option(512, ge=4, help="step bound of one solve")


@dataclasses.dataclass(frozen=True)
class RegularisationSection:
    error_weights: list[float] = option(
        factory=lambda: [0.01, 0.1], help="lambda_E of the global runs (one run each)"
    )
    local_error_weights: list[float] = option(
        factory=lambda: [0.01, 0.1], help="lambda_E of the local runs (one run each)"
    )
    stiffness_weight: float = option(0.0, ge=0.0, help="lambda_S of every regularised run")
    mse_tolerance: float = option(0.1, gt=0.0, help="matched: train MSE <= (1 + this) x plain's")


@dataclasses.dataclass(frozen=True)
class NodeRegularisationConfig:
    """Schema of the `node_regularisation` pipeline."""

    seed: int = option(0, ge=0, help="PRNG seed (data, networks, batches)")
    data: DataSection = section(DataSection)
    network: NetworkSection = section(NetworkSection)
    training: TrainingSection = section(TrainingSection)
    solver: SolverSection = section(SolverSection)
    regularisation: RegularisationSection = section(RegularisationSection)
    plot: PlotSection = section(PlotSection)

    def __post_init__(self):
        if self.data.y0_high <= self.data.y0_low:
            raise ConfigError(
                "data.y0_high",
                f"expected > data.y0_low={self.data.y0_low:g}, got {self.data.y0_high:g}",
            )
        if self.training.batch_size > self.data.num_train:
            raise ConfigError(
                "training.batch_size",
                f"expected <= data.num_train={self.data.num_train}, got {self.training.batch_size}",
            )
        for key in ("error_weights", "local_error_weights"):
            weights = getattr(self.regularisation, key)
            if any(not w > 0 for w in weights):
                raise ConfigError(
                    f"regularisation.{key}", f"expected positive weights, got {weights}"
                )


def _data(config, key):
    d = config.data
    truth = LotkaVolterra(d.alpha, d.beta, d.gamma, d.delta)
    ts = jnp.linspace(0.0, d.t1, d.num_times)
    n = d.num_train + d.num_test
    y0 = jax.random.uniform(key, (n, 2), minval=d.y0_low, maxval=d.y0_high)
    ys = jax.vmap(lambda y: integrate.simulate(truth, y, ts, rtol=1e-9, atol=1e-11).ys)(y0)
    return ts, (y0[: d.num_train], ys[: d.num_train]), (y0[d.num_train :], ys[d.num_train :])


def _evaluate(model, ts, data, solver, config):
    """(trajectory MSE, mean NFE) of the adaptive solve of every example in `data`."""
    y0, ys = data
    s = config.solver

    @jax.jit
    def solve(y):
        return integrate.solve_heuristics(
            model.vector_field,
            y,
            ts,
            solver=solver,
            rtol=s.rtol,
            atol=s.atol,
            max_steps=s.max_steps,
            accumulate=False,
        )

    sol = jax.vmap(solve)(y0)
    return float(jnp.mean((sol.ys - ys) ** 2)), float(jnp.mean(sol.nfe))


def run(config: NodeRegularisationConfig, run_dir: Path) -> dict:
    """Generate the data, train every run, evaluate, and write arrays, plots and metrics."""
    start = time.perf_counter()
    k_data, k_net, k_fit = jax.random.split(jax.random.key(config.seed), 3)
    ts, train_data, test_data = _data(config, k_data)
    s = config.solver
    solver = SOLVERS[s.name]()
    reg = config.regularisation
    common: dict[str, Any] = dict(rtol=s.rtol, atol=s.atol, solver=solver, max_steps=s.max_steps)
    runs: list[tuple[str, float, losses.AbstractLoss]] = [
        ("plain", 0.0, losses.SolverHeuristicLoss(ts, 0.0, 0.0, **common))
    ]
    runs += [
        ("global", w, losses.SolverHeuristicLoss(ts, w, reg.stiffness_weight, **common))
        for w in reg.error_weights
    ]
    runs += [
        ("local", w, losses.LocalRegularisedLoss(ts, w, reg.stiffness_weight, **common))
        for w in reg.local_error_weights
    ]
    net = config.network
    model0 = nn.NeuralVectorField(nn.MLP(2, 2, net.width, net.depth, key=k_net))
    results, histories, models = [], {}, {}
    for method, weight, loss in runs:
        name = method if method == "plain" else f"{method}_{weight:g}"
        t0 = time.perf_counter()
        model, history = train.fit(
            model0,
            loss,
            train_data,
            optimizer=optax.adam(config.training.learning_rate),
            key=k_fit,
            batch_size=config.training.batch_size,
            num_steps=config.training.steps,
            progress=False,
        )
        wall = time.perf_counter() - t0
        train_mse, train_nfe = _evaluate(model, ts, train_data, solver, config)
        test_mse, test_nfe = _evaluate(model, ts, test_data, solver, config)
        row = dict(
            name=name,
            method=method,
            weight=weight,
            train_mse=train_mse,
            test_mse=test_mse,
            train_nfe=train_nfe,
            test_nfe=test_nfe,
            train_seconds=float(history["train_seconds"]),
            compile_seconds=float(history["compile_seconds"]),
            wall_seconds=wall,
        )
        logger.info("%s", row)
        results.append(row)
        histories[name] = np.asarray(history["aux/nfe"])
        models[name] = model
    plain = results[0]
    for row in results:
        # matched: no worse than plain by more than the tolerance (a lower MSE at fewer
        # NFE is a better model on both counts)
        row["matched"] = bool(row["train_mse"] <= (1.0 + reg.mse_tolerance) * plain["train_mse"])
    selected = {"plain": plain}
    for method in ("global", "local"):
        matched = [r for r in results if r["method"] == method and r["matched"]]
        if matched:
            selected[method] = min(matched, key=lambda r: r["test_nfe"])
    metrics: dict[str, Any] = dict(
        runs=results,
        selected={m: r["name"] for m, r in selected.items()},
        nfe_reduction={
            m: 1.0 - r["test_nfe"] / plain["test_nfe"] for m, r in selected.items() if m != "plain"
        },
        must_show_fewer_nfe_at_matched_mse=all(
            m in selected and selected[m]["test_nfe"] < plain["test_nfe"]
            for m in ("global", "local")
        ),
    )
    y0_test, ys_test = test_data
    preds = {
        m: np.asarray(
            integrate.simulate(models[r["name"]], y0_test[0], ts, rtol=s.rtol, atol=s.atol).ys
        )
        for m, r in selected.items()
    }
    np.savez(
        run_dir / "node_regularisation.npz",
        ts=np.asarray(ts),
        truth=np.asarray(ys_test[0]),
        **{f"pred_{m}": p for m, p in preds.items()},
        **{f"nfe_history_{k}": v for k, v in histories.items()},
    )
    with _plots.guard():
        _plot(results, selected, histories, run_dir, config.plot.dpi)
        _plot_trajectories(np.asarray(ts), np.asarray(ys_test[0]), preds, run_dir, config.plot.dpi)
    metrics["wall_seconds"] = time.perf_counter() - start
    return metrics


def _plot(results, selected, histories, run_dir: Path, dpi: int) -> None:
    fig = Figure(figsize=(10, 4))
    ax1, ax2 = fig.subplots(1, 2)
    styles = {"plain": "k", "global": "C0", "local": "C3"}
    for r in results:
        ax1.scatter(r["train_mse"], r["test_nfe"], color=styles[r["method"]], s=30)
        ax1.annotate(r["name"], (r["train_mse"], r["test_nfe"]), fontsize=7)
    ax1.set_xscale("log")
    ax1.xaxis.set_minor_formatter(NullFormatter())
    ax1.set_xlabel("training MSE")
    ax1.set_ylabel("test NFE (adaptive)")
    ax1.set_title("NFE vs training loss (every run)")
    for r in results:  # every run; the selected ones bold
        h = histories[r["name"]]
        width = max(1, len(h) // 50)
        smooth = np.convolve(h, np.ones(width) / width, mode="valid")
        bold = selected.get(r["method"]) is r
        ax2.plot(
            smooth,
            color=styles[r["method"]],
            lw=2.0 if bold else 0.8,
            alpha=1.0 if bold else 0.6,
            label=r["name"] + (" (selected)" if bold else ""),
        )
    ax2.set_xlabel("training step")
    ax2.set_ylabel("NFE per training solve (batch mean)")
    ax2.set_title("NFE over training")
    ax2.legend(fontsize=7)
    fig.savefig(run_dir / "nfe.png", dpi=dpi, bbox_inches="tight")


def _plot_trajectories(ts, truth, preds, run_dir: Path, dpi: int) -> None:
    fig = Figure(figsize=(10, 4))
    ax1, ax2 = fig.subplots(1, 2)
    styles = {"plain": "k--", "global": "C0-", "local": "C3-"}
    ax1.plot(ts, truth, "o", color="grey", label="truth")
    ax2.plot(truth[:, 0], truth[:, 1], "o", color="grey", label="truth")
    for m, p in preds.items():
        ax1.plot(ts, p[:, 0], styles[m], label=m)
        ax1.plot(ts, p[:, 1], styles[m])
        ax2.plot(p[:, 0], p[:, 1], styles[m], label=m)
    ax1.set_xlabel("t")
    ax1.set_ylabel("prey, predator")
    ax2.set_xlabel("prey")
    ax2.set_ylabel("predator")
    ax2.legend()
    fig.suptitle("a test trajectory: truth and the selected neural ODEs")
    fig.savefig(run_dir / "trajectories.png", dpi=dpi, bbox_inches="tight")
