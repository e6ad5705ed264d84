"""`CorrectedModel`: a semilinear model plus library terms, u_t = L u + N(u) + sum xi_j theta_j."""

import equinox as eqx
import jax
import jax.numpy as jnp

from .._checks import check_finite
from .._custom_types import Array, ArrayLike, Float, PyTree, ScalarLike, SpectralState, State
from ..dynamics import AbstractSemilinear
from ..spectral import PeriodicGrid
from ._layered_library import LayeredLibrary
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

    A layered model (e.g. `TwoLayerQG`, state (layer, y, x)) takes a `LayeredLibrary`, whose
    columns are per-layer terms in q and psi (psi from the library's `streamfunction`, the
    model's PV inversion): there every term joins N (`LayeredLibrary.nonlinear_spectral`),
    since a term in psi is not diagonal in q, and L stays the model's.

    Arguments:
        model: the base model, an `AbstractSemilinear` on a 1-D grid (as
            `KuramotoSivashinsky` and `Burgers`) with a `SpectralLibrary`, or on a 2-D grid
            with a leading layer axis (as `TwoLayerQG`) with a `LayeredLibrary`; the
            corrected model declares the same grid.
        library: the term library (its grid must have the model's points and length; a
            `LayeredLibrary` needs its `streamfunction`).
        coefficients: xi, one per library column (default zeros).
    """

    model: AbstractSemilinear
    library: SpectralLibrary | LayeredLibrary
    coefficients: Float[Array, " term"]

    def __init__(
        self,
        model: AbstractSemilinear,
        library: SpectralLibrary | LayeredLibrary,
        coefficients: Float[ArrayLike, " term"] | None = None,
    ):
        if not isinstance(model, AbstractSemilinear):
            raise TypeError(
                f"`model` must be a semilinear spectral model (AbstractSemilinear), got "
                f"{type(model).__name__}."
            )
        if not isinstance(library, SpectralLibrary | LayeredLibrary):
            raise TypeError(
                f"`library` must be a SpectralLibrary or a LayeredLibrary, got "
                f"{type(library).__name__}."
            )
        grid = model.grid
        if grid.shape != library.grid.shape:
            raise ValueError(
                f"`model` has a grid of shape {grid.shape}, but `library` is built on a grid of "
                f"shape {library.grid.shape}."
            )
        if abs(grid.length - library.grid.length) > 1e-9 * library.grid.length:
            raise ValueError(
                f"`model` has domain length {grid.length}, but `library` was built for length "
                f"{library.grid.length}."
            )
        if isinstance(library, LayeredLibrary):
            shape = tuple(getattr(model, "state_shape", ()))
            if shape != library.state_shape:
                raise ValueError(
                    f"`model` has states of shape {shape}, but `library` is built for "
                    f"{library.state_shape} (layer, y, x)."
                )
            if library.streamfunction is None:
                raise ValueError(
                    "`library` (a LayeredLibrary) has no `streamfunction`: build it with the "
                    "model's PV inversion, e.g. LayeredLibrary(terms, model.length, n, "
                    "streamfunction=model.streamfunction)."
                )
        else:
            spectral = jax.eval_shape(model.linear_operator)
            if spectral.shape != (library.num_points // 2 + 1,):
                raise ValueError(
                    f"`model`'s linear operator has shape {spectral.shape}; CorrectedModel "
                    f"needs an rfft spectral state of shape ({library.num_points // 2 + 1},)."
                )
        if coefficients is None:
            coefficients = jnp.zeros(library.num_terms)
        coefficients = jnp.asarray(coefficients, dtype=jnp.result_type(float))
        # before the semilinear check of the Fourier symbol, which would blame `length`
        check_finite("coefficients", coefficients)
        if coefficients.shape != (library.num_terms,):
            raise ValueError(
                f"`coefficients` has shape {coefficients.shape}, but the library has "
                f"{library.num_terms} terms {list(library.names)}."
            )
        self.model = model
        self.library = library
        self.coefficients = coefficients

    @property
    def grid(self) -> PeriodicGrid:
        """The model's grid."""
        return self.model.grid

    @property
    def state_shape(self) -> tuple[int, ...]:
        """The shape of one state: (n,) with a `SpectralLibrary`, (layer, y, x) with a
        `LayeredLibrary`."""
        if isinstance(self.library, LayeredLibrary):
            return self.library.state_shape
        return (self.library.num_points,)

    def linear_operator(self) -> SpectralState:
        if isinstance(self.library, LayeredLibrary):
            return self.model.linear_operator()
        return self.model.linear_operator() + self.library.linear_symbol(self.coefficients)

    def nonlinear(self, t: ScalarLike, y_hat: SpectralState, args: PyTree = None) -> SpectralState:
        extra = self.library.nonlinear_spectral(self.coefficients, y_hat)
        return self.model.nonlinear(t, y_hat, args) + extra.astype(y_hat.dtype)

    def default_initial_state(self, key: Array | None = None) -> State:
        return self.model.default_initial_state(key)

    def with_coefficients(self, coefficients: Float[ArrayLike, " term"]) -> "CorrectedModel":
        """The same model and library with other coefficients."""
        return eqx.tree_at(
            lambda m: m.coefficients,
            self,
            jnp.asarray(coefficients, dtype=self.coefficients.dtype),
        )
