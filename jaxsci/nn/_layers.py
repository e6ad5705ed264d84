"""Small building blocks: linear maps, pointwise (1x1) and circular convolutions, stride-2
down/up-sampling, group normalisation, grid coordinates.

Parameter shapes follow PyTorch (weight (out, in, *kernel)), initialised U(-1/sqrt(fan_in),
1/sqrt(fan_in)) with fan_in = in * kernel volume, as PyTorch and equinox do.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._custom_types import Array, Float, Key
from ._init import fan_in_uniform, subkey


class Linear(eqx.Module):
    """Affine map of a vector: `weight @ x + bias`, weight (out, in), bias (out,);
    `in * out + out` parameters."""

    weight: Float[Array, "out in"]
    bias: Float[Array, " out"]

    def __init__(self, in_size: int, out_size: int, *, key: Key):
        self.weight = fan_in_uniform(subkey(key, 0), (out_size, in_size), in_size)
        self.bias = fan_in_uniform(subkey(key, 1), (out_size,), in_size)

    def __call__(self, x: Float[Array, " in"]) -> Float[Array, " out"]:
        return self.weight @ x + self.bias


class Pointwise(eqx.Module):
    """A 1x1 convolution: the same affine map `W v + b` of the channels at every grid point.

    Parameters: `weight` (out, in) and `bias` (out,), i.e. `in * out + out` entries. Acts
    on `(in, *spatial)` with any number of spatial axes.
    """

    weight: Float[Array, "out in"]
    bias: Float[Array, " out"]

    def __init__(self, in_channels: int, out_channels: int, *, key: Key):
        self.weight = fan_in_uniform(subkey(key, 0), (out_channels, in_channels), in_channels)
        self.bias = fan_in_uniform(subkey(key, 1), (out_channels,), in_channels)

    def __call__(self, x: Float[Array, "in ..."]) -> Float[Array, "out ..."]:
        spatial = x.shape[1:]
        x2 = x.reshape(x.shape[0], -1)
        # `weight + 0 * x[0, 0]` equals `weight`, but under `jax.vmap` it is batched with
        # the input, so XLA sees one (out, in) @ (in, n) product per example instead of a
        # single product over the merged batch and grid axes. The gradient with respect to
        # the weight is then a batched product plus a sum over the batch, which XLA:CPU
        # computes without the two activation-sized transposes per layer (and the GELU
        # derivative recomputed inside them) that the merged form needs: the larger part of
        # the FNO training speed-up recorded in benchmarks/RESULTS_nn.md. Values and
        # derivatives (forward mode included) are unchanged; the one visible difference is
        # that a NaN/inf anywhere in an example makes that example's whole output NaN.
        w = self.weight + jnp.zeros((), x.dtype) * x2[:1, :1]
        y = w @ x2 + self.bias[:, None]
        return y.reshape(self.weight.shape[0], *spatial)


class Conv(eqx.Module):
    """Stride-1 convolution with an odd kernel, padded circularly ("same" size, periodic
    grid) or not at all for a 1-wide kernel. weight (out, in, k, ..., k), bias (out,):
    `out * in * k**dims + out` parameters."""

    weight: Float[Array, "c_out c_in ..."]
    bias: Float[Array, " out"]

    def __init__(self, dims: int, in_channels: int, out_channels: int, kernel: int, *, key: Key):
        if kernel % 2 != 1:
            raise ValueError(f"`kernel` must be odd, got {kernel}.")
        shape = (out_channels, in_channels) + (kernel,) * dims
        fan_in = in_channels * kernel**dims
        self.weight = fan_in_uniform(subkey(key, 0), shape, fan_in)
        self.bias = fan_in_uniform(subkey(key, 1), (out_channels,), fan_in)

    def __call__(self, x: Float[Array, "in ..."]) -> Float[Array, "out ..."]:
        dims = x.ndim - 1
        pad = self.weight.shape[-1] // 2
        if pad:
            x = jnp.pad(x, ((0, 0),) + ((pad, pad),) * dims, mode="wrap")
        y = jax.lax.conv_general_dilated(x[None], self.weight, (1,) * dims, "VALID")[0]
        return y + self.bias.reshape((-1,) + (1,) * dims)


class Down(eqx.Module):
    """2-wide, stride-2 convolution: halves every spatial size (no padding needed).
    weight (out, in, 2, ..., 2), bias (out,): `out * in * 2**dims + out` parameters."""

    weight: Float[Array, "c_out c_in ..."]
    bias: Float[Array, " out"]

    def __init__(self, dims: int, in_channels: int, out_channels: int, *, key: Key):
        shape = (out_channels, in_channels) + (2,) * dims
        fan_in = in_channels * 2**dims
        self.weight = fan_in_uniform(subkey(key, 0), shape, fan_in)
        self.bias = fan_in_uniform(subkey(key, 1), (out_channels,), fan_in)

    def __call__(self, x: Float[Array, "in ..."]) -> Float[Array, "out ..."]:
        dims = x.ndim - 1
        y = jax.lax.conv_general_dilated(x[None], self.weight, (2,) * dims, "VALID")[0]
        return y + self.bias.reshape((-1,) + (1,) * dims)


class Up(eqx.Module):
    """2-wide, stride-2 transposed convolution: doubles every spatial size, each input
    point writing a 2 x ... x 2 block, y[o, 2j + a] = sum_c W[c, o, a] x[c, j] + b[o].
    weight (in, out, 2, ..., 2), bias (out,): `in * out * 2**dims + out` parameters."""

    weight: Float[Array, "c_in c_out ..."]
    bias: Float[Array, " out"]

    def __init__(self, dims: int, in_channels: int, out_channels: int, *, key: Key):
        shape = (in_channels, out_channels) + (2,) * dims
        fan_in = in_channels * 2**dims
        self.weight = fan_in_uniform(subkey(key, 0), shape, fan_in)
        self.bias = fan_in_uniform(subkey(key, 1), (out_channels,), fan_in)

    def __call__(self, x: Float[Array, "in ..."]) -> Float[Array, "out ..."]:
        dims = x.ndim - 1
        out = self.weight.shape[1]
        if dims == 1:
            y = jnp.einsum("coa,cj->oja", self.weight, x).reshape(out, 2 * x.shape[1])
        elif dims == 2:
            h, w = x.shape[1:]
            y = jnp.einsum("coab,cjk->ojakb", self.weight, x).reshape(out, 2 * h, 2 * w)
        else:
            raise ValueError(f"`x` must have 1 or 2 spatial axes, got shape {x.shape}.")
        return y + self.bias.reshape((-1,) + (1,) * dims)


class GroupNorm(eqx.Module):
    """Group normalisation (Wu & He 2018) of one example: channels split into `groups`
    groups, each normalised by its mean and variance over its channels and all grid
    points (eps 1e-5), then a per-channel scale (init 1) and shift (init 0): 2 c
    parameters."""

    weight: Float[Array, " c"]
    bias: Float[Array, " c"]
    groups: int = eqx.field(static=True)

    def __init__(self, channels: int, groups: int):
        if channels % groups:
            raise ValueError(f"`groups` {groups} must divide the channels {channels}.")
        dtype = jnp.zeros(()).dtype
        self.weight = jnp.asarray(np.ones(channels), dtype)
        self.bias = jnp.asarray(np.zeros(channels), dtype)
        self.groups = groups

    def __call__(self, x: Float[Array, "c ..."]) -> Float[Array, "c ..."]:
        c = x.shape[0]
        g = x.reshape(self.groups, -1)
        mean = jnp.mean(g, axis=1, keepdims=True)
        var = jnp.var(g, axis=1, keepdims=True)
        y = ((g - mean) * jax.lax.rsqrt(var + 1e-5)).reshape(x.shape)
        shape = (c,) + (1,) * (x.ndim - 1)
        return y * self.weight.reshape(shape) + self.bias.reshape(shape)


def grid_channels(spatial: tuple[int, ...], dtype) -> Array:
    """Coordinates x_j = j / n on the periodic unit interval/square, one channel per axis.

    Shape `(len(spatial), *spatial)`. The point j / n (no endpoint) is the periodic grid
    of the FNO data, so the same physical point has the same coordinate at every
    resolution (what makes a grid-conditioned FNO resolution independent).
    """
    axes = [np.arange(n, dtype=np.float64) / n for n in spatial]
    mesh = np.meshgrid(*axes, indexing="ij")
    return jnp.asarray(np.stack(mesh), dtype=dtype)
