"""`Flow.window(length)`: the fixed-length scan over solver steps equals `Flow.__call__`."""

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxsci.dynamics import AbstractDynamics, KuramotoSivashinsky, Lorenz63, Lorenz96
from jaxsci.integrate import Flow
from jaxsci.integrate._flow import _ignores_time


@pytest.mark.parametrize("t0", [0.0, 3.7])
def test_window_equals_call_rk4(x64, t0):
    # float64 so that the two loops' different time arithmetic cannot hide a wrong step
    flow = Flow(Lorenz63(), 0.01)
    y0 = jnp.array([1.5, -1.5, 25.0])
    got = flow.window(0.25)(y0, t0)
    want = flow(y0, t0, t0 + 0.25)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


@pytest.mark.slow  # 6 s; the RK4 rows stay fast; CI runs the slow tier (fast-tier budget)
def test_window_equals_call_etdrk4(x64):
    model = KuramotoSivashinsky(length=22.0, num_points=32)
    flow = Flow(model, 0.05)
    x = jnp.linspace(0, 22.0, 32, endpoint=False)
    y0 = jnp.cos(2 * jnp.pi * x / 22.0) + 0.1 * jnp.sin(4 * jnp.pi * x / 22.0)
    np.testing.assert_allclose(flow.window(1.0)(y0, 2.0), flow(y0, 2.0, 3.0), rtol=0, atol=1e-11)


def test_window_not_whole_steps_falls_back_to_call(x64):
    flow = Flow(Lorenz63(), 0.01)
    y0 = jnp.array([1.5, -1.5, 25.0])
    # 0.255 is not a whole number of steps: the last step is shortened, as in __call__
    np.testing.assert_allclose(flow.window(0.255)(y0, 0.0), flow(y0, 0.0, 0.255), rtol=1e-13)


@pytest.mark.slow
def test_window_gradient_matches_call(x64):
    y0 = jnp.linspace(-1.0, 1.0, 8) + 8.0

    def loss(model, use_window):
        flow = Flow(model, 0.05)
        y = flow.window(0.2)(y0, 0.0) if use_window else flow(y0, 0.0, 0.2)
        return jnp.sum(y**2)

    model = Lorenz96(8, 8.0)
    g_window = eqx.filter_grad(lambda m: loss(m, True))(model).forcing
    g_call = eqx.filter_grad(lambda m: loss(m, False))(model).forcing
    np.testing.assert_allclose(g_window, g_call, rtol=1e-11)
    # and central finite differences, so the two cannot agree on a wrong gradient
    eps = 1e-6
    fd = (loss(Lorenz96(8, 8.0 + eps), True) - loss(Lorenz96(8, 8.0 - eps), True)) / (2 * eps)
    np.testing.assert_allclose(g_window, fd, rtol=1e-6)


def test_window_blow_up_gives_nan_under_jit():
    # like __call__, the window never raises under jit: a blow-up is a non-finite state
    flow = Flow(Lorenz63(), 0.01)
    y0 = jnp.array([jnp.inf, 0.0, 0.0])
    assert not np.any(np.isfinite(np.asarray(jax.jit(flow.window(0.1))(y0, 0.0))))


def test_window_other_adjoint_uses_diffeqsolve(x64):
    flow = Flow(Lorenz63(), 0.01, adjoint=diffrax.BacksolveAdjoint())
    y0 = jnp.array([1.5, -1.5, 25.0])
    np.testing.assert_allclose(flow.window(0.1)(y0, 0.0), flow(y0, 0.0, 0.1), rtol=1e-13)


def test_window_rejects_bad_length():
    with pytest.raises(ValueError, match="`length`"):
        Flow(Lorenz63(), 0.01).window(0.0)


def test_window_vmaps_and_jits():
    flow = Flow(Lorenz96(40, 8.0), 0.05)
    ens = 8.0 + jax.random.normal(jax.random.key(0), (5, 40))
    f = jax.jit(jax.vmap(flow.window(0.05), in_axes=(0, None)))
    np.testing.assert_allclose(
        f(ens, 1.0), jax.vmap(lambda y: flow(y, 1.0, 1.05))(ens), rtol=1e-5, atol=1e-5
    )


class _ForcedDecay(AbstractDynamics):
    """dy/dt = -y + sin(t): not autonomous, so the window must start at the given t0."""

    @property
    def state_shape(self):
        return (2,)

    def vector_field(self, t, y, args):
        return -y + jnp.sin(t)


def test_window_non_autonomous_model_uses_t0(x64):
    flow = Flow(_ForcedDecay(), 0.01)
    y0 = jnp.array([1.0, -2.0])
    got = flow.window(0.5)(y0, 3.7)
    np.testing.assert_allclose(got, flow(y0, 3.7, 4.2), rtol=1e-12, atol=1e-12)
    # exact solution y(t) = sin/cos forcing response + decaying transient, to RK4 accuracy
    t0, t1 = 3.7, 4.2
    particular = lambda t: (jnp.sin(t) - jnp.cos(t)) / 2  # noqa: E731
    exact = particular(t1) + (y0 - particular(t0)) * np.exp(-(t1 - t0))
    np.testing.assert_allclose(got, exact, rtol=0, atol=1e-9)
    assert np.max(np.abs(np.asarray(flow.window(0.5)(y0, 0.0) - got))) > 0.1


def test_ignores_time_detection():
    y = jnp.zeros(8)
    assert _ignores_time(Lorenz96(8, 8.0), diffrax.Tsit5(), y, None)
    assert not _ignores_time(_ForcedDecay(), diffrax.Tsit5(), jnp.zeros(2), None)
    ks = KuramotoSivashinsky(length=22.0, num_points=32)
    assert _ignores_time(ks, Flow(ks, 0.05).solver, jnp.zeros(32), None)


def test_window_autonomous_step_does_not_depend_on_t0_float32():
    """Float32: the step size is the constant h, not (t0 + h) - t0 with t0's rounding, so the
    window from t0 = 1000 is bit-identical to the window from 0."""
    flow = Flow(Lorenz96(40, 8.0), 0.05)
    ens = 8.0 + jax.random.normal(jax.random.key(0), (5, 40))
    f = jax.jit(jax.vmap(flow.window(0.05), in_axes=(0, None)))
    np.testing.assert_array_equal(np.asarray(f(ens, 1000.0)), np.asarray(f(ens, 0.0)))
