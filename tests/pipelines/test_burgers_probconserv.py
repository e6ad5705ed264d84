"""The `burgers_probconserv` pipeline through the CLI at CI size: the conservation update is
recomputed from the saved arrays in NumPy, mass is conserved to float32 rounding after it and
not before, the errors do not grow; bad keys fail by name."""

import json
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import run_cli

from jaxsci.pipelines import PIPELINES

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "configs/burgers_probconserv.yaml"
CI = [
    "data.num_train=8",
    "data.num_test=3",
    "data.num_points=32",
    "data.num_times=3",
    "data.dt=0.01",
    "model.width=8",
    "model.modes=6",
    "model.depth=2",
    "model.projection_width=16",
    "training.members=2",
    "training.epochs=2",
    "training.batch_size=8",
    "num_plot=3",  # every test field is saved
]


@pytest.mark.slow
def test_burgers_probconserv_runs_and_conserves(tmp_path, capsys):
    out = tmp_path / "run"
    args = [a for s in CI for a in ("--set", s)]
    code, _, err = run_cli(capsys, "run", CONFIG, "--out", out, "--quiet", *args)
    assert code == 0, err
    m = json.loads((out / "metrics.json").read_text())
    before, after = m["table"]["surrogate"], m["table"]["probconserv"]
    # conserved to float32 rounding after the update, like the simulator; not before
    assert after["conservation_rel_max"] < 1e-5 < 1e3 * after["conservation_rel_max"] < 1.0
    assert before["conservation_rel"] > 1e3 * after["conservation_rel"]
    assert m["simulator_conservation_rel_max"] < 1e-5
    # the solution error does not grow, and no variance is left along G
    for key in ("rel_l2", "crps", "nll"):
        assert after[key] <= before[key], (key, before[key], after[key])
    assert abs(after["var_along_g"]) < 1e-6 * before["var_along_g"]
    assert len(m["per_time"]["probconserv"]["conservation_rel"]) == 3

    # The update recomputed in NumPy (float64) from the saved diagonal Gaussian:
    # mu~ = mu - var g (g . var g)^{-1} (g . mu - b), g = ones / n, b = g . u0.
    a = np.load(out / "probconserv.npz")
    assert a["truth"].shape == (3, 3, 32) and a["members"].shape == (2, 3, 3, 32)
    mu, var = a["mean_surrogate"].astype(np.float64), a["std_surrogate"].astype(np.float64) ** 2
    g = np.full(32, 1.0 / 32)
    b = (a["initial"].astype(np.float64) @ g)[:, None]
    ref = mu - var * g * ((mu @ g - b) / (var @ g**2))[..., None]
    np.testing.assert_allclose(a["mean_probconserv"], ref, atol=1e-5 * np.abs(mu).max())
    ref_var = var - (var * g) ** 2 / (var @ g**2)[..., None]
    np.testing.assert_allclose(a["std_probconserv"] ** 2, ref_var, atol=1e-5 * var.max())
    np.testing.assert_allclose(a["mean_surrogate"], a["members"].mean(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(a["truth"] @ g, np.broadcast_to(b, (3, 3)), atol=1e-6)
    for png in ("profiles.png", "conservation.png"):
        assert (out / png).stat().st_size > 10_000, png


def test_burgers_probconserv_config_errors_name_the_key(capsys):
    assert "burgers_probconserv" in PIPELINES
    for override, key in (
        ("conservation.covariance=full", "conservation.covariance"),
        ("conservation.noise_std=-1", "conservation.noise_std"),
        ("conservation.bogus=1", "conservation.bogus"),
        ("data.num_points=33", "num_points"),
        ("training.batch_size=100000", "training.batch_size"),
    ):
        code, _, err = run_cli(capsys, "run", CONFIG, "--dry-run", "--set", override)
        assert code != 0 and key in err, (override, err)
