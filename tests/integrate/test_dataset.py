"""`integrate.trajectory_dataset`: named dims, coordinates, attributes, a netCDF round trip."""

import jax.numpy as jnp
import numpy as np
import pytest
import xarray as xr

from jaxsci import dynamics, integrate


def _roundtrip(ds, tmp_path):
    path = tmp_path / "t.nc"
    ds.to_netcdf(path, engine="h5netcdf")
    with xr.open_dataset(path, engine="h5netcdf") as back:
        return back.load()


@pytest.mark.slow
def test_ode_trajectory_roundtrip(tmp_path):
    model = dynamics.Lorenz63()
    ts = jnp.linspace(0.0, 0.2, 5)
    traj = integrate.simulate(
        model, model.default_initial_state(), ts, solver=integrate.RK4(), dt0=0.01
    )
    attrs = {"solver": "RK4", "adaptive": False, "tol": None, "config": {"dt": 0.01}}
    ds = integrate.trajectory_dataset(traj.ts, traj.ys, model, attrs=attrs)
    back = _roundtrip(ds, tmp_path)
    assert back["ys"].dims == ("time", "state")
    np.testing.assert_array_equal(back["ys"].values, np.asarray(traj.ys))
    assert back["ys"].dtype == np.float32  # stored as computed (float32 default)
    np.testing.assert_array_equal(back["time"].values, np.asarray(traj.ts))
    np.testing.assert_array_equal(back["state"].values, [0, 1, 2])
    assert "member" not in back.dims
    # Lorenz (1963)'s parameters, the model's defaults, as attributes
    assert back.attrs["model"] == "Lorenz63"
    assert back.attrs["model_sigma"] == pytest.approx(10.0)
    assert back.attrs["model_rho"] == pytest.approx(28.0)
    assert back.attrs["model_beta"] == pytest.approx(8.0 / 3.0)
    assert back.attrs["jaxsci_version"]
    # attributes netCDF cannot hold as such: bool -> 0/1, None -> 'None', a mapping -> JSON
    assert back.attrs["adaptive"] == 0 and back.attrs["tol"] == "None"
    assert back.attrs["config"] == '{"dt": 0.01}' and back.attrs["solver"] == "RK4"


def test_pde_grid_coordinates(tmp_path):
    model = dynamics.KuramotoSivashinsky(num_points=16)
    ts = np.arange(3) * 0.5
    ys = np.random.default_rng(0).normal(size=(3, 16)).astype(np.float32)
    back = _roundtrip(integrate.trajectory_dataset(ts, ys, model), tmp_path)
    assert back["ys"].dims == ("time", "x")
    # the grid points x_j = j L / n of the periodic domain [0, L), L = 22 (the default)
    np.testing.assert_allclose(back["x"].values, np.arange(16) * 22.0 / 16)
    np.testing.assert_allclose(back["x"].values, model.grid.coordinates()[0])
    assert back.attrs["model_num_points"] == 16 and back.attrs["model_length"] == 22.0


def test_2d_grid_and_members():
    model = dynamics.NavierStokes2D(num_points=8)
    ys = np.zeros((2, 4, 8, 8), np.float32)
    ds = integrate.trajectory_dataset(np.arange(4.0), ys, model, members=True, name="w")
    assert ds["w"].dims == ("member", "time", "x", "y")
    np.testing.assert_array_equal(ds["member"].values, [0, 1])
    np.testing.assert_allclose(ds["y"].values, ds["x"].values)  # the grid coordinates
    # the default variable name `ys` never meets a grid axis (it used to be `y`: a clash)
    default = integrate.trajectory_dataset(np.arange(4.0), ys[0], model)
    assert default["ys"].dims == ("time", "x", "y")
    with pytest.raises(ValueError, match="`name` = 'y' is one of the dataset's dimensions"):
        integrate.trajectory_dataset(np.arange(4.0), ys[0], model, name="y")
    # no model: generic state axes
    plain = integrate.trajectory_dataset(np.arange(4.0), ys[0])
    assert plain["ys"].dims == ("time", "state_0", "state_1") and "model" not in plain.attrs


def test_bad_shapes_name_the_argument():
    model = dynamics.Lorenz63()
    with pytest.raises(ValueError, match="`ys` has shape"):
        integrate.trajectory_dataset(np.arange(3.0), np.zeros((3, 4)), model)
    with pytest.raises(ValueError, match="`ys` has shape"):
        integrate.trajectory_dataset(np.arange(4.0), np.zeros((3, 3)), model)
    with pytest.raises(ValueError, match="`ys` has 3 times"):
        integrate.trajectory_dataset(np.arange(4.0), np.zeros((3, 3)))
