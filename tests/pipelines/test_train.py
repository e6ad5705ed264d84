"""The `train` pipeline: Burgers FNO at CI size (accuracy, resolution transfer), the KS loss
comparison and the L96 CRPS forecaster at smoke-test size, the shipped configs, bad keys."""

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from jaxsci.pipelines import ConfigError, load_config, resolve, run_config

ROOT = Path(__file__).resolve().parents[2]
TRAIN_CONFIGS = {
    p.stem: p
    for p in (ROOT / "configs").glob("*.yaml")
    if yaml.safe_load(p.read_text()).get("pipeline") == "train"
}


def test_shipped_train_configs():
    assert set(TRAIN_CONFIGS) == {"burgers_fno", "ks_fno_rollout", "ensemble_crps"}
    _, burgers = load_config(TRAIN_CONFIGS["burgers_fno"])
    assert burgers.task == "burgers_operator"
    assert burgers.data.num_train == 1000 and burgers.data.nu == 0.1
    _, ks = load_config(TRAIN_CONFIGS["ks_fno_rollout"])
    assert ks.loss.compare == ["mse", "h-1", "h-1-semi"]
    _, ens = load_config(TRAIN_CONFIGS["ensemble_crps"])
    assert ens.loss.kind == "fair"


@pytest.mark.slow
def test_burgers_fno_ci_accuracy_and_twice_the_resolution(tmp_path):
    # CI size: 200 training pairs, 20 epochs, trained at 128 points (every 2nd of 256) and
    # tested at 128 and, zero-shot, at 256 points. The bars: test relative L2 below
    # 1e-2, and at twice the resolution within 1.5x of it. (Over training/initialisation
    # seeds 0-3 these settings gave 3.4e-3 to 4.5e-3, and the same at 256 points.)
    run_dir, metrics = run_config(
        TRAIN_CONFIGS["burgers_fno"],
        tmp_path / "run",
        [
            "data.num_train=200",
            "data.num_test=100",
            "data.num_points=256",
            "data.train_points=128",
            "data.eval_points=[256]",
            "training.epochs=20",
            "training.batch_size=10",
            "training.learning_rate=1e-3",
            "evaluation.num_plot=2",
        ],
        echo=False,
    )
    assert metrics["test_rel_l2"] < 1e-2, metrics
    assert metrics["test_rel_l2_at_256"] < 1.5 * metrics["test_rel_l2"], metrics
    saved = json.loads((run_dir / "metrics.json").read_text())
    for key in ("test_rel_l2", "train_seconds", "params"):
        assert key in saved, key
    # Li et al.'s FNO1d, width 64, 16 modes, 4 layers, projection 128, grid channel.
    assert saved["params"] == 3 * 64 + 4 * (2 * 64 * 64 * 16 + 64 * 64 + 64) + 64 * 128 + 128 + 129
    for name in ("predictions.png", "training.png", "predictions.npz", "history.npz"):
        assert (run_dir / name).is_file(), name
    arrays = np.load(run_dir / "predictions.npz")
    assert arrays["prediction"].shape == arrays["truth"].shape == (2, 128)


@pytest.mark.slow
def test_ks_rollout_compares_losses(tmp_path):
    run_dir, metrics = run_config(
        TRAIN_CONFIGS["ks_fno_rollout"],
        tmp_path / "run",
        [
            "data.num_train=3",
            "data.num_test=2",
            "data.train_steps=12",
            "data.test_steps=6",
            "data.spinup=10",
            "model.width=8",
            "model.modes=8",
            "model.depth=2",
            "loss.rollout_steps=1",
            "loss.compare=[mse, h-1-semi]",
            "training.epochs=2",
            "training.batch_size=8",
        ],
        echo=False,
    )
    for tag in ("mse", "hm1_semi"):
        assert 0 <= metrics[f"valid_time_{tag}"] <= 6.0
        assert np.isfinite(metrics[f"one_step_rel_l2_{tag}"])
    arrays = np.load(run_dir / "rollout.npz")
    assert arrays["error_mse"].shape == arrays["error_h-1-semi"].shape == (6,)
    for name in ("rollout_error.png", "rollout.png", "training.png"):
        assert (run_dir / name).is_file(), name
    for tag in ("mse", "h-1-semi"):  # one saved model per compared loss
        assert (run_dir / f"model_{tag}.eqx").stat().st_size > 0, tag


@pytest.mark.slow
def test_l96_crps_forecaster_runs(tmp_path):
    run_dir, metrics = run_config(
        TRAIN_CONFIGS["ensemble_crps"],
        tmp_path / "run",
        [
            "data.num_train=4",
            "data.num_test=2",
            "data.steps=20",
            "data.spinup=5",
            "model.width=16",
            "loss.ensemble_size=4",
            "training.epochs=2",
            "training.batch_size=16",
            "evaluation.ensemble_size=8",
            "evaluation.bins=4",
        ],
        echo=False,
    )
    for key in ("test_crps", "test_rmse", "test_spread", "spread_skill_ratio"):
        assert np.isfinite(metrics[key]) and metrics[key] > 0, key
    assert np.load(run_dir / "forecasts.npz")["ensemble"].shape == (40, 8, 40)
    assert (run_dir / "spread_skill.png").is_file()
    # The trained model is saved by default, and the log says where.
    assert (run_dir / "model.eqx").stat().st_size > 0
    assert (
        f"saved the trained model to {run_dir / 'model.eqx'}" in (run_dir / "run.log").read_text()
    )


@pytest.mark.parametrize(
    "override, key",
    [
        ({"data": {"num_points": 256, "train_points": 100}}, "data.train_points"),
        ({"data": {"num_points": 256, "eval_points": [512]}}, "data.eval_points[0]"),
        ({"training": {"batch_size": 5000}}, "training.batch_size"),
        ({"loss": {"name": "huber"}}, "loss.name"),
        ({"model": {"widht": 3}}, "model.widht"),
    ],
)
def test_bad_burgers_keys_are_named(override, key):
    raw = yaml.safe_load(TRAIN_CONFIGS["burgers_fno"].read_text())
    for section, values in override.items():
        raw.setdefault(section, {}).update(values)
    with pytest.raises(ConfigError) as err:
        resolve(raw)
    assert err.value.key == key


def test_bad_task_specific_keys_are_named():
    raw = yaml.safe_load(TRAIN_CONFIGS["ks_fno_rollout"].read_text())
    raw["loss"]["compare"] = ["mse", "h-2"]
    with pytest.raises(ConfigError, match=r"loss.compare\[1\]: expected one of"):
        resolve(raw)
    raw = yaml.safe_load(TRAIN_CONFIGS["ks_fno_rollout"].read_text())
    raw["data"]["step"] = 0.3
    with pytest.raises(ConfigError, match="data.step: expected a multiple of dt"):
        resolve(raw)
    # a lead so large that lead / dt overflows is refused by name (was an OverflowError)
    raw = yaml.safe_load(TRAIN_CONFIGS["ensemble_crps"].read_text())
    raw["data"]["lead"] = 1.8e306
    with pytest.raises(ConfigError, match="lead: expected a multiple of dt"):
        resolve(raw)
    raw = yaml.safe_load(TRAIN_CONFIGS["ensemble_crps"].read_text())
    raw["loss"]["kind"] = "unfair"
    with pytest.raises(ConfigError, match="loss.kind"):
        resolve(raw)
    with pytest.raises(ConfigError, match="task: expected one of"):
        resolve({"pipeline": "train", "task": "darcy"})
