"""The declarative config schema: defaults, conversion, ranges, choices, unknown keys."""

import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp
import pytest

from jaxsci.pipelines import ConfigError, describe, option, section, to_dict, validate
from jaxsci.pipelines._models import MODELS, build_model, params_schema


@dataclasses.dataclass(frozen=True)
class Inner:
    rate: float = option(0.5, gt=0.0, le=1.0)
    name: str = option("a", choices=("Alpha", "Beta", "a"))
    sizes: list[int] = option(factory=lambda: [1, 2])

    def __post_init__(self):
        if self.name == "Beta" and self.rate > 0.9:
            raise ConfigError("rate", "Beta needs rate <= 0.9")


def _pick(siblings):
    return Inner if siblings["kind"] == "inner" else Other


@dataclasses.dataclass(frozen=True)
class Other:
    flag: bool = False


@dataclasses.dataclass(frozen=True)
class Top:
    steps: int = option(help="required")
    inner: Inner = section(Inner)
    maybe: Inner | None = None
    kind: str = option("inner", choices=("inner", "other"))
    dynamic: object = option(factory=dict, section=_pick)


def test_defaults_filled_and_roundtrip():
    config = validate(Top, {"steps": 3})
    assert config.inner == Inner() and config.maybe is None and config.dynamic == Inner()
    plain = to_dict(config)
    assert plain["inner"] == {"rate": 0.5, "name": "a", "sizes": [1, 2]}
    assert validate(Top, plain) == config


def test_conversions():
    config = validate(Top, {"steps": 4.0, "inner": {"rate": "1e-3", "name": "alpha"}})
    assert config.steps == 4 and isinstance(config.steps, int)
    assert config.inner.rate == 1e-3  # YAML 1.1 reads 1e-3 as a string
    assert config.inner.name == "Alpha"  # case-insensitive, canonical spelling
    assert validate(Top, {"steps": 1, "maybe": {}}).maybe == Inner()


@pytest.mark.parametrize(
    "raw, key, message",
    [
        ({}, "steps", "required key is missing (int)"),
        ({"steps": 1.5}, "steps", "expected int"),
        ({"steps": True}, "steps", "expected int"),
        ({"steps": 1, "stepz": 2}, "stepz", "did you mean 'steps'"),
        ({"steps": 1, "inner": {"rat": 0.1}}, "inner.rat", "did you mean 'inner.rate'"),
        ({"steps": 1, "inner": {"rate": 0}}, "inner.rate", "expected a number > 0.0"),
        ({"steps": 1, "inner": {"rate": 2}}, "inner.rate", "expected a number <= 1.0"),
        ({"steps": 1, "inner": {"rate": float("nan")}}, "inner.rate", "finite"),
        ({"steps": 1, "inner": {"name": "Gamma"}}, "inner.name", "expected one of"),
        ({"steps": 1, "inner": {"sizes": [1, "x"]}}, "inner.sizes[1]", "expected int"),
        ({"steps": 1, "inner": {"sizes": 3}}, "inner.sizes", "a list of int"),
        ({"steps": 1, "inner": 7}, "inner", "expected a mapping"),
        ({"steps": 1, "inner": {"name": "Beta", "rate": 1.0}}, "inner.rate", "Beta needs"),
        ({"steps": 1, "maybe": {"rate": -1}}, "maybe.rate", "> 0.0"),
        ({"steps": 1, "kind": "other", "dynamic": {"rate": 1}}, "dynamic.rate", "unknown key"),
        ({"steps": 1, "kind": "other", "dynamic": {"flag": 1}}, "dynamic.flag", "expected bool"),
    ],
)
def test_errors_name_the_dotted_key(raw, key, message):
    with pytest.raises(ConfigError) as info:
        validate(Top, raw)
    assert info.value.key == key
    assert message in info.value.message
    assert str(info.value).startswith(f"{key}: ")


def test_unknown_key_lists_valid_keys():
    with pytest.raises(ConfigError, match="valid keys in 'inner': rate, name, sizes"):
        validate(Top, {"steps": 1, "inner": {"zzz": 1}})


def test_describe_lists_keys():
    text = describe(Top)
    assert "steps: int (required)" in text and "rate: float = 0.5  [> 0.0, <= 1.0]" in text


@pytest.mark.parametrize("name", list(MODELS))
def test_model_params_schema_from_signature(name):
    schema = params_schema(name)
    params = validate(schema, {})
    model = build_model(name, params)
    assert isinstance(model, MODELS[name])
    assert to_dict(params)  # every model has keyword parameters with defaults


def test_model_params_ranges_and_constructor_errors():
    with pytest.raises(ConfigError, match="model.params.nu: expected a number > 0.0"):
        validate(params_schema("KuramotoSivashinsky"), {"nu": -1.0}, "model.params")
    with pytest.raises(ConfigError) as info:
        build_model("KuramotoSivashinsky", {"num_points": 33})
    assert info.value.key == "model.params.num_points" and "even" in info.value.message
    schema = params_schema("NavierStokes2D")
    assert validate(schema, {"forcing_wavenumber": 2}).forcing_wavenumber == 2
    with pytest.raises(ConfigError, match="expected int"):
        validate(schema, {"forcing_wavenumber": 2.5})


class _Thing(eqx.Module):
    rate: jax.Array
    label: str = eqx.field(static=True, default="x")


@dataclasses.dataclass(frozen=True)
class WithObjects:
    thing: Inner | _Thing = option(factory=Inner, objects=_Thing)
    names: list[str | _Thing] = option(factory=lambda: ["a"], objects=_Thing)


def test_objects_stand_for_values_from_python_only():
    """An `objects=` field takes an instance of its classes unchecked (also inside a list),
    records it by class and scalar fields (float32 0.2 as 0.2), and reports a bad plain value
    with the plain types only; a YAML value is never an object."""
    thing = _Thing(jnp.asarray(0.2))
    config = validate(WithObjects, {"thing": thing, "names": ["b", thing]})
    assert config.thing is thing and config.names[1] is thing
    record = to_dict(config)["thing"]
    assert record == {"object": f"{__name__}._Thing", "fields": {"rate": 0.2, "label": "x"}}
    assert validate(WithObjects, {}).thing == Inner()
    with pytest.raises(ConfigError, match=r"names\[0\]: expected str, got 3"):
        validate(WithObjects, {"names": [3]})
    with pytest.raises(ConfigError, match="thing: expected an instance of .*_Thing, got a _Other"):
        validate(WithObjects, {"thing": _Other()})
    with pytest.raises(ConfigError, match="steps: takes no Python object, got a _Thing"):
        validate(Top, {"steps": thing})


class _Other(eqx.Module):
    pass
