"""`Flow`: the model step y(t0) -> y(t1) that filters and Lyapunov analysis call."""

import contextlib
import dataclasses
from collections.abc import Callable, Iterator
from typing import cast

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp

from .._checks import check_int, check_positive, finite_float
from .._custom_types import Array, Float, Key, PyTree
from ..dynamics import AbstractDynamics, AbstractSDE
from ._etdrk import AbstractETDRK
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
        check_positive("dt", finite_float("dt", dt))
        self.dynamics = dynamics
        self.dt = float(dt)
        self.solver = default_step_solver(dynamics) if solver is None else solver
        self.adjoint = diffrax.RecursiveCheckpointAdjoint() if adjoint is None else adjoint
        self.max_steps = check_int("max_steps", max_steps, 1)

    def __call__(
        self, y: Float[Array, "..."], t0, t1, *, args: PyTree = None, key: Key | None = None
    ) -> Float[Array, "..."]:
        y = jnp.asarray(y)
        self.dynamics.check_state(y, "y")
        with _shape_errors_named(self.dynamics, y, args, t0):
            return self._solve(y, t0, t1, args, key)

    def _solve(self, y, t0, t1, args, key):
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
        return jnp.where(bad, jnp.nan, cast(Array, sol.ys)[0])  # SaveAt(t1=True): an array

    def window(self, length: float) -> Callable[..., Float[Array, "..."]]:
        """The map `(y, t0) -> self(y, t0, t0 + length)` for a window length known at trace time.

        Filters advance every member over the same window once per cycle. When `length` is a
        whole number n of steps `dt`, the model is deterministic and the adjoint is the default
        `RecursiveCheckpointAdjoint` or `ForwardMode` (a scan is differentiable in both
        modes), the n solver steps run as a `lax.scan` of fixed length
        over `solver.step` instead of `diffeqsolve`'s bounded while loop: the same solver and
        the same steps, without the per-step bookkeeping of the general loop (step-size
        control, clipping to t1, saving, the checkpointed loop), which on a CPU cost as much
        per step as an RK4 step of Lorenz-63 itself. If the model ignores time
        (its vector field, or the nonlinear part for ETDRK solvers, does not read `t`, as
        traced once), the window runs from 0 instead of t0: the flow map is the same, and the
        step size is then a constant. A step size computed at run time as (t0 + h) - t0 made
        XLA:CPU recompute it inside every fused loop of the step, which made the Lorenz-96
        ensemble step several times slower, and it carries the rounding of t0 (float32:
        about 1e-5 of h at t0 = 10). Reverse mode differentiates the scan directly (it
        stores the n steps). ETDRK coefficients are computed once per window (all steps are
        equal). Otherwise this is `self(y, t0, t0 + length)`.
        A solver failure gives a NaN state, as `__call__` does.
        """
        length = float(length)
        if not length > 0:
            raise ValueError(f"`length` must be positive, got {length}.")
        n = max(int(round(length / self.dt)), 1)
        whole = abs(n * self.dt - length) <= 1e-9 * length
        fast = (
            whole
            and not isinstance(self.dynamics, AbstractSDE)
            and type(self.adjoint) in _SCAN_ADJOINTS
        )
        if not fast:

            def general(y, t0, *, args: PyTree = None):
                return self(y, t0, t0 + length, args=args)

            return general

        solver = self.solver
        if isinstance(solver, AbstractETDRK):
            solver = dataclasses.replace(solver, constant_step=True)
        h = length / n

        def advance(y, t0, *, args: PyTree = None):
            y = jnp.asarray(y)
            self.dynamics.check_state(y, "y")
            with _shape_errors_named(self.dynamics, y, args, t0):
                return steps(y, t0, args)

        def steps(y, t0, args):
            t0 = jnp.asarray(t0, dtype=jnp.result_type(float))
            if _ignores_time(self.dynamics, solver, y, args):
                # An autonomous model's flow map does not depend on t0: integrate from 0, so
                # that the step times and step size are compile-time constants.
                t0 = jnp.zeros((), dtype=t0.dtype)
            terms = make_terms(
                self.dynamics,
                solver,
                t0,
                t0 + length,
                h,
                None,
                jax.ShapeDtypeStruct(y.shape, y.dtype),
            )
            state = solver.init(terms, t0, t0 + h, y, args)

            def body(carry, i):
                y, state, ok = carry
                ta = t0 + i * h
                tb = jnp.where(i == n - 1, t0 + length, ta + h)
                y, _, _, state, result = solver.step(terms, ta, tb, y, args, state, False)
                return (y, state, ok & (result == diffrax.RESULTS.successful)), None

            (y, _, ok), _ = jax.lax.scan(body, (y, state, jnp.array(True)), jnp.arange(n))
            return jnp.where(ok, y, jnp.nan)

        return advance


@contextlib.contextmanager
def _shape_errors_named(dynamics, y, args, t0) -> Iterator[None]:
    """A vector field of the wrong shape fails inside the solver as a broadcasting error that
    names neither the model nor the method: on such a (trace-time) error, name them
    (`check_vector_field`, checked only on failure, so calls pay nothing)."""
    try:
        yield
    except (ValueError, TypeError):
        dynamics.check_vector_field(y, args, t0)
        raise


#: Adjoints whose differentiation a `lax.scan` of solver steps provides (reverse mode
#: through the stored steps, forward mode).
_SCAN_ADJOINTS = (diffrax.RecursiveCheckpointAdjoint, diffrax.ForwardMode)


def _ignores_time(dynamics, solver, y, args) -> bool:
    """Whether the time argument of the right-hand side the solver calls is unused (traced
    once with `y` and `args`; a `t` that reaches any operation counts as used)."""
    if isinstance(solver, AbstractETDRK):
        u = dynamics.to_spectral(y)

        def rhs(t):
            return dynamics.nonlinear(t, u, args)
    else:

        def rhs(t):
            return dynamics.vector_field(t, y, args)

    jaxpr = jax.make_jaxpr(rhs)(jnp.zeros((), dtype=jnp.result_type(float))).jaxpr
    t = jaxpr.invars[0]
    used = any(v is t for eqn in jaxpr.eqns for v in eqn.invars)
    return not used and not any(v is t for v in jaxpr.outvars)
