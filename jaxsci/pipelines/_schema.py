"""A small declarative config schema: nested dataclasses whose fields carry `Spec` metadata.

A schema is a dataclass. Each field's annotation gives its type (`float`, `int`, `bool`,
`str`, `list[float]`, `X | None` or another schema dataclass for a nested section) and
`option(...)` gives its default, allowed values and range. `validate(schema, raw)` walks a
raw mapping (parsed YAML), fills in defaults, converts values and returns a schema
instance; the first problem raises `ConfigError` naming the full dotted key and what was
expected. `to_dict` turns a validated instance back into plain data (the resolved config).

A field whose sub-schema depends on its siblings (a model's parameters depend on the model
name) gives `option(section=fn)`: `fn(siblings)` returns the dataclass to validate it with,
where `siblings` maps the names of the fields declared before it to their validated values.

A field that names its `objects=` classes may hold, from Python only, an instance of one of
them in place of its value (a user's model class instead of the `model` section, a filter
object instead of `filter.method`): `validate` passes it through unchecked (the object
checked itself when it was built) and `to_dict` records it as `{"object": "module.Class",
"fields": {...its scalar fields}, "arrays": digest of its arrays}`, so the resolved config names
what ran and `--resume` tells two objects apart. YAML never builds
objects: configs stay declarative.
"""

import dataclasses
import difflib
import functools
import hashlib
import math
import operator
import sys
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

_MISSING = dataclasses.MISSING


class ConfigError(ValueError):
    """A config problem: `key` is the full dotted key, `message` says what was expected."""

    def __init__(self, key: str, message: str):
        self.key = key
        self.message = message
        super().__init__(f"{key}: {message}" if key else message)


@dataclasses.dataclass(frozen=True)
class Spec:
    """Constraints on one config value (stored in the dataclass field's metadata)."""

    help: str = ""
    choices: tuple | None = None
    gt: float | None = None
    ge: float | None = None
    lt: float | None = None
    le: float | None = None
    section: Callable[[Mapping[str, Any]], type] | None = None
    objects: tuple[type, ...] = ()


def option(
    default: Any = _MISSING,
    *,
    help: str = "",
    choices: Iterable | None = None,
    gt: float | None = None,
    ge: float | None = None,
    lt: float | None = None,
    le: float | None = None,
    factory: Callable[[], Any] | None = None,
    section: Callable[[Mapping[str, Any]], type] | None = None,
    objects: type | tuple[type, ...] = (),
) -> Any:
    """A dataclass field with a default and constraints; omit `default` for a required key.

    `factory` builds mutable defaults (nested sections, lists); `section` makes the field a
    section whose schema depends on the already-validated fields before it; `objects`: the
    classes whose instances may stand for the value when the config is built in Python.
    """
    spec = Spec(
        help=help,
        choices=None if choices is None else tuple(choices),
        gt=gt,
        ge=ge,
        lt=lt,
        le=le,
        section=section,
        objects=objects if isinstance(objects, tuple) else (objects,),
    )
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata={"spec": spec})
    return dataclasses.field(default=default, metadata={"spec": spec})


def section(schema: type, **kwargs) -> Any:
    """A nested section with all-default values (every key of `schema` has a default)."""
    return option(factory=schema, **kwargs)


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _spec(field: dataclasses.Field) -> Spec:
    return field.metadata.get("spec", Spec())


def _type_name(tp) -> str:
    if tp is type(None):
        return "null"
    if isinstance(tp, type) and not typing.get_args(tp):
        return "a mapping (section)" if dataclasses.is_dataclass(tp) else tp.__name__
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in args)
    if origin is list:
        return f"a list of {_type_name(args[0])}"
    return str(tp)


def did_you_mean(word: str, options: Iterable[str], prefix: str = "") -> str:
    """' (did you mean 'prefix.x'?)' for the closest x of `options`, or '' if none is close."""
    close = difflib.get_close_matches(word, list(options), n=1, cutoff=0.6)
    return f" (did you mean '{_join(prefix, close[0])}'?)" if close else ""


