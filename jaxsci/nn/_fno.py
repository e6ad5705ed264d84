"""Fourier neural operators (Li et al. 2021) on periodic 1-D and 2-D grids."""

from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp

from .._custom_types import Array, Float, Key
from ._base import AbstractNetwork, check_int, check_pair, check_shape
from ._init import subkey
from ._layers import Pointwise, grid_channels
from ._spectral import SpectralConv1d, SpectralConv2d


def _make_lifting(c0: int, width: int, lifting_width: int | None, key) -> tuple[Pointwise, ...]:
    if lifting_width is None:
        return (Pointwise(c0, width, key=key),)
    lifting_width = check_int("lifting_width", lifting_width)
    return (
        Pointwise(c0, lifting_width, key=subkey(key, 0)),
        Pointwise(lifting_width, width, key=subkey(key, 1)),
    )


def _forward(net, x):
    """Lifting -> `depth` Fourier layers sigma(K v + W v + b) -> projection.

    No activation after the last Fourier layer (Li et al.'s reference architecture).
    """
    if net.grid:
        x = jnp.concatenate([x, grid_channels(x.shape[1:], x.dtype)], axis=0)
    v = net.lifting[0](x)
    for layer in net.lifting[1:]:
        v = layer(net.activation(v))
    for i, (spectral, skip) in enumerate(zip(net.spectral, net.skips, strict=True)):
        v = spectral(v) + skip(v)
        if i < len(net.spectral) - 1:
            v = net.activation(v)
    return net.projection[1](net.activation(net.projection[0](v)))


class FNO1d(AbstractNetwork):
    r"""Fourier neural operator on a periodic 1-D grid (Li et al. 2021, ICLR).

        v_0 = P(x, grid),   v_{l+1} = sigma(K_l v_l + W_l v_l + b_l),   u = Q(v_L)

    P lifts the input channels (plus the grid coordinate x_j = j / n when `grid`) to
    `width` channels pointwise; each Fourier layer adds a spectral convolution K_l
    (`SpectralConv1d`, lowest `modes` wavenumbers) to a pointwise linear skip W_l v + b_l,
    followed by the activation (GELU by default) except after the last layer; Q projects
    pointwise to `out_channels` through a hidden layer of `projection_width` channels.
    `FNO1d(1, 1, 64, 16, 4, key=key)` is the paper's Burgers model (projection 128, grid
    appended); Li et al.'s code uses the exact (erf) GELU, this default its tanh
    approximation (they differ by < 1e-3; pass `activation=functools.partial(jax.nn.gelu,
    approximate=False)` for the exact one).

    Resolution independent: a model built and trained on n points runs on any n' (the
    grid channel is the periodic coordinate j / n', the Fourier weights are indexed by
    wavenumber).

    Shapes: `x` is `(in_channels, n)`, the output `(out_channels, n)`; batch with
    `jax.vmap`.

    Parameter count, with c0 = in_channels + (1 if grid), w = width, p = projection_width:

        lifting      c0 w + w                      (lifting_width l: c0 l + l + l w + w)
        layer i      2 w^2 m_i + w^2 + w           (m_i = modes, m_{L-1} = last_modes)
        projection   w p + p + p out_channels + out_channels

    Arguments:
        in_channels, out_channels: channels of the input and output fields.
        width: channels of the hidden Fourier layers.
        modes: Fourier modes kept by each spectral convolution.
        depth: number of Fourier layers (>= 1).
        key: PRNG key.
        last_modes: modes of the last Fourier layer (default `modes`). Pass
            `n // 2 + 1` to keep every mode of an n-point training grid in the last layer.
        projection_width: hidden channels of the projection Q (Li et al.: 128).
        lifting_width: if given, the lifting P is a two-layer pointwise MLP with this many
            hidden channels (neuraloperator's default uses 2 * width); default one layer.
        grid: append the coordinate channel (Li et al. do).
        activation: pointwise nonlinearity (default `jax.nn.gelu`, tanh approximation).
        transform: how the spectral convolutions compute their truncated transforms,
            "auto", "fft" or "dft" (see `SpectralConv1d`; "auto" was tuned on CPU, where the
            DFT products win for few modes; on a GPU compare with "fft").
    """

    lifting: tuple[Pointwise, ...]
    spectral: tuple[SpectralConv1d, ...]
    skips: tuple[Pointwise, ...]
    projection: tuple[Pointwise, Pointwise]
    activation: Callable[[Array], Array]
    in_channels: int = eqx.field(static=True)
    out_channels: int = eqx.field(static=True)
    width: int = eqx.field(static=True)
    grid: bool = eqx.field(static=True)

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        width: int,
        modes: int,
        depth: int,
        *,
        key: Key,
        last_modes: int | None = None,
        projection_width: int = 128,
        lifting_width: int | None = None,
        grid: bool = True,
        activation: Callable[[Array], Array] = jax.nn.gelu,
        transform: str = "auto",
    ):
        self.in_channels = check_int("in_channels", in_channels)
        self.out_channels = check_int("out_channels", out_channels)
        self.width = check_int("width", width)
        modes = check_int("modes", modes)
        depth = check_int("depth", depth)
        last_modes = modes if last_modes is None else check_int("last_modes", last_modes)
        projection_width = check_int("projection_width", projection_width)
        self.grid = bool(grid)
        self.activation = activation
        c0 = self.in_channels + (1 if self.grid else 0)
        self.lifting = _make_lifting(c0, self.width, lifting_width, subkey(key, 0))
        self.spectral = tuple(
            SpectralConv1d(
                self.width,
                self.width,
                last_modes if i == depth - 1 else modes,
                key=subkey(key, 1 + i),
                transform=transform,
            )
            for i in range(depth)
        )
        self.skips = tuple(
            Pointwise(self.width, self.width, key=subkey(key, 1 + depth + i)) for i in range(depth)
        )
        self.projection = (
            Pointwise(self.width, projection_width, key=subkey(key, 1 + 2 * depth)),
            Pointwise(projection_width, self.out_channels, key=subkey(key, 2 + 2 * depth)),
        )

    @property
    def depth(self) -> int:
        return len(self.spectral)

    def __call__(self, x: Float[Array, "in_channels n"]) -> Float[Array, "out_channels n"]:
        check_shape("x", x, (self.in_channels, None), f"(in_channels, n) = ({self.in_channels}, n)")
        return _forward(self, x)


