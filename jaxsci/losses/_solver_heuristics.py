"""Neural-ODE trajectory losses regularised by the adaptive solver's own heuristics, over the
whole solve (Pal et al. 2021) or at one sampled step (Pal, Edelman & Rackauckas 2023)."""

from collections.abc import Sequence

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._checks import as_float_array, check_finite, check_int, check_positive, concrete
from .._custom_types import Array, ArrayLike, Float, Key, PyTree
from ..dynamics import AbstractDynamics
from ..integrate import HeuristicSolution, StepHeuristics, one_step_heuristics, solve_heuristics
from ._base import AbstractLoss, batch_pair, example_keys


def _vector_field(model):
    if isinstance(model, AbstractDynamics):
        return model.vector_field
    if callable(model):
        return model
    raise TypeError(
        f"`model` must be an AbstractDynamics or a vector field f(t, y, args), got "
        f"{type(model).__name__}."
    )


def _check_batch(batch, num_times: int):
    y0, targets = batch_pair(batch)
    if targets.ndim < 2 or targets.shape[1] != num_times or targets.shape[2:] != y0.shape[1:]:
        raise ValueError(
            f"`batch` targets must have shape (B, {num_times}, *state) with state shape "
            f"{tuple(y0.shape[1:])} (the initial states' shape; {num_times} save times "
            f"`ts`), got {tuple(targets.shape)}."
        )
    return y0, targets


def _check_common(ts, error_weight, stiffness_weight, rtol, atol, solver):
    ts_arr = as_float_array("ts", ts)
    if ts_arr.ndim != 1 or ts_arr.shape[0] < 2:
        raise ValueError(f"`ts` must be 1-D with at least 2 save times, got shape {ts_arr.shape}.")
    check_finite("ts", ts_arr)
    t = concrete(ts_arr)
    if t is not None and np.any(np.diff(t) <= 0):
        raise ValueError(f"`ts` must be strictly increasing, got {t.tolist()}.")
    check_positive("error_weight", error_weight, allow_zero=True)
    check_positive("stiffness_weight", stiffness_weight, allow_zero=True)
    check_positive("rtol", rtol)
    check_positive("atol", atol)
    solver = diffrax.Tsit5() if solver is None else solver
    tableau = getattr(solver, "tableau", None)
    if not (
        isinstance(solver, diffrax.AbstractAdaptiveSolver)
        and isinstance(tableau, diffrax.ButcherTableau)
        and not tableau.implicit
    ):
        # the heuristics (and the evaluation count) read an explicit Runge-Kutta tableau:
        # refuse others here, not at the first call inside a compiled training step
        raise ValueError(
            "`solver` must be an adaptive explicit Runge-Kutta diffrax solver (Tsit5, "
            f"Dopri5, ...), got {type(solver).__name__}."
        )
    as_arr = lambda x: jnp.asarray(x, dtype=float)  # noqa: E731
    return (
        ts_arr,
        as_arr(error_weight),
        as_arr(stiffness_weight),
        as_arr(rtol),
        as_arr(atol),
        solver,
    )


def _mse(ys, targets):
    return jnp.mean((ys - targets) ** 2)


