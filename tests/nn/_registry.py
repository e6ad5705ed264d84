"""Registry of every jaxsci.nn network (small instances) for the conformance suite.

Each case builds a model, draws one example's inputs at a base size and at another
resolution, and states the parameter count from the formula in the class docstring,
written out here independently of the implementation.
"""

import dataclasses
import math
from collections.abc import Callable

import jax

import jaxsci.dynamics as dyn
import jaxsci.nn as nn


def mlp_params(d_in, d_out, width, depth):
    """The MLP formula of `jaxsci.nn.MLP`'s docstring (without the Fourier buffer)."""
    if depth == 0:
        return d_in * d_out + d_out
    return d_in * width + width + (depth - 1) * (width**2 + width) + width * d_out + d_out


def spectral_modes(m, dims):
    """M = 2^(d-1) m_1 ... m_d, the kept modes of `SpectralConv`'s docstring."""
    if dims == 1:
        return m if isinstance(m, int) else m[0]
    return 2 ** (dims - 1) * math.prod(m)


def fno_params(c0, width, layer_modes, proj, out, *, dims):
    """The FNO formula of `FNO`'s docstring; `layer_modes` per layer."""
    lift = c0 * width + width
    layers = 0
    for m in layer_modes:
        layers += 2 * width * width * spectral_modes(m, dims) + width * width + width
    return lift + layers + width * proj + proj + proj * out + out


def unet_params(dims, c_in, c_out, hidden, mults, blocks, emb=0):
    """The U-Net formula of `UNet1d`'s docstring (e = `emb`, 0 without time)."""
    k, s = 3**dims, 2**dims
    ch = [hidden * m for m in mults]

    def res(a, b):
        n = 2 * a + (a * b * k + b) + 2 * b + (b * b * k + b)
        n += (a * b + b) if a != b else 0
        n += (2 * emb * b + 2 * b) if emb else 0
        return n

    total = c_in * ch[0] * k + ch[0]  # in_conv
    for lev in range(len(ch) - 1):
        total += blocks * res(ch[lev], ch[lev])
        total += ch[lev] * ch[lev + 1] * s + ch[lev + 1]  # down
        total += ch[lev + 1] * ch[lev] * s + ch[lev]  # up
        total += res(2 * ch[lev], ch[lev]) + (blocks - 1) * res(ch[lev], ch[lev])
    total += blocks * res(ch[-1], ch[-1])
    total += 2 * ch[0] + ch[0] * c_out + c_out  # output
    return total


def time_mlp_params(d):
    return d * 4 * d + 4 * d + 16 * d * d + 4 * d


@dataclasses.dataclass(frozen=True)
class Case:
    make: Callable  # key -> module
    inputs: Callable  # (key, resolution index 0 | 1) -> tuple of call arguments
    out_shape: Callable  # args -> expected output shape
    params: int  # documented count
    call: Callable = lambda m, *a: m(*a)  # how the conformance suite evaluates the module
    buffers: tuple = ()  # attribute paths of documented non-trainable buffers


def _normal(key, shape):
    return jax.random.normal(key, shape)


def _t(key):
    return jax.random.uniform(key, (), minval=0.05, maxval=0.95)


