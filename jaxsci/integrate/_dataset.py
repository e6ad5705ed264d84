"""`trajectory_dataset`: a trajectory (or an ensemble of them) as an `xarray.Dataset`."""

from collections.abc import Mapping
from typing import Any

import numpy as np

from .._checks import check_ndim, check_shape
from .._custom_types import ArrayLike, Float
from .._datasets import model_attrs, netcdf_attrs, state_dims, version_attrs
from ..dynamics import AbstractDynamics


def trajectory_dataset(
    ts: Float[ArrayLike, " time"],
    ys: Float[ArrayLike, "..."],
    model: AbstractDynamics | None = None,
    *,
    members: bool = False,
    name: str = "ys",
    attrs: Mapping[str, Any] | None = None,
):
    """A trajectory as an `xarray.Dataset` with named dimensions, coordinates and attributes,
    ready for `Dataset.to_netcdf` (e.g. the `ts`, `ys` of `simulate` or `simulate_chunked`).

    Dimensions and coordinates:

    - `time`: the save times `ts`;
    - `member` (with `members=True`): the ensemble member 0..N-1 (a leading axis of `ys`,
      e.g. trajectories of `jaxsci.integrate.ensemble`);
    - the state: for a semilinear model (a spectral PDE) the axes of its periodic grid,
      `x` (and `y`, `z`), with the grid points x_j = j length / n as coordinates; otherwise
      `state` (a vector state, coordinate 0..dim-1) or `state_0`, `state_1`, ...

    Attributes: `jaxsci_version`; with a `model`, `model` (its class name) and
    `model_<field>` for each parameter that is a number or a small array (the physical
    parameters, grid size and length); then `attrs` (e.g. solver, step size, seed), made
    storable by netCDF (booleans 0/1, None 'None', mappings and lists of strings as JSON).

    Arguments:
        ts: save times, (time,).
        ys: states at `ts`, (time, *state), or (member, time, *state) with `members`.
        model: the model that produced `ys` (its state shape is checked against `ys`);
            None: a generic state without grid coordinates or model attributes.
        members: whether `ys` has a leading ensemble-member axis.
        name: the name of the state variable (default `ys`, as in `trajectory.npz`); not
            one of the dimension names.
        attrs: further global attributes.

    Returns:
        An `xarray.Dataset` with the variable `name` over (member,) time, *state.
    """
    import xarray as xr

    ts_np = np.asarray(ts)
    ys_np = np.asarray(ys)
    check_ndim("ts", ts_np, 1)
    lead = 2 if members else 1
    if ys_np.ndim < lead + 1:
        raise ValueError(
            f"`ys` has shape {ys_np.shape}, expected "
            f"{'(member, time, *state)' if members else '(time, *state)'}."
        )
    state_shape = tuple(ys_np.shape[lead:])
    if model is not None:
        state_shape = tuple(model.state_shape)
        want = "(member, time, *state)" if members else "(time, *state)"
        check_shape(
            "ys",
            ys_np,
            (*(None,) * (lead - 1), ts_np.shape[0], *state_shape),
            f"{want} with time = {ts_np.shape[0]} (ts) and state = {state_shape} "
            f"({type(model).__name__}.state_shape)",
        )
    elif ys_np.shape[lead - 1] != ts_np.shape[0]:
        raise ValueError(
            f"`ys` has {ys_np.shape[lead - 1]} times on axis {lead - 1}, but `ts` has "
            f"{ts_np.shape[0]}."
        )
    dims, coords = state_dims(model, state_shape)
    lead_dims = ("member", "time") if members else ("time",)
    if name in (*lead_dims, *dims):
        raise ValueError(
            f"`name` = {name!r} is one of the dataset's dimensions {(*lead_dims, *dims)}; "
            "choose another name for the state variable."
        )
    coords = {**coords, "time": ("time", ts_np, {"long_name": "model time"})}
    if members:
        coords["member"] = ("member", np.arange(ys_np.shape[0]), {"long_name": "ensemble member"})
    data = {name: ((*lead_dims, *dims), ys_np, {"long_name": "model state"})}
    global_attrs = {**version_attrs(), **(model_attrs(model) if model is not None else {})}
    global_attrs.update(attrs or {})
    return xr.Dataset(data, coords=coords, attrs=netcdf_attrs(global_attrs))
