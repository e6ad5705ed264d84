"""Argument validation shared by every public constructor and entry point.

One home for the checks that name the offending argument: a `ValueError` (or `TypeError` for
a wrong kind of object) whose message starts with the argument's name in backticks and says
what was expected and what was given. Checks on values look only at concrete values: under
`jit`/`vmap`/`grad` a traced value cannot be inspected, so it is let through (the numerical
code then reports a non-finite result, never a silent number; use `eqx.error_if` for checks
that must hold under tracing).
"""

import math
from collections.abc import Callable, Sequence
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.core import Tracer  # pyright: ignore[reportPrivateImportUsage]

__all__ = [
    "as_float_array",
    "check_choice",
    "check_finite",
    "check_int",
    "check_key",
    "check_maps_to_own_shape",
    "check_ndim",
    "check_pair",
    "check_positive",
    "check_probability",
    "check_range",
    "check_shape",
    "check_start_time",
    "concrete",
    "concrete_numbers",
    "finite_float",
    "float_parameter",
    "is_concrete",
]


def is_concrete(x: Any) -> bool:
    """Whether `x` holds no tracer (its values can be read on the host)."""
    return not any(isinstance(leaf, Tracer) for leaf in jax.tree_util.tree_leaves(x))


def float_or_inf(v: Any) -> float:
    """`float(v)`, with a Python int beyond float64's range as +-inf (infinite at any float
    precision) instead of an OverflowError."""
    try:
        return float(v)
    except OverflowError:
        return math.inf if v > 0 else -math.inf


def concrete(x: Any) -> np.ndarray | None:
    """`x` as a float64 NumPy array, or None when it is traced or not numeric (checks skip).
    An integer beyond float64's range becomes +-inf (so finiteness checks refuse it)."""
    if not is_concrete(x):
        return None
    try:
        return np.asarray(x, dtype=np.float64)
    except OverflowError:
        try:
            as_object = np.asarray(x, dtype=object)
            return np.vectorize(float_or_inf, otypes=[np.float64])(as_object)
        except (TypeError, ValueError, OverflowError):
            return None
    except (TypeError, ValueError):
        return None


def concrete_numbers(name: str, x: Any) -> np.ndarray | None:
    """`concrete(x)` for the value checks: None (skip) when traced, a TypeError naming
    `name` when `x` is concrete but not real numbers (None, a string, a complex number, a
    mapping, ...)."""
    if not is_concrete(x):
        return None
    arr = None
    if x is not None and not isinstance(x, str | bytes):
        try:
            kind = np.asarray(x).dtype.kind
        except (TypeError, ValueError):
            kind = "O"
        arr = None if kind == "c" else concrete(x)
    if arr is None:
        got = repr(x) if len(repr(x)) <= 60 else repr(x)[:57] + "..."
        raise TypeError(
            f"`{name}` must be a real number or an array of real numbers, got {got} "
            f"({type(x).__name__})."
        )
    return arr


def check_int(name: str, value: Any, minimum: int | None = 1, maximum: int | None = None) -> int:
    """`value` as a Python int in [minimum, maximum]; bools and floats are refused.

    Raises:
        TypeError: naming `name` when `value` is not an integer.
        ValueError: naming `name` when it is out of range.
    """
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"`{name}` must be an integer, got {value!r} ({type(value).__name__}).")
    if minimum is not None and value < minimum:
        raise ValueError(f"`{name}` must be an integer >= {minimum}, got {value}.")
    if maximum is not None and value > maximum:
        raise ValueError(f"`{name}` must be an integer <= {maximum}, got {value}.")
    return int(value)


def check_pair(name: str, value: Any, minimum: int = 1) -> tuple[int, int]:
    """An int or a pair of ints, each >= `minimum`, as a pair."""
    if isinstance(value, Sequence) and not isinstance(value, str):
        if len(value) != 2:
            raise ValueError(f"`{name}` must be an integer or a pair of integers, got {value!r}.")
        return check_int(f"{name}[0]", value[0], minimum), check_int(
            f"{name}[1]", value[1], minimum
        )
    v = check_int(name, value, minimum)
    return v, v


def check_range(
    name: str,
    value: Any,
    lower: float | None = None,
    upper: float | None = None,
    *,
    lower_open: bool = False,
    upper_open: bool = False,
) -> None:
    """Raise a ValueError naming `name` unless every entry of a concrete `value` is finite and
    within [lower, upper] (an open end with `lower_open` / `upper_open`; None: unbounded).
    NaN is always refused. Traced values pass."""
    arr = concrete_numbers(name, value)
    if arr is None:
        return
    ok = np.all(np.isfinite(arr))
    if lower is not None:
        ok = ok and bool(np.all(arr > lower) if lower_open else np.all(arr >= lower))
    if upper is not None:
        ok = ok and bool(np.all(arr < upper) if upper_open else np.all(arr <= upper))
    if not ok:
        lo = "-inf" if lower is None else f"{lower:g}"
        hi = "inf" if upper is None else f"{upper:g}"
        interval = f"{'(' if lower_open or lower is None else '['}{lo}, {hi}"
        interval += ")" if upper_open or upper is None else "]"
        got = arr.tolist() if arr.size <= 8 else f"an array with range [{arr.min()}, {arr.max()}]"
        raise ValueError(f"`{name}` must be finite and in {interval}, got {got}.")


