"""Pipeline `train`: neural surrogates trained on data our own simulators generate.

Built only from the public API (`jaxsci.data`, `jaxsci.nn`, `jaxsci.losses`,
`jaxsci.train`). Three tasks, picked by the top-level `task:` key:

* `burgers_operator`: an FNO learns the solution operator u(0) -> u(t1) of viscous Burgers
  with Gaussian-random-field data (the FNO paper's benchmark, Li et al. 2021); the test
  relative L2 error (per example, averaged) is reported at the training resolution and at
  every resolution in `data.eval_points` (zero-shot super-resolution).
* `ks_rollout`: an FNO time stepper u(t) -> u(t + step) for Kuramoto-Sivashinsky, trained
  once per loss in `loss.compare` (e.g. MSE and the H^-1 Sobolev loss) from the same
  initialisation, then rolled out autoregressively on test trajectories; the relative
  error against time and the time it stays below `evaluation.error_threshold` are compared.
* `l96_ensemble`: a probabilistic Lorenz-96 forecaster (noise-injected local network, one
  sample per call) trained with the (fair) ensemble CRPS to predict x(t + lead) from a
  noisy observation of x(t); evaluated by CRPS, RMSE of the ensemble mean, spread and a
  binned spread-skill diagram.

`jaxsci.nn` is imported when a run starts, so that importing the pipeline registry stays
cheap.
"""

import dataclasses
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from matplotlib.figure import Figure

from .. import data as jdata, losses, train
from ._schema import ConfigError, option, section

DESCRIPTION = (
    "train neural surrogates on simulator data: FNO for Burgers, KS rollouts, CRPS L96 ensembles"
)

logger = logging.getLogger("jaxsci.pipelines.train")

TASKS = ("burgers_operator", "ks_rollout", "l96_ensemble")


def _divides(key: str, n: int, big: int, big_key: str) -> None:
    if n > big or big % n:
        raise ConfigError(key, f"expected a divisor of {big_key} = {big}, got {n}")


def _multiple(key: str, value: float, base: float, base_key: str) -> None:
    ratio = value / base
    if ratio < 1 - 1e-9 or abs(ratio - round(ratio)) > 1e-6:
        raise ConfigError(key, f"expected a multiple of {base_key} = {base:g}, got {value:g}")


# ---------------------------------------------------------------------------------- data


@dataclasses.dataclass(frozen=True)
class BurgersData:
    num_train: int = option(1000, ge=1, help="training pairs")
    num_test: int = option(200, ge=1, help="test pairs")
    num_points: int = option(1024, ge=8, help="simulation grid (points on [0, 1))")
    train_points: int | None = option(
        None, ge=4, help="training resolution, a divisor of num_points (default num_points)"
    )
    eval_points: list[int] = option(
        factory=list, help="extra test resolutions (divisors of num_points)"
    )
    nu: float = option(0.1, gt=0.0, help="viscosity")
    t1: float = option(1.0, gt=0.0, help="the operator maps u(0) to u(t1)")
    zero_mean: bool = option(
        True, help="zero-mean initial fields (the FNO data); false: a random mean too"
    )
    dt: float = option(0.01, gt=0.0, help="ETDRK4 step of the data generation")
    cache: str | None = option(None, help="cache the generated pairs in this .npz file")
    seed: int = option(0, ge=0, help="PRNG seed of the initial conditions")

    def __post_init__(self):
        if self.train_points is not None:
            _divides("train_points", self.train_points, self.num_points, "num_points")
        for i, n in enumerate(self.eval_points):
            if n < 4:
                raise ConfigError(f"eval_points[{i}]", f"expected a number >= 4, got {n}")
            _divides(f"eval_points[{i}]", n, self.num_points, "num_points")


