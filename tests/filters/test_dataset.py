"""`filters.assimilation_dataset`: a twin experiment as named, coordinated netCDF."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import xarray as xr

from jaxsci import dynamics, filters, integrate

_N_CYCLES, _MEMBERS = 6, 4


@pytest.fixture(scope="module")
def run():
    """(model, obs_op, result) of one vmapped twin experiment over seeds 3 and 5 that stored
    its analysis ensembles (one compilation for the whole module)."""
    model = dynamics.Lorenz96(n=8)
    flow = integrate.Flow(model, 0.05)
    obs_op = filters.IndexObservation(8, [1, 3, 5, 7], noise_std=0.5)

    def one(key):
        return filters.assimilate(
            key,
            flow,
            obs_op,
            filters.ETKF(),
            model.default_initial_state(),
            n_cycles=_N_CYCLES,
            dt=0.05,
            ensemble_size=_MEMBERS,
            store_ensembles=True,
        )

    keys = jnp.stack([jax.random.key(s) for s in (3, 5)])
    return model, obs_op, jax.vmap(one)(keys)


def _without_ensembles(result):
    """`result` as `assimilate(..., store_ensembles=False)` returns it: no ensembles."""
    return eqx.tree_at(lambda r: (r.filter.ensembles, r.filter.log_weights), result, (None, None))


def _roundtrip(ds, tmp_path):
    path = tmp_path / "a.nc"
    ds.to_netcdf(path, engine="h5netcdf")
    with xr.open_dataset(path, engine="h5netcdf") as back:
        return back.load()


def test_batched_roundtrip_dims_and_values(run, tmp_path):
    model, obs_op, result = run
    result = _without_ensembles(result)
    ds = filters.assimilation_dataset(result, obs_op, model, seeds=[3, 5], attrs={"dt": 0.05})
    back = _roundtrip(ds, tmp_path)
    assert dict(back.sizes) == {"seed": 2, "time": _N_CYCLES, "state": 8, "obs": 4}
    assert back["truth"].dims == back["mean_a"].dims == ("seed", "time", "state")
    assert back["observations"].dims == ("seed", "time", "obs")
    assert back["rmse_a"].dims == ("seed", "time") and back["rmse_a_mean"].dims == ("seed",)
    np.testing.assert_array_equal(back["seed"].values, [3, 5])
    np.testing.assert_allclose(back["time"].values, 0.05 * np.arange(1, _N_CYCLES + 1), rtol=1e-6)
    np.testing.assert_array_equal(back["obs"].values, [1, 3, 5, 7])  # the observed indices
    np.testing.assert_allclose(back["obs_noise_std"].values, 0.5)
    pairs = {
        "truth": result.truth,
        "observations": result.observations,
        "mean_f": result.filter.mean_f,
        "mean_a": result.filter.mean_a,
        "spread_a": result.filter.spread_a,
        "rmse_f": result.rmse_f,
        "rmse_a": result.rmse_a,
        "rmse_a_mean": result.rmse_a_mean,
        "diverged": result.diverged,
    }
    for name, value in pairs.items():
        np.testing.assert_array_equal(back[name].values, np.asarray(value), err_msg=name)
    # no ensemble unless the run stored it
    assert "member" not in back.dims and "ensemble" not in back and "log_weights" not in back
    assert back.attrs["model"] == "Lorenz96" and back.attrs["model_forcing"] == 8.0
    assert back.attrs["observation"] == (
        "IndexObservation: 4 values from a state of dimension 8, noise std 0.5"
    )
    assert "climatological spread" in back.attrs["divergence_rule"] and back.attrs["dt"] == 0.05


def test_stored_ensembles_and_one_run(run, tmp_path):
    model, obs_op, result = run
    one = jax.tree_util.tree_map(lambda x: x[1], result)
    back = _roundtrip(filters.assimilation_dataset(one, obs_op, model, seeds=[5]), tmp_path)
    assert back["ensemble"].dims == ("time", "member", "state")
    assert back["log_weights"].dims == ("time", "member")
    np.testing.assert_array_equal(back["member"].values, np.arange(_MEMBERS))
    np.testing.assert_array_equal(back["ensemble"].values, np.asarray(one.filter.ensembles))
    # the stored ensemble's mean is the analysis mean (ETKF: equal weights)
    np.testing.assert_allclose(back["ensemble"].mean("member"), back["mean_a"], atol=1e-5)
    assert back.attrs["seed"] == 5 and "seed" not in back.dims


def test_only_completed_cycles_and_bad_seeds(run):
    model, obs_op, result = run
    done = jnp.arange(_N_CYCLES) < 4  # an interrupted run: 4 cycles ran
    cut = eqx.tree_at(lambda r: r.filter.completed, result, jnp.stack([done, done]))
    ds = filters.assimilation_dataset(cut, obs_op, model)
    assert ds.sizes["time"] == 4 and ds["ensemble"].shape == (2, 4, _MEMBERS, 8)
    np.testing.assert_array_equal(ds["seed"].values, [0, 1])
    np.testing.assert_array_equal(ds["truth"].values, np.asarray(result.truth)[:, :4])
    with pytest.raises(ValueError, match="`seeds` has 1 entries, expected 2"):
        filters.assimilation_dataset(result, obs_op, model, seeds=[0])


def test_grid_model_state_is_x(run):
    # The coordinates come from the model, the values from the result: a periodic grid of 8
    # points (KS on [0, 22)) paired with the 8-variable run.
    _, obs_op, result = run
    model = dynamics.KuramotoSivashinsky(num_points=8)
    ds = filters.assimilation_dataset(result, obs_op, model)
    assert ds["truth"].dims == ("seed", "time", "x")
    np.testing.assert_allclose(ds["x"].values, np.arange(8) * 22.0 / 8)
    assert ds.attrs["model"] == "KuramotoSivashinsky" and ds.attrs["model_length"] == 22.0
