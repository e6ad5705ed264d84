"""The `ks_semilinear_operator` pipeline through the CLI at CI size: every output written,
the true model in the filter below the observation error, the learned models' rows finite;
wrong config keys and values refused by name."""

import json
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import run_cli

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "configs/ks_semilinear_operator.yaml"
CI = [
    "data.num_train=4",
    "data.train_steps=10",
    "data.spinup=30",
    "training.steps=30",
    "training.batch_size=8",
    "network.width=8",
    "network.modes=8",
    "network.depth=1",
    "forecast.num_initial=2",
    "forecast.horizon=5",
    "experiment.n_cycles=8",
    "experiment.burn_in=2",
    "filter.ensemble_size=6",
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
    # the true model in the LETKF tracks the truth below the observation error
    assert table["true"]["rmse_a"] < m["noise_std"]
    # the learned models differ from the FNO only by the symbol's two numbers per mode
    assert m["params"]["sno"] == m["params"]["fno"] + 2 * 33
    arrays = np.load(out / "ks_semilinear_operator.npz")
    assert arrays["forecast_rmse_sno"].shape == (5,) and arrays["rmse_a_true"].shape == (8,)
    assert arrays["learned_symbol"].shape == (33,)
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
