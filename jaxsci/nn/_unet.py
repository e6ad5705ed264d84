"""U-Nets with periodic (circular) padding on grids of 1, 2 or 3 dimensions, optionally
conditioned on a time."""

import math
from collections.abc import Callable, Sequence

import equinox as eqx
import jax
import jax.numpy as jnp

from .._checks import as_float_array, check_int
from .._custom_types import Array, Float, Key, ScalarLike
from ._base import AbstractNetwork, AbstractTimeConditioned, check_example
from ._embedding import SinusoidalEmbedding
from ._init import subkey
from ._layers import Upsample, circular_conv, downsample, group_norm, linear


def _groups(channels: int) -> int:
    """GroupNorm groups: gcd(channels, 8) (8 groups where the channels allow)."""
    return math.gcd(channels, 8)


class _ResBlock(eqx.Module):
    """Pre-activation residual block (He et al. 2016; the DDPM U-Net block of Ho et al. 2020).

    h = conv3(act(norm(x))), h = norm(h) [* (1 + scale) + shift], h = conv3(act(h)),
    out = h + skip(x), with (scale, shift) = Linear(act(emb)) per channel (FiLM after the
    normalisation: the "scale-shift norm" of Dhariwal & Nichol 2021, which a following
    GroupNorm cannot erase as it erases an additive per-channel shift when groups hold one
    channel) and skip a 1x1 convolution when the channel count changes.
    """

    norm1: eqx.nn.GroupNorm
    conv1: eqx.nn.Conv
    emb: eqx.nn.Linear | None
    norm2: eqx.nn.GroupNorm
    conv2: eqx.nn.Conv
    skip: eqx.nn.Conv | None

    def __init__(self, dims, c_in, c_out, emb_dim, key):
        self.norm1 = group_norm(c_in, _groups(c_in))
        self.conv1 = circular_conv(dims, c_in, c_out, 3, key=subkey(key, 0))
        self.emb = None if emb_dim is None else linear(emb_dim, 2 * c_out, key=subkey(key, 1))
        self.norm2 = group_norm(c_out, _groups(c_out))
        self.conv2 = circular_conv(dims, c_out, c_out, 3, key=subkey(key, 2))
        self.skip = (
            None if c_in == c_out else circular_conv(dims, c_in, c_out, 1, key=subkey(key, 3))
        )

    def __call__(self, x, emb, act):
        h = self.norm2(self.conv1(act(self.norm1(x))))
        if self.emb is not None:
            scale, shift = jnp.split(self.emb(act(emb)), 2)
            spatial = (1,) * (h.ndim - 1)
            h = h * (1 + scale.reshape(scale.shape + spatial)) + shift.reshape(
                shift.shape + spatial
            )
        h = self.conv2(act(h))
        return h + (x if self.skip is None else self.skip(x))


