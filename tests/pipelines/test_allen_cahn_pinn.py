"""The `allen_cahn_pinn` pipeline through the CLI: a tiny run writes every output and its
errors are recomputed from the saved arrays; a bad key fails by name; (slow) at a small
budget the causal PINN beats the plain one."""

import json
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import run_cli

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "configs/allen_cahn_pinn.yaml"
TINY = [
    "reference.num_points=64",
    "reference.num_times=11",
    "reference.dt=0.01",
    "model.harmonics=2",
    "model.width=8",
    "model.depth=1",
    "training.epsilons=[1.0, 10.0]",
    "training.steps_per_stage=5",
    "training.num_slabs=4",
    "training.pool=16",
    "training.batch_size=4",
    "plot.enabled=false",
]


def _args(settings):
    return [a for s in settings for a in ("--set", s)]


def _check_errors(out):
    m = json.loads((out / "metrics.json").read_text())
    a = np.load(out / "allen_cahn_pinn.npz")
    ref = a["reference"]
    for method in ("causal", "plain"):
        err = np.linalg.norm(a[f"{method}_prediction"] - ref) / np.linalg.norm(ref)
        assert m[method]["rel_l2"] == pytest.approx(err, rel=1e-4)
        assert m[method]["train_seconds"] > 0
    # the reference starts at u0 = x^2 cos(pi x) on [-1, 1)
    x = a["x"]
    np.testing.assert_allclose(ref[0], x**2 * np.cos(np.pi * x), atol=1e-6)
    return m, a


@pytest.mark.slow
def test_tiny_run_writes_every_output(tmp_path, capsys):
    out = tmp_path / "run"
    code, _, err = run_cli(capsys, "run", CONFIG, "--out", out, "--quiet", *_args(TINY))
    assert code == 0, err
    m, a = _check_errors(out)
    assert len(m["causal"]["rel_l2_by_stage"]) == 2 and m["causal"]["steps"] == 10
    assert a["causal_weights"].shape == (2, 4)
    assert a["causal_min_weight"].shape == (10,)
    # the first slab's weight is 1 by definition, later ones are in (0, 1]
    assert np.all(a["causal_weights"][:, 0] == 1.0)
    assert np.all((a["causal_weights"] > 0) & (a["causal_weights"] <= 1))


def test_config_errors_name_the_key(tmp_path, capsys):
    code, _, err = run_cli(
        capsys, "run", CONFIG, "--out", tmp_path / "r", "--set", "training.epsilon=1.0"
    )
    assert code != 0 and "training.epsilon" in err
    code, _, err = run_cli(
        capsys, "run", CONFIG, "--out", tmp_path / "r2", "--set", "training.batch_size=9999"
    )
    assert code != 0 and "training.batch_size" in err