@dataclasses.dataclass(frozen=True)
class KSData:
    length: float = option(22.0, gt=0.0, help="domain length (22: chaotic)")
    num_points: int = option(64, ge=8, help="grid points")
    dt: float = option(0.25, gt=0.0, help="ETDRK4 step of the data generation")
    step: float = option(1.0, gt=0.0, help="time step of the surrogate (a multiple of dt)")
    spinup: float = option(100.0, ge=0.0, help="time run onto the attractor before saving")
    num_train: int = option(64, ge=1, help="training trajectories")
    num_test: int = option(16, ge=1, help="test trajectories")
    train_steps: int = option(100, ge=2, help="surrogate steps saved per training trajectory")
    test_steps: int = option(100, ge=1, help="rollout horizon in surrogate steps")
    cache: str | None = option(None, help="cache the trajectories in this .npz file")
    seed: int = option(0, ge=0)

    def __post_init__(self):
        _multiple("step", self.step, self.dt, "dt")


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
        _multiple("lead", self.lead, self.dt, "dt")


# -------------------------------------------------------------------------------- models


@dataclasses.dataclass(frozen=True)
class FNOModel:
    width: int = option(64, ge=1, help="channels of the Fourier layers")
    modes: int = option(16, ge=1, help="Fourier modes kept per layer")
    depth: int = option(4, ge=1, help="Fourier layers")
    grid: bool = option(
        True, help="append the coordinate x (Li et al.); false: translation-equivariant"
    )
    seed: int = option(1, ge=0, help="PRNG seed of the initialisation")


@dataclasses.dataclass(frozen=True)
class StepperModel:
    width: int = option(64, ge=1)
    modes: int = option(16, ge=1)
    depth: int = option(4, ge=1)
    residual: bool = option(True, help="predict the increment u(t + step) - u(t)")
    seed: int = option(1, ge=0)


@dataclasses.dataclass(frozen=True)
class EnsembleModel:
    radius: int = option(2, ge=1, help="the stencil x_{i-r..i+r} each site sees")
    noise_dim: int = option(4, ge=1, help="standard normal inputs per site (the randomness)")
    width: int = option(64, ge=1, help="MLP hidden width")
    depth: int = option(2, ge=1, help="MLP hidden layers")
    seed: int = option(1, ge=0)


# -------------------------------------------------------------------------------- losses


@dataclasses.dataclass(frozen=True)
class RegressionLoss:
    name: str = option("rel_l2", choices=("rel_l2", "mse", "sobolev"), help="training loss")
    s: float = option(-1.0, help="sobolev: the order s of H^s")
    seminorm: bool = option(False, help="sobolev: homogeneous weights, mean mode dropped")


#: KS loss names -> metric-name tags.
_KS_LOSS_TAGS = {"mse": "mse", "rel_l2": "rel_l2", "h-1": "hm1", "h-1-semi": "hm1_semi", "h1": "h1"}


@dataclasses.dataclass(frozen=True)
class RolloutLossSection:
    compare: list[str] = option(
        factory=lambda: ["mse", "h-1"],
        help="one model per loss: mse, rel_l2, h-1, h-1-semi (mean mode dropped), h1",
    )
    rollout_steps: int = option(1, ge=1, help="steps unrolled in training")

    def __post_init__(self):
        allowed = tuple(_KS_LOSS_TAGS)
        if not self.compare:
            raise ConfigError("compare", f"expected at least one of {list(allowed)}")
        for i, name in enumerate(self.compare):
            if name not in allowed:
                raise ConfigError(f"compare[{i}]", f"expected one of {list(allowed)}, got {name!r}")
        if len(set(self.compare)) != len(self.compare):
            raise ConfigError("compare", f"expected distinct names, got {self.compare}")


@dataclasses.dataclass(frozen=True)
class CRPSSection:
    kind: str = option("fair", choices=losses.CRPS_KINDS, help="CRPS estimator")
    ensemble_size: int = option(8, ge=2, help="members drawn per example in training")
    alpha: float = option(0.95, ge=0.0, le=1.0, help="almost_fair: the AIFS-CRPS alpha")


# -------------------------------------------------------------------------- the rest


