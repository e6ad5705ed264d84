"""`LocalMLP`: one MLP applied at every site of a ring to its periodic stencil (a local closure)."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._checks import check_finite, check_int, check_positive, float_parameter
from .._custom_types import Array, ArrayLike, Float, Key
from ._base import AbstractNetwork, check_shape
from ._mlp import MLP


def periodic_stencil(x: Float[Array, " site"], radius: int) -> Float[Array, "site stencil"]:
    """The periodic stencils of a ring: row i is (x_{i-r}, ..., x_{i+r}), indices mod n."""
    n = x.shape[0]
    offsets = np.arange(-radius, radius + 1)
    return x[(np.arange(n)[:, None] + offsets[None, :]) % n]


class LocalMLP(AbstractNetwork):
    r"""One MLP applied at every site of a ring to its periodic stencil: a local closure.

        c_i(x) = s_out MLP((x_{i-r} - m) / s, ..., (x_{i+r} - m) / s),   i = 1..n (mod n),

    r = `radius`. Sharing the MLP over sites makes the map translation-equivariant (as
    Lorenz-96 is), and its size independent of n. It is the closure of the two-scale
    Lorenz-96 model, whose slow tendency is the one-scale model's plus the unresolved
    coupling -(h c / b) sum_j Y_{j,i}, parameterised by a function of the local slow
    state (Wilks 2005, "Effects of stochastic parametrizations in the Lorenz '96 system",
    QJRMS 131, uses a cubic of X_i alone, r = 0): wrapped as
    `HybridVectorField(Lorenz96(n, F), LocalMLP(...))` it is a hybrid model that can be
    trained offline on subgrid tendencies or end to end through an ensemble filter from
    observations (Brajard et al. 2021, "Combining data assimilation and machine learning to
    infer unresolved scale parametrization", Phil. Trans. R. Soc. A 379; Bocquet et al.
    2020, "Bayesian inference of chaotic dynamics by merging data assimilation, machine
    learning and expectation-maximization", Found. Data Sci. 2).

    m = `mean` and s = `scale` (input statistics) and s_out = `output_scale` (the closure's
    size) are buffers read through `jax.lax.stop_gradient`: training leaves them unchanged
    (exclude them from decoupled weight decay). With `zero_init` the MLP's last layer starts
    at zero, so the closure is exactly 0 until trained and the hybrid starts as its physics.

    Parameter count, with d = 2 r + 1, w = width, L = depth >= 1 (the MLP's formula with
    one output): d w + w + (L - 1)(w^2 + w) + w + 1, plus the 3 buffers.

    Arguments:
        radius: r >= 0, the stencil x_{i-r..i+r} each site sees.
        width: hidden units of the MLP.
        depth: hidden layers of the MLP.
        mean, scale: m and s > 0, the input normalisation.
        output_scale: s_out > 0, the output's unit.
        zero_init: start the last layer (weights and bias) at zero.
        key: PRNG key of the MLP's initialisation.
    """

    mlp: MLP
    mean: Float[Array, ""]
    scale: Float[Array, ""]
    output_scale: Float[Array, ""]
    radius: int = eqx.field(static=True)

    def __init__(
        self,
        radius: int,
        width: int,
        depth: int,
        *,
        mean: Float[ArrayLike, ""] = 0.0,
        scale: Float[ArrayLike, ""] = 1.0,
        output_scale: Float[ArrayLike, ""] = 1.0,
        zero_init: bool = False,
        key: Key,
    ):
        self.radius = check_int("radius", radius, minimum=0)
        width, depth = check_int("width", width), check_int("depth", depth, 0)
        check_finite("mean", mean)
        check_positive("scale", scale)
        check_positive("output_scale", output_scale)
        self.mean = float_parameter("mean", mean)
        self.scale = float_parameter("scale", scale)
        self.output_scale = float_parameter("output_scale", output_scale)
        # a positive number that underflows to 0 in the float dtype would divide by zero
        check_positive("scale", self.scale)
        check_positive("output_scale", self.output_scale)
        mlp = MLP(2 * self.radius + 1, 1, width, depth, key=key)
        if zero_init:
            zero = jax.tree.map(jnp.zeros_like, mlp.layers[-1])  # its weight and bias
            mlp = eqx.tree_at(lambda m: m.layers[-1], mlp, zero)
        self.mlp = mlp

    def __call__(self, x: Float[Array, " site"]) -> Float[Array, " site"]:
        """The closure at every site of one state x, (sites,) -> (sites,)."""
        check_shape("x", x, (None,), "(sites,)")
        mean = jax.lax.stop_gradient(self.mean).astype(x.dtype)
        scale = jax.lax.stop_gradient(self.scale).astype(x.dtype)
        out_scale = jax.lax.stop_gradient(self.output_scale).astype(x.dtype)
        window = (periodic_stencil(x, self.radius) - mean) / scale  # (n, 2r + 1)
        return out_scale * jax.vmap(self.mlp)(window)[:, 0].astype(x.dtype)
