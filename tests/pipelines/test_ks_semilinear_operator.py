"""The `ks_semilinear_operator` pipeline through the CLI at a moderate size: every output
written, the true model and the learned semilinear operator in the LETKF below the
observation error, every row finite; wrong config keys and values refused by name.

The moderate size costs about the CPU time of a tiny one (compilation dominates: ~45 s of
CPU either way on the 2-core VM), so the must-show is asserted on it."""

import json
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import run_cli

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "configs/ks_semilinear_operator.yaml"
CI = [
    "operator.linear_init=truth",
    "data.num_train=16",
    "data.train_steps=30",
    "training.steps=250",
    "forecast.num_initial=4",
    "forecast.horizon=10",
    "experiment.n_cycles=50",
    "experiment.burn_in=10",
]


@pytest.mark.slow
def test_ks_semilinear_operator_runs_and_writes_its_outputs(tmp_path, capsys):
    out = tmp_path / "run"
    args = [a for s in CI for a in ("--set", s)]
    code, _, err = run_cli(capsys, "run", CONFIG, "--out", out, "--quiet", *args)
    assert code == 0, err
    m = json.loads((out / "metrics.json").read_text())
    assert 0.5 < m["clim_std"] < 2.0  # KS L = 22 attractor states: std ~1.1-1.2
    table = m["filter_table"]
    assert set(table) == {"true", "sno", "fno"}
    for row in table.values():
        assert row["finite"] and np.isfinite(row["rmse_a"]) and row["spread_a"] > 0
    # the true model in the LETKF tracks the truth below the observation error, and so does
    # the learned operator (full size: benchmarks/RESULTS_nn.md)
    assert table["true"]["rmse_a"] < m["noise_std"]
    assert table["sno"]["rmse_a"] < m["noise_std"], table
    # the learned models differ from the FNO only by the symbol's two numbers per mode
    assert m["params"]["sno"] == m["params"]["fno"] + 2 * 33 + 1  # + the (frozen) bound
    arrays = np.load(out / "ks_semilinear_operator.npz")
    assert arrays["forecast_rmse_sno"].shape == (10,) and arrays["rmse_a_true"].shape == (50,)
    assert arrays["learned_symbol"].shape == (33,)
    # training through the rollouts lowered the loss, and the symbol started from the truth
    # kept its bound Re L <= max_real = 1/4 (a stable learned linear part)
    loss = arrays["loss_sno"]
    assert np.mean(loss[-20:]) < 0.2 * np.mean(loss[:20]), (loss[:20], loss[-20:])
    assert np.max(arrays["learned_symbol"].real) <= 0.25
    np.testing.assert_allclose(arrays["initial_symbol"], arrays["true_symbol"])
    # the true model's forecast error starts at the perturbation (0.01) and grows slowly
    assert arrays["forecast_rmse_true"][0] < 0.05
    for png in ("forecast_error.png", "filter_rmse.png", "linear_operator.png", "training.png"):
        assert (out / png).stat().st_size > 10_000, png


@pytest.mark.parametrize(
    "setting, key",
    [
        ("operator.linear_init=zero", "operator.linear_init"),
        ("operator.bogus=1", "operator.bogus"),
        ("experiment.burn_in=500", "experiment.burn_in"),
        ("operator.dt=0.3", "data.step"),
    ],
)
def test_config_errors_name_the_key(tmp_path, capsys, setting, key):
    code, _, err = run_cli(capsys, "run", CONFIG, "--out", tmp_path / "r", "--set", setting)
    assert code != 0 and key in err, err
