"""Adaptive solvers' internal heuristics (local error and stiffness estimates), accumulated
over a solve in a differentiable way: the regularisers of Pal, Ma, Shah & Rackauckas (2021)."""

from collections.abc import Sequence
from typing import NamedTuple, cast

import diffrax
import jax
import jax.numpy as jnp
import numpy as np

from .._checks import check_positive
from .._custom_types import Array, ArrayLike, Float, Int, PyTree, ScalarLike


class StepHeuristics(NamedTuple):
    """The heuristics of one solver step (or their sums over a solve).

    Attributes:
        error: E |h|, the tolerance-scaled RMS local error estimate E times the step size.
        stiffness: |lambda| |h|, the stiffness estimate times the step size (0 when the
            solver's tableau gives no estimate).
    """

    error: Float[Array, ""]
    stiffness: Float[Array, ""]


def _tableau(solver) -> diffrax.ButcherTableau | None:
    tab = getattr(solver, "tableau", None)
    return tab if isinstance(tab, diffrax.ButcherTableau) else None


def _stiffness_weights(solver) -> np.ndarray | None:
    """Weights w with y1 - g_{s-1} = sum_i w_i k_i, for an explicit FSAL tableau whose last
    two stages are both at c = 1 (Dopri5, Tsit5); None for any other solver."""
    tab = _tableau(solver)
    if tab is None or tab.implicit or not tab.fsal or len(tab.c) < 2:
        return None
    if not (np.isclose(tab.c[-1], 1.0) and np.isclose(tab.c[-2], 1.0)):
        return None
    s = tab.num_stages
    a_prev = np.zeros(s)  # the (s-1)-th stage's row of the Butcher matrix
    a_prev[: len(tab.a_lower[-2])] = tab.a_lower[-2]
    b = np.zeros(s)
    b[: len(tab.b_sol)] = tab.b_sol
    return b - a_prev


def _safe_sqrt(x: Array) -> Array:
    """sqrt with a zero (not infinite) derivative at 0: diffrax's loop evaluates steps that
    are then masked out, and an infinite derivative times a zero cotangent is NaN."""
    positive = x > 0
    return jnp.where(positive, jnp.sqrt(jnp.where(positive, x, 1.0)), 0.0)


def _rms(tree) -> Array:
    leaves = [jnp.ravel(x) for x in jax.tree.leaves(tree)]
    return _safe_sqrt(jnp.mean(jnp.concatenate(leaves) ** 2))


def _l2(tree) -> Array:
    return _safe_sqrt(jnp.asarray(sum(jnp.sum(x**2) for x in jax.tree.leaves(tree))))


def step_heuristics(
    solver: diffrax.AbstractSolver,
    t0: ScalarLike,
    t1: ScalarLike,
    y0: PyTree,
    y1: PyTree,
    y_error: PyTree,
    dense_info: dict,
    rtol: ScalarLike,
    atol: ScalarLike,
) -> StepHeuristics:
    r"""The heuristics of one step t0 -> t1 from a diffrax solver's `step` outputs.

    Local error (the quantity `diffrax.PIDController` accepts a step on, OrdinaryDiffEq's
    EEst):

        E = RMS( y_error / (atol + rtol max(|y0|, |y1|)) ),  error = E |h|,  h = t1 - t0.

    Stiffness (Hairer & Wanner 1996, IV.2; Shampine 1977): for an explicit FSAL pair
    whose last two stages are both at t1 (Dopri5, Tsit5), the last stage g_s = y1 and the
    one before, g_{s-1}, give |lambda| ~ ||f(g_s) - f(g_{s-1})|| / ||g_s - g_{s-1}||, with
    g_s - g_{s-1} = sum_i (b_i - a_{s-1,i}) k_i (k_i = h f_i the stage increments diffrax
    returns in `dense_info["k"]`), so stiffness = |lambda| |h| = ||k_s - k_{s-1}|| /
    ||sum_i (b_i - a_{s-1,i}) k_i|| |h|. Zero for solvers without such a tableau.
    """
    h = jnp.abs(jnp.asarray(t1) - jnp.asarray(t0))

    def scale(a, b, e):
        return e / (atol + rtol * jnp.maximum(jnp.abs(a), jnp.abs(b)))

    err = _rms(jax.tree.map(scale, y0, y1, y_error)) * h
    w = _stiffness_weights(solver)
    if w is None or "k" not in dense_info:
        stiff = jnp.zeros((), err.dtype)
    else:
        ks = dense_info["k"]
        num = _l2(jax.tree.map(lambda k: k[-1] - k[-2], ks))
        den = _l2(jax.tree.map(lambda k: jnp.tensordot(jnp.asarray(w, k.dtype), k, 1), ks))
        # a step where the last two stages coincide (e.g. a zero vector field) is not stiff
        safe = jnp.where(den > 0, den, 1.0)
        stiff = jnp.where(den > 0, num / safe, 0.0)  # k_i = h f_i: already |lambda| |h|
    return StepHeuristics(error=err, stiffness=stiff.astype(err.dtype))