def _convert_scalar(tp: type, value: Any, key: str) -> Any:
    """Convert `value` to the scalar type `tp`, or raise ConfigError naming `key`."""
    want = f"expected {_type_name(tp)}, got {value!r} ({type(value).__name__})"
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(key, want)
    if tp is int:
        if isinstance(value, bool):
            raise ConfigError(key, want)
        if isinstance(value, int):
            if not -(2**63) <= value < 2**63:  # what NumPy/JAX integers (and seeds) hold
                raise ConfigError(key, f"expected an integer of at most 64 bits, got {value}")
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise ConfigError(key, want)
    if tp is float:
        if isinstance(value, bool):
            raise ConfigError(key, want)
        if isinstance(value, int | float):
            try:
                return float(value)
            except OverflowError:  # an int beyond float64
                raise ConfigError(key, f"expected a finite number, got {value}") from None
        if isinstance(value, str):
            # YAML 1.1 reads `1e-3` (no dot) as a string; accept it as a number.
            try:
                return float(value)
            except ValueError:
                pass
        raise ConfigError(key, want)
    if tp is str:
        if isinstance(value, str):
            return value
        raise ConfigError(key, want)
    raise TypeError(f"unsupported schema type {tp!r} at {key}")


_BOUNDS = (
    ("gt", ">", operator.gt),
    ("ge", ">=", operator.ge),
    ("lt", "<", operator.lt),
    ("le", "<=", operator.le),
)


def _check_constraints(spec: Spec, value: Any, key: str) -> Any:
    if spec.choices is not None:
        if isinstance(value, str):
            # Names are matched case-insensitively and returned in their canonical spelling.
            lower = {str(c).lower(): c for c in spec.choices}
            if value.lower() in lower:
                return lower[value.lower()]
        elif value in spec.choices:
            return value
        names = [str(c) for c in spec.choices]
        raise ConfigError(
            key, f"expected one of {names}, got {value!r}{did_you_mean(str(value), names)}"
        )
    if isinstance(value, int | float) and not isinstance(value, bool):
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(key, f"expected a finite number, got {value!r}")
        for name, sign, holds in _BOUNDS:
            bound = getattr(spec, name)
            if bound is not None and not holds(value, bound):
                raise ConfigError(key, f"expected a number {sign} {bound}, got {value!r}")
    return value


def is_object(value: Any) -> bool:
    """Whether `value` is a Python object standing for a config value (not plain data)."""
    if isinstance(value, str | int | float | bool | Mapping) or value is None:
        return False
    if isinstance(value, list | tuple):
        return hasattr(value, "_fields")  # a NamedTuple (a PosteriorProblem) is an object
    return not _is_section(value)


def _is_section(value: Any) -> bool:
    """Whether `value` is an instance of a schema dataclass: a plain (frozen) dataclass, not
    an equinox Module (models, filters, samplers and networks are Modules: objects)."""
    return dataclasses.is_dataclass(value) and not isinstance(value, type | eqx.Module)


def _check_object(spec: Spec, value: Any, key: str, tp: Any = None) -> Any:
    """`value` (an object) when `spec` takes objects of its kind, else a ConfigError."""
    got = type(value).__name__
    if isinstance(value, type):  # the class itself, not an instance
        got = f"the class {value.__name__} (pass an instance, {value.__name__}(...))"
    if tp is not None and typing.get_origin(tp) is list:
        raise ConfigError(key, f"expected a list, got {got} (objects go inside the list)")
    if spec.objects and isinstance(value, spec.objects):
        return value
    if not spec.objects:
        raise ConfigError(key, f"takes no Python object, got {got}")
    names = " or ".join(_public_name(c) for c in spec.objects)
    raise ConfigError(key, f"expected an instance of {names}, got {got}")


def _object_record_given(spec: Spec, value: Any, key: str) -> None:
    """A ConfigError when a config holds the record of a Python object (the resolved config
    of a run on objects): records describe what ran; they cannot be run again from YAML."""
    if spec.objects and isinstance(value, Mapping) and {"object", "fields"} <= set(value):
        raise ConfigError(
            key,
            f"holds the record of a Python object ({value['object']}), as the config.yaml of "
            "a run on objects does: run it again from Python, "
            f"run_config(config, out, objects={{{key!r}: ...}})",
        )


def field_type(schema: type, name: str, spec: "Spec | None" = None) -> Any:
    """The config type of field `name` of `schema`: its annotation without the `objects`
    classes (`ModelSection | AbstractDynamics` is the section `ModelSection` to a config,
    `list[str | AbstractSampler]` a `list[str]`)."""
    tp = typing.get_type_hints(schema)[name]
    if spec is None:
        spec = _spec(next(f for f in dataclasses.fields(schema) if f.name == name))
    return _without(tp, spec.objects)


def _without(tp: Any, objects: tuple[type, ...]) -> Any:
    """The type `tp` with the classes `objects` removed from its unions, inside lists too."""
    if not objects:
        return tp
    origin = typing.get_origin(tp)
    if origin is list:
        return list[_without(typing.get_args(tp)[0], objects)]
    if origin not in (typing.Union, types.UnionType):
        return tp
    return _union([_without(a, objects) for a in typing.get_args(tp) if a not in objects])


