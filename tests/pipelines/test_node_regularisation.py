"""The `node_regularisation` pipeline through the CLI at CI size: every output written, one
row per run with finite scores, a bad key refused by name."""

import json
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import run_cli

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "configs/node_regularisation.yaml"
CI = [
    "data.num_train=4",
    "data.num_test=2",
    "data.num_times=4",
    "data.t1=1.0",
    "network.width=4",
    "network.depth=1",
    "training.steps=3",
    "training.batch_size=2",
    "solver.rtol=1e-3",
    "solver.atol=1e-5",
    "solver.max_steps=64",
    "regularisation.error_weights=[0.1]",
    "regularisation.local_error_weights=[0.1]",
]


@pytest.mark.slow
def test_node_regularisation_runs(tmp_path, capsys):
    out = tmp_path / "run"
    args = [a for s in CI for a in ("--set", s)]
    code, _, err = run_cli(capsys, "run", CONFIG, "--out", out, "--quiet", *args)
    assert code == 0, err
    m = json.loads((out / "metrics.json").read_text())
    assert [r["name"] for r in m["runs"]] == ["plain", "global_0.1", "local_0.1"]
    for r in m["runs"]:
        for key in ("train_mse", "test_mse", "test_nfe", "train_seconds"):
            assert np.isfinite(r[key]) and r[key] > 0, (r, key)
        assert r["test_nfe"] >= 7  # at least one Tsit5 step: 6 stages + the first
    arrays = np.load(out / "node_regularisation.npz")
    assert arrays["truth"].shape == (4, 2) and arrays["nfe_history_plain"].shape == (3,)
    for png in ("nfe.png", "trajectories.png"):
        assert (out / png).stat().st_size > 10_000, png


def test_node_regularisation_config_errors_name_the_key(tmp_path, capsys):
    code, _, err = run_cli(
        capsys, "run", CONFIG, "--out", tmp_path / "r", "--set", "regularisation.eror_weights=[1]"
    )
    assert code != 0 and "regularisation.eror_weights" in err
    code, _, err = run_cli(
        capsys,
        "run",
        CONFIG,
        "--out",
        tmp_path / "r2",
        "--set",
        "regularisation.local_error_weights=[-1.0]",
    )
    assert code != 0 and "regularisation.local_error_weights" in err
    code, _, err = run_cli(
        capsys, "run", CONFIG, "--out", tmp_path / "r3", "--set", "solver.name=euler"
    )
    assert code != 0 and "solver.name" in err