class HeuristicSolver(diffrax.AbstractAdaptiveSolver, diffrax.AbstractWrappedSolver):
    r"""Wraps an adaptive diffrax solver and accumulates its internal heuristics over a solve.

    The regularisers of Pal, Ma, Shah & Rackauckas (2021, ICML, "Opening the blackbox:
    accelerating neural differential equations by regularizing internal solver
    heuristics"):

        R_E = sum_j E_j |h_j|,    R_S = sum_j |lambda_j| |h_j|,

    over the accepted steps j of the solve (`step_heuristics` defines E_j and lambda_j).
    R_S weights each stiffness estimate by |h_j| like R_E (a time integral of the
    stiffness, not a per-step count); we have not checked it against the paper's exact
    normalisation of its stiffness term, and no reported figure uses it (the
    `node_regularisation` pipeline trains with the error term only). The
    sums ride in the solver state next to the wrapped solver's own state, so diffrax keeps
    them on accepted steps and discards them on rejected ones, exactly as it does the
    state, and reverse-mode differentiation through the solve (`RecursiveCheckpointAdjoint`,
    the discrete adjoint the paper uses) differentiates them. The step sizes themselves
    carry no gradient (diffrax's controllers stop it), as in the paper. Read the sums from
    `diffeqsolve(..., saveat=SaveAt(..., solver_state=True)).solver_state` with
    `HeuristicSolver.heuristics`, or use `solve_heuristics`.

    Composition, as `diffrax.HalfSolver` wraps a solver: the wrapped solver's steps and
    error estimates are unchanged, so the controller sees the same solve.

    Arguments:
        solver: an adaptive diffrax solver (Tsit5, Dopri5, ...; the stiffness estimate
            needs an explicit FSAL pair whose last two stages are at t1, else it is 0).
        rtol, atol: the tolerances that scale the error estimate (use the controller's).
    """

    solver: diffrax.AbstractAdaptiveSolver
    rtol: Float[Array, ""]
    atol: Float[Array, ""]

    def __init__(
        self,
        solver: diffrax.AbstractSolver,
        rtol: float | Float[ArrayLike, ""] = 1e-6,
        atol: float | Float[ArrayLike, ""] = 1e-8,
    ):
        if not isinstance(solver, diffrax.AbstractAdaptiveSolver):
            raise ValueError(
                "`solver` must be an adaptive diffrax solver with an error estimate (Tsit5, "
                f"Dopri5, ...), got {type(solver).__name__}."
            )
        check_positive("rtol", rtol)
        check_positive("atol", atol)
        self.solver = cast(diffrax.AbstractAdaptiveSolver, solver)
        self.rtol = jnp.asarray(rtol, dtype=float)
        self.atol = jnp.asarray(atol, dtype=float)

    @property
    def term_structure(self):
        return self.solver.term_structure

    @property
    def interpolation_cls(self):  # pyright: ignore
        return self.solver.interpolation_cls

    @property
    def term_compatible_contr_kwargs(self):
        return self.solver.term_compatible_contr_kwargs

    def order(self, terms):
        return self.solver.order(terms)

    def strong_order(self, terms):
        return self.solver.strong_order(terms)

    def error_order(self, terms):
        return self.solver.error_order(terms)

    def init(self, terms, t0, t1, y0, args):
        dtype = jnp.result_type(*jax.tree.leaves(y0))
        zero = jnp.zeros((), dtype)
        return self.solver.init(terms, t0, t1, y0, args), StepHeuristics(zero, zero)

    def step(self, terms, t0, t1, y0, args, solver_state, made_jump):
        inner, acc = solver_state
        y1, y_error, dense_info, inner, result = self.solver.step(
            terms, t0, t1, y0, args, inner, made_jump
        )
        one = step_heuristics(
            self.solver, t0, t1, y0, y1, y_error, dense_info, self.rtol, self.atol
        )
        acc = StepHeuristics(
            acc.error + one.error.astype(acc.error.dtype),
            acc.stiffness + one.stiffness.astype(acc.stiffness.dtype),
        )
        return y1, y_error, dense_info, (inner, acc), result

    def func(self, terms, t0, y0, args):
        return self.solver.func(terms, t0, y0, args)

    @staticmethod
    def heuristics(solver_state) -> StepHeuristics:
        """The accumulated (R_E, R_S) from a final solver state of this solver."""
        return solver_state[1]


