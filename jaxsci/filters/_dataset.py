"""`assimilation_dataset`: a twin experiment (`assimilate`) as an `xarray.Dataset`."""

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .._datasets import model_attrs, netcdf_attrs, state_dims, version_attrs
from ..dynamics import AbstractDynamics
from ..observations import AbstractObservation
from ._assimilate import AssimilationResult


def observation_description(obs_op: AbstractObservation) -> str:
    """'IndexObservation: 20 of 40 state components, noise std 1' style words for an
    observation model (its class, sizes and Gaussian error)."""
    std = np.asarray(obs_op.noise.std, dtype=float)
    noise = f"{std[0]:g}" if np.all(std == std[0]) else f"{std.min():g} to {std.max():g}"
    cov = "" if obs_op.diagonal else ", correlated errors"
    return (
        f"{type(obs_op).__name__}: {obs_op.obs_dim} values from a state of dimension "
        f"{obs_op.state_dim}, noise std {noise}{cov}"
    )


def assimilation_dataset(
    result: AssimilationResult,
    obs_op: AbstractObservation,
    model: AbstractDynamics | None = None,
    *,
    seeds: Sequence[int] | None = None,
    attrs: Mapping[str, Any] | None = None,
):
    """A twin experiment (`assimilate`) as an `xarray.Dataset` with named dimensions,
    coordinates and attributes, ready for `Dataset.to_netcdf`.

    Only the completed cycles are kept (all of them unless an `interruptible` run was
    stopped; `result.filter.completed`).

    Dimensions and coordinates:

    - `seed`: when `result` is batched (a `jax.vmap` of `assimilate` over keys, leading
      axis on every field), the seeds `seeds` (default 0..B-1);
    - `time`: the analysis times t_k;
    - the state: `x` with the grid points as coordinates for a semilinear model on a 1-D
      grid, otherwise `state` (0..dim-1);
    - `obs`: the observations, with `obs_op.locations` as coordinate (the observed state
      index for an `IndexObservation`; 0..obs-1 when the observations have no location or
      d-dimensional ones);
    - `member`: the ensemble member, only when `assimilate(..., store_ensembles=True)`
      stored the analysis ensembles.

    Variables: truth, mean_f, mean_a (time, state); observations (time, obs); spread_f,
    spread_a, rmse_f, rmse_a, ess, log_likelihood, diverged_cycles (time); the scalars
    rmse_a_mean, spread_a_mean, diverged, divergence_threshold, climatological_spread; the
    observation-error std obs_noise_std (obs); with stored ensembles, ensemble (time,
    member, state) and log_weights (time, member). Each is per seed when batched.

    Attributes: `jaxsci_version`, `observation` (`observation_description(obs_op)`),
    `divergence_rule`; with a `model`, `model` and `model_<field>` for its numeric
    parameters; `seed` for an unbatched result with one seed; then `attrs` (e.g. the
    filter, dt, the configuration), made storable by netCDF.

    Arguments:
        result: the output of `assimilate`, or of a `jax.vmap` of it over seeds.
        obs_op: the observation model of the run.
        model: the model of the run (state coordinates and parameter attributes).
        seeds: the seeds of a batched result (its `seed` coordinate), or the one seed of an
            unbatched one.
        attrs: further global attributes.

    Returns:
        An `xarray.Dataset`.
    """
    import xarray as xr

    times = np.asarray(result.times)
    if times.ndim not in (1, 2):
        raise ValueError(
            f"`result` has times of shape {times.shape}, expected (time,) or (seed, time) "
            "(one `assimilate` run, or a vmap of it over seeds)."
        )
    batched = times.ndim == 2
    n_batch = times.shape[0] if batched else 1
    if seeds is not None and len(seeds) != n_batch:
        raise ValueError(
            f"`seeds` has {len(seeds)} entries, expected {n_batch} (the "
            f"{'leading axis of `result`' if batched else 'one run of `result`'})."
        )
    completed = np.asarray(result.filter.completed, dtype=bool)
    done = completed.all(axis=0) if batched else completed
    lead: tuple[str, ...] = ("seed",) if batched else ()

    def cycles(x: np.ndarray) -> np.ndarray:  # the completed cycles, on the time axis
        return x[:, done] if batched else x[done]

    dim = int(np.asarray(result.truth).shape[-1])
    grid_shape = (dim,)
    sdims, coords = state_dims(model, grid_shape)
    if len(sdims) != 1:  # a flattened multi-dimensional grid: a plain state index
        sdims, coords = state_dims(None, grid_shape)
    sdim = sdims[0]
    locations = obs_op.locations
    # d-dimensional locations (obs, d) are not a coordinate: the observation index is
    obs_coord = (
        np.asarray(locations)
        if locations is not None and np.ndim(locations) == 1
        else np.arange(obs_op.obs_dim)
    )
    coords["time"] = (
        "time",
        (times[0] if batched else times)[done],
        {"long_name": "analysis time"},
    )
    coords["obs"] = ("obs", obs_coord, {"long_name": "observation location (state index units)"})
    if batched:
        batch = np.arange(n_batch) if seeds is None else np.asarray(seeds)
        coords["seed"] = ("seed", batch, {"long_name": "PRNG seed of the run"})

    f = result.filter
    per_state = {
        "truth": (result.truth, "true state"),
        "mean_f": (f.mean_f, "forecast ensemble mean"),
        "mean_a": (f.mean_a, "analysis ensemble mean"),
    }
    per_cycle = {
        "spread_f": (f.spread_f, "forecast spread: sqrt of the state-averaged variance"),
        "spread_a": (f.spread_a, "analysis spread: sqrt of the state-averaged variance"),
        "rmse_f": (result.rmse_f, "RMS over the state of forecast mean - truth"),
        "rmse_a": (result.rmse_a, "RMS over the state of analysis mean - truth"),
        "ess": (f.ess, "effective sample size before resampling"),
        "log_likelihood": (f.log_likelihood, "log p(y_k | y_1:k-1); NaN: not computed"),
        "diverged_cycles": (
            result.diverged_cycles,
            "non-finite member or rmse_a above divergence_threshold",
        ),
    }
    per_run = {
        "rmse_a_mean": (result.rmse_a_mean, "time-average of rmse_a after the burn-in"),
        "spread_a_mean": (result.spread_a_mean, "time-average of spread_a after the burn-in"),
        "diverged": (result.diverged, "whether the run diverged (divergence_rule)"),
        "divergence_threshold": (result.divergence_threshold, "rmse_a of a diverged run"),
        "climatological_spread": (result.climatological_spread, "spread of the truth"),
    }
    data: dict[str, Any] = {}
    for name, (x, long_name) in per_state.items():
        data[name] = ((*lead, "time", sdim), cycles(np.asarray(x)), {"long_name": long_name})
    data["observations"] = (
        (*lead, "time", "obs"),
        cycles(np.asarray(result.observations)),
        {"long_name": "synthetic observations y_k = h(x_k) + r_k"},
    )
    for name, (x, long_name) in per_cycle.items():
        data[name] = ((*lead, "time"), cycles(np.asarray(x)), {"long_name": long_name})
    for name, (x, long_name) in per_run.items():
        data[name] = (lead, np.asarray(x), {"long_name": long_name})
    data["obs_noise_std"] = (
        ("obs",),
        np.asarray(obs_op.noise.std),
        {"long_name": "observation-error standard deviation"},
    )
    if f.ensembles is not None:
        coords["member"] = (
            "member",
            np.arange(np.asarray(f.ensembles).shape[-2]),
            {"long_name": "ensemble member (particle)"},
        )
        data["ensemble"] = (
            (*lead, "time", "member", sdim),
            cycles(np.asarray(f.ensembles)),
            {"long_name": "analysis ensemble"},
        )
    if f.log_weights is not None:
        data["log_weights"] = (
            (*lead, "time", "member"),
            cycles(np.asarray(f.log_weights)),
            {"long_name": "log-weights of the analysis members (uniform for EnKFs)"},
        )

    global_attrs: dict[str, Any] = {
        **version_attrs(),
        **(model_attrs(model) if model is not None else {}),
        "observation": observation_description(obs_op),
        "divergence_rule": result.divergence_rule,
    }
    if not batched and seeds is not None:
        global_attrs["seed"] = int(seeds[0])
    global_attrs.update(attrs or {})
    return xr.Dataset(data, coords=coords, attrs=netcdf_attrs(global_attrs))