@dataclasses.dataclass(frozen=True)
class TrainingSection:
    epochs: int = option(100, ge=1)
    batch_size: int = option(20, ge=1)
    learning_rate: float = option(1e-3, gt=0.0)
    schedule: str = option(
        "cosine", choices=("cosine", "step", "constant"), help="learning-rate schedule"
    )
    step_epochs: int = option(100, ge=1, help="step: epochs between decays")
    step_gamma: float = option(0.5, gt=0.0, le=1.0, help="step: decay factor")
    weight_decay: float = option(0.0, ge=0.0, help="> 0: AdamW with this decoupled decay")
    clip_norm: float | None = option(None, gt=0.0, help="clip gradients to this global norm")
    ema: float | None = option(None, gt=0.0, lt=1.0, help="EMA decay of the weights")
    checkpoint: bool = option(False, help="checkpoint in the run folder (resumable)")
    seed: int = option(2, ge=0, help="PRNG seed of the data order and loss noise")


@dataclasses.dataclass(frozen=True)
class EvaluationSection:
    num_plot: int = option(4, ge=1, le=8, help="burgers: test examples plotted")
    error_threshold: float = option(
        0.5, gt=0.0, help="ks: relative error that ends the 'valid' rollout time"
    )
    ensemble_size: int = option(32, ge=2, help="l96: members drawn per test case")
    bins: int = option(10, ge=2, help="l96: spread bins of the spread-skill diagram")


@dataclasses.dataclass(frozen=True)
class PlotSection:
    enabled: bool = option(True, help="write PNG plots")
    dpi: int = option(120, ge=50, le=600)


