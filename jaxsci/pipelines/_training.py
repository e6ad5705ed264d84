"""What the `train` tasks share: the training and evaluation sections, the config -> optax
optimizer map, one call of `jaxsci.train.fit`, the training-loss figure, and the `Task`
record each task module exports (its config sections and its run function)."""

import dataclasses
import logging
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import equinox as eqx
import jax
import numpy as np
import optax
from matplotlib.figure import Figure

from .. import train
from ._files import write_atomically
from ._schema import ConfigError, option

logger = logging.getLogger("jaxsci.pipelines.train")


def check_divides(key: str, n: int, big: int, big_key: str) -> None:
    """A ConfigError on `key` unless `n` divides `big`."""
    if n > big or big % n:
        raise ConfigError(key, f"expected a divisor of {big_key} = {big}, got {n}")


def check_multiple(key: str, value: float, base: float, base_key: str) -> None:
    """A ConfigError on `key` unless `value` is a whole multiple (>= 1) of `base`."""
    ratio = value / base
    if not math.isfinite(ratio) or ratio < 1 - 1e-9 or abs(ratio - round(ratio)) > 1e-6:
        raise ConfigError(key, f"expected a multiple of {base_key} = {base:g}, got {value:g}")


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
    save_model: bool = option(
        True, help="save the trained model as model.eqx (eqx.tree_serialise_leaves)"
    )
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
class Task:
    """One task of the `train` pipeline: the schemas of its `data`, `model` and `loss`
    sections, the number of training examples a config gives (bounds the batch size), and
    `run(config, run_dir) -> metrics`."""

    data: type
    model: type
    loss: type
    num_train_examples: Callable[[Any], int]
    run: Callable[[Any, Path], dict]


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


def fit(t: TrainingSection, model, loss, train_data, run_dir: Path, tag: str = ""):
    """`jaxsci.train.fit` with the configured optimizer, seed and checkpoint folder; returns
    (model, history, wall seconds)."""
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
    if t.save_model:
        path = run_dir / f"model{tag}.eqx"
        write_atomically(path, lambda tmp: eqx.tree_serialise_leaves(tmp, model))
        logger.info(
            "saved the trained model to %s (load: eqx.tree_deserialise_leaves(path, like), "
            "`like` the model built from config.yaml)",
            path,
        )
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


def history_figure(histories: dict, title: str) -> Figure:
    """Training loss per step (faint) and per epoch (mean), one colour per run."""
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


def network_of(section: Any, build: Callable[[], eqx.Module]) -> eqx.Module:
    """The network of a `model` value: the object given from Python, else `build()` from
    the section."""
    return section if isinstance(section, eqx.Module) else build()


def network_label(section: Any, text: Callable[[], str]) -> str:
    """`text()` (the section's description) or the class name of a network object."""
    if isinstance(section, eqx.Module):
        return f"{type(section).__name__} (a user network)"
    return text()
