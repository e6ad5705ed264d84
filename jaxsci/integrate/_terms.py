"""A diffrax term that keeps the semilinear split of a spectral PDE visible to solvers."""

import diffrax

from .._custom_types import PyTree, ScalarLike, State
from ..dynamics import AbstractSemilinear


class SemilinearTerm(diffrax.AbstractTerm):
    """The ODE term dy/dt = L y + N(t, y) of an `AbstractSemilinear` model.

    To ordinary diffrax solvers it is just the full vector field; the exponential
    integrators (`ETDRK1`..`ETDRK4`) read `dynamics.linear_operator()` and
    `dynamics.nonlinear(...)` from it, and the spectral transforms from the grid the model
    declares (`dynamics.to_spectral` / `from_spectral`).
    """

    dynamics: AbstractSemilinear

    def vf(self, t: ScalarLike, y: State, args: PyTree) -> State:
        return self.dynamics.vector_field(t, y, args)

    def contr(self, t0: ScalarLike, t1: ScalarLike, **kwargs) -> ScalarLike:
        return t1 - t0  # pyright: ignore[reportOperatorIssue] - diffrax passes arrays

    def prod(self, vf: State, control: ScalarLike) -> State:
        return control * vf  # pyright: ignore[reportReturnType] - an Array here
