"""Pipeline `train`: neural surrogates trained on data our own simulators generate.

Built only from the public API (`jaxsci.data`, `jaxsci.nn`, `jaxsci.losses`,
`jaxsci.train`, `jaxsci.integrate`, `jaxsci.metrics`). Three tasks, picked by the top-level
`task:` key, one module each (`_train_burgers.py`, `_train_ks.py`, `_train_l96.py`):

* `burgers_operator`: an FNO learns the solution operator u(0) -> u(t1) of viscous Burgers,
  tested at the training and other resolutions;
* `ks_rollout`: an FNO time stepper for Kuramoto-Sivashinsky, trained once per loss in
  `loss.compare` and compared by its rollout error and valid time;
* `l96_ensemble`: a probabilistic Lorenz-96 forecaster trained with the ensemble CRPS,
  evaluated by CRPS, RMSE, spread and a spread-skill diagram.

The `data`, `model` and `loss` sections depend on the task; `training`, `evaluation` and
`plot` are shared (`_training.py`).
"""

import dataclasses
import time
from pathlib import Path
from typing import Any

import equinox as eqx

from . import _train_burgers, _train_ks, _train_l96
from ._plots import PlotSection
from ._schema import ConfigError, option, section
from ._training import EvaluationSection, Task, TrainingSection

DESCRIPTION = (
    "train neural surrogates on simulator data: FNO for Burgers, KS rollouts, CRPS L96 ensembles"
)

#: Task name -> its sections and run function.
TASK_MODULES: dict[str, Task] = {
    "burgers_operator": _train_burgers.TASK,
    "ks_rollout": _train_ks.TASK,
    "l96_ensemble": _train_l96.TASK,
}
TASKS = tuple(TASK_MODULES)


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Schema of the `train` pipeline (the top-level `pipeline:` key is handled apart)."""

    task: str = option(choices=TASKS, help="what to train (the sections below depend on it)")
    data: Any = option(
        factory=dict, section=lambda s: TASK_MODULES[s["task"]].data, help="the dataset"
    )
    model: Any = option(
        factory=dict,
        section=lambda s: TASK_MODULES[s["task"]].model,
        help="the network; from Python, a network object (any equinox Module with the task's "
        "call: burgers_operator (1, x) -> (1, x) at any x; ks_rollout a stepper u -> u(t + "
        "step) of shape (1, x); l96_ensemble a stochastic forecaster x -> sample, key=) instead",
        objects=eqx.Module,
    )
    loss: Any = option(
        factory=dict, section=lambda s: TASK_MODULES[s["task"]].loss, help="the loss"
    )
    training: TrainingSection = section(TrainingSection)
    evaluation: EvaluationSection = section(EvaluationSection)
    plot: PlotSection = section(PlotSection)

    def __post_init__(self):
        n_train = TASK_MODULES[self.task].num_train_examples(self)
        if self.training.batch_size > n_train:
            raise ConfigError(
                "training.batch_size",
                f"expected <= the {n_train} training examples, got {self.training.batch_size}",
            )


def run(config: TrainConfig, run_dir: Path) -> dict:
    """Generate the data, train, evaluate, and write arrays, plots and metrics."""
    start = time.perf_counter()
    metrics = TASK_MODULES[config.task].run(config, run_dir)
    metrics["wall_seconds"] = time.perf_counter() - start
    return metrics
