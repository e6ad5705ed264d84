"""Shared pieces of the xarray datasets of jaxsci's results (`integrate.trajectory_dataset`,
`filters.assimilation_dataset`): the named dimensions and coordinates of a model's state, a
model's parameters as attributes, and attributes as netCDF stores them.

xarray is imported by the callers when they run (like arviz in `to_arviz`), so importing
jaxsci does not import xarray and pandas.
"""

import dataclasses
import json
from collections.abc import Mapping, Sequence
from numbers import Number
from typing import Any

import jax
import numpy as np

from ._checks import is_concrete
from .dynamics import AbstractDynamics, AbstractSemilinear

#: The names of the axes of a periodic grid of 1, 2 or 3 dimensions.
GRID_DIMS = ("x", "y", "z")
# Array parameters larger than this are left out of the attributes (a field, not a number).
_MAX_ATTR_SIZE = 64


def state_dims(
    model: AbstractDynamics | None, state_shape: tuple[int, ...]
) -> tuple[tuple[str, ...], dict[str, Any]]:
    """(dims, coords) of a state of `state_shape`: the grid axes x, y, z of a semilinear
    model whose grid has that shape (coordinates x_j = j length / n, the grid points);
    otherwise `state` (a vector, coordinate 0..dim-1) or `state_0`, `state_1`, ..."""
    if isinstance(model, AbstractSemilinear) and tuple(model.grid.shape) == tuple(state_shape):
        grid = model.grid
        if grid.ndim <= len(GRID_DIMS):
            dims = GRID_DIMS[: grid.ndim]
            coords = {
                d: (
                    d,
                    np.arange(n) * grid.length / n,
                    {"long_name": f"grid point on the periodic axis [0, {grid.length:g})"},
                )
                for d, n in zip(dims, grid.shape, strict=True)
            }
            return dims, coords
    if len(state_shape) == 1:
        dims = ("state",)
    else:
        dims = tuple(f"state_{i}" for i in range(len(state_shape)))
    coords = {
        d: (d, np.arange(n), {"long_name": "state component index"})
        for d, n in zip(dims, state_shape, strict=True)
    }
    return dims, coords


def model_attrs(model: AbstractDynamics) -> dict[str, Any]:
    """`model`: its class name; `model_<field>`: each field that is a number or a small
    concrete array (the physical parameters, grid sizes and lengths). Other fields (a
    wrapped model, a large array) are left out."""
    attrs: dict[str, Any] = {"model": type(model).__name__}
    for field in dataclasses.fields(model):
        value = getattr(model, field.name)
        if isinstance(value, bool | Number | str):
            attrs[f"model_{field.name}"] = value
        elif isinstance(value, jax.Array | np.ndarray | np.generic) and is_concrete(value):
            array = np.asarray(value)
            if array.dtype.kind in "biuf" and array.size <= _MAX_ATTR_SIZE:
                attrs[f"model_{field.name}"] = array.item() if array.ndim == 0 else array
    return attrs


def netcdf_attrs(attrs: Mapping[str, Any]) -> dict[str, Any]:
    """`attrs` as netCDF stores them (strings, numbers, 1-D numeric arrays): booleans
    become 0/1, None 'None', mappings and non-numeric sequences JSON text, multi-dimensional
    arrays are flattened, anything else is its `str`."""
    out: dict[str, Any] = {}
    for key, value in attrs.items():
        out[str(key)] = _netcdf_value(value)
    return out


def _netcdf_value(value: Any) -> Any:
    if isinstance(value, bool | np.bool_):
        return int(value)
    if value is None:
        return "None"
    if isinstance(value, str | Number | np.number):
        return value
    if isinstance(value, Mapping):
        return json.dumps(value, default=str)
    if isinstance(value, np.ndarray | Sequence):
        array = np.asarray(value) if _numeric(value) else None
        if array is not None:
            return (array.astype(int) if array.dtype == bool else array).ravel()
        return json.dumps(value, default=str) if isinstance(value, Sequence) else str(value)
    return str(value)


def _numeric(value: Any) -> bool:
    try:
        return np.asarray(value).dtype.kind in "biuf"
    except (TypeError, ValueError):  # a ragged or mixed sequence
        return False


def version_attrs() -> dict[str, str]:
    """`jaxsci_version`: the version that wrote the dataset."""
    from . import __version__

    return {"jaxsci_version": __version__}
