"""SDE simulation: reproducible with a key, Euler-Maruyama statistics, sigma = 0 is the ODE."""

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxsci.dynamics import AbstractDynamics, AdditiveNoise, Lorenz63
from jaxsci.integrate import simulate


class _Decay(AbstractDynamics):
    """dy/dt = -theta y (test helper: with additive noise, an Ornstein-Uhlenbeck process)."""

    theta: jax.Array
    dim: int = eqx.field(static=True, default=8)

    @property
    def state_shape(self):
        return (self.dim,)

    def vector_field(self, t, y, args):
        return -self.theta * y


def test_sde_is_reproducible_and_key_dependent():
    model = AdditiveNoise(Lorenz63(), 1.0)
    y0 = model.default_initial_state()
    ts = jnp.linspace(0.0, 0.5, 6)
    run = jax.jit(lambda key: simulate(model, y0, ts, dt0=0.01, key=key).ys)
    a, b, c = run(jax.random.key(3)), run(jax.random.key(3)), run(jax.random.key(4))
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert float(jnp.max(jnp.abs(a[-1] - c[-1]))) > 1e-3


@pytest.mark.slow
def test_zero_noise_euler_maruyama_is_euler():
    """sigma = 0: Euler-Maruyama is the deterministic Euler method, step for step."""
    ode = Lorenz63()
    y0 = ode.default_initial_state()
    ts = jnp.linspace(0.0, 0.5, 6)
    sde = simulate(AdditiveNoise(ode, 0.0), y0, ts, dt0=0.01, key=jax.random.key(0)).ys
    ref = simulate(ode, y0, ts, solver=diffrax.Euler(), dt0=0.01).ys
    np.testing.assert_allclose(np.asarray(sde), np.asarray(ref), rtol=1e-6, atol=1e-5)


@pytest.mark.slow
def test_ornstein_uhlenbeck_moments():
    """dy = -theta y dt + sigma dW with Euler-Maruyama, h = 0.01, n = 100 steps.

    The EM recursion y_{i+1} = (1 - theta h) y_i + sigma sqrt(h) xi_i has exactly
    mean (1 - theta h)^n y0 and variance sigma^2 h sum_{i<n} (1 - theta h)^{2i}, so the
    only error is Monte-Carlo: 512 paths x 8 independent components = 4096 samples give
    standard errors sd/64 for the mean and var*sqrt(2/4095) ~ 2.2% for the variance;
    we test at 4 standard errors. Fixed seed.
    """
    theta, sigma, h, n = 1.0, 0.8, 0.01, 100
    model = AdditiveNoise(_Decay(theta=jnp.asarray(theta)), sigma)
    y0 = jnp.full((8,), 2.0)
    ts = jnp.array([0.0, n * h])
    keys = jax.random.split(jax.random.key(42), 512)
    final = jax.jit(jax.vmap(lambda k: simulate(model, y0, ts, dt0=h, key=k).ys[-1]))(keys)
    samples = np.asarray(final).reshape(-1)
    a = 1 - theta * h
    mean = a**n * 2.0
    var = sigma**2 * h * sum(a ** (2 * i) for i in range(n))
    se_mean = np.sqrt(var / samples.size)
    assert abs(samples.mean() - mean) < 4 * se_mean
    assert abs(samples.var(ddof=1) / var - 1) < 4 * np.sqrt(2 / (samples.size - 1))