class HeuristicSolution(NamedTuple):
    """`solve_heuristics`'s result.

    Attributes:
        ys: the states at the save times, shape (T, *state).
        heuristics: the sums R_E, R_S over the accepted steps (`StepHeuristics`).
        num_steps: steps attempted (accepted + rejected).
        num_accepted_steps: accepted steps.
        nfe: vector-field evaluations, `function_evaluations(solver, num_steps)`.
        step_ts, step_ys: with `save_steps=True`, the end time and state of every
            accepted step, shape (max_steps,) and (max_steps, *state), padded with inf
            after the `num_accepted_steps` real ones (diffrax's `SaveAt(steps=True)`);
            None otherwise.
    """

    ys: Float[Array, "T ..."]
    heuristics: StepHeuristics
    num_steps: Int[Array, ""]
    num_accepted_steps: Int[Array, ""]
    nfe: Int[Array, ""]
    step_ts: Float[Array, " max_steps"] | None = None
    step_ys: Float[Array, "max_steps ..."] | None = None


def function_evaluations(
    solver: diffrax.AbstractSolver, num_steps: Int[ArrayLike, ""]
) -> Int[Array, ""]:
    """Vector-field evaluations of a diffrax explicit Runge-Kutta solve of `num_steps`
    (attempted: accepted + rejected) steps: s - 1 new stages per step for an FSAL tableau of
    s stages (its first stage is the previous step's last) plus the initial stage, s per
    step otherwise. The PID controller's initial step-size guess (Hairer, Norsett & Wanner
    1993, II.4) is not counted: the same for every model. Checked against a counting
    vector field in the tests."""
    tab = _tableau(solver)
    if tab is None or tab.implicit:
        raise ValueError(
            "`solver` must be an explicit Runge-Kutta diffrax solver (Tsit5, Dopri5, ...) to "
            f"count its evaluations, got {type(solver).__name__}."
        )
    per = tab.num_stages - (1 if tab.fsal else 0)
    return per * jnp.asarray(num_steps) + (1 if tab.fsal else 0)


