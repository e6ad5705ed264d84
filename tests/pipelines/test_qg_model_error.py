"""The `qg_model_error` pipeline (MEDIDA-QG) through the CLI at tiny settings: every output
written, the metrics finite and consistent, the wall time split recorded; bad keys refused."""

import json
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import run_cli

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "configs/qg_model_error.yaml"
TINY = [
    "model.num_points=16",
    "model.spinup_days=20",
    "observations.count=10",
    "filter.ensemble_size=6",
    "filter.burn_in=4",
    "interpolation.num_steps=50",
    "interpolation.cycles_per_fit=8",
    "estimator.start=2",
]


@pytest.mark.slow
@pytest.mark.parametrize("estimator", ["in_filter", "increments"])
def test_qg_model_error_runs_at_tiny_settings(tmp_path, capsys, estimator):
    out = tmp_path / "run"
    settings = [*TINY, f"estimator.method={estimator}"]
    args = [a for s in settings for a in ("--set", s)]
    code, _, err = run_cli(capsys, "run", CONFIG, "--out", out, "--quiet", *args)
    assert code == 0, err
    m = json.loads((out / "metrics.json").read_text())
    assert m["injected_term"] == "lap(psi)[2]" and m["estimator"] == estimator
    np.testing.assert_allclose(m["coef_true"], -5.787e-7, rtol=1e-4)
    assert np.isfinite(m["coef_found"]) and np.isfinite(m["interpolation_rel_error"])
    assert np.isfinite(m["largest_spurious_relative"])
    assert set(m["seconds"]) >= {"simulation", "assimilation", "interpolation", "regression"}
    arrays = np.load(out / "qg_model_error.npz")
    assert arrays["increments"].shape == (2, 16, 16)
    assert arrays["coefficients"].shape == (18,)
    pngs = ["increments.png", "coefficients.png"]
    if estimator == "in_filter":  # the coefficients' paths through the cycles
        assert arrays["trajectory"].shape == arrays["spread"].shape == (10, 18)
        np.testing.assert_allclose(
            arrays["coefficients"], arrays["trajectory"][5:].mean(0), rtol=1e-5, atol=1e-12
        )
        pngs.append("coefficient_trajectories.png")
    for png in pngs:
        assert (out / png).stat().st_size > 10_000, png


def test_qg_model_error_config_errors_name_the_key(tmp_path, capsys):
    for setting, key in (
        ("observations.evry_kth=2", "observations.evry_kth"),
        ("observations.every_kth=3", "observations.every_kth"),
        ("library.terms=[psi, u_x]", "library.terms"),
        ("filter.burn_in=1000", "filter.burn_in"),
        ("interpolation.method=none", "library.lowpass"),  # a low-pass needs the field
        ("estimator.start=1000", "estimator.start"),  # no cycle left to average
        ("filter.passes=2", "filter.passes"),  # the increments estimator's
        ("estimator.method=regress", "estimator.method"),
    ):
        code, _, err = run_cli(capsys, "run", CONFIG, "--out", tmp_path / "r", "--set", setting)
        assert code != 0 and key in err, (setting, err)
    # the integrated design's forecasts start at the analysis
    setting = ("--set", "library.design=integrated", "--set", "library.states=background")
    code, _, err = run_cli(capsys, "run", CONFIG, "--out", tmp_path / "r", *setting)
    assert code != 0 and "library.states" in err, err
