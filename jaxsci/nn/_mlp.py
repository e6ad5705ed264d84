"""Multilayer perceptron with optional random Fourier features."""

from collections.abc import Callable

import equinox as eqx
import jax

from .._checks import check_int, check_positive
from .._custom_types import Array, Float, Key
from ._base import AbstractNetwork, check_example
from ._init import normal, subkey
from ._layers import fourier_map, linear


def _identity(x):
    return x


class MLP(AbstractNetwork):
    r"""Fully connected network, optionally on random Fourier features of its input.

    Without features: `depth` hidden layers of `width_size` units,
    x -> sigma(W_1 x + b_1) -> ... -> W_{depth+1} h + b_{depth+1}.

    With `fourier_features = m` the input v (e.g. a coordinate) is first mapped to

        gamma(v) = [cos(2 pi B v), sin(2 pi B v)],   B in R^{m x in_size},  B_ij ~ N(0, s^2)

    (Tancik et al. 2020, "Fourier features let networks learn high frequency functions in
    low dimensional domains", NeurIPS), s = `fourier_scale`. Tancik et al. tune s per
    task (their images on [0, 1]^2 use s = 10); larger s resolves finer scales and
    overfits sooner. B is drawn once from `key` and is a fixed buffer, not a parameter:
    `__call__` reads it through `jax.lax.stop_gradient`, so its gradient is exactly zero
    and Adam/SGD leave it unchanged. It is still a float leaf of the module; exclude it
    from weight decay (e.g. with `optax.masked`) if you use decoupled weight decay.

    Shapes: `x` is `(in_size,)`, the output `(out_size,)`; batch (or evaluate on a grid of
    coordinates) with `jax.vmap`. An MLP on coordinates is resolution independent: any
    number of points can be queried.

    Parameter count, with d = in_size (or 2 m with Fourier features), w = width_size:

        depth = 0:   d out + out
        depth >= 1:  d w + w + (depth - 1)(w^2 + w) + w out + out
        plus the buffer B: m in_size entries (counted by `count_params`, never trained).

    The layers are `eqx.nn.Linear`, initialised U(-1/sqrt(fan_in), 1/sqrt(fan_in))
    (PyTorch's and equinox's default).

    Arguments:
        in_size, out_size: input and output sizes.
        width_size: hidden units per layer.
        depth: number of hidden layers (0 gives an affine map).
        activation: hidden nonlinearity (default GELU).
        final_activation: applied to the output (default identity).
        fourier_features: number m of random frequencies, or None for none.
        fourier_scale: standard deviation s of the entries of B.
        key: PRNG key.
    """

    layers: tuple[eqx.nn.Linear, ...]
    fourier_matrix: Float[Array, "features in_size"] | None
    activation: Callable[[Array], Array]
    final_activation: Callable[[Array], Array]
    in_size: int = eqx.field(static=True)
    out_size: int = eqx.field(static=True)
    width_size: int = eqx.field(static=True)
    depth: int = eqx.field(static=True)

    def __init__(
        self,
        in_size: int,
        out_size: int,
        width_size: int,
        depth: int,
        *,
        activation: Callable[[Array], Array] = jax.nn.gelu,
        final_activation: Callable[[Array], Array] = _identity,
        fourier_features: int | None = None,
        fourier_scale: float = 1.0,
        key: Key,
    ):
        self.in_size = check_int("in_size", in_size)
        self.out_size = check_int("out_size", out_size)
        self.width_size = check_int("width_size", width_size)
        self.depth = check_int("depth", depth, minimum=0)
        self.activation = activation
        self.final_activation = final_activation
        if fourier_features is None:
            self.fourier_matrix = None
            d0 = self.in_size
        else:
            m = check_int("fourier_features", fourier_features)
            check_positive("fourier_scale", fourier_scale)
            scale = float(fourier_scale)
            self.fourier_matrix = normal(subkey(key, 0), (m, self.in_size), scale)
            d0 = 2 * m
        sizes = [d0] + [self.width_size] * self.depth + [self.out_size]
        self.layers = tuple(
            linear(a, b, key=subkey(key, 1 + i))
            for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True))
        )

    def features(self, x: Float[Array, " in_size"]) -> Float[Array, " d"]:
        """The network's input representation: gamma(x) with Fourier features, else x."""
        if self.fourier_matrix is None:
            return x
        return fourier_map(self.fourier_matrix, x)

    def __call__(self, x: Float[Array, " in_size"]) -> Float[Array, " out_size"]:
        check_example("x", x, (self.in_size,), f"(in_size,) = ({self.in_size},)")
        h = self.features(x)
        for layer in self.layers[:-1]:
            h = self.activation(layer(h))
        return self.final_activation(self.layers[-1](h))