class _UNet(eqx.Module):
    """The U-Net body shared by `UNet` and `ScoreUNet` (see `UNet` for the layout)."""

    in_conv: eqx.nn.Conv
    down_blocks: tuple[tuple[_ResBlock, ...], ...]
    downsample: tuple[eqx.nn.Conv, ...]
    mid_blocks: tuple[_ResBlock, ...]
    upsample: tuple[Upsample, ...]
    up_blocks: tuple[tuple[_ResBlock, ...], ...]
    out_norm: eqx.nn.GroupNorm
    out_conv: eqx.nn.Conv
    activation: Callable[[Array], Array]
    dims: int = eqx.field(static=True)
    in_channels: int = eqx.field(static=True)
    out_channels: int = eqx.field(static=True)

    def __init__(
        self,
        dims,
        in_channels,
        out_channels,
        hidden_channels,
        multipliers,
        blocks,
        emb_dim,
        activation,
        key,
    ):
        self.dims = check_int("num_spatial_dims", dims, maximum=3)
        self.in_channels = check_int("in_channels", in_channels)
        self.out_channels = check_int("out_channels", out_channels)
        hidden = check_int("hidden_channels", hidden_channels)
        blocks = check_int("blocks_per_level", blocks)
        if isinstance(multipliers, (str, bytes)) or not isinstance(multipliers, Sequence):
            raise TypeError(
                f"`channel_multipliers` must be a sequence of integers, got {multipliers!r}."
            )
        if len(multipliers) < 1:
            raise ValueError("`channel_multipliers` must have at least one entry.")
        mults = [check_int(f"channel_multipliers[{i}]", m) for i, m in enumerate(multipliers)]
        chans = [hidden * m for m in mults]
        levels = len(chans) - 1
        self.activation = activation
        counter = iter(range(10**6))

        def key_():
            return subkey(key, next(counter))

        self.in_conv = circular_conv(dims, self.in_channels, chans[0], 3, key=key_())
        self.down_blocks = tuple(
            tuple(_ResBlock(dims, chans[lev], chans[lev], emb_dim, key_()) for _ in range(blocks))
            for lev in range(levels)
        )
        self.downsample = tuple(
            downsample(dims, chans[lev], chans[lev + 1], key=key_()) for lev in range(levels)
        )
        self.mid_blocks = tuple(
            _ResBlock(dims, chans[-1], chans[-1], emb_dim, key_()) for _ in range(blocks)
        )
        self.upsample = tuple(
            Upsample(dims, chans[lev + 1], chans[lev], key=key_()) for lev in range(levels)
        )
        self.up_blocks = tuple(
            tuple(
                _ResBlock(
                    dims, 2 * chans[lev] if b == 0 else chans[lev], chans[lev], emb_dim, key_()
                )
                for b in range(blocks)
            )
            for lev in range(levels)
        )
        self.out_norm = group_norm(chans[0], _groups(chans[0]))
        self.out_conv = circular_conv(dims, chans[0], self.out_channels, 1, key=key_())

    @property
    def levels(self) -> int:
        return len(self.downsample)

    def check_input(self, x):
        names = ", ".join(("n",) if self.dims == 1 else ("d", "h", "w")[3 - self.dims :])
        check_example(
            "x",
            x,
            (self.in_channels,) + (None,) * self.dims,
            f"(in_channels, {names}) with in_channels = {self.in_channels}",
        )
        factor = 2**self.levels
        if any(s % factor for s in x.shape[1:]):
            raise ValueError(
                f"`x` has spatial shape {tuple(x.shape[1:])}, but this U-Net with {self.levels} "
                f"levels needs every spatial size divisible by 2**levels = {factor}."
            )

    def __call__(self, x, emb):
        act = self.activation
        h = self.in_conv(x)
        skips = []
        for blocks, down in zip(self.down_blocks, self.downsample, strict=True):
            for block in blocks:
                h = block(h, emb, act)
            skips.append(h)
            h = down(h)
        for block in self.mid_blocks:
            h = block(h, emb, act)
        for lev in reversed(range(self.levels)):
            h = self.upsample[lev](h)
            h = jnp.concatenate([h, skips[lev]], axis=0)
            for block in self.up_blocks[lev]:
                h = block(h, emb, act)
        return self.out_conv(act(self.out_norm(h)))