_DATA = {"burgers_operator": BurgersData, "ks_rollout": KSData, "l96_ensemble": L96Data}
_MODEL = {"burgers_operator": FNOModel, "ks_rollout": StepperModel, "l96_ensemble": EnsembleModel}
_LOSS = {
    "burgers_operator": RegressionLoss,
    "ks_rollout": RolloutLossSection,
    "l96_ensemble": CRPSSection,
}


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Schema of the `train` pipeline (the top-level `pipeline:` key is handled apart)."""

    task: str = option(choices=TASKS, help="what to train (the sections below depend on it)")
    data: Any = option(factory=dict, section=lambda s: _DATA[s["task"]], help="the dataset")
    model: Any = option(factory=dict, section=lambda s: _MODEL[s["task"]], help="the network")
    loss: Any = option(factory=dict, section=lambda s: _LOSS[s["task"]], help="the loss")
    training: TrainingSection = section(TrainingSection)
    evaluation: EvaluationSection = section(EvaluationSection)
    plot: PlotSection = section(PlotSection)

    def __post_init__(self):
        n_train = _num_train_examples(self)
        if self.training.batch_size > n_train:
            raise ConfigError(
                "training.batch_size",
                f"expected <= the {n_train} training examples, got {self.training.batch_size}",
            )


def _num_train_examples(config: TrainConfig) -> int:
    d = config.data
    if config.task == "burgers_operator":
        return d.num_train
    if config.task == "ks_rollout":
        return d.num_train * (d.train_steps - config.loss.rollout_steps)
    return d.num_train * d.steps


# ------------------------------------------------------------------------------- helpers


def make_optimizer(t: TrainingSection, steps_per_epoch: int) -> optax.GradientTransformation:
    """Adam (AdamW with weight decay) with the configured learning-rate schedule."""
    total = t.epochs * steps_per_epoch
    if t.schedule == "cosine":
        lr = optax.cosine_decay_schedule(t.learning_rate, total)
    elif t.schedule == "step":
        lr = optax.exponential_decay(
            t.learning_rate, t.step_epochs * steps_per_epoch, t.step_gamma, staircase=True
        )
    else:
        lr = t.learning_rate
    if t.weight_decay > 0:
        return optax.adamw(lr, weight_decay=t.weight_decay)
    return optax.adam(lr)


def count_params(model) -> int:
    """Real trainable scalars (a complex weight counts twice)."""
    leaves = jax.tree.leaves(eqx.filter(model, eqx.is_inexact_array))
    return int(sum(x.size * (2 if jnp.iscomplexobj(x) else 1) for x in leaves))


def _fit(config: TrainConfig, model, loss, train_data, run_dir: Path, tag: str = ""):
    t = config.training
    spe = len(jax.tree.leaves(train_data)[0]) // t.batch_size
    ckpt = run_dir / f"checkpoint{tag}" if t.checkpoint else None
    start = time.perf_counter()
    model, history = train.fit(
        model,
        loss,
        train_data,
        optimizer=make_optimizer(t, spe),
        key=jax.random.key(t.seed),
        batch_size=t.batch_size,
        epochs=t.epochs,
        ema=t.ema,
        clip_norm=t.clip_norm,
        checkpoint_dir=ckpt,
        progress=True,
    )
    wall = time.perf_counter() - start
    logger.info(
        "trained%s: %d steps, final train loss %.4g; %.1f s (%.1f s compile, %.0f steps/s)",
        f" [{tag.strip('_')}]" if tag else "",
        len(history["loss"]),
        history["train_loss"][-1],
        wall,
        history["compile_seconds"],
        history["steps_per_second"],
    )
    return model, history, wall


def _save(fig: Figure, path: Path, dpi: int) -> Path:
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    logger.info("plot %s", path.name)
    return path


def run(config: TrainConfig, run_dir: Path) -> dict:
    """Generate the data, train, evaluate, and write arrays, plots and metrics."""
    start = time.perf_counter()
    runner = {
        "burgers_operator": _run_burgers,
        "ks_rollout": _run_ks,
        "l96_ensemble": _run_l96,
    }[config.task]
    metrics = runner(config, run_dir)
    metrics["wall_seconds"] = time.perf_counter() - start
    return metrics


# ------------------------------------------------------------------------------ burgers


def _channel(u: np.ndarray) -> np.ndarray:
    """(N, n) fields -> (N, 1, n) FNO inputs (`nn.FNO1d` appends the grid coordinate)."""
    return np.asarray(u, dtype=np.float32)[:, None]


def _regression_loss(lc: RegressionLoss):
    if lc.name == "rel_l2":
        return losses.RelativeL2Loss()
    if lc.name == "mse":
        return losses.MSELoss()
    return losses.SobolevLoss(lc.s, seminorm=lc.seminorm)


def _rel_l2_per_example(model, x, y, batch: int = 100) -> np.ndarray:
    fn = eqx.filter_jit(jax.vmap(lambda xi, yi: losses.relative_l2(model(xi), yi)))
    out = [np.asarray(fn(x[i : i + batch], y[i : i + batch])) for i in range(0, len(x), batch)]
    return np.concatenate(out)


def _run_burgers(config: TrainConfig, run_dir: Path) -> dict:
    from .. import nn

    d, m = config.data, config.model
    n_train_pts = d.train_points or d.num_points
    logger.info(
        "Burgers (nu=%g, t1=%g): %d train / %d test pairs, simulated at %d points, trained at %d",
        d.nu,
        d.t1,
        d.num_train,
        d.num_test,
        d.num_points,
        n_train_pts,
    )
    t = time.perf_counter()
    u0, u1 = jdata.burgers_dataset(
        jax.random.key(d.seed),
        d.num_train + d.num_test,
        num_points=d.num_points,
        nu=d.nu,
        t1=d.t1,
        dt=d.dt,
        grf=jdata.GaussianRandomField(d.num_points, zero_mean=d.zero_mean),
        path=d.cache,
    )
    data_seconds = time.perf_counter() - t
    logger.info("data: %.1f s", data_seconds)
    stride = d.num_points // n_train_pts
    x_train = _channel(u0[: d.num_train, ::stride])
    y_train = u1[: d.num_train, None, ::stride]
    model = nn.FNO1d(1, 1, m.width, m.modes, m.depth, key=jax.random.key(m.seed), grid=m.grid)
    params = count_params(model)
    logger.info(
        "FNO1d width %d, %d modes, depth %d: %d parameters", m.width, m.modes, m.depth, params
    )
    loss = _regression_loss(config.loss)
    model, history, wall = _fit(config, model, loss, (x_train, y_train), run_dir)

    metrics: dict[str, Any] = {"task": config.task}
    resolutions = [n_train_pts] + [n for n in d.eval_points if n != n_train_pts]
    per_res = {}
    for n in resolutions:
        s = d.num_points // n
        xt, yt = _channel(u0[d.num_train :, ::s]), u1[d.num_train :, None, ::s]
        per_res[n] = _rel_l2_per_example(model, jnp.asarray(xt), jnp.asarray(yt))
        logger.info("test relative L2 at %d points: %.4g", n, per_res[n].mean())
    metrics["test_rel_l2"] = float(per_res[n_train_pts].mean())
    for n in resolutions[1:]:
        metrics[f"test_rel_l2_at_{n}"] = float(per_res[n].mean())
    metrics["train_rel_l2"] = float(
        _rel_l2_per_example(model, jnp.asarray(x_train), jnp.asarray(y_train)).mean()
    )
    metrics.update(
        train_seconds=float(history["train_seconds"]),
        compile_seconds=float(history["compile_seconds"]),
        fit_wall_seconds=wall,
        data_seconds=data_seconds,
        samples_per_second=float(history["steps_per_second"] * config.training.batch_size),
        params=params,
        final_train_loss=float(history["train_loss"][-1]),
    )

    # Arrays and plots.
    xt = _channel(u0[d.num_train :, ::stride])
    yt = u1[d.num_train :, None, ::stride]
    k = min(config.evaluation.num_plot, d.num_test)
    pred = np.asarray(jax.vmap(model)(jnp.asarray(xt[:k])))
    np.savez_compressed(
        run_dir / "predictions.npz",
        u0=xt[:k, 0],
        truth=yt[:k, 0],
        prediction=pred[:, 0],
        test_rel_l2=per_res[n_train_pts],
    )
    np.savez_compressed(
        run_dir / "history.npz",
        loss=history["loss"],
        epoch_train_loss=history["train_loss"],
    )
    if config.plot.enabled:
        title = (
            f"Burgers u(0) -> u({d.t1:g}), nu={d.nu:g}: FNO width {m.width}, {m.modes} modes, "
            f"depth {m.depth}; {d.num_train} training pairs at {n_train_pts} points"
        )
        _save(
            _burgers_figure(xt[:k, 0], yt[:k, 0], pred[:, 0], per_res[n_train_pts][:k], title),
            run_dir / "predictions.png",
            config.plot.dpi,
        )
        _save(
            _history_figure({config.loss.name: history}, "training loss (per step and epoch mean)"),
            run_dir / "training.png",
            config.plot.dpi,
        )
    return metrics


def _burgers_figure(u0, truth, pred, errs, title) -> Figure:
    """Per test example: the input u(0); truth and prediction of u(t1) on their own scale
    (at nu = 0.1 u(t1) is ~100x smaller than u(0)); the error."""
    k, n = truth.shape
    x = np.arange(n) / n
    fig = Figure(figsize=(3.3 * k, 7.0), layout="constrained")
    axes = fig.subplots(3, k, sharex=True, squeeze=False, height_ratios=(1, 1.4, 1))
    for j in range(k):
        axes[0, j].plot(x, u0[j], color="0.4", lw=1, label="input u(0)")
        axes[0, j].set_title(f"test {j}: rel. L2 {errs[j]:.2e}", fontsize=9)
        axes[1, j].plot(x, truth[j], color="k", lw=1.8, label="truth u(t1)")
        axes[1, j].plot(x, pred[j], color="tab:red", lw=1.1, ls="--", label="FNO")
        axes[2, j].plot(x, pred[j] - truth[j], color="tab:red", lw=0.9)
        axes[2, j].set_xlabel("x")
        for ax in axes[:, j]:
            ax.grid(alpha=0.3)
    axes[0, 0].set_ylabel("u(0)")
    axes[1, 0].set_ylabel("u(t1)")
    axes[2, 0].set_ylabel("FNO - truth")
    handles = axes[0, 0].get_legend_handles_labels()
    more = axes[1, 0].get_legend_handles_labels()
    fig.legend(
        handles[0] + more[0],
        handles[1] + more[1],
        loc="outside lower center",
        ncol=3,
        fontsize=8,
        frameon=False,
    )
    fig.suptitle(title, fontsize=10)
    return fig


def _history_figure(histories: dict, title: str) -> Figure:
    fig = Figure(figsize=(7, 3.8), layout="constrained")
    ax = fig.add_subplot()
    colors = ("tab:blue", "tab:orange", "tab:green", "tab:red")
    for i, (name, h) in enumerate(histories.items()):
        c = colors[i % len(colors)]
        steps = np.arange(1, len(h["loss"]) + 1)
        ax.plot(steps, h["loss"], color=c, lw=0.4, alpha=0.35)
        ax.plot(h["eval_step"], h["train_loss"], color=c, lw=1.4, label=f"{name} (epoch mean)")
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("training loss")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, which="both")
    return fig


# ------------------------------------------------------------------------------- KS rollout


class Stepper(eqx.Module):
    """u(t) -> u(t + step) for a (1, n) state: u + net(u) (residual) or net(u)."""

    net: Callable
    residual: bool = eqx.field(static=True)

    def __call__(self, u):
        out = self.net(u)
        return u + out if self.residual else out


def _ks_loss(name: str, length: float, steps: int):
    """The rollout loss for one entry of `loss.compare`: MSE, relative L2, the H^-1 norm with
    weights (1 + |k|^2)^{-1} (the mean mode weighted 1), the H^-1 seminorm |k|^{-2} (the mean
    mode dropped, as Spectral-Refiner's loss for mean-zero fields), or the H^1 norm."""
    base = {
        "mse": losses.MSELoss(),
        "rel_l2": losses.RelativeL2Loss(),
        "h-1": losses.SobolevLoss(-1.0, length=length),
        "h-1-semi": losses.SobolevLoss(-1.0, length=length, seminorm=True),
        "h1": losses.SobolevLoss(1.0, length=length),
    }[name]
    return losses.RolloutLoss(steps, base=base)


@eqx.filter_jit
def _rollout(model, u0, steps: int):
    """The states model(u0), model(model(u0)), ... (`steps` of them), for a batch of u0."""

    def one(u):
        def body(v, _):
            nxt = model(v)
            return nxt, nxt

        return jax.lax.scan(body, u, None, length=steps)[1]

    return jax.vmap(one)(u0)


def _rollout_errors(model, u_init, truth, steps: int):
    """Relative L2 error (per trajectory) of the autoregressive rollout at steps 1..steps,
    and the rolled-out states (N, steps, 1, n)."""
    preds = np.asarray(_rollout(model, jnp.asarray(u_init), steps))
    err = np.linalg.norm(preds - truth, axis=(-1, -2)) / np.linalg.norm(truth, axis=(-1, -2))
    return err, preds


def _valid_time(mean_err: np.ndarray, threshold: float, step: float) -> float:
    above = np.flatnonzero(~(mean_err < threshold))
    return float((above[0] if above.size else len(mean_err)) * step)


def _run_ks(config: TrainConfig, run_dir: Path) -> dict:
    from .. import nn

    d, m, lc = config.data, config.model, config.loss
    horizon = max(d.train_steps, d.test_steps)
    logger.info(
        "Kuramoto-Sivashinsky L=%g, %d points: %d train / %d test trajectories, step %g",
        d.length,
        d.num_points,
        d.num_train,
        d.num_test,
        d.step,
    )
    t = time.perf_counter()
    traj = jdata.ks_trajectories(
        jax.random.key(d.seed),
        d.num_train + d.num_test,
        horizon,
        save_every=d.step,
        length=d.length,
        num_points=d.num_points,
        dt=d.dt,
        spinup=d.spinup,
        path=d.cache,
    )
    data_seconds = time.perf_counter() - t
    k = lc.rollout_steps
    train_traj = traj[: d.num_train, : d.train_steps + 1, None]  # (N, T + 1, 1, n)
    windows = d.train_steps + 1 - k
    inputs = train_traj[:, :windows].reshape(-1, 1, d.num_points)
    targets = np.stack([train_traj[:, j + 1 : j + 1 + windows] for j in range(k)], axis=2)
    targets = targets.reshape(-1, k, 1, d.num_points)
    test = traj[d.num_train :, : d.test_steps + 1, None]
    metrics: dict[str, Any] = {"task": config.task, "data_seconds": data_seconds}
    curves, histories = {}, {}
    sample_preds = {}
    for name in lc.compare:
        net = nn.FNO1d(1, 1, m.width, m.modes, m.depth, key=jax.random.key(m.seed), grid=False)
        model = Stepper(net, m.residual)
        model, history, wall = _fit(
            config, model, _ks_loss(name, d.length, k), (inputs, targets), run_dir, f"_{name}"
        )
        err, preds = _rollout_errors(model, test[:, 0], test[:, 1:], d.test_steps)
        mean_err = err.mean(axis=0)
        curves[name] = mean_err
        histories[name] = history
        sample_preds[name] = preds[0, :, 0]
        tag = _KS_LOSS_TAGS[name]
        metrics[f"valid_time_{tag}"] = _valid_time(
            mean_err, config.evaluation.error_threshold, d.step
        )
        metrics[f"one_step_rel_l2_{tag}"] = float(mean_err[0])
        metrics[f"rollout_rel_l2_{tag}"] = float(mean_err[min(9, d.test_steps - 1)])
        metrics[f"train_seconds_{tag}"] = float(history["train_seconds"])
        logger.info(
            "%s: one-step error %.3g, after %g time units %.3g, valid time %.3g",
            name,
            mean_err[0],
            min(10, d.test_steps) * d.step,
            mean_err[min(9, d.test_steps - 1)],
            metrics[f"valid_time_{tag}"],
        )
    metrics["params"] = count_params(model)
    times = d.step * np.arange(1, d.test_steps + 1)
    np.savez_compressed(
        run_dir / "rollout.npz",
        times=times,
        truth=test[0, 1:, 0],
        **{f"error_{n}": c for n, c in curves.items()},
        **{f"prediction_{n}": p for n, p in sample_preds.items()},
    )
    if config.plot.enabled:
        heading = (
            f"Kuramoto-Sivashinsky L={d.length:g}: FNO stepper (width {m.width}, {m.modes} modes,"
            f" depth {m.depth}), step {d.step:g}, {k}-step training"
        )
        _save(
            _ks_error_figure(times, curves, config.evaluation.error_threshold, heading),
            run_dir / "rollout_error.png",
            config.plot.dpi,
        )
        _save(
            _ks_hovmoller(times, test[0, 1:, 0], sample_preds, d.length, heading),
            run_dir / "rollout.png",
            config.plot.dpi,
        )
        _save(
            _history_figure(histories, "training loss (different losses: different scales)"),
            run_dir / "training.png",
            config.plot.dpi,
        )
    return metrics


def _ks_error_figure(times, curves, threshold, heading) -> Figure:
    fig = Figure(figsize=(7.5, 4), layout="constrained")
    ax = fig.add_subplot()
    for name, c in curves.items():
        ax.plot(times, c, lw=1.4, label=f"trained with {name}")
    ax.axhline(threshold, color="0.4", ls="--", lw=0.9, label=f"threshold {threshold:g}")
    ax.set_yscale("log")
    ax.set_xlabel("rollout time")
    ax.set_ylabel("relative L2 error (mean over test trajectories)")
    ax.set_title(heading, fontsize=9)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, which="both")
    return fig


