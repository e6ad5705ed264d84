"""Fuzz the config loader: a bad value is a ConfigError naming its key, never a crash.

Each shipped config (configs/*.yaml), resolved with every default filled in, is mutated at
one key: its value replaced by a bad one (wrong type, NaN/inf, negative, zero, huge, empty
string or list, a mapping where a scalar belongs, ...), the key deleted (a missing required
key), or an unknown key added to a section. Only validation runs (`resolve`, as `jaxsci run`
does before anything is written), never the pipeline. The outcome must be either a valid
config or a `ConfigError` (a ValueError) whose key is the mutated key, a key above or below
it, or whose message names the mutated key (a cross-field check reported on the other
field, e.g. `integrate.t1: expected t1 > t0 = ...`). Any other exception fails.
"""

import copy
import math
import re
import time
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings, strategies as st

from jaxsci.pipelines import ConfigError, apply_overrides, load_config, resolve, resolved_dict

CONFIGS = sorted((Path(__file__).parents[2] / "configs").glob("*.yaml"))

DELETE, UNKNOWN = "<delete the key>", "<add an unknown key>"


def _paths(node, prefix=()):
    """Every key path into a resolved config (mapping keys and list indices)."""
    items = node.items() if isinstance(node, dict) else enumerate(node)
    for key, value in items:
        yield (*prefix, key)
        if isinstance(value, dict | list):
            yield from _paths(value, (*prefix, key))


BASES = {path.stem: resolved_dict(*load_config(path)) for path in CONFIGS}
TARGETS = [
    (stem, path) for stem, base in BASES.items() for path in _paths(base) if path != ("pipeline",)
]

BAD_VALUES = st.one_of(
    st.sampled_from(
        [
            None,
            math.nan,
            math.inf,
            -math.inf,
            0,
            -1,
            0.5,
            -1.5,
            1e300,
            2**40,
            2**64,
            10**400,  # beyond float64
            True,
            "",
            "x",
            "nan",
            "1e999",
            [],
            [0],
            [-1],
            [math.nan],
            [1, "x"],
            [10**400],
            {},
            {"a": 1},
            DELETE,
            UNKNOWN,
        ]
    ),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.text(max_size=4),
    st.lists(st.integers(-3, 3) | st.floats(allow_nan=True), max_size=3),
)


def _mutate(base: dict, path: tuple, value) -> dict | None:
    """A copy of `base` with `value` at `path` (or the key deleted / an unknown key added);
    None when the mutation does not apply (an unknown key under a scalar)."""
    raw = copy.deepcopy(base)
    node = raw
    for part in path[:-1]:
        node = node[part]
    if value is DELETE:
        del node[path[-1]]
    elif value is UNKNOWN:
        if not isinstance(node[path[-1]], dict):
            return None
        node[path[-1]]["zz_unknown_key"] = 1
    else:
        node[path[-1]] = copy.deepcopy(value)
    return raw


def _segments(key: str) -> list[str]:
    return [s for s in re.split(r"[.\[\]]", key) if s]


def _related(err: ConfigError, path: tuple) -> bool:
    """Whether `err` is reported on the mutated key, a key above or below it, or names the
    mutated key (or its singular: `weights` -> 'one per weight') in its message."""
    got, want = _segments(err.key), [str(p) for p in path]
    if got and (got[: len(want)] == want or want[: len(got)] == got):
        return True
    leaf = next(str(p) for p in reversed(path) if isinstance(p, str))
    return any(
        re.search(rf"(?<![\w]){re.escape(word)}(?!\w)", str(err)) is not None
        for word in {leaf, leaf.removesuffix("s")}
    )


def check_mutation(stem: str, path: tuple, value) -> None:
    raw = _mutate(BASES[stem], path, value)
    if raw is None:
        return
    try:
        resolve(raw)
    except ConfigError as err:
        assert err.key, f"{stem}: {path} = {value!r}: ConfigError without a key: {err}"
        assert _related(err, path), (
            f"{stem}: {'.'.join(map(str, path))} = {value!r} is reported on an unrelated key: {err}"
        )


