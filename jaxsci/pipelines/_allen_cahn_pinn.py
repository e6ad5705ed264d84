r"""Pipeline `allen_cahn_pinn`: a causal physics-informed network against a plain one on the
Allen-Cahn equation, scored against our spectral solution.

    u_t = 1e-4 u_xx + 5 u - 5 u^3,  x in [-1, 1) periodic,  t in [0, 1],  u0 = x^2 cos(pi x)

1. Reference: `jaxsci.dynamics.AllenCahn` on `reference.num_points` points, ETDRK4 with step
   `reference.dt`, saved at `reference.num_times` times (512 points and dt = 1e-3 agree with
   1024 points to 1e-5 relative L2).
2. Two networks of one architecture and one budget: u(x, t) = u0(x) + t net(e(x), t)
   (`nn.HardInitialCondition`, when `model.hard_initial`; else an initial-condition term of
   weight `training.initial_weight`), with e the exactly periodic embedding
   (`nn.PeriodicEmbedding`, `model.harmonics` harmonics of cos/sin(pi x)) and net an `nn.MLP`
   (tanh). Both minimise `losses.PINNLoss(AllenCahn.residual)` over collocation points in
   `training.num_slabs` time slabs (`losses.time_slab_points`, a fixed pool of
   `training.pool` points per slab, minibatches of `training.batch_size` x num_slabs), with
   Adam (exponential decay) in stages of `training.steps_per_stage` steps:
   * `causal`: stage s uses the causal weights with epsilon = `training.epsilons[s]` (Wang,
     Sankaran & Perdikaris 2022: a slab is fitted once the residual before it is small;
     epsilon grows stage by stage as in their schedule);
   * `plain`: the same stages without the weights (the Raissi et al. 2019 PINN).
3. Metrics: the relative L2 error of each network against the reference on the whole
   (num_times x num_points) grid, after every stage and at the end; wall seconds (compile
   apart), the causal weights at the end of every stage.

`metrics.json` holds `{method: {rel_l2, rel_l2_by_stage, train_seconds, compile_seconds,
steps}}`; `allen_cahn_pinn.npz` the reference, both predictions and the causal weights;
`solution.png` the reference, both networks and their error maps; `weights.png` the causal
weights over the slabs after every stage, and the smallest weight over the steps.
"""

import dataclasses
import logging
import time
from pathlib import Path
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from matplotlib.figure import Figure

from .. import dynamics, integrate, losses, nn, spectral, train
from . import _plots
from ._schema import ConfigError, option, section

DESCRIPTION = (
    "Allen-Cahn PINN: causal weights (Wang et al. 2022) vs a plain PINN on the same budget, "
    "scored against the ETDRK4 spectral solution"
)

logger = logging.getLogger("jaxsci.pipelines.allen_cahn_pinn")

METHODS = ("causal", "plain")


@dataclasses.dataclass(frozen=True)
class ReferenceSection:
    num_points: int = option(
        512, ge=8, le=spectral.MAX_GRID_POINTS, help="spectral grid on [-1, 1), even"
    )
    num_times: int = option(201, ge=2, help="saved (and scored) times on [0, 1]")
    dt: float = option(1e-3, gt=0.0, le=0.1, help="ETDRK4 step")
    diffusion: float = option(1e-4, gt=0.0, help="coefficient of u_xx")
    reaction: float = option(5.0, gt=0.0, help="r in r (u - u^3)")

    def __post_init__(self):
        if self.num_points % 2:
            raise ConfigError("num_points", f"expected an even number, got {self.num_points}")


@dataclasses.dataclass(frozen=True)
class ModelSection:
    harmonics: int = option(10, ge=1, help="harmonics of the periodic embedding of x")
    width: int = option(64, ge=1, help="hidden units per layer")
    depth: int = option(4, ge=1, help="hidden layers (tanh)")
    hard_initial: bool = option(
        True, help="u = u0(x) + t net (exact initial condition); false: a loss term"
    )
    seed: int = option(0, ge=0, help="PRNG seed of the initial weights (same for both)")


