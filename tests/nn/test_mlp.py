"""MLP with random Fourier features (Tancik et al. 2020), sinusoidal embeddings
(Vaswani et al. 2017) and DeepONet (Lu et al. 2021) against their defining formulas,
written out in numpy."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxsci.nn as nn
from jaxsci.nn import count_params


def _gelu_tanh(x):
    """GELU, tanh approximation (Hendrycks & Gimpel 2016), in numpy."""
    return 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x**3)))


def test_fourier_features_match_the_formula_and_the_matrix_distribution():
    """gamma(v) = [cos(2 pi B v), sin(2 pi B v)] with B read from the model, and the entries
    of B are N(0, s^2): sample mean and standard deviation within 4 standard errors."""
    m, d, s = 256, 2, 3.0
    model = nn.MLP(d, 1, 8, 1, fourier_features=m, fourier_scale=s, key=jax.random.key(0))
    b = np.asarray(model.fourier_matrix, np.float64)
    assert b.shape == (m, d)
    v = np.array([0.3, -0.7])
    expected = np.concatenate([np.cos(2 * np.pi * b @ v), np.sin(2 * np.pi * b @ v)])
    np.testing.assert_allclose(
        np.asarray(model.features(jnp.asarray(v, jnp.float32))), expected, atol=2e-5
    )
    n = b.size
    assert abs(b.mean()) < 4 * s / np.sqrt(n)
    assert abs(b.std() - s) < 4 * s / np.sqrt(2 * n)


def test_fourier_matrix_is_a_frozen_buffer():
    """stop_gradient: its gradient is exactly zero and Adam leaves it bit-for-bit unchanged
    while the weights move."""
    model = nn.MLP(1, 1, 16, 2, fourier_features=8, fourier_scale=2.0, key=jax.random.key(1))
    xs = jnp.linspace(0, 1, 32)[:, None]
    ys = jnp.sin(6 * xs)
    opt = optax.adam(1e-2)
    state = opt.init(eqx.filter(model, eqx.is_inexact_array))

    @eqx.filter_jit
    def step(model, state):
        loss, g = eqx.filter_value_and_grad(lambda m: jnp.mean((jax.vmap(m)(xs) - ys) ** 2))(model)
        updates, state = opt.update(g, state, model)
        return eqx.apply_updates(model, updates), state, g

    new, state, g = step(model, state)
    for _ in range(3):
        new, state, g = step(new, state)
    assert bool(jnp.all(g.fourier_matrix == 0))
    assert bool(jnp.all(new.fourier_matrix == model.fourier_matrix))
    assert not bool(jnp.all(new.layers[0].weight == model.layers[0].weight))


def test_mlp_matches_numpy_forward_pass():
    """depth 2, GELU: x -> g(W1 x + b1) -> g(W2 h + b2) -> W3 h + b3, in numpy."""
    model = nn.MLP(3, 2, 5, 2, key=jax.random.key(2))
    x = np.array([0.1, -1.2, 0.7])
    h = x
    for i, layer in enumerate(model.layers):
        h = np.asarray(layer.weight, np.float64) @ h + np.asarray(layer.bias, np.float64)
        if i < 2:
            h = _gelu_tanh(h)
    np.testing.assert_allclose(
        np.asarray(model(jnp.asarray(x, jnp.float32))), h, rtol=1e-5, atol=1e-6
    )
    affine = nn.MLP(4, 3, 7, 0, key=jax.random.key(3))
    assert len(affine.layers) == 1 and count_params(affine) == 4 * 3 + 3


def test_mlp_on_coordinates_is_resolution_independent():
    """A coordinate network evaluated on a 16- and a 32-point grid agrees at shared points."""
    model = nn.MLP(1, 1, 16, 2, fourier_features=4, key=jax.random.key(4))
    f = jax.jit(jax.vmap(model))
    coarse = f((jnp.arange(16) / 16.0)[:, None])
    fine = f((jnp.arange(32) / 32.0)[:, None])
    np.testing.assert_allclose(np.asarray(fine[::2]), np.asarray(coarse), rtol=1e-6, atol=1e-6)


def test_sinusoidal_embedding_matches_vaswani(own_checks):
    """e(t)[i] = sin(s t / P^{2i/d}), e(t)[d/2 + i] = cos(s t / P^{2i/d}) (Vaswani et al.'s
    PE(pos, 2i), PE(pos, 2i + 1), sines and cosines grouped)."""
    d, s, p = 16, 100.0, 10000.0
    emb = nn.SinusoidalEmbedding(d, scale=s, max_period=p)
    for t in [0.0, 0.013, 0.5, 0.99]:
        i = np.arange(d // 2)
        arg = s * t / p ** (2 * i / d)
        expected = np.concatenate([np.sin(arg), np.cos(arg)])
        np.testing.assert_allclose(np.asarray(emb(t)), expected, atol=3e-5)
    with pytest.raises(ValueError, match="`dim` must be even"):
        nn.SinusoidalEmbedding(7)
    with pytest.raises(ValueError, match=r"`t` has shape \(2,\)"):
        emb(jnp.ones(2))


def test_deeponet_matches_the_formula():
    """depth 0 nets: G(u)(y) = sum_k (A u + a)_k g(C y + c)_k + b0 (Lu et al. 2021, eq. 2
    with the activation on the trunk's last layer), in numpy; vmap over query points."""
    model = nn.DeepONet(5, 2, 8, 0, 4, key=jax.random.key(5))
    model = eqx.tree_at(lambda m: m.bias, model, jnp.asarray(0.25))
    a_w, a_b = (
        np.asarray(p, np.float64)
        for p in (model.branch.layers[0].weight, model.branch.layers[0].bias)
    )
    c_w, c_b = (
        np.asarray(p, np.float64)
        for p in (model.trunk.layers[0].weight, model.trunk.layers[0].bias)
    )
    rng = np.random.default_rng(0)
    u, ys = rng.normal(size=5), rng.uniform(size=(7, 2))
    expected = np.array([(a_w @ u + a_b) @ _gelu_tanh(c_w @ y + c_b) + 0.25 for y in ys])
    out = jax.vmap(model, in_axes=(None, 0))(
        jnp.asarray(u, jnp.float32), jnp.asarray(ys, jnp.float32)
    )
    np.testing.assert_allclose(np.asarray(out), expected, rtol=1e-5, atol=1e-5)


def test_bad_arguments_name_themselves(own_checks):
    key = jax.random.key(0)
    with pytest.raises(ValueError, match="`fourier_scale`"):
        nn.MLP(2, 1, 8, 1, fourier_features=4, fourier_scale=0.0, key=key)
    with pytest.raises(ValueError, match="`fourier_features`"):
        nn.MLP(2, 1, 8, 1, fourier_features=0, key=key)
    with pytest.raises(ValueError, match="`depth`"):
        nn.MLP(2, 1, 8, -1, key=key)
    with pytest.raises(ValueError, match=r"`x` has shape \(3,\), expected \(in_size,\) = \(2,\)"):
        nn.MLP(2, 1, 8, 1, key=key)(jnp.ones(3))
    onet = nn.DeepONet(4, 1, 8, 1, 3, key=key)
    with pytest.raises(ValueError, match="`u_sensors`"):
        onet(jnp.ones(5), jnp.ones(1))
    with pytest.raises(ValueError, match="`y_query`"):
        onet(jnp.ones(4), jnp.ones(()))
    with pytest.raises(ValueError, match="`x` has shape"):
        nn.ScoreMLP(2, 8, 1, 4, key=key)(0.5, jnp.ones(3))