CASES = {
    "MLP": Case(
        make=lambda k: nn.MLP(3, 2, 16, 2, key=k),
        inputs=lambda k, r: (_normal(k, (3,)),),
        out_shape=lambda x: (2,),
        params=mlp_params(3, 2, 16, 2),
    ),
    "MLP-fourier": Case(
        make=lambda k: nn.MLP(2, 1, 16, 1, fourier_features=6, fourier_scale=2.0, key=k),
        inputs=lambda k, r: (jax.random.uniform(k, (2,)),),
        out_shape=lambda x: (1,),
        params=mlp_params(12, 1, 16, 1) + 6 * 2,
        buffers=("fourier_matrix",),
    ),
    "RandomFourierFeatures": Case(
        make=lambda k: nn.RandomFourierFeatures(2, 6, scale=2.0, periods=(1.0, None), key=k),
        inputs=lambda k, r: (jax.random.uniform(k, (2,)),),
        out_shape=lambda x: (12,),
        params=6 * 2,  # the buffer B only
        buffers=("frequencies",),
    ),
    "FourierFeatureMLP": Case(
        make=lambda k: nn.FourierFeatureMLP(
            2, 3, 16, 2, num_features=6, scale=2.0, periods=(1.0, 1.0), key=k
        ),
        inputs=lambda k, r: (jax.random.uniform(k, (2,)),),
        out_shape=lambda x: (3,),
        params=mlp_params(12, 3, 16, 2) + 6 * 2,
        buffers=("frequencies",),
    ),
    "SpectralConv1d": Case(
        make=lambda k: nn.SpectralConv1d(2, 3, 5, key=k),
        inputs=lambda k, r: (_normal(k, (2, (16, 40)[r])),),
        out_shape=lambda x: (3, x.shape[1]),
        params=2 * 2 * 3 * 5,
    ),
    "SpectralConv2d": Case(
        make=lambda k: nn.SpectralConv2d(2, 3, (3, 4), key=k),
        inputs=lambda k, r: (_normal(k, (2, *((12, 16), (24, 20))[r])),),
        out_shape=lambda x: (3, *x.shape[1:]),
        params=2 * 2 * 3 * 2 * 3 * 4,
    ),
    "SpectralConv3d": Case(
        make=lambda k: nn.SpectralConv(3, 2, 2, (2, 3, 2), key=k),
        inputs=lambda k, r: (_normal(k, (2, *((6, 8, 4), (8, 6, 6))[r])),),
        out_shape=lambda x: (2, *x.shape[1:]),
        params=2 * 2 * 2 * spectral_modes((2, 3, 2), 3),
    ),
    "FNO1d": Case(  # two-layer lifting, all modes of a 16-point grid in the last layer
        make=lambda k: nn.FNO1d(
            2, 1, 6, 3, 2, key=k, last_modes=9, lifting_width=10, projection_width=12
        ),
        inputs=lambda k, r: (_normal(k, (2, (16, 36)[r])),),
        out_shape=lambda x: (1, x.shape[1]),
        params=fno_params(3, 6, [3, 9], 12, 1, dims=1) - (3 * 6 + 6) + (3 * 10 + 10 + 10 * 6 + 6),
    ),
    "FNO2d": Case(  # no grid channels
        make=lambda k: nn.FNO2d(1, 2, 6, (3, 2), 2, key=k, projection_width=8, grid=False),
        inputs=lambda k, r: (_normal(k, (1, *((12, 16), (20, 24))[r])),),
        out_shape=lambda x: (2, *x.shape[1:]),
        params=fno_params(1, 6, [(3, 2), (3, 2)], 8, 2, dims=2),
    ),
    "UNet1d": Case(
        make=lambda k: nn.UNet1d(2, 3, 4, (1, 2), key=k),
        inputs=lambda k, r: (_normal(k, (2, (16, 24)[r])),),
        out_shape=lambda x: (3, x.shape[1]),
        params=unet_params(1, 2, 3, 4, (1, 2), 1),
    ),
    "UNet2d": Case(
        make=lambda k: nn.UNet2d(1, 1, 4, (1, 2), key=k),
        inputs=lambda k, r: (_normal(k, (1, *((8, 8), (12, 6))[r])),),
        out_shape=lambda x: (1, *x.shape[1:]),
        params=unet_params(2, 1, 1, 4, (1, 2), 1),
    ),
    "DeepONet": Case(
        make=lambda k: nn.DeepONet(8, 1, 16, 2, 6, key=k),
        inputs=lambda k, r: (_normal(k, (8,)), jax.random.uniform(jax.random.fold_in(k, 1), (1,))),
        out_shape=lambda u, y: (),
        params=mlp_params(8, 6, 16, 2) + mlp_params(1, 6, 16, 2) + 1,
    ),
    "SinusoidalEmbedding": Case(
        make=lambda k: nn.SinusoidalEmbedding(8, scale=10.0),
        inputs=lambda k, r: (_t(k),),
        out_shape=lambda t: (8,),
        params=0,
    ),
    "PeriodicEmbedding": Case(
        make=lambda k: nn.PeriodicEmbedding((2.0, None), num_harmonics=3),
        inputs=lambda k, r: (_normal(k, (2,)),),
        out_shape=lambda p: (7,),
        params=0,
    ),
    "EmbeddedNetwork": Case(
        make=lambda k: nn.EmbeddedNetwork(
            nn.PeriodicEmbedding((2.0, None), num_harmonics=3), nn.MLP(7, 1, 8, 2, key=k)
        ),
        inputs=lambda k, r: (_normal(k, (2,)),),
        out_shape=lambda p: (1,),
        params=mlp_params(7, 1, 8, 2),
    ),
    "HardInitialCondition": Case(
        make=lambda k: nn.HardInitialCondition(nn.MLP(2, 1, 8, 2, key=k), jax.numpy.cos, t0=0.0),
        inputs=lambda k, r: (_normal(k, (2,)),),
        out_shape=lambda p: (1,),
        params=mlp_params(2, 1, 8, 2),
    ),
    "ScoreMLP": Case(
        make=lambda k: nn.ScoreMLP(3, 16, 2, 8, key=k),
        inputs=lambda k, r: (_t(k), _normal(jax.random.fold_in(k, 1), (3,))),
        out_shape=lambda t, x: (3,),
        params=mlp_params(3 + 8, 3, 16, 2),
    ),
    "ScoreUNet1d": Case(  # no down-sampling level (levels: UNet1d/2d, test_unet.py)
        make=lambda k: nn.ScoreUNet1d(2, 4, (1,), 8, key=k),
        inputs=lambda k, r: (_t(k), _normal(jax.random.fold_in(k, 1), (2, (16, 7)[r]))),
        out_shape=lambda t, x: x.shape,
        params=unet_params(1, 2, 2, 4, (1,), 1, emb=32) + time_mlp_params(8),
    ),
    "ScoreUNet2d": Case(
        make=lambda k: nn.ScoreUNet2d(1, 4, (1,), 8, key=k),  # no down-sampling level
        inputs=lambda k, r: (_t(k), _normal(jax.random.fold_in(k, 1), (1, *((8, 8), (5, 7))[r]))),
        out_shape=lambda t, x: x.shape,
        params=unet_params(2, 1, 1, 4, (1,), 1, emb=32) + time_mlp_params(8),
    ),
    "NeuralVectorField": Case(
        make=lambda k: nn.NeuralVectorField(nn.MLP(3, 3, 8, 1, key=k)),
        inputs=lambda k, r: (_t(k), _normal(jax.random.fold_in(k, 1), (3,))),
        out_shape=lambda t, y: (3,),
        params=mlp_params(3, 3, 8, 1),
        call=lambda m, t, y: m.vector_field(t, y, None),
    ),
    "HybridVectorField": Case(
        make=lambda k: nn.HybridVectorField(dyn.Lorenz63(), nn.MLP(3, 3, 8, 1, key=k)),
        inputs=lambda k, r: (_t(k), _normal(jax.random.fold_in(k, 1), (3,))),
        out_shape=lambda t, y: (3,),
        params=mlp_params(3, 3, 8, 1) + 3,  # + sigma, rho, beta
        call=lambda m, t, y: m.vector_field(t, y, None),
    ),
    "HybridSemilinear": Case(
        make=lambda k: nn.HybridSemilinear(
            dyn.KuramotoSivashinsky(num_points=16),
            nn.FNO1d(1, 1, 4, 3, 1, key=k, projection_width=4),
            network_shape=(1, 16),
        ),
        inputs=lambda k, r: (_t(k), _normal(jax.random.fold_in(k, 1), (16,))),
        out_shape=lambda t, y: (16,),
        params=fno_params(2, 4, [3], 4, 1, dims=1) + 5,  # + nu, alpha, lam, dispersion, growth
        call=lambda m, t, y: m.vector_field(t, y, None),
    ),
    "SemilinearOperator": Case(
        make=lambda k: nn.SemilinearOperator(
            dyn.KuramotoSivashinsky(num_points=16).grid,
            nn.FNO1d(1, 1, 4, 3, 1, key=k, projection_width=4),
            dyn.KuramotoSivashinsky(num_points=16).linear_operator(),
            network_shape=(1, 16),
        ),
        inputs=lambda k, r: (_t(k), _normal(jax.random.fold_in(k, 1), (16,))),
        out_shape=lambda t, y: (16,),
        params=fno_params(2, 4, [3], 4, 1, dims=1) + 2 * 9,  # + Re, Im of 9 rFFT modes
        call=lambda m, t, y: m.vector_field(t, y, None),
    ),
}


# The learned forecasters of `jaxsci.nn` (`Stepper`, `LocalStochastic`) keep their cases in
# their own file; merged here so that the suite covers every exported network.
from ._registry_forecasters import FORECASTER_CASES  # noqa: E402

CASES.update(FORECASTER_CASES)
