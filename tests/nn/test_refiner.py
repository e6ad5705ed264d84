"""`PDERefiner` (Lippe et al. 2023) and `PDERefinerLoss`: the noise schedule, K = 0 is the
plain one-step model, refinement with an oracle noise predictor recovers the target exactly
(the sigma_k scaling of Algorithm 2), the loss's k sampling (a Monte-Carlo check of the
uniform draw) and its zero at the oracle, and bad input refused by name. The conformance
case (jit, vmap, gradients, parameter count) is in `_registry_forecasters`."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxsci.nn as nn
from jaxsci import losses
from jaxsci.integrate import rollout


@eqx.filter_jit
def _loss(model, batch, key):
    """`PDERefinerLoss()` compiled once per model structure (faster than op-by-op)."""
    return losses.PDERefinerLoss()(model, batch, key=key)


def _target(u):
    """The 'true' next state of the toy problems: a fixed nonlinear map of u."""
    return jnp.sin(u) + 0.5 * jnp.roll(u, 1, axis=-1)


class Oracle(eqx.Module):
    """net(s, [u_prev, x]): at s = 0 a poor prediction a * u_prev; at s = k / K > 0 the exact
    noise of x around the true target, (x - target(u_prev)) / sigma_min^s."""

    a: jax.Array
    sigma_min: float = eqx.field(static=True)

    def __call__(self, s, x):
        u, noisy = x[:1], x[1:]
        exact_noise = (noisy - _target(u)) / self.sigma_min**s
        return jnp.where(s == 0, self.a * u, exact_noise)


class Zero(eqx.Module):
    """net(s, x) = w * x[:1] with w = 0: predicts zero state and zero noise."""

    w: jax.Array

    def __call__(self, s, x):
        return self.w * x[:1]


def test_noise_schedule_is_geometric_down_to_sigma_min():
    r = nn.PDERefiner(Zero(jnp.zeros(())), 1, 3, 1e-6)
    np.testing.assert_allclose(r.noise_stds(), [1e-2, 1e-4, 1e-6], rtol=1e-5)
    r4 = nn.PDERefiner(Zero(jnp.zeros(())), 1, 4, 2e-7)
    s = np.asarray(r4.noise_stds(), dtype=float)
    np.testing.assert_allclose(s, 2e-7 ** (np.arange(1, 5) / 4), rtol=1e-5)
    assert np.all(np.diff(np.log(s)) < 0)
    np.testing.assert_allclose(np.diff(np.log(s)), np.log(2e-7) / 4, rtol=1e-4)
    assert r4.noise_stds().shape == (4,) and nn.PDERefiner(
        Zero(jnp.zeros(())), 1, 0
    ).noise_stds().shape == (0,)


class Mix(eqx.Module):
    """net(s, x) = tanh(W x_flat + b s), reshaped: a small dense conditional network."""

    w: jax.Array
    b: jax.Array

    def __call__(self, s, x):
        return jnp.tanh(self.w @ x.reshape(-1) + self.b * s).reshape(x.shape)


def test_zero_refinement_steps_is_the_plain_one_step_model():
    key = jax.random.key(0)
    net = Mix(0.2 * jax.random.normal(key, (32, 32)), jnp.ones(32))
    u = jax.random.normal(jax.random.key(1), (1, 16))
    plain = net(0.0, jnp.concatenate([u, jnp.zeros_like(u)]))[:1]
    np.testing.assert_allclose(nn.PDERefiner(net, 1, 0)(u), plain, rtol=1e-6, atol=1e-6)
    res = nn.PDERefiner(net, 1, 0, residual=True)
    np.testing.assert_allclose(res(u), u + plain, rtol=1e-6, atol=1e-6)
    # a rollout of the K = 0 refiner is the rollout of that map (no key needed)
    roll = rollout(res, u, 3)
    want, v = [], u
    for _ in range(3):
        v = v + net(0.0, jnp.concatenate([v, jnp.zeros_like(v)]))[:1]
        want.append(v)
    np.testing.assert_allclose(roll, jnp.stack(want), rtol=1e-5, atol=1e-5)
    # and its loss is the one-step MSE of that map: every k is 0
    batch = (jax.random.normal(jax.random.key(2), (5, 1, 16)), jax.random.normal(key, (5, 1, 16)))
    value, aux = _loss(res, batch, jax.random.key(3))
    preds = jax.vmap(res)(batch[0])
    np.testing.assert_allclose(value, jnp.mean((preds - batch[1]) ** 2), rtol=1e-5)
    np.testing.assert_allclose(aux["one_step_mse"], value, rtol=1e-6)


@pytest.mark.parametrize("k_steps", [1, 3])
def test_refinement_with_an_oracle_noise_predictor_recovers_the_target(k_steps):
    """u^0 = 0.5 u is far off; each refinement u^k = u~ - sigma_k f_k(u~) with the exact
    noise removes it, so u^K equals the target (only if f_k's output is scaled by sigma_k)."""
    sigma_min = 1e-3
    r = nn.PDERefiner(Oracle(jnp.asarray(0.5), sigma_min), 1, k_steps, sigma_min)
    u = jax.random.normal(jax.random.key(0), (1, 32))
    out = r(u, key=jax.random.key(1))
    np.testing.assert_allclose(out, _target(u), atol=1e-5)
    plain = nn.PDERefiner(Oracle(jnp.asarray(0.5), sigma_min), 1, 0, sigma_min)
    assert float(jnp.max(jnp.abs(plain(u) - _target(u)))) > 0.1
    # a keyed rollout (one key per step) follows the target map
    roll = rollout(r, u, 2, key=jax.random.key(2))
    np.testing.assert_allclose(roll[1], _target(_target(u)), atol=1e-4)


@pytest.mark.slow  # a Monte-Carlo check of the k draws: ~3 s of compilation and draws
def test_loss_is_zero_at_the_oracle_and_draws_k_uniformly():
    sigma_min = 1e-2
    u = jax.random.normal(jax.random.key(0), (64, 1, 8))
    batch = (u, jax.vmap(_target)(u))
    perfect = nn.PDERefiner(Oracle(jnp.asarray(0.0), sigma_min), 1, 3, sigma_min)

    class Exact(eqx.Module):  # k = 0 predicts the target exactly too
        inner: Oracle

        def __call__(self, s, x):
            return jnp.where(s == 0, _target(x[:1]), self.inner(s, x))

    exact = nn.PDERefiner(Exact(perfect.net), 1, 3, sigma_min)  # pyright: ignore[reportArgumentType]
    value, _ = _loss(exact, batch, jax.random.key(1))
    assert float(value) < 1e-8
    # a network that outputs zeros with a zero target: k = 0 scores 0 exactly, k >= 1 scores
    # mean(eps^2) ~ 1; k ~ U{0..K} makes the loss ~ K / (K + 1) (MC: B = 2000, n = 16)
    b, n = 2000, 16
    zeros = (jnp.zeros((b, 1, n)), jnp.zeros((b, 1, n)))
    for k_steps in (1, 3):
        r = nn.PDERefiner(Zero(jnp.zeros(())), 1, k_steps, sigma_min)
        value, aux = _loss(r, zeros, jax.random.key(k_steps))
        p = k_steps / (k_steps + 1)
        # per-example error: Bernoulli(p) x chi^2_n / n (mean 1, variance 2 / n)
        se = np.sqrt((p * (1 + 2 / n) - p**2) / b)
        assert abs(float(value) - p) < 4 * se, (k_steps, float(value), p, se)
        assert float(aux["one_step_mse"]) == 0.0


def test_bad_input_is_refused_by_name():
    net = Zero(jnp.zeros(()))
    with pytest.raises(TypeError, match="`net`"):
        nn.PDERefiner(lambda s, x: x, 1)  # pyright: ignore[reportArgumentType]
    for bad in (0.0, 1.0, -1e-3, float("nan")):
        with pytest.raises(ValueError, match="min_noise_std"):
            nn.PDERefiner(net, 1, 3, bad)
    with pytest.raises(ValueError, match="num_refinement_steps"):
        nn.PDERefiner(net, 1, -1)
    r = nn.PDERefiner(net, 1, 2)
    with pytest.raises(TypeError, match="key"):
        r(jnp.zeros((1, 8)))
    with pytest.raises(ValueError, match="`u` has shape"):
        r(jnp.zeros((8,)), key=jax.random.key(0))
    loss = losses.PDERefinerLoss()
    with pytest.raises(ValueError, match="batch"):
        loss(r, (jnp.zeros((3, 1, 8)), jnp.zeros((3, 1, 6))), key=jax.random.key(0))
    with pytest.raises(TypeError, match="model"):
        loss(net, (jnp.zeros((3, 1, 8)), jnp.zeros((3, 1, 8))), key=jax.random.key(0))
    with pytest.raises(TypeError, match="key"):
        loss(r, (jnp.zeros((3, 1, 8)), jnp.zeros((3, 1, 8))))


def test_the_papers_code_noise_stds_are_reproduced():
    """The official PDE-Refiner code (pdearena) gives a DDPM scheduler the betas
    sigma_min^(k/K), k = K..0, with sigma_min = 2e-7 for KS: variances. Its noise std at
    refinement k is sqrt(1 - alpha_bar) over the cumulative product of (1 - beta);
    min_noise_std = sqrt(2e-7) reproduces those stds to 0.4% (the documented way to train
    with the code's noise; the default is the paper's text, a std of 2e-7)."""
    K = 3
    betas = np.array([2e-7 ** (k / K) for k in reversed(range(K + 1))])
    alpha_bar = np.cumprod(1.0 - betas)
    code_stds = np.sqrt(1.0 - alpha_bar[:K])[::-1]  # refinement k = 1..K, largest first
    ours = np.asarray(nn.PDERefiner(Zero(jnp.zeros(())), 1, K, np.sqrt(2e-7)).noise_stds())
    np.testing.assert_allclose(ours, code_stds, rtol=4e-3)
