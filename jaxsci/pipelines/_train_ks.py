"""Train task `ks_rollout`: an FNO time stepper u(t) -> u(t + step) for Kuramoto-Sivashinsky.

One `nn.Stepper` is trained per loss in `loss.compare` (e.g. MSE and the H^-1 Sobolev loss)
from the same initialisation, through `loss.rollout_steps`-step rollouts
(`losses.RolloutLoss` on `data.rollout_windows`), then rolled out autoregressively
(`integrate.rollout`) on test trajectories; the relative error against time and the time
it stays below `evaluation.error_threshold` (`metrics.valid_time`) are compared.
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
from matplotlib.figure import Figure

from .. import data as jdata, integrate, losses, nn
from ..metrics import valid_time
from . import _plots
from ._schema import ConfigError, option
from ._training import Task, check_multiple, fit, history_figure, network_label, network_of

logger = logging.getLogger("jaxsci.pipelines.train")


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
        check_multiple("step", self.step, self.dt, "dt")


@dataclasses.dataclass(frozen=True)
class StepperModel:
    width: int = option(64, ge=1)
    modes: int = option(16, ge=1)
    depth: int = option(4, ge=1)
    residual: bool = option(True, help="predict the increment u(t + step) - u(t)")
    seed: int = option(1, ge=0)


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
def _rollouts(model, u0, steps: int):
    """`integrate.rollout` of the stepper from each of a batch of initial states."""
    return jax.vmap(lambda u: integrate.rollout(model, u, steps))(u0)


def _rollout_errors(model, u_init, truth, steps: int):
    """Relative L2 error (per trajectory) of the autoregressive rollout at steps 1..steps,
    and the rolled-out states (N, steps, 1, n)."""
    preds = np.asarray(_rollouts(model, jnp.asarray(u_init), steps))
    err = np.linalg.norm(preds - truth, axis=(-1, -2)) / np.linalg.norm(truth, axis=(-1, -2))
    return err, preds


def run(config, run_dir: Path) -> dict:
    """Generate the trajectories, train one stepper per loss, roll them out, write the outputs."""
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
    # (N, T + 1, 1, n) training trajectories -> k-step rollout windows
    inputs, targets = jdata.rollout_windows(traj[: d.num_train, : d.train_steps + 1, None], k)
    test = traj[d.num_train :, : d.test_steps + 1, None]
    metrics: dict[str, Any] = {"task": config.task, "data_seconds": data_seconds}
    curves, histories = {}, {}
    sample_preds = {}
    for name in lc.compare:
        model = network_of(
            m,
            lambda: nn.Stepper(
                nn.FNO1d(1, 1, m.width, m.modes, m.depth, key=jax.random.key(m.seed), grid=False),
                m.residual,
            ),
        )
        loss = _ks_loss(name, d.length, k)
        model, history, wall = fit(
            config.training, model, loss, (inputs, targets), run_dir, f"_{name}"
        )
        err, preds = _rollout_errors(model, test[:, 0], test[:, 1:], d.test_steps)
        mean_err = err.mean(axis=0)
        curves[name] = mean_err
        histories[name] = history
        sample_preds[name] = preds[0, :, 0]
        tag = _KS_LOSS_TAGS[name]
        # the number of steps the mean error stays within the threshold, times the step
        metrics[f"valid_time_{tag}"] = valid_time(
            np.concatenate([[0.0], mean_err]),
            d.step * np.arange(d.test_steps + 1),
            config.evaluation.error_threshold,
            last_below=True,
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
    metrics["params"] = nn.count_params(model)
    times = d.step * np.arange(1, d.test_steps + 1)
    np.savez_compressed(
        run_dir / "rollout.npz",
        times=times,
        truth=test[0, 1:, 0],
        **{f"error_{n}": c for n, c in curves.items()},
        **{f"prediction_{n}": p for n, p in sample_preds.items()},
    )
    if config.plot.enabled:
        with _plots.guard():
            heading = (
                f"Kuramoto-Sivashinsky L={d.length:g}: "
                + network_label(
                    m, lambda: f"FNO stepper (width {m.width}, {m.modes} modes, depth {m.depth})"
                )
                + f", step {d.step:g}, {k}-step training"
            )
            _plots._save(
                _ks_error_figure(times, curves, config.evaluation.error_threshold, heading),
                run_dir / "rollout_error.png",
                config.plot.dpi,
            )
            _plots._save(
                _ks_hovmoller(times, test[0, 1:, 0], sample_preds, d.length, heading),
                run_dir / "rollout.png",
                config.plot.dpi,
            )
            _plots._save(
                history_figure(histories, "training loss (different losses: different scales)"),
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


def _num_train_examples(config) -> int:
    """The k-step rollout windows of the training trajectories (`rollout_windows`: a
    trajectory of train_steps + 1 states has train_steps + 1 - k of them)."""
    k, steps = config.loss.rollout_steps, config.data.train_steps
    if k > steps:
        raise ConfigError(
            "loss.rollout_steps",
            f"expected <= data.train_steps = {steps} (a rollout needs that many saved steps), "
            f"got {k}",
        )
    return config.data.num_train * (steps + 1 - k)


TASK = Task(
    data=KSData,
    model=StepperModel,
    loss=RolloutLossSection,
    num_train_examples=_num_train_examples,
    run=run,
)
