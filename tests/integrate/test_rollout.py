"""`integrate.rollout`: against explicit Python loops, for maps, flows and stochastic steps."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxsci.dynamics import Lorenz63, Lorenz96
from jaxsci.integrate import RK4, Flow, rollout


def test_autoregressive_equals_loop():
    a = jnp.asarray([[0.9, 0.2], [-0.1, 0.8]])

    def step(y):
        return a @ y + jnp.sin(y)

    y = jnp.asarray([1.0, -0.5])
    want = []
    for _ in range(5):
        y = step(y)
        want.append(y)
    got = rollout(step, jnp.asarray([1.0, -0.5]), 5)
    np.testing.assert_allclose(got, np.stack(want), rtol=1e-6)
    with_init = rollout(step, jnp.asarray([1.0, -0.5]), 5, include_initial=True)
    assert with_init.shape == (6, 2)
    np.testing.assert_array_equal(with_init[1:], got)


def test_flow_equals_repeated_calls():
    flow = Flow(Lorenz63(), dt=0.01, solver=RK4())
    y0 = jnp.asarray([1.0, 2.0, 20.0])
    got = rollout(flow, y0, 4, dt=0.1, t0=2.0, include_initial=True)
    y, want = y0, [y0]
    for k in range(4):
        y = flow(y, 2.0 + 0.1 * k, 2.0 + 0.1 * (k + 1))
        want.append(y)
    np.testing.assert_allclose(got, np.stack(want), rtol=2e-5, atol=2e-5)


@pytest.mark.slow  # 4-6 s alone on the 2-core VM (fast-tier budget); CI's slow tier runs it
def test_plain_callable_flow_and_vmap_and_grad():
    model = Lorenz96(n=8)
    flow = Flow(model, dt=0.01, solver=RK4())

    def as_function(y, ta, tb):
        return flow(y, ta, tb)

    y0 = model.default_initial_state() + 0.1 * jnp.arange(8.0)
    a = rollout(flow, y0, 3, dt=0.05)
    b = rollout(as_function, y0, 3, dt=0.05)
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
    batch = jnp.stack([y0, y0 + 1.0])
    out = jax.vmap(lambda y: rollout(flow, y, 3, dt=0.05))(batch)
    assert out.shape == (2, 3, 8)

    def loss(forcing):
        f = Flow(Lorenz96(n=8, forcing=forcing), dt=0.01, solver=RK4())
        return jnp.sum(rollout(f, y0, 2, dt=0.05)[-1] ** 2)

    g = jax.grad(loss)(8.0)
    eps = 1e-2
    fd = (loss(8.0 + eps) - loss(8.0 - eps)) / (2 * eps)
    np.testing.assert_allclose(g, fd, rtol=2e-2)


def test_stochastic_step_gets_fresh_keys():
    def step(y, *, key):
        return y + jax.random.normal(key, y.shape)

    key = jax.random.key(0)
    got = rollout(step, jnp.zeros(3), 4, key=key)
    keys = jax.random.split(key, 4)
    y, want = jnp.zeros(3), []
    for k in keys:
        y = step(y, key=k)
        want.append(y)
    np.testing.assert_allclose(got, np.stack(want), rtol=1e-6, atol=1e-6)
    assert not np.allclose(got[1] - got[0], got[2] - got[1])


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="num_steps"):
        rollout(lambda y: y, jnp.zeros(2), 0)
    with pytest.raises(TypeError, match="num_steps"):
        rollout(lambda y: y, jnp.zeros(2), 2.0)
    with pytest.raises(ValueError, match="dt"):
        rollout(lambda y, a, b: y, jnp.zeros(2), 2, dt=-1.0)
    with pytest.raises(ValueError, match="key"):
        rollout(lambda y, a, b: y, jnp.zeros(2), 2, dt=1.0, key=jax.random.key(0))
    assert eqx.filter_jit(lambda y: rollout(lambda v: 2 * v, y, 2))(jnp.ones(2)).shape == (2, 2)