@dataclasses.dataclass(frozen=True)
class TrainingSection:
    epsilons: list[float] = option(
        factory=lambda: [1e-2, 1e-1, 1.0, 10.0, 100.0, 100.0, 100.0],
        help="causal epsilon of each stage (the plain PINN runs as many stages unweighted)",
    )
    steps_per_stage: int = option(6000, ge=1, help="Adam steps per stage")
    num_slabs: int = option(32, ge=1, help="time slabs N_t of the causal weights")
    pool: int = option(4096, ge=1, help="collocation points per slab (a fixed pool)")
    batch_size: int = option(8, ge=1, help="points per slab in each step")
    learning_rate: float = option(1e-3, gt=0.0, help="Adam, exponential decay per stage")
    decay_steps: int = option(2000, ge=1, help="steps per decay of the learning rate")
    decay_rate: float = option(0.9, gt=0.0, le=1.0, help="factor per decay_steps")
    initial_weight: float = option(100.0, ge=0.0, help="weight of the IC term (soft IC only)")
    seed: int = option(1, ge=0, help="PRNG seed of the collocation pool and data order")

    def __post_init__(self):
        if not self.epsilons:
            raise ConfigError("epsilons", "expected at least one stage")
        if any(not np.isfinite(e) or e < 0 for e in self.epsilons):
            raise ConfigError("epsilons", f"expected finite values >= 0, got {self.epsilons}")
        if self.batch_size > self.pool:
            raise ConfigError("batch_size", f"expected at most pool = {self.pool}")


@dataclasses.dataclass(frozen=True)
class AllenCahnPINNConfig:
    """Schema of the `allen_cahn_pinn` pipeline."""

    reference: ReferenceSection = section(ReferenceSection, help="the spectral solution")
    model: ModelSection = section(ModelSection, help="the network of both methods")
    training: TrainingSection = section(TrainingSection, help="shared budget and schedule")
    plot: _plots.PlotSection = section(_plots.PlotSection, help="PNG plots")


def _initial(x):
    return x**2 * jnp.cos(jnp.pi * x)


def _network(m: ModelSection, key) -> eqx.Module:
    embedding = nn.PeriodicEmbedding((2.0, None), num_harmonics=m.harmonics)
    mlp = nn.MLP(embedding.out_size, 1, m.width, m.depth, activation=jnp.tanh, key=key)
    net = nn.EmbeddedNetwork(embedding, mlp)
    return nn.HardInitialCondition(net, _initial) if m.hard_initial else net


def run(config: AllenCahnPINNConfig, run_dir: Path) -> dict:
    """Solve the reference, train the causal and the plain PINN, score, write files."""
    r, m, t = config.reference, config.model, config.training
    seconds: dict[str, float] = {}

    # 1. Reference.
    t0 = time.perf_counter()
    pde = dynamics.AllenCahn(r.diffusion, r.reaction, num_points=r.num_points)
    ts = np.linspace(0.0, 1.0, r.num_times)
    xs = pde.coordinates()
    traj = integrate.simulate(
        pde, pde.default_initial_state(), jnp.asarray(ts), solver=integrate.ETDRK4(), dt0=r.dt
    )
    reference = np.asarray(traj.ys)
    seconds["reference"] = time.perf_counter() - t0
    grid = jnp.asarray(np.stack(np.meshgrid(xs, ts), -1).reshape(-1, 2), jnp.float32)

    @eqx.filter_jit
    def predict(model):
        return jax.vmap(lambda p: model(p)[0])(grid).reshape(ts.size, xs.size)

    def rel_l2(model) -> float:
        u = np.asarray(predict(model), np.float64)
        return float(np.linalg.norm(u - reference) / np.linalg.norm(reference))

    # 2. Collocation pool, shared by both methods.
    key = jax.random.key(t.seed)
    pool = losses.time_slab_points(key, t.pool, t.num_slabs, [-1.0, 0.0], [1.0, 1.0])
    data: dict[str, Any] = {"collocation": pool}
    if not m.hard_initial:
        x0 = jax.random.uniform(jax.random.fold_in(key, 1), (t.pool,), minval=-1.0, maxval=1.0)
        data["initial"] = (jnp.stack([x0, jnp.zeros_like(x0)], -1), _initial(x0)[:, None])
    probe = pool[: min(t.pool, 256)]  # the causal weights reported after each stage

    results: dict[str, Any] = {}
    predictions: dict[str, np.ndarray] = {}
    weights_by_stage: list[np.ndarray] = []
    min_weight: list[np.ndarray] = []
    for method in METHODS:
        model = _network(m, jax.random.key(m.seed))
        by_stage, train_s, compile_s = [], 0.0, 0.0
        for s, eps in enumerate(t.epsilons):
            loss = losses.PINNLoss(
                pde.residual,
                initial_weight=t.initial_weight,
                causal_epsilon=eps if method == "causal" else None,
            )
            model, hist = train.fit(
                model,
                loss,
                data,
                optimizer=optax.adam(
                    optax.exponential_decay(t.learning_rate, t.decay_steps, t.decay_rate)
                ),
                key=jax.random.fold_in(key, 100 + s),
                batch_size=t.batch_size,
                num_steps=t.steps_per_stage,
                progress=False,
            )
            train_s += float(hist["train_seconds"])
            compile_s += float(hist["compile_seconds"])
            by_stage.append(rel_l2(model))
            if method == "causal":
                slab = loss.slab_losses(model, probe)
                weights_by_stage.append(np.asarray(loss.causal_weights(slab)))
                min_weight.append(np.asarray(hist["aux/causal_min_weight"]))
            logger.info(
                "%s stage %d (eps %s): loss %.3g, rel L2 %.3g, %.1f s",
                method,
                s,
                eps if method == "causal" else "-",
                float(hist["loss"][-1]),
                by_stage[-1],
                float(hist["train_seconds"]),
            )
        predictions[method] = np.asarray(predict(model))
        results[method] = {
            "rel_l2": by_stage[-1],
            "rel_l2_by_stage": by_stage,
            "train_seconds": train_s,
            "compile_seconds": compile_s,
            "steps": t.steps_per_stage * len(t.epsilons),
        }
        seconds[method] = train_s + compile_s

    slab_times = (np.arange(t.num_slabs) + 0.5) / t.num_slabs
    arrays: dict[str, Any] = {
        "t": ts,
        "x": xs,
        "reference": reference,
        "slab_times": slab_times,
        "causal_weights": np.stack(weights_by_stage),
        "causal_min_weight": np.concatenate(min_weight),
        **{f"{k}_prediction": v for k, v in predictions.items()},
    }
    np.savez_compressed(run_dir / "allen_cahn_pinn.npz", **arrays)
    if config.plot.enabled:
        with _plots.guard():
            fig = _solution_figure(ts, xs, reference, predictions, results)
            _plots._save(fig, run_dir / "solution.png", config.plot.dpi)
            fig = _weights_figure(slab_times, weights_by_stage, min_weight, t.epsilons)
            _plots._save(fig, run_dir / "weights.png", config.plot.dpi)
    logger.info(
        "rel L2: causal %.3g, plain %.3g", results["causal"]["rel_l2"], results["plain"]["rel_l2"]
    )
    return {**results, "seconds": seconds}