class FNO2d(AbstractNetwork):
    r"""Fourier neural operator on a periodic 2-D grid (Li et al. 2021, ICLR).

    As `FNO1d` with `SpectralConv2d` layers (wavenumbers |k_x| < modes_x, 0 <= k_y <
    modes_y) and, when `grid`, two coordinate channels x_j = j / h, y_k = k / w. The
    paper's Navier-Stokes 2-D model is width 20 (32 in later code), modes 12, depth 4.

    Shapes: `x` is `(in_channels, h, w)`, the output `(out_channels, h, w)`; batch with
    `jax.vmap`. Resolution independent (any h, w).

    Parameter count, with c0 = in_channels + (2 if grid), w = width, p = projection_width:

        lifting      c0 w + w                      (lifting_width l: c0 l + l + l w + w)
        layer i      4 w^2 mx_i my_i + w^2 + w     ((mx, my) = modes, or last_modes last)
        projection   w p + p + p out_channels + out_channels

    Arguments: as `FNO1d`; `modes` and `last_modes` are an int or a pair (modes_x, modes_y).
    """

    lifting: tuple[Pointwise, ...]
    spectral: tuple[SpectralConv2d, ...]
    skips: tuple[Pointwise, ...]
    projection: tuple[Pointwise, Pointwise]
    activation: Callable[[Array], Array]
    in_channels: int = eqx.field(static=True)
    out_channels: int = eqx.field(static=True)
    width: int = eqx.field(static=True)
    grid: bool = eqx.field(static=True)

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        width: int,
        modes,
        depth: int,
        *,
        key: Key,
        last_modes=None,
        projection_width: int = 128,
        lifting_width: int | None = None,
        grid: bool = True,
        activation: Callable[[Array], Array] = jax.nn.gelu,
        transform: str = "auto",
    ):
        self.in_channels = check_int("in_channels", in_channels)
        self.out_channels = check_int("out_channels", out_channels)
        self.width = check_int("width", width)
        modes = check_pair("modes", modes)
        depth = check_int("depth", depth)
        last_modes = modes if last_modes is None else check_pair("last_modes", last_modes)
        projection_width = check_int("projection_width", projection_width)
        self.grid = bool(grid)
        self.activation = activation
        c0 = self.in_channels + (2 if self.grid else 0)
        self.lifting = _make_lifting(c0, self.width, lifting_width, subkey(key, 0))
        self.spectral = tuple(
            SpectralConv2d(
                self.width,
                self.width,
                last_modes if i == depth - 1 else modes,
                key=subkey(key, 1 + i),
                transform=transform,
            )
            for i in range(depth)
        )
        self.skips = tuple(
            Pointwise(self.width, self.width, key=subkey(key, 1 + depth + i)) for i in range(depth)
        )
        self.projection = (
            Pointwise(self.width, projection_width, key=subkey(key, 1 + 2 * depth)),
            Pointwise(projection_width, self.out_channels, key=subkey(key, 2 + 2 * depth)),
        )

    @property
    def depth(self) -> int:
        return len(self.spectral)

    def __call__(self, x: Float[Array, "in_channels h w"]) -> Float[Array, "out_channels h w"]:
        check_shape(
            "x",
            x,
            (self.in_channels, None, None),
            f"(in_channels, h, w) = ({self.in_channels}, h, w)",
        )
        return _forward(self, x)
