"""The `burgers_uq` pipeline at CI size through the CLI: the table is complete and sane, the
truth is the simulator's, the outputs are written; bad keys fail by name."""

import json
from pathlib import Path

import jax
import numpy as np
import pytest
from cli_helpers import run_cli

from jaxsci import data as jdata
from jaxsci.pipelines import PIPELINES

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "configs/burgers_uq.yaml"
METHODS = {"deep_ensemble", "mc_dropout", "laplace", "nuts", "crps_ensemble"}
CI = [
    "data.num_train=100",
    "data.num_test=16",
    "data.num_points=128",
    "data.train_points=32",
    "model.width=12",
    "model.modes=6",
    "model.depth=2",
    "model.projection_width=16",
    "training.epochs=20",
    "training.batch_size=20",
    "training.learning_rate=5e-3",
    "ensemble.members=3",
    "nuts.num_warmup=100",
    "nuts.num_samples=100",
    "crps.members=3",
    "crps.noise_channels=2",
    "num_samples=40",
]


@pytest.mark.slow  # ~30 s on 2 loaded cores (five trainings, NUTS, three compilations)
def test_burgers_uq_runs_and_the_table_is_complete_and_sane(tmp_path, capsys):
    out = tmp_path / "run"
    args = [a for s in CI for a in ("--set", s)]
    code, stdout, err = run_cli(capsys, "run", CONFIG, "--out", out, "--quiet", *args)
    assert code == 0, err
    m = json.loads((out / "metrics.json").read_text())
    table = m["table"]
    assert set(table) == METHODS
    for method, row in table.items():
        assert set(row) == {"id", "ood"}, method
        for split, cell in row.items():
            assert set(cell) == {"rel_l2", "crps", "coverage90", "spread_skill"}
            assert all(np.isfinite(v) for v in cell.values()), (method, split, cell)
            assert 0.0 <= cell["coverage90"] <= 1.0
            assert cell["crps"] > 0 and cell["spread_skill"] > 0  # ensembles have spread
        # every surrogate learnt the map in distribution (a mean-zero guess scores 1.0)
        assert row["id"]["rel_l2"] < 0.5, (method, row["id"])
    # the last-layer posterior: NUTS agrees with the exact (Laplace) posterior
    assert m["nuts"]["divergences"] == 0
    assert m["nuts"]["mean_vs_laplace_z"] < 1.0
    assert m["laplace"]["noise_std"] > 0 and m["laplace"]["prior_precision"] > 0
    diag = json.loads((out / "diagnostics.json").read_text())
    stages = {"data", "train_deep_ensemble", "train_mc_dropout", "laplace", "nuts"}
    assert stages | {"train_crps_ensemble", "evaluate", "total"} <= set(diag["seconds"])
    arrays = np.load(out / "uq.npz")
    # the truth is the simulator's u(t1): regenerate the first ID test pair independently
    u0, u1 = jdata.burgers_dataset(jax.random.key(0), 116, num_points=128)
    np.testing.assert_allclose(arrays["id_truth"][0], u1[100, ::4], rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(arrays["id_input"][0], u0[100, ::4], rtol=1e-6)
    assert arrays["id_nuts"].shape == (40, 2, 32)
    assert arrays["ood_deep_ensemble"].shape == (3, 2, 32)
    # the OOD inputs have the configured amplitude: about twice the ID one
    ratio = np.std(arrays["ood_input"]) / np.std(arrays["id_input"])
    assert 1.2 < ratio < 3.5
    for png in ("predictions.png", "calibration.png"):
        assert (out / png).stat().st_size > 10_000, png


def test_burgers_uq_config_errors(capsys):
    assert "burgers_uq" in PIPELINES
    code, _, err = run_cli(capsys, "run", CONFIG, "--dry-run", "--set", "data.train_points=48")
    assert code != 0 and "train_points" in err
    code, _, err = run_cli(capsys, "run", CONFIG, "--dry-run", "--set", "dropout.rate=1.0")
    assert code != 0 and "dropout.rate" in err
