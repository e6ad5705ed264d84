"""Networks as dynamics models: a neural ODE through `jaxsci.simulate` with its weight
gradient checked against finite differences (float64), hybrid physics + closure models
against the physics model they reproduce, and argument errors."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxsci
import jaxsci.dynamics as dyn
import jaxsci.nn as nn
from jaxsci.nn._layers import linear


@pytest.mark.slow
def test_neural_ode_gradient_matches_finite_differences(x64):
    """float64: d/dW of sum(y(T)^2) for one first-layer weight of the MLP vector field,
    through `simulate` (Tsit5, rtol 1e-10, RecursiveCheckpointAdjoint), against a central
    difference with step 1e-5 (truncation error ~1e-10 relative)."""
    model = nn.NeuralVectorField(nn.MLP(2, 2, 8, 1, activation=jnp.tanh, key=jax.random.key(0)))
    assert model.state_shape == (2,) and model.network.layers[0].weight.dtype == jnp.float64
    y0 = jnp.array([0.5, -0.3])
    ts = jnp.linspace(0.0, 1.0, 5)

    @eqx.filter_jit
    def loss(m):
        traj = jaxsci.simulate(m, y0, ts, rtol=1e-10, atol=1e-12)
        return jnp.sum(traj.ys[-1] ** 2)

    grad = eqx.filter_grad(loss)(model).network.layers[0].weight[3, 1]
    w = model.network.layers[0].weight

    def bumped(d):
        return eqx.tree_at(lambda m: m.network.layers[0].weight, model, w.at[3, 1].add(d))

    eps = 1e-5
    fd = (loss(bumped(eps)) - loss(bumped(-eps))) / (2 * eps)
    assert abs(float(grad)) > 1e-3
    np.testing.assert_allclose(float(grad), float(fd), rtol=1e-6)


def test_hybrid_with_the_missing_term_as_closure_is_the_full_model():
    """Lorenz-63 with sigma = 10 plus a linear closure c(y) = (2 (y2 - y1), 0, 0) is
    Lorenz-63 with sigma = 12: equal vector fields at random states (integration through
    `simulate` is checked by the neural-ODE and semilinear tests, gradients of physics and
    closure parameters by the conformance suite)."""
    closure = linear(3, 3, key=jax.random.key(0))
    weight = jnp.zeros((3, 3)).at[0, 0].set(-2.0).at[0, 1].set(2.0)
    closure = eqx.tree_at(lambda m: (m.weight, m.bias), closure, (weight, jnp.zeros(3)))
    hybrid = nn.HybridVectorField(dyn.Lorenz63(sigma=10.0), closure)
    truth = dyn.Lorenz63(sigma=12.0)
    assert hybrid.state_shape == (3,)
    np.testing.assert_array_equal(
        np.asarray(hybrid.default_initial_state()), np.asarray(truth.default_initial_state())
    )
    ys = 10 * jax.random.normal(jax.random.key(1), (5, 3))
    a = jax.vmap(lambda y: hybrid.vector_field(0.0, y, None))(ys)
    b = jax.vmap(lambda y: truth.vector_field(0.0, y, None))(ys)
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6, atol=1e-4)


@pytest.mark.slow
def test_hybrid_semilinear_keeps_the_etdrk_path():
    """Kuramoto-Sivashinsky plus the closure c(u) = 0.1 u (an FNO-shaped 1x1 map on the
    (1, n) view of the state) equals KS with growth 0.1: ETDRK4 on both (the closure sits in
    the nonlinear part, the growth in the linear part; both fourth order, dt = 0.02, so
    the splitting difference is far below float32 rounding: 100 steps * eps * |u| ~ 3e-5)."""
    ks = dyn.KuramotoSivashinsky(length=22.0, num_points=32)
    closure = nn.SpectralConv1d(1, 1, 17, key=jax.random.key(0))
    closure = eqx.tree_at(
        lambda m: (m.weight_real, m.weight_imag),
        closure,
        (jnp.full((1, 1, 17), 0.1), jnp.zeros((1, 1, 17))),
    )
    hybrid = nn.HybridSemilinear(ks, closure, network_shape=(1, 32))
    truth = dyn.KuramotoSivashinsky(length=22.0, num_points=32, growth=0.1)
    y0 = ks.default_initial_state()
    ts = jnp.linspace(0.0, 2.0, 5)
    a = jaxsci.simulate(hybrid, y0, ts, dt0=0.02).ys
    b = jaxsci.simulate(truth, y0, ts, dt0=0.02).ys
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=3e-5)


def test_flow_integrates_a_time_dependent_network():
    """`jaxsci.Flow` (fixed-step RK4) on dy/dt = f(t, y) given by a time-conditioned net."""
    model = nn.NeuralVectorField(
        nn.ScoreMLP(2, 8, 1, 4, key=jax.random.key(0)), 2, time_dependent=True
    )
    flow = jaxsci.Flow(model, dt=0.05)
    y1 = eqx.filter_jit(flow)(jnp.array([1.0, 0.0]), 0.0, 0.5)
    assert y1.shape == (2,) and bool(jnp.all(jnp.isfinite(y1)))
    assert isinstance(model, dyn.AbstractDynamics)


def test_bad_arguments_name_themselves(own_checks):
    key = jax.random.key(0)
    with pytest.raises(ValueError, match="`state_shape` is required"):
        nn.NeuralVectorField(nn.FNO1d(1, 1, 4, 3, 1, key=key))
    with pytest.raises(
        ValueError, match=r"`network` maps an input of shape \(3,\) to shape \(2,\)"
    ):
        nn.NeuralVectorField(nn.MLP(3, 2, 4, 1, key=key), 3)
    with pytest.raises(ValueError, match="`network_shape`"):
        nn.NeuralVectorField(nn.FNO1d(1, 1, 4, 3, 1, key=key), 16, network_shape=(1, 8))
    with pytest.raises(ValueError, match="`network` cannot be called"):
        nn.NeuralVectorField(nn.FNO1d(1, 1, 4, 3, 1, key=key), 16)
    with pytest.raises(TypeError, match="`physics`"):
        nn.HybridVectorField(dyn.AdditiveNoise(dyn.Lorenz63(), 0.1), nn.MLP(3, 3, 4, 1, key=key))
    with pytest.raises(TypeError, match="`physics`"):
        nn.HybridSemilinear(dyn.Lorenz63(), nn.MLP(3, 3, 4, 1, key=key))
    with pytest.raises(ValueError, match="`closure`"):
        nn.HybridVectorField(dyn.Lorenz63(), nn.MLP(3, 1, 4, 1, key=key))
    with pytest.raises(TypeError, match="`closure` must be callable"):
        nn.HybridVectorField(dyn.Lorenz63(), 3.0)
