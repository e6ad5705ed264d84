"""Monte Carlo dropout in `FNO` and the generative wrapper `NoiseInjected`."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxsci import nn

X = jax.random.normal(jax.random.key(0), (1, 32))


def _fno(depth=2, dropout=0.3):
    return nn.FNO1d(1, 1, 8, 4, depth, key=jax.random.key(1), projection_width=16, dropout=dropout)


def test_dropout_is_off_without_a_key():
    """Evaluation (no key) is deterministic and equals the same weights without dropout."""
    model, plain = _fno(), _fno(dropout=0.0)
    np.testing.assert_array_equal(model(X), plain(X))
    import equinox as eqx

    np.testing.assert_allclose(eqx.filter_jit(model)(X), model(X), rtol=1e-6, atol=1e-7)
    a = model(X, key=jax.random.key(2))
    b = model(X, key=jax.random.key(3))
    assert not np.allclose(a, b)
    np.testing.assert_array_equal(a, model(X, key=jax.random.key(2)))


def test_dropout_rate_semantics():
    """A one-layer FNO has one dropout site, the projection's hidden features: a fraction p
    of them is zeroed, the rest scaled by 1/(1 - p), so the mean over draws is the
    dropout-free features (within Monte Carlo error)."""
    p = 0.3
    model = _fno(depth=1, dropout=p)
    f = np.asarray(model.features(X))
    draws = np.asarray(
        jax.vmap(lambda k: model.features(X, key=k))(jax.random.split(jax.random.key(4), 400))
    )
    zero = draws == 0.0
    n = zero.size
    assert abs(zero.mean() - p) < 4 * np.sqrt(p * (1 - p) / n)
    np.testing.assert_allclose(
        np.where(zero, 0.0, draws), np.where(zero, 0.0, f / (1 - p)), rtol=1e-5, atol=1e-6
    )
    se = np.abs(f) * np.sqrt(p / (1 - p) / draws.shape[0])
    assert np.all(np.abs(draws.mean(0) - f) <= 5 * se + 1e-6)
    # the network's output is the last (affine) layer of the features
    np.testing.assert_allclose(model(X), model.projection[1](model.features(X)), rtol=1e-6)


def test_dropout_rate_is_checked(own_checks):
    with pytest.raises(ValueError, match="dropout"):
        _fno(dropout=1.0)
    with pytest.raises(ValueError, match="dropout"):
        _fno(dropout=-0.1)


def test_noise_injected_appends_constant_standard_normal_channels():
    model = nn.NoiseInjected(lambda v: v, 2)
    draws = jax.vmap(lambda k: model(X, key=k))(jax.random.split(jax.random.key(5), 4000))
    assert draws.shape == (4000, 3, 32)
    np.testing.assert_array_equal(draws[:, 0], jnp.broadcast_to(X[0], (4000, 32)))
    z = np.asarray(draws[:, 1:])
    np.testing.assert_array_equal(z, np.broadcast_to(z[..., :1], z.shape))  # constant in x
    se = 1 / np.sqrt(4000)
    assert np.all(np.abs(z[..., 0].mean(0)) < 4 * se)
    assert np.all(np.abs(z[..., 0].std(0) - 1) < 4 * se)
    assert abs(np.corrcoef(z[:, 0, 0], z[:, 1, 0])[0, 1]) < 4 * se


def test_noise_injected_fno_members_differ():
    net = nn.FNO1d(3, 1, 8, 4, 1, key=jax.random.key(6), projection_width=8)
    model = nn.NoiseInjected(net, 2)
    ens = nn.sample_ensemble(model, X, 3, key=jax.random.key(7))
    assert ens.shape == (3, 1, 32)
    assert np.all(np.std(np.asarray(ens), axis=0) > 0)
