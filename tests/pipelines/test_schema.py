"""The declarative config schema: defaults, conversion, ranges, choices, unknown keys, and
the rows (`schema_rows`) that `describe` and the docs' config reference render."""

import dataclasses
import inspect
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import pytest

from jaxsci.pipelines import (
    PIPELINES,
    ConfigError,
    describe,
    option,
    schema_rows,
    section,
    to_dict,
    validate,
)
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
    assert record["object"] == f"{__name__}._Thing"
    assert record["fields"] == {"rate": 0.2, "label": "x"}
    assert validate(WithObjects, {}).thing == Inner()
    with pytest.raises(ConfigError, match=r"names\[0\]: expected str, got 3"):
        validate(WithObjects, {"names": [3]})
    with pytest.raises(ConfigError, match="thing: expected an instance of .*_Thing, got _Other"):
        validate(WithObjects, {"thing": _Other()})
    with pytest.raises(ConfigError, match="steps: takes no Python object, got _Thing"):
        validate(Top, {"steps": thing})


class _Other(eqx.Module):
    pass


@dataclasses.dataclass(frozen=True)
class _Small:
    order: int = option(2, ge=1, le=4, help="the order")


@dataclasses.dataclass(frozen=True)
class _Large:
    order: int = option(2, ge=1, help="the order")
    scale: float = option(1.0, gt=0.0)


@dataclasses.dataclass(frozen=True)
class _Method:
    kind: str = option(help="which method", choices=("small", "large"))
    settings: Any = option(
        factory=dict,
        section=lambda s: {"small": _Small, "large": _Large}[s["kind"]],
        help="the method's settings",
    )


@dataclasses.dataclass(frozen=True)
class _Extra:
    depth: int = option(3, ge=0)


@dataclasses.dataclass(frozen=True)
class _Top:
    steps: int = option(help="how many")
    method: _Method = option(help="the method")
    extra: _Extra | None = option(None, help="optional extras")
    sizes: list[int] = option(factory=lambda: [1, 2])
    inner: _Extra = section(_Extra)


def test_schema_rows_lists_every_key():
    rows = {(r.key, r.when): r for r in schema_rows(_Top)}
    assert list(rows) == [
        ("steps", ""),
        ("method", ""),
        ("method.kind", ""),
        ("method.settings", ""),
        ("method.settings.order", "method.kind = small"),
        ("method.settings.order", "method.kind = large"),
        ("method.settings.scale", "method.kind = large"),
        ("extra", ""),
        ("extra.depth", ""),
        ("sizes", ""),
        ("inner", ""),
        ("inner.depth", ""),
    ]
    steps = rows["steps", ""]
    assert steps.required and steps.type == "int" and steps.help == "how many"
    assert rows["method", ""].section and rows["method", ""].required
    kind = rows["method.kind", ""]
    assert kind.constraints == ("one of ['small', 'large']",) and kind.depth == 1
    small = rows["method.settings.order", "method.kind = small"]
    assert small.default == "2" and small.constraints == (">= 1", "<= 4") and small.depth == 2
    assert rows["method.settings.scale", "method.kind = large"].constraints == ("> 0.0",)
    extra = rows["extra", ""]
    assert extra.section and extra.default == "None" and extra.type == "a mapping (section) or null"
    assert rows["sizes", ""].default == "[1, 2]"
    assert rows["inner", ""].section and not rows["inner", ""].required


def test_describe_renders_the_rows():
    text = describe(_Top)
    assert "steps: int (required)  how many" in text
    assert "[method.kind = large]" in text and "scale: float = 1.0  [> 0.0]" in text
    assert "depth: int = 3  [>= 0]" in text  # the keys of an optional section are listed