def _union(types_: list) -> Any:
    """`A | B | ...` of the types (the type itself when there is one)."""
    return functools.reduce(operator.or_, types_)


def _validate_value(tp, spec: Spec, value: Any, key: str) -> Any:
    if is_object(value):
        return _check_object(spec, value, key, tp)
    _object_record_given(spec, value, key)
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None:
            if type(None) in args:
                return None
            raise ConfigError(key, f"expected {_type_name(tp)}, got null")
        errors = []
        for arg in args:
            if arg is type(None) or arg in spec.objects:  # objects were handled above
                continue
            try:
                return _validate_value(arg, spec, value, key)
            except ConfigError as err:
                errors.append(err)
        plain = [a for a in args if a not in spec.objects]
        raise (
            errors[0]
            if len(errors) == 1
            else ConfigError(key, f"expected {_type_name(_union(plain))}, got {value!r}")
        )
    if origin is list:
        if not isinstance(value, list | tuple):
            raise ConfigError(key, f"expected {_type_name(tp)}, got {value!r}")
        return [_validate_value(args[0], spec, v, f"{key}[{i}]") for i, v in enumerate(value)]
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return validate(tp, value, key)
    if value is None:
        raise ConfigError(key, f"expected {_type_name(tp)}, got null")
    return _check_constraints(spec, _convert_scalar(tp, value, key), key)


def validate(schema: type, raw: Any, path: str = "") -> Any:
    """Validate the mapping `raw` against the dataclass `schema`; return a filled instance.

    Raises:
        ConfigError: naming the full dotted key of the first unknown key, missing required
            key or bad value, and what was expected.
    """
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise ConfigError(path, f"expected a mapping (section), got {raw!r}")
    fields = [f for f in dataclasses.fields(schema) if f.init]
    names = [f.name for f in fields]
    for key in raw:
        if key not in names and not names:  # a section without keys (here): say why
            why = " ".join((schema.__doc__ or "this section takes no keys").split())
            raise ConfigError(_join(path, str(key)), f"unknown key: {why}")
        if key not in names:
            raise ConfigError(
                _join(path, str(key)),
                f"unknown key{did_you_mean(str(key), names, path)}; valid keys"
                f"{' in ' + repr(path) if path else ''}: {', '.join(names)}",
            )
    values: dict[str, Any] = {}
    for field in fields:
        key = _join(path, field.name)
        spec = _spec(field)
        if field.name in raw:
            value = raw[field.name]
        elif field.default is not _MISSING:
            value = field.default
        elif field.default_factory is not _MISSING:
            value = field.default_factory()
        else:
            want = _type_name(field_type(schema, field.name, spec))
            raise ConfigError(key, f"required key is missing ({want})")
        if is_object(value):
            values[field.name] = _check_object(spec, value, key, field_type(schema, field.name))
            continue
        _object_record_given(spec, value, key)
        if _is_section(value):
            value = to_dict(value)
        if spec.section is not None:
            tp = spec.section(values)
        else:
            tp = field_type(schema, field.name, spec)
        values[field.name] = _validate_value(tp, spec, value, key)
    try:
        return schema(**values)
    except ConfigError as err:  # cross-field checks in __post_init__ use relative keys
        raise ConfigError(_join(path, err.key), err.message) from None


def object_record(obj: Any) -> dict:
    """How the resolved config records a Python object given for a value: its class (public
    path where it has one) and its scalar fields (numbers, strings, one-element arrays) as
    plain Python values. A record is not a config value: a config holding one is refused
    with a pointer to `run_config(..., objects=...)`."""
    fields = {}
    if dataclasses.is_dataclass(obj):
        names = [f.name for f in dataclasses.fields(obj)]
    else:
        names = list(getattr(obj, "_fields", ()))  # a NamedTuple
    for name in names:
        value = _plain_scalar(getattr(obj, name, None))
        if value is not None:
            fields[name] = value
    return {"object": _public_name(type(obj)), "fields": fields, "arrays": _arrays_digest(obj)}


