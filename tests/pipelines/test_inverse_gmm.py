"""The `inverse_gmm` pipeline through the CLI with small settings: outputs, metrics against
the exact posterior (computed here independently of the pipeline's own numbers), bad keys."""

import json
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import run_cli

from jaxsci.pipelines import PIPELINES

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "configs/inverse_gmm.yaml"


@pytest.mark.slow
def test_inverse_gmm_runs_and_reports(tmp_path, capsys):
    out = tmp_path / "run"
    sets = [
        "smc.particles=[16, 128]",
        "smc.repeats=4",
        "diffusion.steps=8",
        "dps.zeta=[1.0]",
        "dps.num_samples=128",
        "plot.max_points=100",
    ]
    code, stdout, err = run_cli(
        capsys, "run", CONFIG, "--out", out, "--quiet", *[a for s in sets for a in ("--set", s)]
    )
    assert code == 0, err
    assert "error_mean" in stdout
    m = json.loads((out / "metrics.json").read_text())
    assert set(m["error_mean"]) == {"smc_16", "smc_128", "dps_zeta=1"}
    assert set(m["w1"]) == set(m["error_mean"]) == set(m["error_mean_se"])
    assert set(m["smc"]) == {"16", "128"} and set(m["w1_exact_draws"]) == {"16", "128"}
    for n in ("16", "128"):
        diag = m["smc"][n]
        assert diag["collapsed_runs"] == 0
        assert 1.0 <= diag["min_ess_median"] <= int(n)
        assert np.isfinite(diag["log_normalizer_mean"])
    assert all(np.isfinite(v) and v >= 0 for v in m["error_mean"].values())
    # The exact posterior of this config, by hand: components (-2, 2) and (2, -2) give
    # A mu = 0, S = A V A^T + R = 0.6 + 0.25, so their weights are 0.2 : 0.1 up to the
    # tiny weights of (+-2, +-2) (A mu = +-4); the posterior mean is the mixture of
    # mu_k + V A^T (y - A mu_k) / S.
    w = np.array(m["exact"]["weights"])
    np.testing.assert_allclose(w[2] / w[3], 2.0, rtol=1e-5)
    gain = 0.3 * 0.3 / 0.85
    mean = (w[2] * (np.array([-2.0, 2.0]) + gain) + w[3] * (np.array([2.0, -2.0]) + gain)) / (
        w[2] + w[3]
    )
    np.testing.assert_allclose(m["exact"]["mean"], mean, atol=2e-3)
    for png in ("samples.png", "error_vs_particles.png"):
        assert (out / png).stat().st_size > 10_000, png
    samples = np.load(out / "samples.npz")
    assert samples["smc"].shape == (128, 2) and samples["dps_zeta=1"].shape == (128, 2)
    assert (out / "config.yaml").is_file()


def test_inverse_gmm_config_errors(capsys):
    assert "inverse_gmm" in PIPELINES
    for bad, key in (
        ("observation.matrix=[[1.0, 1.0, 1.0]]", "observation.matrix"),
        ("observation.y=[0.3, 0.1]", "observation.y"),
        ("observation.noise_std=0", "observation.noise_std"),
        ("smc.particles=[64, 16]", "smc.particles"),
        ("smc.particles=[0, 16]", "smc.particles[0]"),
        ("smc.twist_variance=tweedie", "smc.twist_variance"),
        ("dps.zeta=[-1.0]", "dps.zeta[0]"),
        ("diffusion.eta=0", "diffusion.eta"),
        ("prior.variances=[[0.3, 0.3]]", "prior.variances"),
    ):
        code, _, err = run_cli(capsys, "run", CONFIG, "--set", bad, "--out", "/nonexistent/x")
        assert code != 0, bad
        assert key in err, (bad, err)