_LAYOUT = r"""
    Layout (Ronneberger, Fischer & Brox 2015, U-Net; residual blocks and GroupNorm as in
    the DDPM U-Net of Ho, Jain & Abbeel 2020). With c_l = hidden_channels * m_l for the
    channel multipliers m_0, ..., m_L (L = levels = len(channel_multipliers) - 1):

        in_conv   3-wide circular conv, in_channels -> c_0
        level l   blocks_per_level residual blocks c_l -> c_l, keep the skip, then a
                  2-wide stride-2 conv c_l -> c_{l+1} (halves every spatial size)
        middle    blocks_per_level residual blocks at c_L
        level l   2-wide stride-2 transposed conv c_{l+1} -> c_l, concatenate the skip,
                  residual blocks 2 c_l -> c_l, then c_l -> c_l
        output    GroupNorm, activation, 1x1 conv c_0 -> out_channels

    A residual block a -> b is GroupNorm(a), act, 3-wide circular conv a -> b, GroupNorm(b),
    [time conditioning: per-channel scale and shift], act, 3-wide circular conv b -> b, plus
    the input (through a 1x1 conv when a != b). GroupNorm uses gcd(channels, 8) groups. Every 3-wide
    convolution pads circularly, so the network is translation equivariant on the
    periodic grid for shifts by multiples of 2**L (the stride-2 layers see shifts by 2).
    Spatial sizes must be divisible by 2**L.

    Parameter count, with k = 3**dims, s = 2**dims and e the embedding width (0 without
    time conditioning): conv a -> b with kernel volume v: a b v + b; GroupNorm(c): 2 c;
    residual block a -> b: 2 a + (a b k + b) + 2 b + (b^2 k + b) + [a b + b if a != b]
    + [2 e b + 2 b if conditioned]; down c_l -> c_{l+1}: c_l c_{l+1} s + c_{l+1}; up
    c_{l+1} -> c_l: c_{l+1} c_l s + c_l; in_conv: in c_0 k + c_0; output: 2 c_0 + c_0 out
    + out.
"""


class _TimeMLP(eqx.Module):
    """t -> SinusoidalEmbedding(d) -> Linear(d, 4 d) -> act -> Linear(4 d, 4 d) (DDPM)."""

    embedding: SinusoidalEmbedding
    linear1: eqx.nn.Linear
    linear2: eqx.nn.Linear

    def __init__(self, dim, scale, key):
        self.embedding = SinusoidalEmbedding(dim, scale=scale)
        self.linear1 = linear(self.embedding.dim, 4 * self.embedding.dim, key=subkey(key, 0))
        self.linear2 = linear(4 * self.embedding.dim, 4 * self.embedding.dim, key=subkey(key, 1))

    def __call__(self, t, act):
        return self.linear2(act(self.linear1(self.embedding(t))))


class UNet(AbstractNetwork):
    __doc__ = (
        r"""U-Net on a periodic grid of d = 1, 2 or 3 dimensions, `(in_channels, *spatial)` ->
    `(out_channels, *spatial)`. Layers: `eqx.nn.Conv` (circular padding), `eqx.nn.GroupNorm`.
"""
        + _LAYOUT
        + r"""
    Arguments:
        num_spatial_dims: d, the number of spatial axes.
        in_channels, out_channels: channels of the input and output fields.
        hidden_channels: c_0 / m_0, the base channel count.
        channel_multipliers: m_0, ..., m_L (default (1, 2, 4): two down-samplings).
        key: PRNG key.
        blocks_per_level: residual blocks per level (default 1).
        activation: nonlinearity (default GELU).
    """
    )

    net: _UNet

    def __init__(
        self,
        num_spatial_dims: int,
        in_channels: int,
        out_channels: int,
        hidden_channels: int = 32,
        channel_multipliers: Sequence[int] = (1, 2, 4),
        *,
        key: Key,
        blocks_per_level: int = 1,
        activation: Callable[[Array], Array] = jax.nn.gelu,
    ):
        self.net = _UNet(
            num_spatial_dims,
            in_channels,
            out_channels,
            hidden_channels,
            channel_multipliers,
            blocks_per_level,
            None,
            activation,
            key,
        )

    @property
    def levels(self) -> int:
        return self.net.levels

    def __call__(
        self, x: Float[Array, " in_channels *spatial"]
    ) -> Float[Array, " out_channels *spatial"]:
        self.net.check_input(x)
        return self.net(x, None)


