"""Layers of the model zoo, built on equinox's: linear maps (`eqx.nn.Linear`), circular
"same" convolutions and stride-2 down-sampling (`eqx.nn.Conv` with `num_spatial_dims`),
group normalisation (`eqx.nn.GroupNorm`); plus the two layers equinox has no fast form of
on XLA:CPU, the pointwise (1x1) map of the Fourier neural operator and the stride-2
up-sampling, and the grid-coordinate channels.

Every layer acts on one channels-first example `(channels, *spatial)`. Weights follow
equinox/PyTorch (weight (out, in, *kernel)) and are initialised U(-1/sqrt(fan_in),
1/sqrt(fan_in)), fan_in = in * kernel volume, as equinox and PyTorch do; the draws come from
`_init`'s shape-bucketed pool (equinox's own draws compile one program per weight shape),
so building a U-Net stays fast.
"""

import functools
from typing import TypeVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._checks import check_int
from .._custom_types import Array, Float, Key
from ..spectral import PeriodicGrid
from ._init import default_float, fan_in_uniform, subkey

_Layer = TypeVar("_Layer", eqx.nn.Linear, eqx.nn.Conv)


@functools.lru_cache(maxsize=256)
def _shell(cls: type[_Layer], *args, **kwargs) -> _Layer:
    """`cls(*args, key=..., **kwargs)` with `jax.ShapeDtypeStruct` leaves: equinox's own
    initialisation is only traced (`eqx.filter_eval_shape`), never run, once per layer
    configuration (equinox layers are immutable, so the shell can be shared)."""
    return eqx.filter_eval_shape(lambda k: cls(*args, key=k, **kwargs), jax.random.key(0))


def _with_fan_in_init(shell: _Layer, fan_in: int, key: Key) -> _Layer:
    """The equinox layer `shell` with its `weight` and `bias` drawn U(+-1/sqrt(fan_in)) from
    the pool of `_init` (subkeys 0 and 1 of `key`)."""
    assert shell.bias is not None  # every layer here is built with use_bias=True
    weight = fan_in_uniform(subkey(key, 0), shell.weight.shape, fan_in)
    bias = fan_in_uniform(subkey(key, 1), shell.bias.shape, fan_in)
    return eqx.tree_at(lambda m: (m.weight, m.bias), shell, (weight, bias))


def linear(in_size: int, out_size: int, *, key: Key) -> eqx.nn.Linear:
    """`eqx.nn.Linear(in_size, out_size)`: weight (out, in), bias (out,); `in * out + out`
    parameters."""
    shell = _shell(eqx.nn.Linear, in_size, out_size, dtype=default_float())
    return _with_fan_in_init(shell, in_size, key)


def circular_conv(
    num_spatial_dims: int, in_channels: int, out_channels: int, kernel_size: int, *, key: Key
) -> eqx.nn.Conv:
    """Stride-1 convolution with an odd kernel on a periodic grid: `eqx.nn.Conv` with
    `padding_mode="CIRCULAR"` and (kernel - 1) / 2 points of padding per side ("same" size;
    none for a 1-wide kernel). weight (out, in, k, ..., k), bias (out, 1, ..., 1):
    `out * in * k**dims + out` parameters."""
    kernel_size = check_int("kernel_size", kernel_size)
    if kernel_size % 2 != 1:
        raise ValueError(f"`kernel_size` must be odd, got {kernel_size}.")
    shell = _shell(
        eqx.nn.Conv,
        num_spatial_dims,
        in_channels,
        out_channels,
        kernel_size,
        padding=kernel_size // 2,
        padding_mode="CIRCULAR",
        dtype=default_float(),
    )
    return _with_fan_in_init(shell, in_channels * kernel_size**num_spatial_dims, key)


def downsample(
    num_spatial_dims: int, in_channels: int, out_channels: int, *, key: Key
) -> eqx.nn.Conv:
    """2-wide, stride-2 `eqx.nn.Conv`: halves every spatial size (no padding needed).
    weight (out, in, 2, ..., 2), bias (out, 1, ..., 1): `out * in * 2**dims + out`
    parameters."""
    shell = _shell(
        eqx.nn.Conv, num_spatial_dims, in_channels, out_channels, 2, stride=2, dtype=default_float()
    )
    return _with_fan_in_init(shell, in_channels * 2**num_spatial_dims, key)


def group_norm(channels: int, groups: int) -> eqx.nn.GroupNorm:
    """`eqx.nn.GroupNorm` (Wu & He 2018): channels split into `groups` groups, each
    normalised by its mean and variance over its channels and all grid points (eps 1e-5),
    then a per-channel scale (init 1) and shift (init 0): 2 c parameters."""
    if channels % groups:
        raise ValueError(f"`groups` {groups} must divide the channels {channels}.")
    return eqx.nn.GroupNorm(groups, channels, dtype=default_float())


