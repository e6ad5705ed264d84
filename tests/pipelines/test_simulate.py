"""The `simulate` pipeline on the models the shipped configs do not cover, and its options."""

import json

import numpy as np
import pytest
import xarray as xr
from cli_helpers import assert_files_logged_once

from jaxsci.pipelines import load_config, resolve, run_config


def _write(tmp_path, text):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    "name, solver, dt, plot",
    [
        ("LotkaVolterra", "RK4", 0.05, "timeseries.png"),
        ("SIR", "Tsit5", 0.5, "timeseries.png"),
        ("Lorenz96TwoScale", "RK4", 0.005, "hovmoller.png"),
        ("Burgers", "ETDRK2", 0.01, "hovmoller.png"),
    ],
)
def test_models_run_and_plot(name, solver, dt, plot, tmp_path):
    params = "{k: 4, j: 4}" if name == "Lorenz96TwoScale" else "{}"
    cfg = _write(
        tmp_path,
        f"pipeline: simulate\nmodel: {{name: {name}, params: {params}}}\n"
        f"integrate: {{solver: {solver}, dt: {dt}, t1: {10 * dt}}}\n",
    )
    run_dir, metrics = run_config(cfg, tmp_path / "run", echo=False)
    assert (run_dir / plot).is_file()
    assert metrics["n_steps"] == 10 and metrics["n_saves"] == 11 and metrics["finite"]
    assert json.loads((run_dir / "metrics.json").read_text())["model"] == name
    assert_files_logged_once(run_dir)


def test_adaptive_noise_and_save_grid(tmp_path):
    cfg = _write(
        tmp_path,
        "pipeline: simulate\nmodel: {name: Lorenz63}\n"
        "initial_condition: {noise: 0.5, seed: 3}\n"
        "integrate: {solver: Dopri5, adaptive: true, dt: 0.01, t0: 2.0,"
        " t1: 3.0, save_every: 0.25, chunks: 3, spinup: 0.1}\n"
        "plot: {enabled: false}\n",
    )
    run_dir, metrics = run_config(cfg, tmp_path / "run", echo=False)
    data = np.load(run_dir / "trajectory.npz")
    np.testing.assert_allclose(data["ts"], [2.0, 2.25, 2.5, 2.75, 3.0])
    default = np.array([1.509, -1.531, 25.46])
    assert np.abs(data["ys"][0] - default).max() > 0  # perturbed, then spun up
    assert metrics["solver"] == "Dopri5" and metrics["n_steps_spinup"] > 0


def test_adaptive_needs_adaptive_solver(tmp_path):
    cfg = _write(
        tmp_path,
        "pipeline: simulate\nmodel: {name: Lorenz63}\nintegrate: {solver: RK4, adaptive: true}\n",
    )
    with pytest.raises(ValueError, match="integrate.adaptive: needs an adaptive solver"):
        load_config(cfg)


def test_save_every_larger_than_span():
    with pytest.raises(ValueError, match="integrate.save_every: expected <= t1 - t0"):
        resolve(
            {
                "pipeline": "simulate",
                "model": {"name": "SIR"},
                "integrate": {"t1": 1.0, "save_every": 2.0},
            }
        )


def test_netcdf_trajectory_matches_npz(tmp_path):
    """trajectory.nc holds trajectory.npz's times and states under dims (time, x) with the
    PDE's grid points as x, and the model and settings as attributes; `output.netcdf:
    false` writes none."""
    cfg = _write(
        tmp_path,
        "pipeline: simulate\nmodel: {name: Burgers, params: {num_points: 16}}\n"
        "integrate: {solver: ETDRK2, dt: 0.01, t1: 0.05, chunks: 1}\nplot: {enabled: false}\n",
    )
    run_dir, _ = run_config(cfg, tmp_path / "run", echo=False)
    npz = np.load(run_dir / "trajectory.npz")
    with xr.open_dataset(run_dir / "trajectory.nc") as nc:
        assert nc["ys"].dims == ("time", "x")
        np.testing.assert_array_equal(nc["ys"], npz["ys"])
        np.testing.assert_array_equal(nc["time"], npz["ts"])
        length = nc.attrs["model_length"]  # Burgers' default periodic domain [0, 2 pi)
        assert length == pytest.approx(2 * np.pi)
        np.testing.assert_allclose(nc["x"], np.arange(16) * length / 16)
        assert nc.attrs["model"] == "Burgers" and nc.attrs["model_num_points"] == 16
        assert nc.attrs["solver"] == "ETDRK2" and nc.attrs["dt"] == 0.01
        assert json.loads(nc.attrs["config"])["integrate"]["t1"] == 0.05
    run_dir, _ = run_config(cfg, tmp_path / "off", ["output.netcdf=false"], echo=False)
    assert (run_dir / "trajectory.npz").is_file() and not (run_dir / "trajectory.nc").exists()