def _ks_hovmoller(times, truth, preds, length, heading) -> Figure:
    panels = [("truth", truth)] + [(f"rollout ({n})", p) for n, p in preds.items()]
    m = float(np.max(np.abs(truth)))
    fig = Figure(figsize=(10, 1.2 + 2.1 * len(panels)), layout="constrained")
    axes = fig.subplots(len(panels), 1, sharex=True, squeeze=False)[:, 0]
    for ax, (name, field) in zip(axes, panels, strict=True):
        im = ax.imshow(
            field.T,
            origin="lower",
            aspect="auto",
            extent=(times[0], times[-1], 0, length),
            cmap="RdBu_r",
            vmin=-m,
            vmax=m,
            interpolation="nearest",
        )
        ax.set_ylabel("x")
        ax.set_title(name, fontsize=9, loc="left")
    axes[-1].set_xlabel("rollout time")
    fig.colorbar(im, ax=list(axes), label="u", pad=0.01)
    fig.suptitle(heading, fontsize=9)
    return fig


# ----------------------------------------------------------------------------- L96 ensemble


class LocalStochastic(eqx.Module):
    """A noise-injected local forecaster for a ring of sites: one ensemble member per call.

    Site i sees the normalised stencil (x_{i-r}, ..., x_{i+r}) and `noise_dim` standard
    normal draws, and a shared MLP returns its increment: x_i(t + lead) ~ x_i + MLP(...).
    Translation-equivariant like Lorenz-96 itself. `mean` and `scale` (data statistics)
    normalise the inputs and outputs.
    """

    mlp: Callable
    radius: int = eqx.field(static=True)
    noise_dim: int = eqx.field(static=True)
    mean: float = eqx.field(static=True)
    scale: float = eqx.field(static=True)

    def __call__(self, x, *, key):
        n = x.shape[-1]
        offsets = range(-self.radius, self.radius + 1)
        idx = (np.arange(n)[:, None] + np.asarray(list(offsets))[None, :]) % n
        window = (x[idx] - self.mean) / self.scale  # (n, 2r + 1)
        z = jax.random.normal(key, (n, self.noise_dim), x.dtype)
        out = jax.vmap(self.mlp)(jnp.concatenate([window, z], axis=1))
        return x + self.scale * out[:, 0]


