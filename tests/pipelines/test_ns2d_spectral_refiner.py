"""The `ns2d_spectral_refiner` pipeline through the CLI at CI size: every output written, the
three models in the table with sane numbers, the fine-tunes lowering their own losses while
freeing only part of the network, and a bad key refused by name."""

import json
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import assert_files_logged_once, run_cli

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "configs/ns2d_spectral_refiner.yaml"
CI = [
    "data.num_points=16",
    "data.num_train=2",
    "data.num_test=2",
    "data.train_steps=4",
    "data.test_steps=6",
    "data.spinup=2",
    "model.width=4",
    "model.modes=3",
    "model.depth=2",
    "model.projection_width=8",
    "training.steps=20",
    "training.batch_size=4",
    "finetune.steps=20",
    "finetune.learning_rate=0.01",
    "evaluation.report_step=3",
    "evaluation.spectrum_steps=[1,6]",
]


@pytest.mark.slow
def test_ns2d_spectral_refiner_runs_and_the_table_is_sane(tmp_path, capsys):
    out = tmp_path / "run"
    args = [a for s in CI for a in ("--set", s)]
    code, stdout, err = run_cli(capsys, "run", CONFIG, "--out", out, "--quiet", *args)
    assert code == 0, err
    m = json.loads((out / "metrics.json").read_text())
    assert set(m["table"]) == {"mse", "mse_ft", "hm1_ft"}
    for name, row in m["table"].items():
        # one step of 0.2 time units: a trained stepper is far better than persistence (~0.3)
        assert 0 < row["rel_l2_step1"] < row["rel_l2_step3"] < 2, (name, row)
        assert 0 < row["rel_velocity_step3"] < 2 and 0 < row["valid_time"] <= 6 * 0.2
        assert all(np.isfinite(row[f"spectrum_log_error_step{s}"]) for s in (1, 6))
    # the last Fourier layer (2 w^2 M + w^2 + w, M = 2 * 3 * 3) and the projection are free
    w, p = 4, 8
    assert m["free_params"] == (2 * w * w * 18 + w * w + w) + (w * p + p + p + 1)
    assert m["free_params"] < m["params"]
    for tag in ("hm1_ft", "mse_ft"):  # each fine-tune lowers its own training loss
        assert m["finetune"][tag]["train_loss_after"] < m["finetune"][tag]["train_loss_before"]
    # the test one-step losses: the pretrained model's, and H^-1 below MSE (|kappa|^-2 <= 1)
    assert 0 < m["table"]["mse"]["test_hm1"] < m["table"]["mse"]["test_mse"]
    arrays = np.load(out / "rollout.npz")
    assert arrays["spectrum_truth"].shape == (2, len(arrays["wavenumbers"]))
    assert arrays["rel_l2_hm1_ft"].shape == (6,) and arrays["truth"].shape == (6, 16, 16)
    for png in ("rollout_error.png", "enstrophy_spectrum.png", "snapshots.png", "training.png"):
        assert (out / png).stat().st_size > 10_000, png
    assert_files_logged_once(out)


def test_ns2d_spectral_refiner_config_errors_name_the_key(tmp_path, capsys):
    bad = [
        ("finetune.lossy=mse", "finetune.lossy"),
        ("finetune.loss=l1", "finetune.loss"),
        ("finetune.fourier_layers=5", "finetune.fourier_layers"),
        ("data.step=0.03", "data.step"),
        ("evaluation.spectrum_steps=[1,60]", "evaluation.spectrum_steps[1]"),
        ("data.num_points=33", "data.num_points"),
    ]
    for i, (setting, key) in enumerate(bad):
        code, _, err = run_cli(capsys, "run", CONFIG, "--out", tmp_path / f"r{i}", "--set", setting)
        assert code != 0 and key in err, (setting, err)
        assert not (tmp_path / f"r{i}" / "metrics.json").exists()
