"""`Flow`: the model step y(t0) -> y(t1) that filters and Lyapunov analysis call."""

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp

from .._custom_types import Array, Float, Key, PyTree
from ..dynamics import AbstractDynamics
from ._simulate import default_step_solver, make_terms


class Flow(eqx.Module):
    """The flow map of a model: `flow(y, t0, t1)` integrates from t0 to t1 with fixed steps.

    Fixed steps of size `dt` (the last one shortened to land on t1), RK4 for ODEs and
    ETDRK4 for semilinear PDEs unless `solver` says otherwise. It acts on one state;
    `jax.vmap` it over ensemble members. It never raises: a blow-up gives a non-finite
    state, which the filters report as divergence.

    Arguments:
        dynamics: the model.
        dt: the step size.
        solver: a diffrax solver (default: `default_step_solver(dynamics)`).
        adjoint: diffrax adjoint for reverse-mode gradients through the flow.
        max_steps: bound on the steps of one call (needed for reverse mode).
    """

    dynamics: AbstractDynamics
    dt: float = eqx.field(static=True)
    solver: diffrax.AbstractSolver
    adjoint: diffrax.AbstractAdjoint
    max_steps: int = eqx.field(static=True)

    def __init__(self, dynamics, dt, solver=None, adjoint=None, max_steps: int = 4096):
        if not float(dt) > 0:
            raise ValueError(f"`dt` must be positive, got {dt}.")
        self.dynamics = dynamics
        self.dt = float(dt)
        self.solver = default_step_solver(dynamics) if solver is None else solver
        self.adjoint = diffrax.RecursiveCheckpointAdjoint() if adjoint is None else adjoint
        self.max_steps = int(max_steps)

    def __call__(
        self, y: Float[Array, "..."], t0, t1, *, args: PyTree = None, key: Key | None = None
    ) -> Float[Array, "..."]:
        y = jnp.asarray(y)
        self.dynamics.check_state(y, "y")
        terms = make_terms(
            self.dynamics, self.solver, t0, t1, self.dt, key, jax.ShapeDtypeStruct(y.shape, y.dtype)
        )
        sol = diffrax.diffeqsolve(
            terms,
            self.solver,
            t0,
            t1,
            self.dt,
            y,
            args=args,
            saveat=diffrax.SaveAt(t1=True),
            stepsize_controller=diffrax.ConstantStepSize(),
            adjoint=self.adjoint,
            max_steps=self.max_steps,
            throw=False,
        )
        bad = sol.result != diffrax.RESULTS.successful
        return jnp.where(bad, jnp.nan, sol.ys[0])
