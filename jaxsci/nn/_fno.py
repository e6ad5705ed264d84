"""The Fourier neural operator (Li et al. 2021) on periodic grids of 1, 2 or 3 dimensions."""

from collections.abc import Callable, Sequence

import equinox as eqx
import jax
import jax.numpy as jnp

from .._checks import check_int, check_range
from .._custom_types import Array, Float, Key, PyTree
from ._base import AbstractNetwork, check_example
from ._init import subkey
from ._layers import Pointwise, grid_channels
from ._spectral import _SPATIAL, SpectralConv, check_modes


def _make_lifting(c0: int, width: int, lifting_width: int | None, key) -> tuple[Pointwise, ...]:
    if lifting_width is None:
        return (Pointwise(c0, width, key=key),)
    lifting_width = check_int("lifting_width", lifting_width)
    return (
        Pointwise(c0, lifting_width, key=subkey(key, 0)),
        Pointwise(lifting_width, width, key=subkey(key, 1)),
    )


def _features(net, x, key):
    """Lifting -> `depth` Fourier layers sigma(K v + W v + b) -> the projection's hidden layer.

    No activation after the last Fourier layer (Li et al.'s reference architecture). With
    `net.dropout` > 0 and a key, dropout (`eqx.nn.Dropout`, inverted: kept entries are
    divided by 1 - p) follows every hidden activation of the Fourier layers and the
    projection's hidden layer, the inputs of the last `depth` weight layers (Gal &
    Ghahramani 2016 put dropout before each weight layer).
    """
    drop = eqx.nn.Dropout(net.dropout, inference=key is None)
    keys = [None] * len(net.spectral) if key is None else jax.random.split(key, len(net.spectral))
    if net.grid:
        x = jnp.concatenate([x, grid_channels(x.shape[1:], x.dtype)], axis=0)
    v = net.lifting[0](x)
    for layer in net.lifting[1:]:
        v = layer(net.activation(v))
    for i, (spectral, skip) in enumerate(zip(net.spectral, net.skips, strict=True)):
        v = spectral(v) + skip(v)
        if i < len(net.spectral) - 1:
            v = drop(net.activation(v), key=keys[i])
    return drop(net.activation(net.projection[0](v)), key=keys[-1])


