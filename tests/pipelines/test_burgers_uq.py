"""The `burgers_uq` pipeline at CI size through the CLI: every cell of the table is
recomputed from the saved ensembles by an independent NumPy implementation, the ID and OOD
truths are the exact (Cole-Hopf) solutions, the outputs are written; bad keys fail by name."""

import importlib.util
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
_spec = importlib.util.spec_from_file_location(
    "_burgers_test_datasets", ROOT / "tests/data/test_datasets.py"
)
assert _spec is not None and _spec.loader is not None
_datasets = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_datasets)
cole_hopf = _datasets.cole_hopf  # the exact viscous Burgers solution (tests/data)
METHODS = {"deep_ensemble", "mc_dropout", "laplace", "nuts", "crps_ensemble"}
CI = [
    "data.num_train=100",
    "data.num_test=8",
    "num_plot=8",  # every test ensemble is saved in uq.npz
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


def _np_coverage(ens, truth, level=0.9):
    """Rank coverage by loops: the PIT of the truth uniform on [r, r + t + 1]/(M + 1)
    (r members below, t tied), the covered probability of [(1-level)/2, (1+level)/2]."""
    m = ens.shape[0]
    lo, hi = (1 - level) / 2, (1 + level) / 2
    total, count = 0.0, 0
    for n in range(truth.shape[0]):
        for j in range(truth.shape[1]):
            col = np.sort(ens[:, n, j].astype(np.float64))
            y = float(truth[n, j])
            r = int(np.searchsorted(col, y, side="left"))
            t = int(np.searchsorted(col, y, side="right")) - r
            a, b = r / (m + 1), (r + t + 1) / (m + 1)
            total += max(0.0, min(b, hi) - max(a, lo)) / (b - a)
            count += 1
    return total / count


def _np_cell(ens, truth):
    """The table's cell of an ensemble (M, N, n) against the truth (N, n), in NumPy."""
    ens, truth = ens.astype(np.float64), truth.astype(np.float64)
    m = ens.shape[0]
    mean = ens.mean(0)
    rel = np.linalg.norm(mean - truth, axis=1) / np.linalg.norm(truth, axis=1)
    rmse = np.sqrt(np.mean((mean - truth) ** 2))
    spread = np.sqrt(np.mean((m + 1) / m * ens.var(0, ddof=1)))
    # fair CRPS: mean |x_i - y| - sum_{i != j} |x_i - x_j| / (2 M (M - 1)), by the pair sum
    pair = np.zeros(truth.shape)
    for i in range(m):
        for j in range(m):
            pair += np.abs(ens[i] - ens[j])
    crps = np.abs(ens - truth).mean(0) - pair / (2 * m * (m - 1))
    return {
        "rel_l2": rel.mean(),
        "crps": crps.mean(),
        "coverage90": _np_coverage(ens, truth),
        "spread_skill": spread / rmse,
    }


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
    # NUTS: its w mean within 1 sd of the evidence-optimal BLR mode (hyper-uncertainty small)
    assert m["nuts"]["divergences"] == 0
    assert m["nuts"]["mean_vs_refit_z"] < 1.0
    assert m["laplace"]["trained_vs_refit_z"] > 0  # the Laplace row is at the trained weights
    assert m["laplace"]["noise_std"] > 0 and m["laplace"]["prior_precision"] > 0
    # NUTS samples the hyperparameters (fully Bayesian): their posterior holds the evidence
    # optimum of the Laplace row (weak hyperpriors) and has a width
    for key, opt in (("prior_precision", "prior_precision"), ("noise_std", "noise_std")):
        q05, _, q95 = m["nuts"][f"{key}_q05_q50_q95"]
        assert q05 < m["laplace"][opt] < q95, (key, m["nuts"], m["laplace"])
    diag = json.loads((out / "diagnostics.json").read_text())
    stages = {"data", "train_deep_ensemble", "train_mc_dropout", "laplace", "nuts"}
    assert stages | {"train_crps_ensemble", "evaluate", "total"} <= set(diag["seconds"])
    arrays = np.load(out / "uq.npz")
    # every cell of the table, recomputed from the saved ensembles (all 8 test examples)
    for method in METHODS:
        for split in ("id", "ood"):
            ens, truth = arrays[f"{split}_{method}"], arrays[f"{split}_truth"]
            assert ens.shape[1:] == truth.shape == (8, 32), (method, split)
            ref = _np_cell(ens, truth)
            for key, value in ref.items():
                assert table[method][split][key] == pytest.approx(value, rel=2e-4, abs=1e-6), (
                    method,
                    split,
                    key,
                )
    # the truths are the exact solutions u(t1 = 1) (nu = 0.1) of the saved initial fields
    for split in ("id", "ood"):
        u0 = arrays[f"{split}_initial"]
        assert u0.shape == (8, 128)
        np.testing.assert_allclose(arrays[f"{split}_input"], u0[:, ::4])
        exact = np.stack([cole_hopf(u, 0.1, 1.0) for u in u0])[:, ::4]
        scale = np.abs(exact).max()
        assert np.max(np.abs(arrays[f"{split}_truth"] - exact)) < 1e-3 * scale, split
    # the initial fields are the configured GRFs: the ID one regenerated independently, and
    # the OOD one (sigma = 50, same tau and alpha) has twice its spectral amplitude
    u0, _ = jdata.burgers_dataset(jax.random.key(0), 108, num_points=128)
    np.testing.assert_allclose(arrays["id_initial"][0], u0[100], rtol=1e-6)
    k = np.arange(1, 64)
    shape = ((2 * np.pi * k) ** 2 + 25.0) ** -2.0  # tau = 5, alpha = 2
    power = {
        s: np.abs(np.fft.rfft(arrays[f"{s}_initial"])[:, 1:64]) ** 2 / shape for s in ("id", "ood")
    }
    # |u_k|^2 / shape_k ~ sigma^2 Exp(1): 504 draws per split, ratio SE ~ 0.032 * 2
    ratio = np.sqrt(power["ood"].mean() / power["id"].mean())
    assert abs(ratio - 2.0) < 0.26, ratio
    assert arrays["id_nuts"].shape == (40, 8, 32)
    assert arrays["ood_deep_ensemble"].shape == (3, 8, 32)
    for png in ("predictions.png", "calibration.png"):
        assert (out / png).stat().st_size > 10_000, png


def test_burgers_uq_config_errors(capsys):
    assert "burgers_uq" in PIPELINES
    code, _, err = run_cli(capsys, "run", CONFIG, "--dry-run", "--set", "data.train_points=48")
    assert code != 0 and "train_points" in err
    code, _, err = run_cli(capsys, "run", CONFIG, "--dry-run", "--set", "dropout.rate=1.0")
    assert code != 0 and "dropout.rate" in err
    # fewer NUTS draws than predictive draws would repeat draws
    sets = ("--set", "nuts.num_chains=1", "--set", "nuts.num_samples=50")
    code, _, err = run_cli(capsys, "run", CONFIG, "--dry-run", *sets)
    assert code != 0 and "nuts.num_samples" in err
