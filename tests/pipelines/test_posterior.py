"""The `posterior` pipeline: both shipped configs run (short), metrics, outputs, bad keys."""

import json
from pathlib import Path

import arviz as az
import numpy as np
import pytest
import yaml
from cli_helpers import run_cli

from jaxsci import inference
from jaxsci.pipelines import PIPELINES

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = sorted(
    p
    for p in (ROOT / "configs").glob("*.yaml")
    if yaml.safe_load(p.read_text()).get("pipeline") == "posterior"
)
METRIC_KEYS = {
    "mean",
    "sd",
    "rhat_max",
    "ess_bulk_min",
    "ess_tail_min",
    "divergences",
    "grad_evals",
    "seconds",
    "warnings",
}
# Short runs of 150 warmup + 100 draws. LV keeps 4 chains and the tree-depth cap of
# tests/inference/test_lotka_volterra.py, so that one process compiles its sampler once.
_FAST = {
    "lotka_volterra_nuts": ["sampler.num_chains=4", "sampler.max_tree_depth=6"],
    "lorenz63_posterior": [
        "sampler.num_chains=2",
        "problem.settings.num_obs=10",
        "plot.enabled=false",  # the plot code is shared with the LV run
    ],
}
_COMMON = ["sampler.num_warmup=150", "sampler.num_samples=100"]


def test_shipped_posterior_configs():
    assert {p.stem for p in CONFIGS} == set(_FAST)
    assert "posterior" in PIPELINES


@pytest.mark.slow
@pytest.mark.parametrize("config", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_config_runs(config, tmp_path, capsys):
    out = tmp_path / "run"
    sets = _COMMON + _FAST[config.stem]
    code, stdout, err = run_cli(
        capsys, "run", config, "--out", out, "--quiet", *[a for s in sets for a in ("--set", s)]
    )
    assert code == 0, err
    assert "rhat_max" in stdout
    metrics = json.loads((out / "metrics.json").read_text())
    assert METRIC_KEYS <= set(metrics)
    names = set(metrics["mean"])
    assert set(metrics["sd"]) == names
    assert isinstance(metrics["divergences"], int) and metrics["grad_evals"] > 0
    assert metrics["seconds"] > 0 and np.isfinite(metrics["rhat_max"])
    idata = az.from_netcdf(out / "posterior.nc")
    assert {"posterior", "sample_stats", "posterior_predictive", "observed_data"} <= set(
        idata.groups()
    )
    assert idata.posterior.sizes["draw"] == 100
    assert {"diverging", "tree_depth", "step_size", "acceptance_rate", "n_steps"} <= set(
        idata.sample_stats.data_vars
    )
    assert idata.posterior_predictive["y"].shape[2:] == idata.observed_data["y"].shape
    for png in ("trace.png", "pair.png", "posterior_predictive.png"):
        if config.stem == "lotka_volterra_nuts":
            assert (out / png).stat().st_size > 10_000, png
        else:
            assert not (out / png).exists()
    assert "rhat" in (out / "summary.txt").read_text()
    # every failed check is in metrics.json, run.log and the printed table
    log = (out / "run.log").read_text()
    for kind, text in metrics["warnings"].items():
        assert text in log and f"warnings.{kind}" in stdout, (kind, text)
    if config.stem == "lotka_volterra_nuts":
        ref = inference.posteriordb_reference()
        assert names == set(ref)  # posteriordb's names: theta[1], ..., sigma[2]
        # a short run: the means are within half a reference sd (the full rule is in
        # tests/inference/test_lotka_volterra.py)
        assert metrics["posteriordb"]["max_abs_z"] < 0.5, metrics["posteriordb"]
    else:
        assert names == {"sigma", "rho", "beta"}
        assert all(metrics["truth_in_90"].values()), metrics


@pytest.mark.slow
def test_poor_run_says_what_to_change(tmp_path, capsys):
    """A run far too short to converge: its metrics, run.log and table say what to change.
    2 chains x 20 draws have ESS <= 40 log10(40) < 64 (the ESS bound) < 200 (100 per chain):
    the ESS check fails by construction."""
    out = tmp_path / "run"
    sets = [*_FAST["lorenz63_posterior"], "sampler.num_warmup=20", "sampler.num_samples=20"]
    code, stdout, err = run_cli(
        capsys,
        "run",
        ROOT / "configs" / "lorenz63_posterior.yaml",
        "--out",
        out,
        "--quiet",
        *[a for s in sets for a in ("--set", s)],
    )
    assert code == 0, err
    warnings = json.loads((out / "metrics.json").read_text())["warnings"]
    assert "< 200 (100 per chain)" in warnings["ess"]
    assert "Draw more: about num_samples" in warnings["ess"]
    log = (out / "run.log").read_text()
    for kind, text in warnings.items():
        assert f"WARNING jaxsci.pipelines.posterior: {text}" in log, (kind, text)
        assert f"warnings.{kind}" in stdout, (kind, stdout)


def _dry(capsys, *sets, config="lotka_volterra_nuts.yaml"):
    return run_cli(
        capsys,
        "run",
        ROOT / "configs" / config,
        "--dry-run",
        *[a for s in sets for a in ("--set", s)],
    )


@pytest.mark.parametrize(
    "override, key, expected",
    [
        ("sampler.num_chains=0", "sampler.num_chains", ">= 1"),
        ("sampler.backend=gibbs", "sampler.backend", "numpyro_nuts"),
        ("sampler.init=median", "sampler.init", "prior_median"),
        ("sampler.num_integration_steps=8", "sampler.num_integration_steps", "only by backend"),
        ("sampler.num_chainz=2", "sampler.num_chainz", "did you mean 'sampler.num_chains'"),
        ("solver.sensitivity=reverse", "solver.sensitivity", "recursive_checkpoint"),
        ("solver.rtol=0", "solver.rtol", "> 0"),
        ("solver.dt=0.1", "solver.dt", "only by method 'rk4'"),
        ("solver.method=euler", "solver.method", "rk4"),
        ("problem.name=sir", "problem.name", "lotka_volterra"),
        ("problem.settings.sigma=3", "problem.settings.sigma", "unknown key"),
    ],
)
def test_bad_override_fails_naming_key(override, key, expected, capsys):
    code, _, err = _dry(capsys, override)
    assert code == 2
    assert f"{key}:" in err and expected in err, err


@pytest.mark.parametrize(
    "override, key, expected",
    [
        ("problem.settings.observed=[0, 3]", "problem.settings.observed", "[0, 3)"),
        ("problem.settings.prior_loc=[1, 2]", "problem.settings.prior_loc", "3 positive"),
        ("problem.settings.noise_std=0", "problem.settings.noise_std", "> 0"),
    ],
)
def test_bad_lorenz63_settings(override, key, expected, capsys):
    code, _, err = _dry(capsys, override, config="lorenz63_posterior.yaml")
    assert code == 2
    assert f"{key}:" in err and expected in err, err
