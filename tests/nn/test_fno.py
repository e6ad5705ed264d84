"""FNO checks beyond the conformance suite: parameter counts against an independent
library (neuraloperator), resolution consistency, `last_modes`, and argument errors."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxsci.nn as nn
from jaxsci.nn import count_params


@pytest.mark.slow
def test_parameter_count_equals_neuraloperator():
    """jaxsci's FNO with a two-layer lifting and projection of 2 * width hidden channels
    has exactly as many real parameters as neuraloperator's FNO with lifting/projection
    channel ratio 2 and no channel MLP (complex weights counted as two reals; the biases
    sit in different layers: neuraloperator has a bias on the spectral convolution and
    none on the skip, jaxsci the reverse as in Li et al.'s code). neuraloperator's
    n_modes=(2m - 2,) keeps m modes on the real-FFT axis, n_modes[0] = 2 mx rows on a
    full-FFT axis."""
    pytest.importorskip("torch")
    neuralop = pytest.importorskip("neuralop")

    def torch_count(model):
        return sum(p.numel() * (2 if p.is_complex() else 1) for p in model.parameters())

    ref1 = neuralop.models.FNO(
        n_modes=(14,), in_channels=1, out_channels=1, hidden_channels=16, n_layers=3,
        lifting_channel_ratio=2, projection_channel_ratio=2, use_channel_mlp=False,
    )  # fmt: skip
    ours1 = nn.FNO1d(1, 1, 16, 8, 3, key=jax.random.key(0), lifting_width=32, projection_width=32)
    assert count_params(ours1) == torch_count(ref1)
    ref2 = neuralop.models.FNO(
        n_modes=(24, 22), in_channels=3, out_channels=2, hidden_channels=8, n_layers=2,
        lifting_channel_ratio=2, projection_channel_ratio=2, use_channel_mlp=False,
    )  # fmt: skip
    ours2 = nn.FNO2d(3, 2, 8, 12, 2, key=jax.random.key(0), lifting_width=16, projection_width=16)
    assert count_params(ours2) == torch_count(ref2)


def _smooth_1d(n):
    x = np.arange(n) / n
    return jnp.asarray((np.sin(2 * np.pi * x) + 0.3 * np.cos(4 * np.pi * x))[None], jnp.float32)


def test_fno1d_is_resolution_consistent():
    """The same smooth input sampled on 64, 128 and 256 points: outputs agree at the
    shared points up to the aliasing of the pointwise nonlinearities, which shrinks as
    the grid is refined (a grid channel in index units instead of j / n would give O(1)
    differences)."""
    model = nn.FNO1d(1, 1, 16, 6, 3, key=jax.random.key(0))
    apply = eqx.filter_jit(lambda m, x: m(x))
    ref = apply(model, _smooth_1d(256))

    def rel(n):
        out = apply(model, _smooth_1d(n))
        sub = ref[:, :: 256 // n]
        return float(jnp.linalg.norm(out - sub) / jnp.linalg.norm(sub))

    e64, e128 = rel(64), rel(128)
    assert e64 < 1e-3 and e128 < e64


def test_fno2d_is_resolution_consistent():
    model = nn.FNO2d(1, 2, 8, (4, 3), 2, key=jax.random.key(1))

    def field(h, w):
        x, y = np.arange(h)[:, None] / h, np.arange(w)[None] / w
        return jnp.asarray(
            np.sin(2 * np.pi * (x + y))[None] + 0.5 * np.cos(2 * np.pi * y)[None], jnp.float32
        )

    apply = eqx.filter_jit(lambda m, x: m(x))
    coarse, fine = apply(model, field(24, 16)), apply(model, field(48, 32))[:, ::2, ::2]
    assert float(jnp.linalg.norm(coarse - fine) / jnp.linalg.norm(fine)) < 5e-3


def test_last_modes_keeps_every_mode_of_the_training_grid():
    n = 32
    model = nn.FNO1d(1, 1, 4, 5, 3, key=jax.random.key(0), last_modes=n // 2 + 1)
    assert [layer.modes for layer in model.spectral] == [(5,), (5,), (n // 2 + 1,)]
    assert model.depth == 3
    model2 = nn.FNO2d(1, 1, 4, (3, 2), 2, key=jax.random.key(0), last_modes=(8, 9))
    assert [layer.modes for layer in model2.spectral] == [(3, 2), (8, 9)]
    # a coarser grid than the kept modes still runs (only the modes it carries are used)
    assert eqx.filter_eval_shape(model, jnp.ones((1, 16))).shape == (1, 16)
    assert eqx.filter_eval_shape(model2, jnp.ones((1, 8, 6))).shape == (1, 8, 6)


def test_bad_arguments_name_themselves():
    key = jax.random.key(0)
    with pytest.raises(ValueError, match="`depth`"):
        nn.FNO1d(1, 1, 8, 4, 0, key=key)
    with pytest.raises(TypeError, match="`width`"):
        nn.FNO1d(1, 1, True, 4, 2, key=key)
    with pytest.raises(ValueError, match=r"`modes\[1\]`"):
        nn.FNO2d(1, 1, 8, (4, 0), 2, key=key)
    with pytest.raises(ValueError, match="`last_modes`"):
        nn.FNO1d(1, 1, 8, 4, 2, key=key, last_modes=0)
    with pytest.raises(ValueError, match="`lifting_width`"):
        nn.FNO1d(1, 1, 8, 4, 2, key=key, lifting_width=0)
    model = nn.FNO1d(2, 1, 4, 3, 1, key=key)
    with pytest.raises(ValueError, match=r"`x` has shape \(1, 16\), expected \(in_channels, n\)"):
        model(jnp.ones((1, 16)))
    with pytest.raises(ValueError, match=r"`x` has shape \(4, 2, 16\)"):
        model(jnp.ones((4, 2, 16)))  # a batch: vmap outside
    with pytest.raises(ValueError, match="`x` has shape"):
        nn.FNO2d(1, 1, 4, 3, 1, key=key)(jnp.ones((1, 16)))