def _solution_figure(ts, xs, reference, predictions, results) -> Figure:
    fig = Figure(figsize=(12, 6.5), layout="constrained")
    axes = fig.subplots(2, 3)
    extent = (float(ts[0]), float(ts[-1]), float(xs[0]), float(xs[-1]))
    panels: list[tuple[Any, np.ndarray, str, str, tuple[float, float]]] = [
        (axes[0, 0], reference, "reference (ETDRK4)", "RdBu_r", (-1.0, 1.0))
    ]
    for i, method in enumerate(METHODS):
        u = predictions[method]
        err = results[method]["rel_l2"]
        panels.append(
            (axes[0, 1 + i], u, f"{method} PINN (rel. L2 {err:.2e})", "RdBu_r", (-1.0, 1.0))
        )
        emax = max(float(np.abs(predictions[k] - reference).max()) for k in METHODS)
        panels.append(
            (axes[1, 1 + i], np.abs(u - reference), f"|{method} - ref|", "magma", (0, emax))
        )
    for ax, field, title, cmap, (lo, hi) in panels:
        im = ax.imshow(
            field.T, origin="lower", aspect="auto", extent=extent, cmap=cmap, vmin=lo, vmax=hi
        )
        ax.set_title(title)
        fig.colorbar(im, ax=ax)
    axes[1, 0].plot(xs, reference[-1], "k", lw=1.5, label="reference")
    for method, style in zip(METHODS, ("C0--", "C3:"), strict=True):
        axes[1, 0].plot(xs, predictions[method][-1], style, lw=1.2, label=method)
    axes[1, 0].set_title("u(x, t = 1)")
    axes[1, 0].set_xlabel("x")
    axes[1, 0].set_ylabel("u")
    axes[1, 0].legend(fontsize=8)
    for ax in (axes[0, 0], axes[0, 1], axes[0, 2], axes[1, 1], axes[1, 2]):
        ax.set_xlabel("t")
        ax.set_ylabel("x")
    return fig


def _weights_figure(slab_times, weights_by_stage, min_weight, epsilons) -> Figure:
    fig = Figure(figsize=(11, 4), layout="constrained")
    ax1, ax2 = fig.subplots(1, 2)
    for s, (w, eps) in enumerate(zip(weights_by_stage, epsilons, strict=True)):
        ax1.plot(slab_times, w, marker=".", label=f"stage {s} (eps {eps:g})")
    ax1.set_xlabel("t (slab centre)")
    ax1.set_ylabel("causal weight w_i")
    ax1.set_ylim(-0.05, 1.05)
    ax1.set_title("weights at the end of each stage")
    ax1.legend(fontsize=8)
    ax2.plot(np.concatenate(min_weight), lw=0.6)
    ax2.set_xlabel("training step")
    ax2.set_ylabel("min_i w_i")
    ax2.set_ylim(-0.05, 1.05)
    ax2.set_title("smallest weight over training")
    return fig
