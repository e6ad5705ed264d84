"""The `l96_closure` pipeline: the shipped config validates, a CI-sized run writes its
metrics, arrays, model and plots with sane numbers, bad configs fail by key. The full-size
study (the issue's must-show) is `benchmarks/bench_l96_closure.py`, its numbers in
benchmarks/RESULTS_nn.md; `tests/nn/test_local_closure.py` has the CI-short study."""

import json
from pathlib import Path

import equinox as eqx
import jax
import numpy as np
import pytest
from cli_helpers import run_cli

from jaxsci import nn
from jaxsci.dynamics import Lorenz96
from jaxsci.pipelines import ConfigError, load_config
from jaxsci.pipelines._l96_closure import MODELS

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "configs" / "l96_closure.yaml"
SMALL = [
    "truth.k=12",
    "truth.j=4",
    "truth.spinup=2",
    "observations.train=160",
    "observations.test=60",
    "filter.burn_in=10",
    "training.steps=20",
    "training.batch_size=4",
    "oracle.steps=200",
    "polynomial.passes=2",
    "forecast.count=3",
    "forecast.horizon=3",
    "forecast.lyapunov_intervals=20",
    "closure.width=4",
]


def test_shipped_config_validates_and_bad_keys_fail_by_name():
    _, config = load_config(CONFIG)
    assert config.truth.k == 36 and config.observations.noise == 1.0
    for override, key in (
        (["observations.interval=0.0512"], "observations.interval"),
        (["training.burn_in=20"], "training.burn_in"),
        (["filter.burn_in=300"], "filter.burn_in"),
        (["observations.every_kth=36"], "observations.every_kth"),
        (["filter.inflation=1.0"], "filter.inflation"),  # the trained inflation starts > 1
        # starts 1, 11, 21: none after cycle 21 (a check after the simulation before)
        (["observations.train=42", "training.skip=21"], "training.skip"),
        (["closure.radius=18"], "closure.radius"),
    ):
        with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
            load_config(CONFIG, override)


@pytest.mark.slow
def test_ci_sized_run_writes_a_complete_sane_study(capsys, tmp_path):
    out = tmp_path / "run"
    code, _, err = run_cli(
        capsys,
        "run",
        str(CONFIG),
        "--out",
        str(out),
        "--quiet",
        *[a for s in SMALL for a in ("--set", s)],
    )
    assert code == 0, err
    metrics = json.loads((out / "metrics.json").read_text())
    diag = json.loads((out / "diagnostics.json").read_text())
    horizon = diag["valid_time_censored_at"]
    assert 3.0 <= horizon < 3.2  # forecast.horizon = 3, rounded up to whole cycles
    for name in MODELS:
        assert 0.0 < metrics[f"rmse_a_{name}"] < 3.0  # below the climatological std ~3.5
        assert 0.0 < metrics[f"valid_time_{name}"] <= horizon
    # the oracle closure knows the truth's subgrid tendency: it must beat no closure
    assert metrics["valid_time_oracle"] > metrics["valid_time_none"]
    assert set(diag["seconds"]) >= {"simulation", "learned", "oracle", "polynomial", "evaluation"}
    assert diag["learned_inflation"] > 1.0
    arrays = np.load(out / "closure.npz")
    assert arrays["forecast_error_learned"].shape[0] == 3
    assert arrays["test_slow"].shape == (60, 12)
    for png in ("closure", "forecast_error", "rmse_a", "training"):
        assert (out / f"{png}.png").stat().st_size > 10_000
    # the saved learned model reloads into the same architecture and is the one scored
    like = nn.HybridVectorField(
        Lorenz96(12, 10.0),
        nn.LocalMLP(0, 4, 2, zero_init=True, key=jax.random.key(0)),
    )
    model = eqx.tree_deserialise_leaves(out / "closure_learned.eqx", like)
    closure = np.asarray(jax.vmap(model.closure)(arrays["test_slow"]))
    np.testing.assert_allclose(closure, arrays["closure_learned"], rtol=1e-5, atol=1e-6)