class SolverHeuristicLoss(AbstractLoss):
    r"""Trajectory MSE of a neural ODE plus its solver's accumulated error and stiffness
    estimates (ERNODE / SRNODE of Pal, Ma, Shah & Rackauckas 2021, ICML).

        loss = (1/B) sum_b [ MSE(y_b(ts), target_b) + lambda_E R_E,b + lambda_S R_S,b ],

    R_E = sum_j E_j |h_j| and R_S = sum_j |lambda_j| |h_j| summed over the accepted steps of
    each example's adaptive solve (`jaxsci.integrate.HeuristicSolver`; E_j the
    tolerance-scaled RMS local error estimate, lambda_j the stiffness estimate). The
    heuristics come free with the forward solve and are differentiated by the discrete
    adjoint through it; penalising them teaches a vector field that the adaptive solver
    crosses in fewer steps. `batch` is (initial states (B, *state), targets (B, T,
    *state)) at the save times `ts` (ts[0] is the initial time). aux: `loss`, `mse`,
    `reg_error` (batch mean R_E), `reg_stiffness`, `nfe` and `num_steps` (batch means).

    Arguments:
        ts: the T >= 2 save times.
        error_weight: lambda_E >= 0.
        stiffness_weight: lambda_S >= 0.
        rtol, atol: the PID controller's tolerances (they also scale E_j).
        solver: an adaptive explicit solver (default `diffrax.Tsit5()`).
        dt0: a constant step instead of adaptive steps (the estimates are then only
            measured; used for finite-difference tests).
        max_steps: the per-solve step bound (static).
    """

    ts: Float[Array, " T"]
    error_weight: Float[Array, ""]
    stiffness_weight: Float[Array, ""]
    rtol: Float[Array, ""]
    atol: Float[Array, ""]
    solver: diffrax.AbstractAdaptiveSolver
    dt0: float | None = eqx.field(static=True)
    max_steps: int = eqx.field(static=True)

    def __init__(
        self,
        ts: Float[ArrayLike, " T"] | Sequence[float],
        error_weight: float | Float[ArrayLike, ""] = 1.0,
        stiffness_weight: float | Float[ArrayLike, ""] = 0.0,
        *,
        rtol: float | Float[ArrayLike, ""] = 1e-5,
        atol: float | Float[ArrayLike, ""] = 1e-7,
        solver: diffrax.AbstractAdaptiveSolver | None = None,
        dt0: float | None = None,
        max_steps: int = 4096,
    ):
        (
            self.ts,
            self.error_weight,
            self.stiffness_weight,
            self.rtol,
            self.atol,
            self.solver,
        ) = _check_common(ts, error_weight, stiffness_weight, rtol, atol, solver)
        if dt0 is not None:
            check_positive("dt0", dt0)
        self.dt0 = None if dt0 is None else float(dt0)
        self.max_steps = check_int("max_steps", max_steps)

    def __call__(
        self, model, batch: PyTree, *, key: Key | None = None
    ) -> tuple[Float[Array, ""], dict[str, Array]]:
        y0, targets = _check_batch(batch, self.ts.shape[0])
        f = _vector_field(model)
        dtype = y0.dtype

        def one(y):
            return solve_heuristics(
                f,
                y,
                self.ts.astype(dtype),
                solver=self.solver,
                rtol=self.rtol.astype(dtype),
                atol=self.atol.astype(dtype),
                dt0=self.dt0,
                max_steps=self.max_steps,
            )

        sol = jax.vmap(one)(y0)
        mse = _mse(sol.ys, targets)
        r_e = jnp.mean(sol.heuristics.error)
        r_s = jnp.mean(sol.heuristics.stiffness)
        value = mse + self.error_weight.astype(dtype) * r_e
        value = value + self.stiffness_weight.astype(dtype) * r_s
        return value, {
            "loss": value,
            "mse": mse,
            "reg_error": r_e,
            "reg_stiffness": r_s,
            "nfe": jnp.mean(sol.nfe.astype(dtype)),
            "num_steps": jnp.mean(sol.num_steps.astype(dtype)),
        }


