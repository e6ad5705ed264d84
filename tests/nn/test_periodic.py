"""PeriodicEmbedding (exact periodicity of a network on it, feature values), EmbeddedNetwork,
HardInitialCondition (exact initial condition)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxsci.nn import MLP, EmbeddedNetwork, HardInitialCondition, PeriodicEmbedding


def _field(key=0, harmonics=3):
    emb = PeriodicEmbedding((2.0, None), num_harmonics=harmonics)
    mlp = MLP(emb.out_size, 1, 16, 2, activation=jnp.tanh, key=jax.random.key(key))
    return EmbeddedNetwork(emb, mlp)


def test_embedding_features_and_size():
    emb = PeriodicEmbedding((2.0, None), num_harmonics=2)
    assert emb.out_size == 5
    x, t = 0.3, 0.7
    want = [np.cos(np.pi * x), np.cos(2 * np.pi * x), np.sin(np.pi * x), np.sin(2 * np.pi * x), t]
    np.testing.assert_allclose(np.asarray(emb(jnp.array([x, t]))), want, rtol=1e-6)


def test_network_is_exactly_periodic_with_its_derivatives():
    """u(x + P, t) = u(x, t) and u_x(x + P, t) = u_x(x, t) to rounding, for an untrained
    network (periodicity comes from the embedding, not from training)."""
    u = _field()
    pts = jax.random.uniform(jax.random.key(1), (20, 2), minval=-1.0, maxval=1.0)
    shift = jnp.array([2.0, 0.0])
    f = jax.jit(jax.vmap(lambda p: u(p)[0]))
    np.testing.assert_allclose(np.asarray(f(pts + shift)), np.asarray(f(pts)), atol=1e-5)
    du = jax.jit(jax.vmap(jax.grad(lambda p: u(p)[0])))
    np.testing.assert_allclose(np.asarray(du(pts - shift)), np.asarray(du(pts)), atol=1e-4)
    # a network on the raw coordinates is not periodic (the check can fail)
    raw = MLP(2, 1, 16, 2, activation=jnp.tanh, key=jax.random.key(0))
    g = jax.jit(jax.vmap(lambda p: raw(p)[0]))
    assert float(jnp.max(jnp.abs(g(pts + shift) - g(pts)))) > 1e-2


def test_hard_initial_condition_is_exact():
    def u0(x):
        return x**2 * jnp.cos(jnp.pi * x)

    u = HardInitialCondition(_field(), u0, t0=0.25)
    xs = jnp.linspace(-1, 1, 7)
    field = jax.jit(jax.vmap(lambda x, t: u(jnp.stack([x, t]))[0], in_axes=(0, None)))
    at_t0 = field(xs, 0.25)
    np.testing.assert_allclose(np.asarray(at_t0), np.asarray(u0(xs)), atol=1e-7)
    later = field(xs, 0.9)
    assert float(jnp.max(jnp.abs(later - u0(xs)))) > 1e-3


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: PeriodicEmbedding((None, None)), "periods"),
        (lambda: PeriodicEmbedding((-2.0, None)), r"periods\[0\]"),
        (lambda: PeriodicEmbedding((float("inf"),)), r"periods\[0\]"),
        (lambda: PeriodicEmbedding((2.0,), num_harmonics=0), "num_harmonics"),
        (lambda: HardInitialCondition(_field(), "u0"), "initial"),
        (lambda: HardInitialCondition(_field(), jnp.sin, t0=float("nan")), "t0"),
    ],
)
def test_bad_arguments_are_named(make, match):
    with pytest.raises((ValueError, TypeError), match=match):
        make()


def test_wrong_point_shape_is_named():
    with pytest.raises(ValueError, match="p"):
        PeriodicEmbedding((2.0, None))(jnp.ones(3))
    with pytest.raises(ValueError, match="p"):
        HardInitialCondition(_field(), jnp.sin)(jnp.ones(()))