def _arrays_digest(obj: Any) -> str:
    """A digest of the dtypes, shapes and values of every array in `obj` (a network's weights,
    a model's parameter arrays): two objects whose scalar fields agree but whose arrays differ
    (other weights, another architecture) are told apart, so `--resume` never continues a run
    on another object."""
    digest = hashlib.sha256()
    for leaf in jax.tree.leaves(obj):
        if isinstance(leaf, jax.Array) and jnp.issubdtype(leaf.dtype, jax.dtypes.prng_key):
            leaf = jax.random.key_data(leaf)
        if isinstance(leaf, np.ndarray | np.generic | jax.Array):
            arr = np.asarray(leaf)
            digest.update(f"{arr.dtype}{arr.shape}".encode())
            digest.update(np.ascontiguousarray(arr).tobytes())
    return digest.hexdigest()[:16]


def _plain_scalar(value: Any) -> bool | int | float | str | None:
    """`value` as a plain Python scalar (YAML-safe), or None when it is not one."""
    if isinstance(value, np.ndarray | np.generic | jax.Array):
        if value.size != 1 or jnp.issubdtype(value.dtype, jax.dtypes.prng_key):
            return None  # not a scalar, or a PRNG key (no number to record)
        scalar = np.asarray(value).reshape(())
        if scalar.dtype.kind == "f":  # the shortest repr: float32 0.2 is 0.2, not 0.200000003
            return float(np.format_float_positional(scalar.dtype.type(scalar.item()), unique=True))
        if scalar.dtype.kind == "b":
            return bool(scalar.item())
        if scalar.dtype.kind in "iu":
            return int(scalar.item())
        return None
    for plain in (bool, int, float, str):  # subclasses (an IntEnum, ...) as the base type
        if isinstance(value, plain):
            return plain(value)
    return None


def to_dict(config: Any) -> Any:
    """A validated config (dataclass instance) as plain dicts, lists and scalars; a Python
    object given for a value becomes its `object_record`."""
    if is_object(config) and not isinstance(config, type):
        return object_record(config)
    if _is_section(config):
        return {f.name: to_dict(getattr(config, f.name)) for f in dataclasses.fields(config)}
    if isinstance(config, list | tuple):
        return [to_dict(v) for v in config]
    return config


@dataclasses.dataclass(frozen=True)
class SchemaRow:
    """One key of a config schema, as `schema_rows` lists it.

    Attributes:
        key: the full dotted key (`integrate.dt`).
        depth: nesting level (0 for a top-level key).
        type: the value's type in words (`float`, `a list of int or null`, `a mapping
            (section)`).
        default: the default as Python writes it (`repr`), '' when the key is required or is
            a section of its own keys.
        required: whether the key must be given.
        constraints: the allowed values and bounds in words (`one of [...]`, `> 0.0`).
        help: the option's description.
        section: whether the key is a section whose keys follow it (depth + 1).
        when: for the keys of a section whose schema depends on an earlier key (a model's
            parameters on its name), the condition in words (`model.name = Lorenz63`);
            '' otherwise.
        objects: the classes (`package.Class`, by their public path) whose instances may
            stand for the value when the config is built in Python (`option(objects=...)`).
    """

    key: str
    depth: int
    type: str
    default: str
    required: bool
    constraints: tuple[str, ...]
    help: str
    section: bool
    when: str = ""
    objects: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        """The last part of `key`."""
        return self.key.rsplit(".", 1)[-1]


def _dataclass_in(tp) -> type | None:
    """The schema dataclass of a section type `S` or `S | None`, else None."""
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return tp
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        found = [a for a in typing.get_args(tp) if dataclasses.is_dataclass(a)]
        if len(found) == 1 and isinstance(found[0], type):
            return found[0]
    return None


def _section_variants(
    schema: type, fields: list[dataclasses.Field], upto: int, spec: Spec, path: str
) -> list[tuple[str, type]]:
    """(condition, schema) for each value of an earlier key that the sibling-dependent
    section `fields[upto]` (`option(section=fn)`) accepts.

    The candidates are the `choices` of the fields before it and of the keys of the sections
    before it (`model.name` for a `truth` section next to `model`); a candidate that `fn`
    cannot use (it reads another key) is skipped.
    """
    assert spec.section is not None
    candidates: list[tuple[str, dict[str, Any]]] = []
    for field in fields[:upto]:
        choices = _spec(field).choices
        if choices:
            key = _join(path, field.name)
            candidates += [(f"{key} = {c}", {field.name: c}) for c in choices]
            continue
        sub = _dataclass_in(field_type(schema, field.name))
        if sub is None:
            continue
        for inner in dataclasses.fields(sub):
            for choice in _spec(inner).choices or ():
                try:
                    value = validate(sub, {inner.name: choice})
                except ConfigError:  # the section needs more than this key
                    continue
                key = _join(_join(path, field.name), inner.name)
                candidates.append((f"{key} = {choice}", {field.name: value}))
    variants = []
    for when, siblings in candidates:
        try:
            variants.append((when, spec.section(siblings)))
        except (KeyError, AttributeError):  # `fn` depends on another key
            continue
    return variants