def check_positive(name: str, value: Any, *, allow_zero: bool = False) -> None:
    """Raise a ValueError naming `name` unless a concrete `value` is finite and > 0 (>= 0 with
    `allow_zero`). Traced values pass: the integrators then report a non-finite result."""
    arr = concrete_numbers(name, value)
    if arr is None:
        return
    bad = np.any(arr < 0) if allow_zero else np.any(arr <= 0)
    if bad or not np.all(np.isfinite(arr)):
        want = "non-negative" if allow_zero else "positive"
        got = arr.tolist() if arr.size <= 8 else f"an array with range [{arr.min()}, {arr.max()}]"
        raise ValueError(f"`{name}` must be finite and {want}, got {got}.")


def check_probability(name: str, value: Any) -> None:
    """A concrete `value` in [0, 1] (e.g. RTPS/RTPP factors, thresholds as fractions)."""
    check_range(name, value, 0.0, 1.0)


def check_finite(name: str, value: Any) -> None:
    """Raise a ValueError naming `name` if a concrete `value` holds NaN or inf."""
    arr = concrete_numbers(name, value)
    if arr is not None and not np.all(np.isfinite(arr)):
        raise ValueError(f"`{name}` contains non-finite values (NaN or inf).")


def check_shape(name: str, x: Any, expected: Sequence[int | None], what: str | None = None) -> None:
    """Raise a ValueError naming `name` unless `x.shape` matches `expected` (None: any size).

    `what` describes the expected layout, e.g. "(channels, n) = (3, n)"; by default the shape
    itself, with `*` for free sizes.
    """
    shape = tuple(jnp.shape(x))
    ok = len(shape) == len(expected) and all(
        e is None or s == e for s, e in zip(shape, expected, strict=True)
    )
    if not ok:
        want = what or "(" + ", ".join("*" if e is None else str(e) for e in expected) + ")"
        raise ValueError(f"`{name}` has shape {shape}, expected {want}.")


def check_start_time(name: str, t0: Any, ts: Any, *, saves_at_ts: bool = True) -> None:
    """Raise a ValueError naming `name` unless the start time `t0` is finite and no later
    than the first save time `ts[0]` (with `saves_at_ts=False`, when `ts` only sets the time
    span, than `ts[-1]`): a solve runs forward from t0 and saves at times in [t0, t1].
    Traced values pass."""
    check_finite(name, t0)
    start, times = concrete(t0), concrete(ts)
    if start is None or times is None or times.size == 0:
        return
    if saves_at_ts and start > times[0]:
        got = times.tolist() if times.size <= 8 else f"{times.size} times from {times[0]}"
        raise ValueError(
            f"`{name}` = {float(start)} is after the first save time ts[0] = {times[0]} "
            f"(ts = {got}): the save times must lie in [{name}, ts[-1]]; pass {name} <= "
            "ts[0] or leave out the earlier save times."
        )
    if start > times[-1]:
        raise ValueError(
            f"`{name}` = {float(start)} is after the end of the time span ts[-1] = "
            f"{times[-1]}: the solve runs forward from {name} to ts[-1]."
        )


def check_maps_to_own_shape(
    name: str, fn: Callable, t: Any, x: Any, owner: str = "the model", hint: str = ""
) -> None:
    """Raise a ValueError naming `name` unless `fn(t, x)` applies to an input of `x`'s shape
    and dtype and returns that shape, as a denoiser or a vector field must.

    `fn` is traced abstractly (`eqx.filter_eval_shape`: nothing is computed, traced `x`
    work). Such a model returns an array shaped like its input, so the shape it returns is
    the event shape it expects, and the message says so; `hint` adds where the shape comes
    from or what to do (e.g. "one example: vmap over examples outside").
    """
    shape = tuple(jnp.shape(x))
    x_struct = jax.ShapeDtypeStruct(shape, jnp.result_type(x))
    t_struct = jax.ShapeDtypeStruct(tuple(jnp.shape(t)), jnp.result_type(t))
    tail = f" ({hint})" if hint else ""
    try:
        out = eqx.filter_eval_shape(fn, t_struct, x_struct)
    except (TypeError, ValueError) as err:
        raise ValueError(
            f"{owner} cannot be applied to `{name}` of shape {shape}: `{name}` must have the "
            f"shape of one example the model was built for{tail}. The model raised: {err}"
        ) from err
    got = tuple(out.shape) if isinstance(out, jax.ShapeDtypeStruct) else type(out).__name__
    if got != shape:
        raise ValueError(
            f"{owner} returned shape {got} for `{name}` of shape {shape}, but it must return "
            f"its input's shape: `{name}` must have the model's event shape, expected {got}, "
            f"the shape the model returns{tail}."
        )


