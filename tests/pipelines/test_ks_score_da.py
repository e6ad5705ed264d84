"""The `ks_score_da` pipeline through the CLI at CI size: every output written, the table
sane (finite, positive spread, every method's rmse below the climatological std, i.e. better
than guessing the climatological mean), the stage timings recorded, a bad key refused."""

import json
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import run_cli

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "configs/ks_score_da.yaml"
CI = [
    "data.num_trajectories=4",
    "data.states_per_trajectory=50",
    "data.spinup=50",
    "training.steps=600",
    "network.width=64",
    "network.depth=2",
    "diffusion.steps=20",
    "tds.particles=32",
    "tds.num_samples=8",
    "dps.num_samples=8",
    "experiment.n_analyses=6",
    "experiment.burn_in=2",
    "experiment.spinup=50",
    "filter.ensemble_size=8",
]


@pytest.mark.slow
def test_ks_score_da_runs_and_the_table_is_sane(tmp_path, capsys):
    out = tmp_path / "run"
    args = [a for s in CI for a in ("--set", s)]
    code, stdout, err = run_cli(capsys, "run", CONFIG, "--out", out, "--quiet", *args)
    assert code == 0, err
    m = json.loads((out / "metrics.json").read_text())
    assert set(m["table"]) == {"dps", "tds", "filter"}
    clim = m["clim_std"]
    assert 0.5 < clim < 2.0  # KS L = 22 attractor states have std ~1.2
    np.testing.assert_allclose(m["noise_std"], 0.1 * clim, rtol=1e-6)
    for name, row in m["table"].items():
        for key in ("rmse", "crps", "spread", "spread_skill", "seconds_per_analysis"):
            assert np.isfinite(row[key]) and row[key] > 0, (name, key, row)
        assert row["rmse"] < clim, (name, row, clim)
        # CRPS < RMSE is not a theorem: for a Gaussian forecast of std s against errors of
        # std r, E CRPS = sqrt(2/pi) (sqrt(s^2 + r^2) - s/sqrt(2)) < r only while s/r < ~3.8;
        # every method here is far below that spread/skill
        assert row["crps"] < row["rmse"], (name, row)
    d = json.loads((out / "diagnostics.json").read_text())
    assert set(d["stage_seconds"]) >= {"data", "training", "dps", "tds", "filter"}
    assert d["tds_collapsed_analyses"] == 0 and d["filter_finite"]
    arrays = np.load(out / "ks_score_da.npz")
    assert arrays["truth"].shape == (6, 64) and arrays["observations"].shape == (6, 16)
    assert arrays["tds_draws_at_plot_time"].shape == (8, 64)
    # TDS is scored on its 32 weighted particles, not on the 8 resampled draws
    assert m["table"]["tds"]["members"] == 32
    assert 1 <= m["table"]["tds"]["effective_members"] <= 32
    for png in ("analysis.png", "rmse.png"):
        assert (out / png).stat().st_size > 10_000, png


def test_ks_score_da_config_errors_name_the_key(tmp_path, capsys):
    code, _, err = run_cli(
        capsys, "run", CONFIG, "--out", tmp_path / "r", "--set", "experiment.burn_in=40"
    )
    assert code != 0 and "experiment.burn_in" in err
    code, _, err = run_cli(
        capsys, "run", CONFIG, "--out", tmp_path / "r2", "--set", "training.parameterization=z"
    )
    assert code != 0 and "training.parameterization" in err
    # more resampled draws than particles would only repeat particles
    code, _, err = run_cli(
        capsys, "run", CONFIG, "--out", tmp_path / "r3", "--set", "tds.num_samples=300"
    )
    assert code != 0 and "tds.num_samples" in err
    # the initial members are drawn without replacement from the 4 x 50 training states
    code, _, err = run_cli(
        capsys,
        "run",
        CONFIG,
        "--out",
        tmp_path / "r4",
        *("--set", "data.num_trajectories=4", "--set", "data.states_per_trajectory=50"),
        *("--set", "filter.ensemble_size=201"),
    )
    assert code != 0 and "filter.ensemble_size" in err


def test_a_diverged_method_is_reported_not_averaged():
    """A filter that blew up at a scored time: null scores and a divergence flag (metrics.json
    would otherwise hold "nan" strings); the finite times keep their per-time rmse."""
    from jaxsci.pipelines._ks_score_da import _scores

    rng = np.random.default_rng(0)
    truth = rng.normal(size=(5, 3))
    ens = truth[:, None] + rng.normal(size=(5, 4, 3))
    w = np.full((5, 4), 0.25)
    row, series = _scores(ens, w, truth, burn_in=1)
    rmse_t = series["rmse"]
    assert not row["diverged"]
    err = np.sqrt(np.mean((ens.mean(1) - truth) ** 2, -1))
    np.testing.assert_allclose(row["rmse"], np.sqrt(np.mean(err[1:] ** 2)), rtol=1e-5)
    np.testing.assert_allclose(rmse_t, err, rtol=1e-5)
    np.testing.assert_allclose(np.mean(series["crps"][1:]), row["crps"], rtol=1e-5)
    ens[3, 2, 0] = np.inf
    row, series = _scores(ens, w, truth, burn_in=1)
    rmse_t = series["rmse"]
    assert row["diverged"] and row["rmse"] is None and row["crps"] is None
    assert np.isnan(rmse_t[3]) and np.allclose(np.delete(rmse_t, 3), np.delete(err, 3), rtol=1e-5)
    json.dumps(row, allow_nan=False)  # valid JSON: null, not NaN
