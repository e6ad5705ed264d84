"""Local closures on a ring: `LocalMLP` (one MLP applied at every site to its periodic stencil)
and `LocalPolynomial` (a polynomial of each site's own value)."""

from collections.abc import Sequence

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
    QJRMS 131, fits a polynomial of X_i alone, r = 0): wrapped as
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


class LocalPolynomial(AbstractNetwork):
    r"""A polynomial of each site's own value on a ring: the classic local closure.

        c_i(x) = sum_{p=0}^{d} a_p ((x_i - m) / s)^p,   i = 1..n,

    d = degree (Wilks 2005, QJRMS 131, fits d = 4 to the subgrid tendencies of the two-scale
    Lorenz-96 model; Arnold et al. 2013, Phil. Trans. R. Soc. A 371, a cubic, d = 3).
    The coefficients a are trainable; m = `mean` and s = `scale` (the input normalisation,
    which keeps the least-squares problem well conditioned) are buffers read through
    `jax.lax.stop_gradient`. `LocalPolynomial.fit` is the least-squares fit to (state,
    target) samples, e.g. true subgrid tendencies or filter increments per unit time
    (`jaxsci.discovery.fit_closure_to_increments`).

    Arguments:
        coefficients: a_0..a_d, (d + 1,).
        mean, scale: m and s > 0.
    """

    coefficients: Float[Array, " power"]
    mean: Float[Array, ""]
    scale: Float[Array, ""]

    def __init__(
        self,
        coefficients: Float[ArrayLike, " power"] | Sequence[float],
        *,
        mean: Float[ArrayLike, ""] = 0.0,
        scale: Float[ArrayLike, ""] = 1.0,
    ):
        check_finite("coefficients", coefficients)
        check_finite("mean", mean)
        check_positive("scale", scale)
        coefficients = float_parameter("coefficients", coefficients)
        check_shape("coefficients", coefficients, (None,), "(degree + 1,)")
        if coefficients.shape[0] < 1:
            raise ValueError("`coefficients` must hold at least a_0, got an empty array.")
        self.coefficients = coefficients
        self.mean = float_parameter("mean", mean)
        self.scale = float_parameter("scale", scale)
        check_positive("scale", self.scale)

    @property
    def degree(self) -> int:
        """d, the highest power."""
        return self.coefficients.shape[0] - 1

    def __call__(self, x: Float[Array, " site"]) -> Float[Array, " site"]:
        """The closure at every site of one state x, (sites,) -> (sites,)."""
        check_shape("x", x, (None,), "(sites,)")
        mean = jax.lax.stop_gradient(self.mean).astype(x.dtype)
        scale = jax.lax.stop_gradient(self.scale).astype(x.dtype)
        z = (x - mean) / scale
        out = jnp.zeros_like(x)
        for a in self.coefficients[::-1]:  # Horner
            out = out * z + a.astype(x.dtype)
        return out

    @classmethod
    def fit(
        cls,
        states: Float[ArrayLike, "sample site"],
        targets: Float[ArrayLike, "samples sites"],
        degree: int,
        *,
        mean: float | None = None,
        scale: float | None = None,
    ) -> "LocalPolynomial":
        """The least-squares polynomial of degree `degree` through the pairs (x_i, t_i) of
        every site of every sample (pooled: one polynomial for all sites), solved in
        float64 on the host. `mean`/`scale` default to the states' mean and std."""
        degree = check_int("degree", degree, minimum=0)
        xs = np.asarray(states, dtype=np.float64)
        ts = np.asarray(targets, dtype=np.float64)
        if xs.ndim != 2 or xs.shape != ts.shape:
            raise ValueError(
                "`states` and `targets` must be (samples, sites) of the same shape, got "
                f"{xs.shape} and {ts.shape}."
            )
        if not (np.all(np.isfinite(xs)) and np.all(np.isfinite(ts))):
            raise ValueError("`states` and `targets` must be finite (a diverged filter run?).")
        m = float(xs.mean()) if mean is None else float(mean)
        s = float(xs.std()) if scale is None else float(scale)
        if not s > 0:
            raise ValueError(f"`scale` must be > 0, got {s:.3g} (constant states?).")
        z = ((xs - m) / s).ravel()
        design = z[:, None] ** np.arange(degree + 1)[None, :]
        coef, _, rank, _ = np.linalg.lstsq(design, ts.ravel(), rcond=None)
        if rank < degree + 1:
            raise ValueError(
                f"a degree-{degree} fit needs at least {degree + 1} distinct state values; "
                f"the {xs.size} given determine only {rank} coefficients."
            )
        return cls(coef, mean=m, scale=s)
