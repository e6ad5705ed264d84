"""`LocalStochastic`: a noise-injected local forecaster on a ring, one ensemble member per call;
`NoiseInjected`: any field-to-field network made generative by latent noise channels;
`sample_ensemble`: members of any such generative model."""

from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp

from .._checks import check_finite, check_int, check_key, check_positive, float_parameter
from .._custom_types import Array, ArrayLike, Float, Key, PyTree
from ._base import AbstractNetwork, check_shape
from ._local import periodic_stencil
from ._mlp import MLP


class LocalStochastic(AbstractNetwork):
    r"""A noise-injected local forecaster for a ring of sites: one ensemble member per call.

    Site i sees its normalised stencil and `noise_dim` standard normal draws z_i, and one
    MLP shared by all sites returns its increment:

        x_i(t + lead) = x_i + s MLP((x_{i-r} - m) / s, ..., (x_{i+r} - m) / s, z_i),

    periodic in i, r = `radius`. Sharing the MLP makes it translation-equivariant, like
    Lorenz-96 itself; the injected noise makes each call one draw of a generative model,
    trained by an ensemble score such as the fair CRPS (`jaxsci.losses.CRPSLoss`; the
    noise-injection design of AIFS-CRPS, Lang et al. 2024). m = `mean` and s = `scale` are
    data statistics (the climatological mean and standard deviation), array fields read
    through `jax.lax.stop_gradient`: buffers that training leaves unchanged (exclude them
    from decoupled weight decay, as `MLP`'s Fourier buffer).

    Parameter count, with d = 2 r + 1 + noise_dim, w = width, L = depth (the MLP's formula
    with one output): d w + w + (L - 1)(w^2 + w) + w + 1, plus the buffers m and s (2
    entries, counted by `count_params`, never trained).

    Arguments:
        radius: r >= 1, the stencil x_{i-r..i+r} each site sees.
        noise_dim: standard normal inputs per site (the randomness), >= 1.
        width: hidden units of the MLP.
        depth: hidden layers of the MLP.
        mean: m, subtracted from the inputs.
        scale: s > 0, the inputs are divided by it and the increment multiplied by it.
        key: PRNG key of the MLP's initialisation.
    """

    mlp: MLP
    mean: Float[Array, ""]
    scale: Float[Array, ""]
    radius: int = eqx.field(static=True)
    noise_dim: int = eqx.field(static=True)

    def __init__(
        self,
        radius: int,
        noise_dim: int,
        width: int,
        depth: int,
        *,
        mean: Float[ArrayLike, ""] = 0.0,
        scale: Float[ArrayLike, ""] = 1.0,
        key: Key,
    ):
        self.radius = check_int("radius", radius)
        self.noise_dim = check_int("noise_dim", noise_dim)
        width, depth = check_int("width", width), check_int("depth", depth, 0)
        check_finite("mean", mean)
        check_positive("scale", scale)
        self.mean = float_parameter("mean", mean)
        self.scale = float_parameter("scale", scale)
        self.mlp = MLP(2 * self.radius + 1 + self.noise_dim, 1, width, depth, key=key)

    def __call__(self, x: Float[Array, " site"], *, key: Key) -> Float[Array, " site"]:
        """One ensemble member of the state one lead time after `x` (one example, (sites,))."""
        check_shape("x", x, (None,), "(sites,)")
        n = x.shape[0]
        mean = jax.lax.stop_gradient(self.mean).astype(x.dtype)
        scale = jax.lax.stop_gradient(self.scale).astype(x.dtype)
        window = (periodic_stencil(x, self.radius) - mean) / scale  # (n, 2r + 1)
        z = jax.random.normal(key, (n, self.noise_dim), x.dtype)
        out = jax.vmap(self.mlp)(jnp.concatenate([window, z], axis=1))
        return x + scale * out[:, 0]


class NoiseInjected(AbstractNetwork):
    r"""A field-to-field network made generative: one ensemble member per call.

    Draws z ~ N(0, I_k), k = `noise_channels`, and appends it to the input as k constant
    channels (the same z at every grid point):

        member = network(concat(x, z 1^T)),

    so that a smooth network (an FNO) returns a smooth random field, its randomness a
    k-dimensional latent variable. Trained with an ensemble score such as the fair CRPS
    (`jaxsci.losses.CRPSLoss`), members drawn with independent keys form a calibrated
    ensemble in the noise-injection design of AIFS-CRPS (Lang et al. 2024). The wrapped
    network must take `in_channels + noise_channels` input channels. No parameters of its
    own (`count_params` counts the network's).

    Arguments:
        network: the wrapped network, `(c + k, *spatial) -> output` for one example.
        noise_channels: k >= 1.
    """

    network: Callable[..., Array]
    noise_channels: int = eqx.field(static=True)

    def __init__(self, network: Callable[..., Array], noise_channels: int):
        self.network = network
        self.noise_channels = check_int("noise_channels", noise_channels)

    def __call__(self, x: Float[Array, " channel *spatial"], *, key: Key) -> Array:
        """One member for one input `x` of shape (channels, *spatial)."""
        if jnp.ndim(x) < 2:
            raise ValueError(
                f"`x` has shape {jnp.shape(x)}; expected (channels, *spatial), at least 2-D."
            )
        key = check_key("key", key)
        z = jax.random.normal(key, (self.noise_channels,) + (1,) * (x.ndim - 1), x.dtype)
        noise = jnp.broadcast_to(z, (self.noise_channels,) + x.shape[1:])
        return self.network(jnp.concatenate([x, noise], axis=0))


def sample_ensemble(
    model: Callable[..., PyTree],
    x: Float[Array, "*input"],
    size: int,
    *,
    key: Key,
) -> Float[Array, " member *output"]:
    """`size` members of a generative model's forecast from one input: model(x, key=k_j).

    The model draws one sample per call (as `LocalStochastic`); member j gets the j-th key
    of `jax.random.split(key, size)`. Batch over inputs with `jax.vmap` (one key each).

    Arguments:
        model: a stochastic model called as `model(x, key=k)`.
        x: one input.
        size: number of members (>= 1).
        key: PRNG key.

    Returns:
        The members stacked on a leading axis, (size, *output).
    """
    size = check_int("size", size)
    key = check_key("key", key)
    return jax.vmap(lambda k: model(x, key=k))(jax.random.split(key, size))
