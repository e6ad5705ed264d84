"""Time-conditioned networks on vectors (scores, noise predictors, velocity fields)."""

from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp

from .._checks import as_float_array, check_int, check_positive
from .._custom_types import Array, Float, Key, ScalarLike
from ._base import AbstractTimeConditioned, check_example
from ._embedding import SinusoidalEmbedding
from ._mlp import MLP


class ScoreMLP(AbstractTimeConditioned):
    r"""Time-conditioned MLP f(t, x) for low-dimensional diffusion and flow models.

        f(t, x) = MLP([x, e(t)]),   e = SinusoidalEmbedding(time_embedding_dim, scale=time_scale)

    The sinusoidal time embedding (Vaswani et al. 2017; Ho et al. 2020) is concatenated to
    x and fed to an `MLP(data_dim + time_embedding_dim, data_dim, width, depth)` with SiLU
    activations (the usual choice for score networks, Song et al. 2021). The output has
    x's shape: a score, noise or velocity.

    Shapes: `t` a scalar, `x` `(data_dim,)`, output `(data_dim,)`.

    Parameter count, with d = data_dim + time_embedding_dim, w = width (depth >= 1):
    d w + w + (depth - 1)(w^2 + w) + w data_dim + data_dim.

    Arguments:
        data_dim: dimension of x.
        width: hidden units.
        depth: hidden layers.
        time_embedding_dim: size of the sinusoidal embedding (even).
        key: PRNG key.
        activation: hidden nonlinearity (default SiLU).
        time_scale: multiplies t before the embedding (1000 maps t in [0, 1] onto DDPM's
            1000-step range).
    """

    mlp: MLP
    embedding: SinusoidalEmbedding
    data_dim: int = eqx.field(static=True)

    def __init__(
        self,
        data_dim: int,
        width: int,
        depth: int,
        time_embedding_dim: int,
        *,
        key: Key,
        activation: Callable[[Array], Array] = jax.nn.silu,
        time_scale: float = 1000.0,
    ):
        self.data_dim = check_int("data_dim", data_dim)
        width, depth = check_int("width", width), check_int("depth", depth, 0)
        time_embedding_dim = check_int("time_embedding_dim", time_embedding_dim, 2)
        if time_embedding_dim % 2:
            raise ValueError(f"`time_embedding_dim` must be even, got {time_embedding_dim}.")
        check_positive("time_scale", time_scale)
        self.embedding = SinusoidalEmbedding(time_embedding_dim, scale=time_scale)
        self.mlp = MLP(
            self.data_dim + self.embedding.dim,
            self.data_dim,
            width,
            depth,
            activation=activation,
            key=key,
        )

    def __call__(self, t: ScalarLike, x: Float[Array, " data_dim"]) -> Float[Array, " data_dim"]:
        check_example("x", x, (self.data_dim,), f"(data_dim,) = ({self.data_dim},)")
        t = as_float_array("t", t)
        check_example("t", t, (), "a scalar ()")
        e = self.embedding(t).astype(x.dtype)
        return self.mlp(jnp.concatenate([x, e]))