class LocalRegularisedLoss(AbstractLoss):
    r"""Trajectory MSE of a neural ODE plus the solver heuristics at one randomly sampled
    step per example (local regularisation: Pal, Edelman & Rackauckas 2023, ICML, "Locally
    regularized neural differential equations: some black boxes were meant to remain
    closed!").

    Each example is solved by the plain adaptive solver (the solver is not opened: any
    adjoint could be used). One of its N accepted steps, j ~ U{0, ..., N-1}, is drawn; the
    solver step from its start (t_j, y_j) with its size h_j is retaken alone
    (`jaxsci.integrate.one_step_heuristics`) and

        loss = (1/B) sum_b [ MSE_b + lambda_E N_b E_j |h_j| + lambda_S N_b |lambda_j| |h_j| ].

    N E_j |h_j| is an unbiased estimator of the global R_E = sum_j E_j |h_j| of
    `SolverHeuristicLoss` (E_j[N E_j |h_j|] = R_E: tested), so the two weights are on one
    scale. (The paper draws a time uniformly and penalises E |h| without the factor N;
    the factor only rescales lambda.) With `detach_state` (default, as the paper's
    implementation) the gradient of the penalty flows only through the network in the one
    retaken step, not back through y_j along the solve: the cheap local gradient.

    Arguments: as `SolverHeuristicLoss`, plus
        detach_state: stop the gradient at the sampled step's start state y_j.
    `key` is required (the sampled steps). aux also reports `num_steps` and `nfe` of the
    plain solve (the retaken step's extra evaluations are not counted).
    """

    ts: Float[Array, " T"]
    error_weight: Float[Array, ""]
    stiffness_weight: Float[Array, ""]
    rtol: Float[Array, ""]
    atol: Float[Array, ""]
    solver: diffrax.AbstractAdaptiveSolver
    dt0: float | None = eqx.field(static=True)
    max_steps: int = eqx.field(static=True)
    detach_state: bool = eqx.field(static=True)

    def __init__(
        self,
        ts: Float[ArrayLike, " T"] | Sequence[float],
        error_weight: float | Float[ArrayLike, ""] = 1.0,
        stiffness_weight: float | Float[ArrayLike, ""] = 0.0,
        *,
        rtol: float | Float[ArrayLike, ""] = 1e-5,
        atol: float | Float[ArrayLike, ""] = 1e-7,
        solver: diffrax.AbstractAdaptiveSolver | None = None,
        dt0: float | None = None,
        max_steps: int = 4096,
        detach_state: bool = True,
    ):
        (
            self.ts,
            self.error_weight,
            self.stiffness_weight,
            self.rtol,
            self.atol,
            self.solver,
        ) = _check_common(ts, error_weight, stiffness_weight, rtol, atol, solver)
        if dt0 is not None:
            check_positive("dt0", dt0)
        self.dt0 = None if dt0 is None else float(dt0)
        self.max_steps = check_int("max_steps", max_steps)
        self.detach_state = bool(detach_state)

    def local_estimate(
        self, model, y0: Float[Array, "..."], key: Key
    ) -> tuple[StepHeuristics, HeuristicSolution]:
        """For one example: (the sampled step's heuristics times N, the plain solve)."""
        f = _vector_field(model)
        dtype = y0.dtype
        ts = self.ts.astype(dtype)
        rtol, atol = self.rtol.astype(dtype), self.atol.astype(dtype)
        sol = solve_heuristics(
            f,
            y0,
            ts,
            solver=self.solver,
            rtol=rtol,
            atol=atol,
            dt0=self.dt0,
            max_steps=self.max_steps,
            accumulate=False,
            save_steps=True,
        )
        assert sol.step_ts is not None and sol.step_ys is not None
        n = sol.num_accepted_steps
        j = jax.random.randint(key, (), 0, jnp.maximum(n, 1))
        prev = jnp.maximum(j - 1, 0)
        t_start = jnp.where(j == 0, ts[0], sol.step_ts[prev])
        y_start = jnp.where(j == 0, y0, sol.step_ys[prev])
        dt = jax.lax.stop_gradient(sol.step_ts[j] - t_start)
        if self.detach_state:
            y_start = jax.lax.stop_gradient(y_start)
        local = one_step_heuristics(
            f, t_start, y_start, dt, solver=self.solver, rtol=rtol, atol=atol
        )
        scale = n.astype(dtype)
        est = StepHeuristics(scale * local.error, scale * local.stiffness)
        return est, sol

    def __call__(
        self, model, batch: PyTree, *, key: Key | None = None
    ) -> tuple[Float[Array, ""], dict[str, Array]]:
        y0, targets = _check_batch(batch, self.ts.shape[0])
        _vector_field(model)
        keys = example_keys(key, y0.shape[0], "LocalRegularisedLoss")
        dtype = y0.dtype
        est, sol = jax.vmap(lambda y, k: self.local_estimate(model, y, k))(y0, keys)
        mse = _mse(sol.ys, targets)
        r_e = jnp.mean(est.error)
        r_s = jnp.mean(est.stiffness)
        value = mse + self.error_weight.astype(dtype) * r_e
        value = value + self.stiffness_weight.astype(dtype) * r_s
        return value, {
            "loss": value,
            "mse": mse,
            "reg_error": r_e,
            "reg_stiffness": r_s,
            "nfe": jnp.mean(sol.nfe.astype(dtype)),
            "num_steps": jnp.mean(sol.num_steps.astype(dtype)),
        }