_SCORE = r"""
    The time t (a scalar) is embedded as in the DDPM U-Net (Ho et al. 2020): a
    `SinusoidalEmbedding(time_embedding_dim, scale=time_scale)`, then Linear(d, 4d), act,
    Linear(4d, 4d); every residual block maps act(embedding) linearly to a per-channel
    scale and shift of its normalised features (FiLM, Perez et al. 2018; the scale-shift
    norm of Dhariwal & Nichol 2021), so the time conditions every level. The time MLP adds
    4 d^2 + 4 d + 16 d^2 + 4 d parameters and each residual block to b channels
    2 (4 d) b + 2 b (e = 4 d in the U-Net count below). The output has the input's shape: a
    score, noise or velocity field.
"""


class ScoreUNet(AbstractTimeConditioned):
    __doc__ = (
        r"""Time-conditioned U-Net on a periodic grid of d = 1, 2 or 3 dimensions: `(t, x)` -> a
    field shaped like x.
"""
        + _SCORE
        + _LAYOUT
        + r"""
    Arguments:
        num_spatial_dims: d, the number of spatial axes.
        channels: channels of x (and of the output).
        hidden_channels, channel_multipliers, blocks_per_level, activation: as `UNet`
            (activation default SiLU, the DDPM choice).
        time_embedding_dim: d, the sinusoidal embedding size (even).
        time_scale: multiplies t before the embedding (1000 for t in [0, 1]).
        key: PRNG key.
    """
    )

    net: _UNet
    time_mlp: _TimeMLP

    def __init__(
        self,
        num_spatial_dims: int,
        channels: int,
        hidden_channels: int = 32,
        channel_multipliers: Sequence[int] = (1, 2, 4),
        time_embedding_dim: int = 32,
        *,
        key: Key,
        blocks_per_level: int = 1,
        activation: Callable[[Array], Array] = jax.nn.silu,
        time_scale: float = 1000.0,
    ):
        self.time_mlp = _TimeMLP(time_embedding_dim, time_scale, subkey(key, 0))
        self.net = _UNet(
            num_spatial_dims,
            channels,
            channels,
            hidden_channels,
            channel_multipliers,
            blocks_per_level,
            4 * self.time_mlp.embedding.dim,
            activation,
            subkey(key, 1),
        )

    @property
    def levels(self) -> int:
        return self.net.levels

    def __call__(
        self, t: ScalarLike, x: Float[Array, " channels *spatial"]
    ) -> Float[Array, " channels *spatial"]:
        self.net.check_input(x)
        t = as_float_array("t", t)
        check_example("t", t, (), "a scalar ()")
        return self.net(x, self.time_mlp(t, self.net.activation))


def UNet1d(*args, key: Key, **kwargs) -> UNet:
    """`UNet(1, *args, key=key, **kwargs)`: the U-Net on a periodic 1-D grid, arguments
    `(in_channels, out_channels, hidden_channels, channel_multipliers)` and the keywords of
    `UNet`; `(in_channels, n)` -> `(out_channels, n)`."""
    return UNet(1, *args, key=key, **kwargs)


def UNet2d(*args, key: Key, **kwargs) -> UNet:
    """`UNet(2, *args, key=key, **kwargs)`: the U-Net on a periodic 2-D grid,
    `(in_channels, h, w)` -> `(out_channels, h, w)`."""
    return UNet(2, *args, key=key, **kwargs)


def ScoreUNet1d(channels: int, *args, key: Key, **kwargs) -> ScoreUNet:
    """`ScoreUNet(1, channels, ...)`: the time-conditioned U-Net on `(channels, n)`."""
    return ScoreUNet(1, channels, *args, key=key, **kwargs)


def ScoreUNet2d(channels: int, *args, key: Key, **kwargs) -> ScoreUNet:
    """`ScoreUNet(2, channels, ...)`: the time-conditioned U-Net on `(channels, h, w)`."""
    return ScoreUNet(2, channels, *args, key=key, **kwargs)
