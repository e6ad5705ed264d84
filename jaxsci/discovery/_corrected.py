"""`CorrectedModel`: a semilinear model plus library terms, u_t = L u + N(u) + sum xi_j theta_j."""

import equinox as eqx
import jax
import jax.numpy as jnp

from .._custom_types import Array, Float, PyTree, ScalarLike
from ..dynamics import AbstractSemilinear
from ._library import SpectralLibrary


class CorrectedModel(AbstractSemilinear):
    r"""A semilinear model with a correction written in a term library:

        u_t = L u + N(u) + sum_j xi_j theta_j(u).

    The linear terms of the library (u, u_x, u_xx, ...) join the stiff linear operator,
    L + sum_j xi_j (i k)^{n_j}, so that an exponential integrator treats a discovered
    u_xxxx as exactly as the model's own; the other terms join N (2/3-de-aliased when the
    library is). With `coefficients = 0` it is the model itself, and with the true model
    error it is the true system: this is both the "corrected model" of a discovery and,
    differentiated with respect to `coefficients`, the sensitivity of a model step to each
    candidate term (see `integrated_design`).

    `coefficients` is an array field, so `jax.jacfwd` / `eqx.filter_grad` differentiate the
    model (and a `Flow` of it) with respect to them.

    Arguments:
        model: the base model, an `AbstractSemilinear` whose state is the field on the
            library's grid and whose spectral state is its `rfft` (as for
            `KuramotoSivashinsky` and `Burgers`).
        library: the term library (its grid must match the model's).
        coefficients: xi, one per library term (default zeros).
    """

    model: AbstractSemilinear
    library: SpectralLibrary
    coefficients: Float[Array, " term"]

    def __init__(self, model: AbstractSemilinear, library: SpectralLibrary, coefficients=None):
        if not isinstance(model, AbstractSemilinear):
            raise TypeError(
                f"`model` must be a semilinear spectral model (AbstractSemilinear), got "
                f"{type(model).__name__}."
            )
        if not isinstance(library, SpectralLibrary):
            raise TypeError(f"`library` must be a SpectralLibrary, got {type(library).__name__}.")
        if tuple(model.state_shape) != (library.num_points,):
            raise ValueError(
                f"`model` has state shape {tuple(model.state_shape)}, but `library` is built on "
                f"a grid of {library.num_points} points."
            )
        length = getattr(model, "length", None)
        if length is not None and abs(float(length) - library.length) > 1e-9 * library.length:
            raise ValueError(
                f"`model` has domain length {length}, but `library` was built for length "
                f"{library.length}."
            )
        spectral = jax.eval_shape(model.linear_operator)
        if spectral.shape != (library.num_points // 2 + 1,):
            raise ValueError(
                f"`model`'s linear operator has shape {spectral.shape}; CorrectedModel needs an "
                f"rfft spectral state of shape ({library.num_points // 2 + 1},)."
            )
        if coefficients is None:
            coefficients = jnp.zeros(library.num_terms)
        coefficients = jnp.asarray(coefficients, dtype=jnp.result_type(float))
        if coefficients.shape != (library.num_terms,):
            raise ValueError(
                f"`coefficients` has shape {coefficients.shape}, but the library has "
                f"{library.num_terms} terms {list(library.names)}."
            )
        self.model = model
        self.library = library
        self.coefficients = coefficients

    @property
    def state_shape(self):
        return self.model.state_shape

    def linear_operator(self):
        return self.model.linear_operator() + self.library.linear_symbol(self.coefficients)

    def nonlinear(self, t: ScalarLike, y_hat, args: PyTree = None):
        extra = self.library.nonlinear_spectral(self.coefficients, y_hat)
        return self.model.nonlinear(t, y_hat, args) + extra.astype(y_hat.dtype)

    def to_spectral(self, y):
        return self.model.to_spectral(y)

    def from_spectral(self, y_hat):
        return self.model.from_spectral(y_hat)

    def default_initial_state(self, key=None):
        return self.model.default_initial_state(key)

    @property
    def grid(self):
        return getattr(self.model, "grid", None)

    def with_coefficients(self, coefficients) -> "CorrectedModel":
        """The same model and library with other coefficients."""
        return eqx.tree_at(
            lambda m: m.coefficients,
            self,
            jnp.asarray(coefficients, dtype=self.coefficients.dtype),
        )