class Upsample(eqx.Module):
    r"""2-wide, stride-2 transposed convolution: doubles every spatial size, each input
    point writing a 2 x ... x 2 block,

        y[o, 2 j + a] = sum_c W[c, o, a] x[c, j] + b[o]     (per axis, any number of axes).

    Written as one einsum: `eqx.nn.ConvTranspose` computes the same map as a convolution of
    the zero-dilated input, several times slower on XLA:CPU in a U-Net training step
    (measured for 1-D and 2-D, 16-64 channels). weight (in, out, 2, ..., 2), bias (out,):
    `in * out * 2**dims + out` parameters.
    """

    weight: Float[Array, " c_in c_out *kernel"]
    bias: Float[Array, " c_out"]

    def __init__(self, num_spatial_dims: int, in_channels: int, out_channels: int, *, key: Key):
        shape = (in_channels, out_channels) + (2,) * num_spatial_dims
        fan_in = in_channels * 2**num_spatial_dims
        self.weight = fan_in_uniform(subkey(key, 0), shape, fan_in)
        self.bias = fan_in_uniform(subkey(key, 1), (out_channels,), fan_in)

    def __call__(self, x: Float[Array, " c_in *spatial"]) -> Float[Array, " c_out *doubled"]:
        dims = self.weight.ndim - 2
        if x.ndim != dims + 1:
            raise ValueError(f"`x` has shape {x.shape}, expected (channels, {dims} spatial axes).")
        letters = "abcdefghij"[:dims]
        spatial = "klmnopqrst"[:dims]
        interleaved = "".join(s + a for s, a in zip(spatial, letters, strict=True))
        y = jnp.einsum(f"co{letters},c{spatial}->o{interleaved}", self.weight, x)
        y = y.reshape((self.weight.shape[1],) + tuple(2 * n for n in x.shape[1:]))
        return y + self.bias.reshape((-1,) + (1,) * dims)


class Pointwise(eqx.Module):
    """A 1x1 convolution: the same affine map `W v + b` of the channels at every grid point.

    Parameters: `weight` (out, in) and `bias` (out,), i.e. `in * out + out` entries. Acts
    on `(in, *spatial)` with any number of spatial axes. (Not an `eqx.nn.Conv` with a 1-wide
    kernel: the matrix product below, with its per-example weight, is what makes the FNO's
    training step fast on XLA:CPU.)
    """

    weight: Float[Array, "out in"]
    bias: Float[Array, " out"]

    def __init__(self, in_channels: int, out_channels: int, *, key: Key):
        self.weight = fan_in_uniform(subkey(key, 0), (out_channels, in_channels), in_channels)
        self.bias = fan_in_uniform(subkey(key, 1), (out_channels,), in_channels)

    def __call__(self, x: Float[Array, " in *spatial"]) -> Float[Array, " out *spatial"]:
        spatial = x.shape[1:]
        x2 = x.reshape(x.shape[0], -1)
        # `weight + 0 * x[0, 0]` equals `weight`, but under `jax.vmap` it is batched with
        # the input, so XLA sees one (out, in) @ (in, n) product per example instead of a
        # single product over the merged batch and grid axes. The gradient with respect to
        # the weight is then a batched product plus a sum over the batch, which XLA:CPU
        # computes without the two activation-sized transposes per layer (and the GELU
        # derivative recomputed inside them) that the merged form needs: the larger part of
        # the FNO training speed-up (benchmarks/RESULTS_nn.md). Values and
        # derivatives (forward mode included) are unchanged; the one visible difference is
        # that a NaN/inf anywhere in an example makes that example's whole output NaN.
        w = self.weight + jnp.zeros((), x.dtype) * x2[:1, :1]
        y = w @ x2 + self.bias[:, None]
        return y.reshape(self.weight.shape[0], *spatial)


def grid_channels(spatial: tuple[int, ...], dtype: jax.typing.DTypeLike) -> Array:
    """Coordinates x_j = j / n on the periodic unit interval/square, one channel per axis.

    Shape `(len(spatial), *spatial)`: the coordinates of `PeriodicGrid(spatial, 1.0)`. The
    point j / n (no endpoint) is the periodic grid of the FNO data, so the same physical
    point has the same coordinate at every resolution (what makes a grid-conditioned FNO
    resolution independent).
    """
    return jnp.asarray(np.stack(PeriodicGrid(spatial, 1.0).coordinates()), dtype=dtype)


def fourier_map(
    frequencies: Float[Array, "m d"], x: Float[Array, " d"]
) -> Float[Array, " features"]:
    """Random Fourier features gamma(x) = [cos(2 pi B x), sin(2 pi B x)] (Tancik et al.
    2020) with B = `frequencies` read through `stop_gradient`: a fixed buffer whose gradient
    is exactly zero. The one home of the formula (`MLP(fourier_features=m)`,
    `RandomFourierFeatures`)."""
    z = 2 * jnp.pi * (jax.lax.stop_gradient(frequencies) @ x)
    return jnp.concatenate([jnp.cos(z), jnp.sin(z)])