def check_ndim(name: str, x: Any, ndim: int, what: str | None = None) -> None:
    """Raise a ValueError naming `name` unless `x` has `ndim` dimensions."""
    shape = tuple(jnp.shape(x))
    if len(shape) != ndim:
        raise ValueError(
            f"`{name}` must have {ndim} dimension(s){f' {what}' if what else ''}, got shape "
            f"{shape}."
        )


def check_choice(name: str, value: Any, choices: Sequence[Any]) -> Any:
    """`value` if it is one of `choices`, else a ValueError naming `name` and listing them."""
    if value not in choices:
        raise ValueError(f"`{name}` must be one of {list(choices)}, got {value!r}.")
    return value


def hyperparameter(value: Any) -> Any:
    """A sweepable scalar hyperparameter as a float array (the default float dtype): the
    converter of such module fields, so that `vmap` over a module built from an array of
    values sweeps it without recompiling.

    A value that is not real numbers (None, a string, a complex number) or overflows the
    float dtype is returned as it is: a converter does not know its field's name, so the
    module's `__check_init__` (a `check_*` of this module) refuses it by name."""
    if is_concrete(value):
        try:
            concrete_numbers("value", value)
        except TypeError:
            return value
    try:
        return jnp.asarray(value, dtype=jnp.result_type(float))
    except (TypeError, ValueError, OverflowError):
        return value


def optional_hyperparameter(value: Any) -> Any:
    """`hyperparameter`, with None kept (a default chosen later). Like `hyperparameter`, a
    value it cannot convert is returned as given, for the module's check to refuse by name."""
    return None if value is None else hyperparameter(value)


def check_callable(name: str, value: Any, expected: str) -> Any:
    """`value` if it is callable, else a TypeError naming `name` and what was `expected`
    (e.g. "a resampling function (key, weights, num_samples) -> indices such as
    jaxsci.smc.systematic")."""
    if not callable(value):
        raise TypeError(f"`{name}` must be {expected}; got {value!r}.")
    return value


def check_writable(name: str, x: Any, purpose: str, hint: str = "") -> np.ndarray:
    """`x` if it is a writable NumPy array (an `np.memmap` included), else a ValueError
    naming `name`, what it got (its type; "read-only" for a read-only array) and `purpose`
    (what the array is written for), followed by `hint`."""
    if isinstance(x, np.ndarray) and x.flags.writeable:
        return x
    got = type(x).__name__ + (" (read-only)" if isinstance(x, np.ndarray) else "")
    raise ValueError(
        f"`{name}` must be a writable NumPy array (or memmap) {purpose}, got {got}{hint}."
    )


def check_key(name: str, key: Any) -> jax.Array:
    """A single typed PRNG key (`jax.random.key(seed)`); a raw uint32 (2,) key is wrapped."""
    if isinstance(key, jax.Array) and jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        if key.shape != ():
            raise ValueError(f"`{name}` must be a single PRNG key, got shape {key.shape}.")
        return key
    if is_concrete(key) and key is not None:
        arr = np.asarray(key)
        if arr.dtype == np.uint32 and arr.shape == (2,):
            return jax.random.wrap_key_data(jnp.asarray(arr))
    raise TypeError(
        f"`{name}` must be a PRNG key (jax.random.key(seed)), got {type(key).__name__} {key!r}."
    )


def float_parameter(name: str, x: Any) -> jax.Array:
    """A real parameter `x` (a scalar or an array) as a JAX array of the default float dtype,
    as models store their physical parameters; None, strings, complex numbers and integers
    beyond float64 are a TypeError or ValueError naming `name`. Traced values pass."""
    concrete_numbers(name, x)
    try:
        return jnp.asarray(x, dtype=jnp.result_type(float))
    except OverflowError as err:
        raise ValueError(f"`{name}` must be finite, got an integer beyond float range.") from err


def as_float_array(name: str, x: Any) -> jax.Array:
    """`x` as a JAX array with a floating dtype (integers and bools become the default float);
    complex or non-numeric input is a TypeError naming `name`."""
    try:
        arr = jnp.asarray(x)
    except (TypeError, ValueError, OverflowError) as err:
        raise TypeError(f"`{name}` must be an array of numbers, got {type(x).__name__}.") from err
    if jnp.issubdtype(arr.dtype, jnp.complexfloating):
        raise TypeError(f"`{name}` must be real, got dtype {arr.dtype}.")
    if not jnp.issubdtype(arr.dtype, jnp.floating):
        arr = arr.astype(jnp.result_type(float))
    return arr


def finite_float(name: str, value: Any) -> float:
    """A concrete finite Python float, else a ValueError naming `name`."""
    try:
        v = float(value)
    except OverflowError:  # an integer beyond float64
        v = math.inf
    except (TypeError, ValueError) as err:
        raise ValueError(f"`{name}` must be a number, got {value!r}.") from err
    if not math.isfinite(v):
        raise ValueError(f"`{name}` must be finite, got {v}.")
    return v
