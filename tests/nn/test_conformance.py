"""Conformance suite over every jaxsci.nn network: output shape, jit == no-jit, one trace
for new input and parameter values, vmap over a batch == a Python loop, finite (and
connected) parameter gradients, the documented parameter count, and a run at another
resolution."""

import functools
import re

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _params import marked_params

import jaxsci.nn as nn
from jaxsci.nn import count_params

from ._registry import CASES, FORECASTER_CASES

NAMES = list(CASES)
# the architectures whose numeric rows (jit, vmap, gradients, another resolution) run in the
# slow tier, 13-25 s each under xdist (CI runs both tiers); their lighter siblings (FNO1d,
# SpectralConv1d/2d, ScoreUNet1d) keep the fast tier's coverage of each family
HEAVY = {"UNet1d", "SpectralConv3d", "ScoreUNet2d", "FNO2d"}


@functools.cache
def _model(name):
    return CASES[name].make(jax.random.key(0))


def _args(name, seed=1, resolution=0):
    return CASES[name].inputs(jax.random.key(seed), resolution)


TRACES: dict[str, list] = {name: [] for name in NAMES}


@functools.cache
def _jitted(name):
    """One jitted evaluation per case, shared by the tests (it records its traces)."""
    call = CASES[name].call

    @eqx.filter_jit
    def f(model, *args):
        TRACES[name].append(None)
        return call(model, *args)

    return f


def _new_values(tree, s):
    """The same pytree with every inexact array leaf scaled: new values, same shapes."""
    return jax.tree_util.tree_map(
        lambda x: x * (1.0 + 0.01 * s) if eqx.is_inexact_array(x) else x, tree
    )


def test_registry_covers_every_network():
    """Every exported module class has a conformance case, and so has every entry of
    NETWORKS: a class, or a fixed-dimension constructor (`FNO1d`, ...) named like its case."""
    exported = {
        name
        for name in dir(nn)
        if isinstance(getattr(nn, name), type)
        and issubclass(getattr(nn, name), eqx.Module)
        and not name.startswith("Abstract")
    }
    covered = {type(_model(name)).__name__ for name in NAMES}
    assert exported == covered
    assert set(nn.NETWORKS) <= covered | set(NAMES)
    for name, make in nn.NETWORKS.items():
        assert isinstance(make, type) or isinstance(_model(name), eqx.Module)


@pytest.mark.parametrize(
    "name", marked_params(NAMES, {"UNet2d", "PDERefiner", "FourierFeatureMLP"} | HEAVY)
)
def test_shape_jit_equals_no_jit_and_no_recompilation(name):
    model, args, call = _model(name), _args(name), CASES[name].call
    out = call(model, *args)
    assert out.shape == CASES[name].out_shape(*args)
    assert out.dtype == jnp.float32
    assert bool(jnp.all(jnp.isfinite(out)))
    f = _jitted(name)
    np.testing.assert_allclose(np.asarray(f(model, *args)), np.asarray(out), rtol=1e-5, atol=1e-5)
    before = len(TRACES[name])
    for s in range(1, 3):  # new input values and new parameter values, same shapes
        f(_new_values(model, s), *_args(name, seed=10 + s))
    assert len(TRACES[name]) == before


@pytest.mark.parametrize("name", marked_params(NAMES, HEAVY))
def test_vmap_equals_loop(name):
    model, call = _model(name), CASES[name].call
    examples = [_args(name, seed=s) for s in range(3)]
    batch = jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *examples)
    batched = eqx.filter_jit(eqx.filter_vmap(call, in_axes=(None,) + (0,) * len(batch)))(
        model, *batch
    )
    for i, args in enumerate(examples):
        np.testing.assert_allclose(
            np.asarray(batched[i]), np.asarray(_jitted(name)(model, *args)), rtol=1e-5, atol=1e-5
        )