def solve_heuristics(
    vector_field,
    y0: Float[ArrayLike, "..."],
    ts: Float[ArrayLike, " T"] | Sequence[float],
    *,
    solver: diffrax.AbstractSolver | None = None,
    rtol: float | Float[ArrayLike, ""] = 1e-6,
    atol: float | Float[ArrayLike, ""] = 1e-8,
    dt0: float | None = None,
    max_steps: int = 4096,
    args: PyTree = None,
    accumulate: bool = True,
    save_steps: bool = False,
) -> HeuristicSolution:
    r"""Solve dy/dt = vector_field(t, y, args) from y0 at ts[0], save at `ts`, and return the
    accumulated solver heuristics R_E, R_S (`HeuristicSolver`) with the step counts.

    Differentiable (reverse mode, `RecursiveCheckpointAdjoint`) in the vector field's
    parameters and `y0`. With `dt0=None` the steps adapt (`diffrax.PIDController(rtol,
    atol)`); with `dt0` they are constant and the estimates are only measured (used in
    tests: the step sizes then do not move with the parameters). Does not raise on a
    failed solve; `num_steps == max_steps` flags one.

    Arguments:
        vector_field: `f(t, y, args)`, e.g. a `jaxsci` model's `vector_field`.
        y0: the initial state.
        ts: strictly increasing save times; the solve runs from ts[0] to ts[-1].
        solver: an adaptive explicit solver (default `diffrax.Tsit5()`).
        rtol, atol: the controller's tolerances, which also scale the error estimates.
        dt0: a constant step size instead of adaptive steps.
        max_steps: the step bound (static).
        accumulate: wrap the solver in `HeuristicSolver` (False: a plain solve, the
            heuristics returned as zeros).
        save_steps: also return every accepted step (`step_ts`, `step_ys`).
    """
    solver = diffrax.Tsit5() if solver is None else solver
    if not isinstance(solver, diffrax.AbstractAdaptiveSolver):
        raise ValueError(
            "`solver` must be an adaptive diffrax solver with an error estimate (Tsit5, "
            f"Dopri5, ...), got {type(solver).__name__}."
        )
    wrapped = HeuristicSolver(solver, rtol, atol) if accumulate else solver
    y0 = jnp.asarray(y0)
    ts = jnp.asarray(ts, dtype=y0.dtype)
    if ts.ndim != 1 or ts.shape[0] < 2:
        raise ValueError(f"`ts` must be 1-D with at least 2 times, got shape {ts.shape}.")
    controller = (
        diffrax.PIDController(rtol=jnp.asarray(rtol), atol=jnp.asarray(atol))
        if dt0 is None
        else diffrax.ConstantStepSize()
    )
    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(vector_field),
        wrapped,
        ts[0],
        ts[-1],
        dt0,
        y0,
        args=args,
        saveat=diffrax.SaveAt(
            subs=[diffrax.SubSaveAt(ts=ts), diffrax.SubSaveAt(steps=True)]
            if save_steps
            else diffrax.SubSaveAt(ts=ts),
            solver_state=True,
        ),
        stepsize_controller=controller,
        max_steps=max_steps,
        throw=False,
    )
    num_steps = sol.stats["num_steps"]
    if accumulate:
        heuristics = HeuristicSolver.heuristics(sol.solver_state)
    else:
        zero = jnp.zeros((), y0.dtype)
        heuristics = StepHeuristics(zero, zero)
    if save_steps:
        ys, step_ys = cast(tuple, sol.ys)
        step_ts = cast(tuple, sol.ts)[1]
    else:
        ys, step_ts, step_ys = cast(Array, sol.ys), None, None
    return HeuristicSolution(
        ys=ys,
        heuristics=heuristics,
        num_steps=num_steps,
        num_accepted_steps=sol.stats["num_accepted_steps"],
        nfe=function_evaluations(solver, num_steps),
        step_ts=step_ts,
        step_ys=step_ys,
    )


def one_step_heuristics(
    vector_field,
    t0: ScalarLike,
    y0: Float[ArrayLike, "..."],
    dt: ScalarLike,
    *,
    solver: diffrax.AbstractAdaptiveSolver | None = None,
    rtol: float | Float[ArrayLike, ""] = 1e-6,
    atol: float | Float[ArrayLike, ""] = 1e-8,
    args: PyTree = None,
) -> StepHeuristics:
    """The heuristics (E |h|, |lambda| |h|) of the single step t0 -> t0 + dt from y0: the
    term j of `solve_heuristics`'s sums when (t0, y0, dt) are that solve's step j. The
    local regulariser of Pal, Edelman & Rackauckas (2023) evaluates this at one sampled
    step."""
    solver = diffrax.Tsit5() if solver is None else solver
    terms = diffrax.ODETerm(vector_field)
    t0 = jnp.asarray(t0)
    t1 = t0 + jnp.asarray(dt)
    state = solver.init(terms, t0, t1, y0, args)
    y1, y_error, dense_info, _, _ = solver.step(terms, t0, t1, y0, args, state, False)
    return step_heuristics(solver, t0, t1, y0, y1, y_error, dense_info, rtol, atol)
