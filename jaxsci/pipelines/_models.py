"""The model zoo as configs see it: names, and parameter schemas read off the constructors."""

import dataclasses
import functools
import inspect
import re
from collections.abc import Mapping
from typing import Any

from .. import dynamics, spectral
from ._schema import ConfigError, object_record, option, to_dict

#: Config name -> model class. Names are the class names (matched case-insensitively).
MODELS: dict[str, type] = {
    cls.__name__: cls
    for cls in (
        dynamics.Lorenz63,
        dynamics.Lorenz96,
        dynamics.Lorenz96TwoScale,
        dynamics.KuramotoSivashinsky,
        dynamics.Burgers,
        dynamics.NavierStokes2D,
        dynamics.TwoLayerQG,
        dynamics.LotkaVolterra,
        dynamics.SIR,
    )
}

# Ranges the constructors also enforce, stated here so a bad value is reported before any
# model is built, with the range in the message. Keys: parameter names shared across models.
_RANGES: dict[str, dict[str, Any]] = {
    "nu": {"gt": 0.0},
    "length": {"gt": 0.0},
    "num_points": {"ge": 4, "le": spectral.MAX_GRID_POINTS},  # 2-D: the constructor's n^2 bound
    "n": {"ge": 4},
    "k": {"ge": 4},
    "j": {"ge": 1},
    "drag": {"ge": 0.0},
}


def _param_type(param: inspect.Parameter) -> type:
    if param.annotation in (int, float, bool, str):
        return param.annotation
    default = param.default
    if isinstance(default, bool):
        return bool
    if isinstance(default, int):
        return int
    return float


@functools.cache
def params_schema(name: str) -> type:
    """A schema dataclass for the constructor parameters of model `name`.

    Every keyword parameter of `__init__` with a default becomes an optional key of the
    same type (from its annotation, else its default) with that default.
    """
    cls = MODELS[name]
    fields = []
    for param in inspect.signature(cls.__init__).parameters.values():
        if param.name == "self" or param.default is inspect.Parameter.empty:
            continue
        tp = _param_type(param)
        default = tp(param.default)
        fields.append((param.name, tp, option(default, **_RANGES.get(param.name, {}))))
    return dataclasses.make_dataclass(f"{name}Params", fields, frozen=True)


def params_section(siblings: Mapping[str, Any]) -> type:
    """`option(section=...)` hook: the params schema of the model named in `siblings`."""
    return params_schema(siblings["name"])


def build_model(name: str, params: Mapping[str, Any] | Any, key: str = "model.params"):
    """Construct model `name`; a constructor ValueError becomes a ConfigError on its key."""
    kwargs: dict[str, Any] = dict(to_dict(params))  # a validated params section or a dict
    try:
        return MODELS[name](**kwargs)
    except ValueError as err:
        found = re.search(r"`(\w+)`", str(err))
        where = f"{key}.{found.group(1)}" if found and found.group(1) in kwargs else key
        raise ConfigError(where, str(err)) from err


def is_semilinear(model) -> bool:
    return isinstance(model, dynamics.AbstractSemilinear)


def model_option(help: str = "which model and its parameters", **kwargs) -> Any:
    """The `model` option: a section naming a zoo model, or (from Python) a model object."""
    return option(
        help=help + "; from Python, a model object (any AbstractDynamics) instead",
        objects=dynamics.AbstractDynamics,
        **kwargs,
    )


def model_of(model: Any, key: str = "model.params"):
    """The model of a validated `model` value: the object given from Python, or the zoo model
    its section names."""
    if isinstance(model, dynamics.AbstractDynamics):
        return model
    return build_model(model.name, model.params, key)


def model_name(model: Any) -> str:
    """A model value's name: the zoo name of a section, the class name of an object."""
    return type(model).__name__ if isinstance(model, dynamics.AbstractDynamics) else model.name


def model_params(model: Any) -> dict:
    """A model value's parameters for logs and labels: a section's params, an object's scalar
    fields."""
    if isinstance(model, dynamics.AbstractDynamics):
        return object_record(model)["fields"]
    return dict(to_dict(model.params))


def check_default_state(model: Any, key: str = "model") -> None:
    """A ConfigError on `key` when a model object cannot give its initial state (the
    pipelines start from `default_initial_state()`). For objects only: it builds the state,
    and a zoo model's config may ask for a state too large to allocate (the run then fails
    where it would anyway, not the validation)."""
    try:
        model.default_initial_state()
    except NotImplementedError as err:
        raise ConfigError(
            key, f"{err} The pipelines start from it: define `default_initial_state`."
        ) from None