FAST = settings(
    max_examples=50,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def _fuzz(target, value):
    check_mutation(*target, value)


@FAST
@given(target=st.sampled_from(TARGETS), value=BAD_VALUES)
# an integer beyond float64 for a float key: OverflowError in float(), not a ConfigError
@example(target=("burgers_fno", ("data", "nu")), value=10**400)
# rollout_steps > train_steps left a negative number of training examples, reported on
# training.batch_size ("expected <= the -57600 training examples")
@example(target=("ks_fno_rollout", ("loss", "rollout_steps")), value=1000)
# a huge coefficient overflowing the KS linear operator was reported on model.params.length
# ("too short for the grid"; found by the slow tier)
@example(target=("ks", ("model", "params", "nu")), value=4.877651371865718e34)
# a tiny integrate.dt was reported on observations.interval without naming dt (the slow
# tier's draw once the configs of issue 15 changed the sequence)
@example(target=("ks_model_error_nonlinear", ("integrate", "dt")), value=1e-300)
# the observations section emptied (defaults: a shorter interval) made the burn-in too
# long, reported on experiment.burn_in without naming the interval's section
@example(target=("l63_pf", ("observations",)), value=None)
# a huge window overflowed NumPy's arange in losses.window_starts ("Maximum allowed size
# exceeded", no key named; the slow tier's draw in stop 26)
@example(target=("l96_closure", ("training", "window")), value=1e300)
def test_config_fuzz(target, value):
    _fuzz(target, value)


@pytest.mark.slow
@settings(FAST, max_examples=3000)  # 9 s; at 3000 a huge num_points once hung validation
@given(target=st.sampled_from(TARGETS), value=BAD_VALUES)
def test_config_fuzz_long(target, value):
    _fuzz(target, value)


@FAST
@given(
    stem=st.sampled_from(sorted(BASES)),
    data=st.data(),
    text=st.text(max_size=12) | st.sampled_from(["[1, 2", "{a: 1}", "!!binary x", "1e999"]),
)
def test_set_override_fuzz(stem, data, text):
    """`--set key=text` with arbitrary text: the value is parsed as YAML (whatever it gives:
    dates, nested mappings, ...) and validated; only ConfigErrors come out."""
    path = data.draw(st.sampled_from([p for s, p in TARGETS if s == stem]), label="key")
    key = ".".join(str(p) for p in path)
    try:
        resolve(apply_overrides(copy.deepcopy(BASES[stem]), [f"{key}={text}"]))
    except ConfigError as err:
        assert err.key, err


def test_int_keys_refuse_integers_beyond_64_bits():
    """A seed of 2**64 validated and failed later in NumPy/JAX with an OverflowError."""
    raw = _mutate(BASES["ks_fno_rollout"], ("data", "seed"), 2**64)
    with pytest.raises(ConfigError, match="64 bits") as info:
        resolve(raw)
    assert info.value.key == "data.seed"


def test_rollout_steps_may_equal_train_steps():
    """k = train_steps leaves one k-step window per trajectory (`rollout_windows`), so the
    config is valid; the example count was train_steps - k (0 here) instead of
    train_steps + 1 - k, and the config was refused on training.batch_size."""
    base = BASES["ks_fno_rollout"]
    raw = _mutate(base, ("loss", "rollout_steps"), base["data"]["train_steps"])
    raw["training"]["batch_size"] = base["data"]["num_train"]
    resolve(raw)


def test_shipped_configs_round_trip():
    """The bases of the fuzz are valid and stable: validating a resolved config gives it."""
    for stem, base in BASES.items():
        assert resolved_dict(*resolve(base)) == base, stem
        assert yaml.safe_load(yaml.safe_dump(base)) == base, stem


@pytest.mark.parametrize(
    "stem, path",
    [
        ("ks_model_error_growth", ("model", "params", "num_points")),  # the slow tier's find
        ("ks", ("model", "params", "num_points")),
        ("ns2d_kolmogorov", ("model", "params", "num_points")),  # n^2 points: 10^5 per axis
        ("burgers_fno", ("data", "num_points")),
    ],
)
def test_huge_grid_is_refused_before_anything_is_built(stem, path):
    """Validating `num_points` = 827783078 ran for minutes: building the model to check it
    computed its Fourier symbol on the whole grid (gigabytes). The grid bound
    (`jaxsci.spectral.MAX_GRID_POINTS`) is now checked first, naming the key."""
    value = 100_000 if stem == "ns2d_kolmogorov" else 827_783_078
    start = time.perf_counter()
    with pytest.raises(ConfigError, match="num_points") as info:
        resolve(_mutate(BASES[stem], path, value))
    assert time.perf_counter() - start < 0.5
    assert info.value.key == ".".join(path)
