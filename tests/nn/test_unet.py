"""U-Nets: translation equivariance on the periodic grid (shifts by multiples of
2**levels), with a negative control, and the building blocks (circular convolution,
stride-2 down/up-sampling, group normalisation) against direct numpy evaluations."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxsci.nn as nn
from jaxsci.nn._layers import Upsample, circular_conv, downsample, group_norm


def _rel(a, b):
    return float(jnp.linalg.norm(a - b) / jnp.linalg.norm(b))


def test_unet1d_is_equivariant_to_shifts_by_2_to_the_levels():
    """Circular padding: rolling the input by 2**L rolls the output by 2**L (float32
    rounding only); a shift by 1 is not a symmetry of the stride-2 layers, which shows the
    check can fail."""
    model = nn.UNet1d(2, 3, 4, (1, 2, 2), key=jax.random.key(0))
    assert model.levels == 2
    f = jax.jit(jax.vmap(model))
    x = jax.random.normal(jax.random.key(1), (32,))
    x = jnp.stack([x, jnp.cos(x)])
    out, out4, out1 = f(jnp.stack([x, jnp.roll(x, 4, -1), jnp.roll(x, 1, -1)]))
    assert _rel(out4, jnp.roll(out, 4, -1)) < 1e-5
    assert _rel(out1, jnp.roll(out, 1, -1)) > 1e-2


def test_unet2d_and_score_unet2d_are_equivariant():
    model = nn.UNet2d(1, 2, 4, (1, 2), key=jax.random.key(2))
    score = nn.ScoreUNet2d(1, 4, (1, 2), 8, key=jax.random.key(3))
    x = jax.random.normal(jax.random.key(4), (1, 8, 12))
    shifted = jnp.roll(x, (2, 4), axis=(-2, -1))
    f = jax.jit(lambda x: (model(x), score(0.3, x)))
    (a, sa), (b, sb) = f(x), f(shifted)
    assert _rel(b, jnp.roll(a, (2, 4), axis=(-2, -1))) < 1e-5
    assert _rel(sb, jnp.roll(sa, (2, 4), axis=(-2, -1))) < 1e-5
    # the time conditioning reaches the output
    assert _rel(jax.jit(lambda x: score(0.7, x))(x), sa) > 1e-3


def test_parameter_count_with_several_blocks_per_level():
    """The documented formula (tests/nn/_registry.unet_params) for deeper configurations
    than the conformance cases: two blocks per level, three levels, time conditioning."""
    from ._registry import time_mlp_params, unet_params

    model = nn.UNet2d(2, 3, 4, (1, 2, 2, 4), key=jax.random.key(0), blocks_per_level=2)
    assert model.levels == 3
    assert nn.count_params(model) == unet_params(2, 2, 3, 4, (1, 2, 2, 4), 2)
    score = nn.ScoreUNet1d(2, 6, (1, 3), 12, key=jax.random.key(1), blocks_per_level=3)
    expected = unet_params(1, 2, 2, 6, (1, 3), 3, emb=48) + time_mlp_params(12)
    assert nn.count_params(score) == expected


def test_spatial_size_must_be_divisible_by_2_to_the_levels(own_checks):
    model = nn.UNet1d(1, 1, 4, (1, 2, 4), key=jax.random.key(0))
    with pytest.raises(ValueError, match=r"`x` has spatial shape \(18,\).*2\*\*levels = 4"):
        model(jnp.ones((1, 18)))
    with pytest.raises(ValueError, match=r"`x` has shape \(2, 16\)"):
        model(jnp.ones((2, 16)))
    with pytest.raises(ValueError, match="channel_multipliers"):
        nn.UNet2d(1, 1, 4, (), key=jax.random.key(0))
    with pytest.raises(TypeError, match="channel_multipliers"):
        nn.UNet2d(1, 1, 4, 2, key=jax.random.key(0))
    with pytest.raises(ValueError, match=r"`t` has shape \(3,\)"):
        nn.ScoreUNet1d(1, 4, (1,), 4, key=jax.random.key(0))(jnp.ones(3), jnp.ones((1, 8)))


def test_circular_conv_matches_a_direct_periodic_sum():
    """y_o[j] = b_o + sum_c sum_a W[o, c, a] x_c[(j + a - 1) mod n] (cross-correlation, as
    PyTorch and lax define convolution) and its 2-D analogue."""
    rng = np.random.default_rng(0)
    conv = circular_conv(1, 2, 3, 3, key=jax.random.key(0))
    assert isinstance(conv, eqx.nn.Conv) and conv.padding_mode == "CIRCULAR"
    w, b = np.asarray(conv.weight, np.float64), np.asarray(conv.bias, np.float64).reshape(-1)
    x = rng.normal(size=(2, 9))
    expected = b[:, None] + sum(
        np.einsum("oc,cj->oj", w[:, :, a], np.roll(x, -(a - 1), axis=1)) for a in range(3)
    )
    np.testing.assert_allclose(np.asarray(conv(jnp.asarray(x, jnp.float32))), expected, atol=1e-5)
    conv2 = circular_conv(2, 1, 2, 3, key=jax.random.key(1))
    w2, b2 = np.asarray(conv2.weight, np.float64), np.asarray(conv2.bias).reshape(-1)
    x2 = rng.normal(size=(1, 5, 6))
    expected2 = b2[:, None, None] + sum(
        np.einsum("oc,cjk->ojk", w2[:, :, a, c], np.roll(x2, (-(a - 1), -(c - 1)), axis=(1, 2)))
        for a in range(3)
        for c in range(3)
    )
    np.testing.assert_allclose(
        np.asarray(conv2(jnp.asarray(x2, jnp.float32))), expected2, atol=1e-5
    )


def test_down_and_up_sampling_match_their_formulas():
    """Down: y[o, j] = b_o + sum_{c,a} W[o, c, a] x[c, 2j + a]; Up: y[o, 2j + a] = b_o +
    sum_c W[c, o, a] x[c, j] (2-D: the same per axis)."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2, 4, 6))
    down = downsample(2, 2, 3, key=jax.random.key(0))
    w, b = np.asarray(down.weight, np.float64), np.asarray(down.bias, np.float64).reshape(-1)
    exp_down = b[:, None, None] + np.einsum("ocab,cjakb->ojk", w, x.reshape(2, 2, 2, 3, 2))
    np.testing.assert_allclose(np.asarray(down(jnp.asarray(x, jnp.float32))), exp_down, atol=1e-5)
    up = Upsample(2, 2, 3, key=jax.random.key(1))
    w, b = np.asarray(up.weight, np.float64), np.asarray(up.bias, np.float64)
    exp_up = np.zeros((3, 8, 12)) + b[:, None, None]
    for a in range(2):
        for c in range(2):
            exp_up[:, a::2, c::2] += np.einsum("co,cjk->ojk", w[:, :, a, c], x)
    np.testing.assert_allclose(np.asarray(up(jnp.asarray(x, jnp.float32))), exp_up, atol=1e-5)
    x1 = rng.normal(size=(3, 5))
    up1 = Upsample(1, 3, 2, key=jax.random.key(2))
    w, b = np.asarray(up1.weight, np.float64), np.asarray(up1.bias, np.float64)
    exp1 = np.zeros((2, 10)) + b[:, None]
    for a in range(2):
        exp1[:, a::2] += w[:, :, a].T @ x1
    np.testing.assert_allclose(np.asarray(up1(jnp.asarray(x1, jnp.float32))), exp1, atol=1e-5)


def test_group_norm_matches_wu_and_he():
    """Each group of c/G channels normalised over its channels and grid points (biased
    variance, eps 1e-5), then the per-channel affine map."""
    rng = np.random.default_rng(2)
    norm = group_norm(6, 3)
    norm = eqx.tree_at(
        lambda m: (m.weight, m.bias),
        norm,
        (
            jnp.asarray(rng.normal(size=6), jnp.float32),
            jnp.asarray(rng.normal(size=6), jnp.float32),
        ),
    )
    x = rng.normal(size=(6, 4, 5)) * 3 + 1
    g = x.reshape(3, 2, 4, 5)
    mu = g.mean(axis=(1, 2, 3), keepdims=True)
    var = g.var(axis=(1, 2, 3), keepdims=True)
    y = ((g - mu) / np.sqrt(var + 1e-5)).reshape(6, 4, 5)
    expected = y * np.asarray(norm.weight)[:, None, None] + np.asarray(norm.bias)[:, None, None]
    np.testing.assert_allclose(np.asarray(norm(jnp.asarray(x, jnp.float32))), expected, atol=2e-5)