class FNO(AbstractNetwork):
    r"""Fourier neural operator on a periodic grid of d = 1, 2 or 3 dimensions (Li et al.
    2021, ICLR).

        v_0 = P(x, grid),   v_{l+1} = sigma(K_l v_l + W_l v_l + b_l),   u = Q(v_L)

    P lifts the input channels (plus the d grid coordinates x_j = j / n per axis when
    `grid`) to `width` channels pointwise; each Fourier layer adds a spectral convolution
    K_l (`SpectralConv`, the lowest `modes` wavenumbers per axis) to a pointwise linear skip
    W_l v + b_l, followed by the activation (GELU by default) except after the last layer;
    Q projects pointwise to `out_channels` through a hidden layer of `projection_width`
    channels. `FNO(1, 1, 1, 64, 16, 4, key=key)` is the paper's Burgers model (projection
    128, grid appended), `FNO(2, 1, 1, 20, 12, 4, key=key)` its Navier-Stokes 2-D model
    (width 32 in later code). Li et al.'s code uses the exact (erf) GELU, this default its
    tanh approximation (they differ by < 1e-3; pass `activation=functools.partial(
    jax.nn.gelu, approximate=False)` for the exact one).

    Resolution independent: a model built and trained on one grid runs on any other (the
    grid channels are the periodic coordinates j / n, the Fourier weights are indexed by
    wavenumber).

    Shapes: `x` is `(in_channels, *spatial)` with d spatial axes, the output
    `(out_channels, *spatial)`; batch with `jax.vmap`.

    Parameter count, with c0 = in_channels + (d if grid), w = width, p = projection_width,
    M_i = 2^(d-1) m_1 ... m_d for the modes (m_1, ..., m_d) of layer i (`last_modes` for the
    last layer):

        lifting      c0 w + w                      (lifting_width l: c0 l + l + l w + w)
        layer i      2 w^2 M_i + w^2 + w
        projection   w p + p + p out_channels + out_channels

    Arguments:
        num_spatial_dims: d, the number of spatial axes.
        in_channels, out_channels: channels of the input and output fields.
        width: channels of the hidden Fourier layers.
        modes: Fourier modes kept by each spectral convolution, an int (every axis) or d
            ints (see `SpectralConv` for which wavenumbers).
        depth: number of Fourier layers (>= 1).
        key: PRNG key.
        last_modes: modes of the last Fourier layer (default `modes`). In 1-D pass
            `n // 2 + 1` to keep every mode of an n-point training grid in the last layer.
        projection_width: hidden channels of the projection Q (Li et al.: 128).
        lifting_width: if given, the lifting P is a two-layer pointwise MLP with this many
            hidden channels (neuraloperator's default uses 2 * width); default one layer.
        grid: append the coordinate channels (Li et al. do).
        activation: pointwise nonlinearity (default `jax.nn.gelu`, tanh approximation).
        dropout: the dropout rate p in [0, 1) (default 0: none). Called with a `key`, the
            network zeroes each hidden activation with probability p and divides the rest by
            1 - p (expected activations unchanged; `eqx.nn.Dropout`), after every hidden
            Fourier layer and in the projection; called without a key it is deterministic
            (dropout off). Monte Carlo dropout (Gal & Ghahramani 2016) keeps it on at
            prediction: `nn.sample_ensemble(model, x, M, key=key)` draws M members.
        transform: how the spectral convolutions compute their truncated transforms,
            "auto", "fft" or "dft" (see `SpectralConv`; "auto" was tuned on CPU, where the
            DFT products win for few modes; on a GPU compare with "fft").
    """

    lifting: tuple[Pointwise, ...]
    spectral: tuple[SpectralConv, ...]
    skips: tuple[Pointwise, ...]
    projection: tuple[Pointwise, Pointwise]
    activation: Callable[[Array], Array]
    num_spatial_dims: int = eqx.field(static=True)
    in_channels: int = eqx.field(static=True)
    out_channels: int = eqx.field(static=True)
    width: int = eqx.field(static=True)
    grid: bool = eqx.field(static=True)
    dropout: float = eqx.field(static=True)

    def __init__(
        self,
        num_spatial_dims: int,
        in_channels: int,
        out_channels: int,
        width: int,
        modes: int | Sequence[int],
        depth: int,
        *,
        key: Key,
        last_modes: int | Sequence[int] | None = None,
        projection_width: int = 128,
        lifting_width: int | None = None,
        grid: bool = True,
        activation: Callable[[Array], Array] = jax.nn.gelu,
        transform: str = "auto",
        dropout: float = 0.0,
    ):
        check_range("dropout", dropout, 0.0, 1.0, upper_open=True)
        self.dropout = float(dropout)
        d = check_int("num_spatial_dims", num_spatial_dims, maximum=3)
        self.num_spatial_dims = d
        self.in_channels = check_int("in_channels", in_channels)
        self.out_channels = check_int("out_channels", out_channels)
        self.width = check_int("width", width)
        modes = check_modes("modes", modes, d)
        depth = check_int("depth", depth)
        last_modes = modes if last_modes is None else check_modes("last_modes", last_modes, d)
        projection_width = check_int("projection_width", projection_width)
        self.grid = bool(grid)
        self.activation = activation
        c0 = self.in_channels + (d if self.grid else 0)
        self.lifting = _make_lifting(c0, self.width, lifting_width, subkey(key, 0))
        self.spectral = tuple(
            SpectralConv(
                d,
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

    def last_layers(self, num_fourier_layers: int = 1) -> tuple[PyTree, ...]:
        """The last `num_fourier_layers` Fourier layers (their spectral convolutions K_l
        and skips W_l, b_l) and the projection Q: the parts Spectral-Refiner fine-tunes
        (Cao et al. 2024, arXiv:2405.17211, who refit the last layers of a trained FNO
        with a negative Sobolev loss while the rest stays frozen).

        A tuple of nodes of this network, for `jaxsci.train.fit(..., trainable=where)`
        with `where = lambda m: m.last_layers()` (or `m.net.last_layers()` for an
        `nn.Stepper` around the FNO). `num_fourier_layers` = 0 gives the projection alone;
        `depth` gives every layer but the lifting.
        """
        k = check_int("num_fourier_layers", num_fourier_layers, minimum=0, maximum=self.depth)
        first = self.depth - k
        return (*self.spectral[first:], *self.skips[first:], self.projection)

    def _check(self, x) -> None:
        names = ", ".join(_SPATIAL[self.num_spatial_dims - 1])
        check_example(
            "x",
            x,
            (self.in_channels,) + (None,) * self.num_spatial_dims,
            f"(in_channels, {names}) = ({self.in_channels}, {names})",
        )

    def features(
        self, x: Float[Array, " in_channels *spatial"], *, key: Key | None = None
    ) -> Float[Array, " projection_width *spatial"]:
        """The hidden layer of the projection Q, sigma(Q_0 v_L) (after dropout when `key` is
        given): the network is `projection[1]` (a pointwise affine map) of these features,
        so it is linear in its last layer's weights (what last-layer Laplace and last-layer
        MCMC use, `jaxsci.inference.last_layer_laplace`)."""
        self._check(x)
        return _features(self, x, key)

    def __call__(
        self, x: Float[Array, " in_channels *spatial"], *, key: Key | None = None
    ) -> Float[Array, " out_channels *spatial"]:
        """The output field; with `key` (and `dropout` > 0), one Monte Carlo dropout draw."""
        return self.projection[1](self.features(x, key=key))


def FNO1d(*args, key: Key, **kwargs) -> FNO:
    """`FNO(1, *args, key=key, **kwargs)`: the FNO on a periodic 1-D grid, arguments
    `(in_channels, out_channels, width, modes, depth)` and the keywords of `FNO`;
    `(in_channels, n)` -> `(out_channels, n)`. `FNO1d(1, 1, 64, 16, 4, key=key)` is Li et
    al.'s Burgers model."""
    return FNO(1, *args, key=key, **kwargs)


def FNO2d(*args, key: Key, **kwargs) -> FNO:
    """`FNO(2, *args, key=key, **kwargs)`: the FNO on a periodic 2-D grid, `(in_channels, h,
    w)` -> `(out_channels, h, w)`; `modes` and `last_modes` are an int or a pair (modes_x,
    modes_y)."""
    return FNO(2, *args, key=key, **kwargs)
