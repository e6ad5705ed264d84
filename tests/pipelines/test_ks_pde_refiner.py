"""The `ks_pde_refiner` pipeline through the CLI: at CI size every output is written and the
table is sane (slow); a bad key is refused by name. Refiner > baseline in high-correlation
time needs the full configuration (about 9 minutes on 2 cores), so it is measured in
benchmarks/RESULTS_nn.md, not asserted here."""

import json
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import run_cli

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "configs/ks_pde_refiner.yaml"
TINY = [
    "data.num_train=4",
    "data.num_test=4",
    "data.train_steps=20",
    "data.test_steps=20",
    "data.spinup=20",
    "training.steps=20",
    "network.hidden_channels=8",
    "network.time_embedding_dim=8",
]


def _sets(items):
    return [a for s in items for a in ("--set", s)]


@pytest.mark.slow
def test_ks_pde_refiner_tiny_run_writes_every_output(tmp_path, capsys):
    out = tmp_path / "run"
    code, _, err = run_cli(capsys, "run", CONFIG, "--out", out, "--quiet", *_sets(TINY))
    assert code == 0, err
    m = json.loads((out / "metrics.json").read_text())
    assert m["horizon"] == 20.0
    for name in ("baseline", "refiner"):
        row = m[name]
        assert 0.0 <= row["hc_time_mean"] <= 20.0 and row["hc_time_std"] >= 0.0
        assert np.isfinite(row["one_step_mse"]) and row["one_step_mse"] > 0
    a = np.load(out / "ks_pde_refiner.npz")
    assert a["correlation_refiner"].shape == (4, 20) and a["hc_time_baseline"].shape == (4,)
    assert a["error_spectrum_refiner"].shape == a["truth_spectrum"].shape == (33,)
    # the saved curves reproduce the reported means
    np.testing.assert_allclose(np.mean(a["hc_time_refiner"]), m["refiner"]["hc_time_mean"])
    for png in ("correlation.png", "spectrum.png", "training.png"):
        assert (out / png).stat().st_size > 10_000, png


def test_ks_pde_refiner_config_errors_name_the_key(tmp_path, capsys):
    code, _, err = run_cli(
        capsys, "run", CONFIG, "--out", tmp_path / "r", "--set", "refiner.min_noise_std=1.5"
    )
    assert code != 0 and "refiner.min_noise_std" in err
    code, _, err = run_cli(
        capsys, "run", CONFIG, "--out", tmp_path / "r2", "--set", "refiner.steps=3"
    )
    assert code != 0 and "refiner.steps" in err
    code, _, err = run_cli(
        capsys, "run", CONFIG, "--out", tmp_path / "r3", "--set", "data.num_points=62"
    )
    assert code != 0 and "network.channel_multipliers" in err