def _public_name(cls: type) -> str:
    """`package.Class` where the package re-exports `cls` (jaxsci.dynamics.AbstractDynamics,
    not jaxsci.dynamics._base.AbstractDynamics), else `module.Class`."""
    parts = cls.__module__.split(".")
    while len(parts) > 1 and parts[-1].startswith("_"):
        parts.pop()
    package = sys.modules.get(".".join(parts))
    if package is not None and getattr(package, cls.__qualname__, None) is cls:
        return f"{package.__name__}.{cls.__qualname__}"
    return f"{cls.__module__}.{cls.__qualname__}"


def _default_text(field: dataclasses.Field) -> str:
    if field.default is not _MISSING:
        return repr(field.default)
    factory = field.default_factory
    if factory is _MISSING or (isinstance(factory, type) and dataclasses.is_dataclass(factory)):
        return ""
    value = factory()
    return repr(value) if value != {} else ""


def schema_rows(schema: type, path: str = "", depth: int = 0, when: str = "") -> list[SchemaRow]:
    """Every key of the config schema `schema`, depth first, in declaration order.

    A section (a schema dataclass, or `S | None`) gives a row of its own (`section=True`)
    followed by its keys. A section whose schema depends on an earlier key
    (`option(section=fn)`, e.g. `model.params` on `model.name`) is listed once per value
    of that key, each of its rows carrying the condition in `when`. `describe` (`jaxsci list
    --schema`) and the documentation's config reference both render these rows.

    Arguments:
        schema: a schema dataclass (`PIPELINES[name].schema`).
        path: the dotted key of `schema` itself ('' for a whole config).
        depth: the nesting level of `schema`'s keys.
        when: a condition inherited by every row.
    """
    rows = []
    fields = list(dataclasses.fields(schema))
    for index, field in enumerate(fields):
        spec = _spec(field)
        key = _join(path, field.name)
        tp = field_type(schema, field.name, spec)
        sub = _dataclass_in(tp)
        variants = (
            _section_variants(schema, fields, index, spec, path) if spec.section is not None else []
        )
        constraints = []
        if spec.choices:
            constraints.append(f"one of {list(spec.choices)}")
        for name, sign, _ in _BOUNDS:
            if getattr(spec, name) is not None:
                constraints.append(f"{sign} {getattr(spec, name)}")
        is_section = sub is not None or spec.section is not None
        if spec.section is not None:
            type_text = "a mapping (section)"
        else:
            type_text = _type_name(tp)
        required = field.default is _MISSING and field.default_factory is _MISSING
        rows.append(
            SchemaRow(
                key=key,
                depth=depth,
                type=type_text,
                default="" if is_section and field.default is _MISSING else _default_text(field),
                required=required,
                constraints=tuple(constraints),
                help=spec.help,
                section=is_section,
                when=when,
                objects=tuple(_public_name(c) for c in spec.objects),
            )
        )
        if sub is not None:
            rows += schema_rows(sub, key, depth + 1, when)
        for condition, variant in variants:
            inner = f"{when}, {condition}" if when else condition
            rows += schema_rows(variant, key, depth + 1, inner)
    return rows


def describe(schema: type, indent: int = 0) -> str:
    """A human-readable listing of `schema`'s keys, types, defaults and constraints.

    One line per row of `schema_rows`, indented by nesting; the keys of a section that
    depends on an earlier key are listed under a line naming the condition.
    """
    lines = []
    shown_when = ""
    for row in schema_rows(schema):
        depth = row.depth + indent
        if row.when and row.when != shown_when and row.depth > 0:
            lines.append(f"{'  ' * depth}[{row.when.rsplit(', ', 1)[-1]}]")
        shown_when = row.when
        pad = "  " * (depth + (1 if row.when else 0))
        if row.section and not row.default:  # a header: its keys follow
            required = " (required)" if row.required else ""
            lines.append(f"{pad}{row.name}:{required}  {row.help}".rstrip())
            continue
        default = " (required)" if row.required else f" = {row.default}" if row.default else ""
        note = f"  [{', '.join(row.constraints)}]" if row.constraints else ""
        lines.append(f"{pad}{row.name}: {row.type}{default}{note}  {row.help}".rstrip())
    return "\n".join(lines)