def test_describe_lists_model_parameters_per_model():
    """`jaxsci list --schema` lists each model's constructor arguments (they were one
    `params: Any` line); the defaults are the constructor's (inspect.signature)."""
    from jaxsci.dynamics import KuramotoSivashinsky, Lorenz63

    rows = schema_rows(PIPELINES["simulate"].schema)
    for cls in (Lorenz63, KuramotoSivashinsky):
        when = f"model.name = {cls.__name__}"
        got = {r.name: r.default for r in rows if r.when == when}
        params = inspect.signature(cls.__init__).parameters.values()
        want = {p.name: p.default for p in params if p.default is not inspect.Parameter.empty}
        assert set(got) == set(want), cls
        for name, default in want.items():
            assert type(default)(eval(got[name])) == default, (cls, name)  # noqa: S307
    text = describe(PIPELINES["simulate"].schema)
    assert "[model.name = Lorenz63]" in text and "sigma: float = 10.0" in text


def test_section_variants_skip_unknown_siblings():
    @dataclasses.dataclass(frozen=True)
    class Needs:
        other: str = option("a", choices=("a", "b"))
        settings: Any = option(factory=dict, section=lambda s: {"x": _Small}[s["missing"]])

    rows = schema_rows(Needs)
    assert [r.key for r in rows] == ["other", "settings"]


def test_schema_rows_name_the_python_objects_a_key_takes():
    """A key declared with `option(objects=...)` takes an instance of those classes from
    Python; its row names them (the docs' config reference shows them), and the type is the
    config's (the section), not the union with the classes."""
    from jaxsci.dynamics import AbstractDynamics

    rows = {r.key: r for r in schema_rows(PIPELINES["simulate"].schema)}
    model = rows["model"]
    assert model.objects == ("jaxsci.dynamics.AbstractDynamics",)  # the public path
    assert AbstractDynamics.__qualname__ in model.objects[0] and model.section
    assert rows["integrate.dt"].objects == ()


def test_object_mistakes_are_config_errors_naming_the_key():
    """A class instead of an instance, one object for a list key, and the record of an
    object (a run-on-objects config.yaml) fed back as config are ConfigErrors that say what
    to do; a record's field values are plain Python (np.float64 0.5 would break YAML)."""
    thing = _Thing(jnp.asarray(0.2))
    with pytest.raises(ConfigError, match=r"thing: .*got the class _Thing \(pass an instance"):
        validate(WithObjects, {"thing": _Thing})
    with pytest.raises(ConfigError, match=r"names: expected a list, got _Thing"):
        validate(WithObjects, {"names": thing})
    record = to_dict(validate(WithObjects, {"thing": thing}))["thing"]
    with pytest.raises(ConfigError, match=r"thing: holds the record of a Python object"):
        validate(WithObjects, {"thing": record})
    with pytest.raises(ConfigError, match=r"names\[0\]: holds the record"):
        validate(WithObjects, {"names": [record]})
    import numpy as np
    import yaml

    fields = to_dict(validate(WithObjects, {"thing": _Thing(np.float64(0.5))}))["thing"]["fields"]
    assert fields == {"rate": 0.5, "label": "x"} and type(fields["rate"]) is float
    yaml.safe_dump(fields)


def test_records_tell_objects_with_other_arrays_apart(tmp_path):
    """Two objects with equal scalar fields but other arrays (a network's weights, another
    architecture) have different records, so `--resume` refuses to continue a run on the
    other object; the same object resumes."""
    import yaml

    from jaxsci.pipelines import RunFolderError, prepare_run_folder
    from jaxsci.pipelines._schema import object_record

    class Net(eqx.Module):
        weights: jax.Array

    a, b, c = Net(jnp.zeros(3)), Net(jnp.ones(3)), Net(jnp.zeros(4))
    assert object_record(a)["fields"] == object_record(b)["fields"] == {}
    assert len({object_record(x)["arrays"] for x in (a, b, c)}) == 3
    assert object_record(a) == object_record(Net(jnp.zeros(3)))
    assert object_record(_Keyed(jax.random.key(0)))["arrays"]  # typed keys are hashed too
    saved = {"pipeline": "x", "thing": object_record(a)}
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text(yaml.safe_dump(saved))
    assert prepare_run_folder(run, {"pipeline": "x", "thing": object_record(a)}, resume=True)
    with pytest.raises(RunFolderError, match="differs .* at thing.arrays"):
        prepare_run_folder(run, {"pipeline": "x", "thing": object_record(b)}, resume=True)


class _Keyed(eqx.Module):
    key: jax.Array
