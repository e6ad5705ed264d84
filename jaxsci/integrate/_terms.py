"""A diffrax term that keeps the semilinear split of a spectral PDE visible to solvers."""

import diffrax

from ..dynamics import AbstractSemilinear


class SemilinearTerm(diffrax.AbstractTerm):
    """The ODE term dy/dt = L y + N(t, y) of an `AbstractSemilinear` model.

    To ordinary diffrax solvers it is just the full vector field; the exponential
    integrators (`ETDRK1`..`ETDRK4`) read `dynamics.linear_operator()` and
    `dynamics.nonlinear(...)` from it.
    """

    dynamics: AbstractSemilinear

    def vf(self, t, y, args):
        return self.dynamics.vector_field(t, y, args)

    def contr(self, t0, t1, **kwargs):
        return t1 - t0

    def prod(self, vf, control):
        return control * vf