@pytest.mark.parametrize(
    "name", marked_params(NAMES, {"UNet2d", "PDERefiner", "FourierFeatureMLP"} | HEAVY)
)
def test_finite_connected_gradients(name):
    """d(sum(out * r))/d(params) is finite and every parameter array gets a nonzero gradient,
    except the documented buffers, whose gradient is exactly zero (stop_gradient). A
    network without parameters is differentiated with respect to its input."""
    model, args, call = _model(name), _args(name), CASES[name].call
    r = jax.random.normal(jax.random.key(7), CASES[name].out_shape(*args))
    if CASES[name].params == 0:
        g = jax.jit(jax.grad(lambda *a: jnp.sum(call(model, *a) * r)))(*args)
        assert bool(jnp.all(jnp.isfinite(g))) and bool(jnp.any(g != 0))
        return
    grads = eqx.filter_jit(eqx.filter_grad(lambda m, *a: jnp.sum(call(m, *a) * r)))(model, *args)
    flat, _ = jax.tree_util.tree_flatten_with_path(eqx.filter(grads, eqx.is_inexact_array))
    assert flat, "no differentiable parameters"
    for path, g in flat:
        where = jax.tree_util.keystr(path)
        assert bool(jnp.all(jnp.isfinite(g))), f"non-finite gradient at {where}"
        if any(b in where for b in CASES[name].buffers):
            assert bool(jnp.all(g == 0)), f"buffer {where} has a nonzero gradient"
        else:
            assert bool(jnp.any(g != 0)), f"parameter {where} gets no gradient"


@pytest.mark.parametrize("name", NAMES)
def test_parameter_count_matches_documented_formula(name):
    assert count_params(_model(name)) == CASES[name].params


@pytest.mark.parametrize("name", marked_params(NAMES, HEAVY))
def test_runs_at_another_resolution(name):
    """A network built for one grid runs on another (the U-Nets on any size divisible by
    2**levels); vector-input networks get their fixed input shape again."""
    model = _model(name)
    args = _args(name, resolution=1)
    out = _jitted(name)(model, *args)
    assert out.shape == CASES[name].out_shape(*args)
    assert bool(jnp.all(jnp.isfinite(out)))


# (index of the argument given a spurious leading batch axis, the name its error must use)
BAD_INPUT = {
    "MLP": (0, "x"),
    "MLP-fourier": (0, "x"),
    "RandomFourierFeatures": (0, "x"),
    "FourierFeatureMLP": (0, "x"),
    "SpectralConv1d": (0, "x"),
    "SpectralConv2d": (0, "x"),
    "SpectralConv3d": (0, "x"),
    "FNO1d": (0, "x"),
    "FNO2d": (0, "x"),
    "UNet1d": (0, "x"),
    "UNet2d": (0, "x"),
    "DeepONet": (0, "u_sensors"),
    "SinusoidalEmbedding": (0, "t"),
    "PeriodicEmbedding": (0, "p"),
    "EmbeddedNetwork": (0, "p"),
    "HardInitialCondition": (0, "p"),
    "ScoreMLP": (1, "x"),
    "ScoreUNet1d": (1, "x"),
    "ScoreUNet2d": (1, "x"),
}


@pytest.mark.parametrize("name", list(BAD_INPUT))
def test_batched_input_raises_a_value_error_naming_the_argument(name, own_checks):
    """One example in: a batch passed without vmap is an error naming the argument and the
    shape it got. (The dynamics wrappers are checked by simulate/Flow through
    `check_state`, like every jaxsci model.)"""
    index, arg = BAD_INPUT[name]
    args = list(_args(name))
    args[index] = jnp.stack([args[index], args[index]])
    with pytest.raises(
        ValueError, match=re.escape(f"`{arg}` has shape {tuple(args[index].shape)}")
    ):
        CASES[name].call(_model(name), *args)


def test_bad_input_table_covers_every_network_case():
    wrappers = {"NeuralVectorField", "HybridVectorField", "HybridSemilinear", "SemilinearOperator"}
    assert set(BAD_INPUT) == set(NAMES) - wrappers - set(FORECASTER_CASES)