def _run_l96(config: TrainConfig, run_dir: Path) -> dict:
    from .. import nn

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
    noise = d.obs_noise * np.asarray(
        jax.random.normal(jax.random.key(d.seed + 1), traj[:, :-1].shape), dtype=np.float32
    )
    inputs = (traj[:, :-1] + noise).astype(np.float32)
    targets = traj[:, 1:]
    x_train = inputs[: d.num_train].reshape(-1, d.n)
    y_train = targets[: d.num_train].reshape(-1, d.n)
    x_test = inputs[d.num_train :].reshape(-1, d.n)
    y_test = targets[d.num_train :].reshape(-1, d.n)
    mean, scale = float(traj.mean()), float(traj.std())
    mlp = nn.MLP(2 * m.radius + 1 + m.noise_dim, 1, m.width, m.depth, key=jax.random.key(m.seed))
    model = LocalStochastic(mlp, m.radius, m.noise_dim, mean, scale)
    loss = losses.CRPSLoss(lc.ensemble_size, kind=lc.kind, alpha=lc.alpha)
    model, history, wall = _fit(config, model, loss, (x_train, y_train), run_dir)

    @eqx.filter_jit
    def members(mdl, x, k):
        return jax.vmap(lambda kk: mdl(x, key=kk))(jax.random.split(k, ev.ensemble_size))

    keys = jax.random.split(jax.random.key(config.training.seed + 1), len(x_test))
    ens = np.concatenate(
        [
            np.asarray(
                jax.vmap(lambda x, k: members(model, x, k))(x_test[i : i + 256], keys[i : i + 256])
            )
            for i in range(0, len(x_test), 256)
        ]
    )  # (cases, M, n)
    ens_mean = ens.mean(axis=1)
    var = ens.var(axis=1, ddof=1)
    crps = np.asarray(losses.crps_fair(jnp.moveaxis(jnp.asarray(ens), 1, 0), jnp.asarray(y_test)))
    rmse = float(np.sqrt(np.mean((ens_mean - y_test) ** 2)))
    mm = ev.ensemble_size
    # For a calibrated M-member ensemble E(mean - y)^2 = (1 + 1/M) E[var] (Fortin et al. 2014).
    spread = float(np.sqrt((mm + 1) / mm * var.mean()))
    noisy_rmse = float(np.sqrt(np.mean((x_test - y_test) ** 2)))
    metrics: dict[str, Any] = {
        "task": config.task,
        "test_crps": float(crps.mean()),
        "test_rmse": rmse,
        "test_spread": spread,
        "spread_skill_ratio": spread / rmse,
        "persistence_rmse": noisy_rmse,
        "climatology_std": scale,
        "params": count_params(model),
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
        heading = (
            f"Lorenz-96 n={d.n}, F={d.forcing:g}: lead {d.lead:g} from noisy input (std "
            f"{d.obs_noise:g}); trained with {lc.kind} CRPS, {lc.ensemble_size} members"
        )
        _save(
            _spread_skill_figure(ens_mean, var, y_test, mm, ev.bins, heading, metrics),
            run_dir / "spread_skill.png",
            config.plot.dpi,
        )
        _save(
            _history_figure({f"{lc.kind} CRPS": history}, "training loss"),
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
