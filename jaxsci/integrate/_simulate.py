"""`simulate`: integrate a jaxsci model with `diffrax.diffeqsolve`."""

import dataclasses
from typing import cast

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import lineax as lx
import numpy as np

from .._checks import check_finite, check_positive, check_start_time, concrete, is_concrete
from .._custom_types import Array, ArrayLike, Bool, Float, Int, Key, PyTree
from ..dynamics import AbstractDynamics, AbstractSDE, AbstractSemilinear
from ._etdrk import ETDRK4, AbstractETDRK, _same_step
from ._rk4 import RK4
from ._terms import SemilinearTerm

DEFAULT_RTOL = 1e-6
DEFAULT_ATOL = 1e-8


class Trajectory(eqx.Module):
    """A solved trajectory and the solver's statistics.

    Attributes:
        ts: save times, shape (T,).
        ys: states at `ts`, shape (T, *state_shape).
        num_steps, num_accepted_steps, num_rejected_steps: diffrax step counts.
        result: the diffrax `RESULTS` code (successful, max_steps_reached, ...).
        success: True when the solve finished and every state is finite.
    """

    ts: Float[Array, " T"]
    ys: Float[Array, "T ..."]
    num_steps: Int[Array, ""]
    num_accepted_steps: Int[Array, ""]
    num_rejected_steps: Int[Array, ""]
    result: diffrax.RESULTS
    success: Bool[Array, ""]

    @property
    def stats(self) -> dict:
        return dict(
            num_steps=self.num_steps,
            num_accepted_steps=self.num_accepted_steps,
            num_rejected_steps=self.num_rejected_steps,
        )


def default_solver(dynamics: AbstractDynamics) -> diffrax.AbstractSolver:
    """ETDRK4 for semilinear PDEs, Euler-Maruyama for SDEs, Tsit5 otherwise."""
    if isinstance(dynamics, AbstractSemilinear):
        return ETDRK4()
    if isinstance(dynamics, AbstractSDE):
        return diffrax.Euler()
    return diffrax.Tsit5()


def default_step_solver(dynamics: AbstractDynamics) -> diffrax.AbstractSolver:
    """Fixed-step default for model steps (`Flow`): ETDRK4 for semilinear PDEs, else RK4."""
    if isinstance(dynamics, AbstractSemilinear):
        return ETDRK4()
    if isinstance(dynamics, AbstractSDE):
        return diffrax.Euler()
    return RK4()


def make_terms(dynamics, solver, t0, t1, dt0, key, y_struct):
    """The diffrax term(s) for `dynamics`: a SemilinearTerm for the solvers of semilinear
    models (ETDRK, AB3), an ODETerm,
    or drift + diagonal-noise terms with a virtual Brownian tree for SDEs."""
    if getattr(solver, "term_structure", None) is SemilinearTerm:
        # ETDRK1-4, AB3 and wrappers of them (`Filtered`) step the semilinear split
        if not isinstance(dynamics, AbstractSemilinear):
            raise ValueError(
                f"`solver` {type(solver).__name__} needs a semilinear model "
                f"(AbstractSemilinear), got {type(dynamics).__name__}."
            )
        return SemilinearTerm(dynamics)
    drift = diffrax.ODETerm(dynamics.vector_field)
    if not isinstance(dynamics, AbstractSDE):
        return drift
    if key is None:
        raise ValueError(f"`key` is required to simulate the SDE {type(dynamics).__name__}.")
    if dt0 is None:
        raise ValueError("`dt0` is required to simulate an SDE.")
    bm = diffrax.VirtualBrownianTree(
        t0,
        t1,
        tol=jnp.abs(dt0) / 4,
        shape=y_struct,
        key=key,
        levy_area=diffrax.SpaceTimeLevyArea
        if isinstance(solver, diffrax.AbstractSRK)
        else diffrax.BrownianIncrement,
    )
    noise = diffrax.ControlTerm(
        lambda t, y, args: lx.DiagonalLinearOperator(dynamics.diffusion(t, y, args)), bm
    )
    return diffrax.MultiTerm(drift, noise)


def _check_ts(ts):
    ts = jnp.asarray(ts)
    if ts.ndim != 1 or ts.shape[0] < 1:
        raise ValueError(f"`ts` must be a 1-D array of save times, got shape {ts.shape}.")
    check_finite("ts", ts)
    t = concrete(ts)
    if t is not None and np.any(np.diff(t) <= 0):
        got = t.tolist() if t.size <= 8 else f"{t.size} times"
        raise ValueError(f"`ts` must be strictly increasing, got {got}.")
    return ts


def _uniform_grid(t0, t_end, dt0):
    """The grid t0 + k dt0 (computed in float64), its last point clipped to t_end."""
    t0, t_end, dt0 = float(t0), float(t_end), float(dt0)
    n = int(np.ceil((t_end - t0) / dt0 - 1e-9))
    grid = t0 + dt0 * np.arange(n + 1)
    grid[-1] = min(grid[-1], t_end)
    return grid


def _on_uniform_grid(t0, t_end, dt0, ts):
    """Whether every save time before t_end is (to 1e-3 dt0) a point t0 + k dt0."""
    saves = np.asarray(ts, dtype=np.float64)
    inner = saves[(saves > float(t0)) & (saves < float(t_end))]
    k = (inner - float(t0)) / float(dt0)
    return bool(np.all(np.abs(k - np.round(k)) < 1e-3))


def _step_grid(t0, t_end, dt0, ts, dtype):
    """The uniform grid t0 + k dt0 merged with the save times, as strictly increasing `dtype`.

    A grid point within 1e-3 dt0 of a save time is replaced by the save time itself (so a
    float32 save time 0.1f and the float64 grid point 0.1 do not make a vanishing step),
    and points that coincide after rounding to `dtype` are merged.
    """
    uniform = _uniform_grid(t0, t_end, dt0)
    saves = np.asarray(ts, dtype=np.float64)
    idx = (
        np.clip(np.searchsorted(saves, uniform), 1, len(saves) - 1)
        if len(saves) > 1
        else (np.zeros(len(uniform), dtype=int))
    )
    dist = np.abs(uniform - saves[idx])
    if len(saves) > 1:
        dist = np.minimum(dist, np.abs(uniform - saves[idx - 1]))
    grid = np.union1d(uniform[dist >= 1e-3 * float(dt0)], saves)
    grid = grid[(grid >= float(t0)) & (grid <= float(t_end))]
    return np.unique(grid.astype(dtype))


def _uniform_steps(grid) -> bool:
    """True when every step of `grid` passes the ETDRK solvers' own "same step size" check
    against the first step (steps computed in the grid's dtype, as the solver sees them)."""
    steps = np.diff(grid)
    if steps.size == 0:
        return True
    return bool(np.all(_same_step(steps, steps[0], grid[:-1], grid[1:])))


def simulate(
    dynamics: AbstractDynamics,
    y0: Float[ArrayLike, "..."],
    ts: Float[ArrayLike, " T"],
    *,
    solver: diffrax.AbstractSolver | None = None,
    dt0: float | Float[Array, ""] | None = None,
    t0: float | Float[Array, ""] | None = None,
    adjoint: diffrax.AbstractAdjoint | None = None,
    stepsize_controller: diffrax.AbstractStepSizeController | None = None,
    rtol: float | Float[Array, ""] = DEFAULT_RTOL,
    atol: float | Float[Array, ""] = DEFAULT_ATOL,
    max_steps: int | None = None,
    args: PyTree = None,
    key: Key | None = None,
    throw: bool = True,
    progress_meter: diffrax.AbstractProgressMeter | None = None,
    saveat: diffrax.SaveAt | None = None,
) -> Trajectory:
    """Integrate `dynamics` from `y0` at time `t0` (default `ts[0]`) and save at `ts`.

    A thin layer over `diffrax.diffeqsolve`: any diffrax solver, adjoint and controller.
    Defaults: ETDRK4 for semilinear PDEs, Tsit5 with a PID controller (rtol, atol) for
    ODEs, Euler-Maruyama for SDEs (which need `key` and `dt0`). Fixed-step solvers (RK4,
    ETDRK, or any solver given `dt0` without a controller) step on the grid t0 + k dt0
    merged with `ts`, so saves land exactly on steps.

    Arguments:
        dynamics: the model.
        y0: initial state of shape `dynamics.state_shape`.
        ts: strictly increasing save times.
        t0: the initial time, no later than `ts[0]` (with a custom `saveat`, `ts[-1]`).
        solver, dt0, adjoint, stepsize_controller, max_steps, progress_meter: as diffrax.
        saveat: a `diffrax.SaveAt` to use instead of `SaveAt(ts=ts)` (e.g. `SaveAt(t1=True)`
            for the final state only, or `SaveAt(steps=True)` for every step; the
            trajectory then has diffrax's layout, unused step slots padded with inf). `ts`
            still sets the time span (`ts[0]`/`t0` to `ts[-1]`) and the fixed-step grid.
            Dense output is not supported: use `diffrax.diffeqsolve` directly.
        key: PRNG key for the Brownian motion of an SDE.
        throw: raise (an error naming the cause; under jit an equinox runtime error) if
            the solver hits `max_steps`, fails, or the trajectory becomes non-finite. With
            `throw=False` inspect `Trajectory.success` and `Trajectory.result` instead.

    Returns:
        A `Trajectory`.
    """
    if not isinstance(dynamics, AbstractDynamics):
        raise TypeError(f"`dynamics` must be an AbstractDynamics, got {type(dynamics).__name__}.")
    y0 = jnp.asarray(y0)
    if not jnp.issubdtype(y0.dtype, jnp.floating):
        y0 = y0.astype(float)
    dynamics.check_state(y0, "y0")
    ts = _check_ts(ts)
    if t0 is None:
        t0 = ts[0]
    else:
        check_start_time("t0", t0, ts, saves_at_ts=saveat is None)
    t_end = ts[-1]
    solver = default_solver(dynamics) if solver is None else solver
    if dt0 is not None:
        check_positive("dt0", dt0)

    if saveat is None:
        saveat = diffrax.SaveAt(ts=ts)
    elif saveat.dense:
        raise ValueError("`saveat` with dense=True is not supported by simulate.")
    if adjoint is None:
        adjoint = diffrax.RecursiveCheckpointAdjoint()
    adaptive_default = (
        stepsize_controller is None
        and dt0 is None
        and isinstance(solver, diffrax.AbstractAdaptiveSolver)
    )
    if stepsize_controller is None:
        if adaptive_default:
            stepsize_controller = diffrax.PIDController(rtol=rtol, atol=atol)
        elif dt0 is None:
            raise ValueError(
                f"`dt0` is required for the fixed-step solver {type(solver).__name__}."
            )
        elif is_concrete(ts) and is_concrete(t0) and is_concrete(t_end) and is_concrete(dt0):
            # (under jit even a closed-over `ts` gives traced `ts[0]`/`ts[-1]`: the branch
            # below, built with NumPy, is for eager calls; traced times take constant steps)
            grid = _step_grid(t0, t_end, dt0, ts, np.dtype(ts.dtype))
            if max_steps is None:
                max_steps = len(grid)
            if isinstance(adjoint, diffrax.BacksolveAdjoint):
                # diffrax's backward (adjoint) solve reuses the controller, and a StepTo
                # grid cannot be walked backwards; constant steps can, and land on the
                # save times when those lie on the grid t0 + k dt0.
                if not _on_uniform_grid(t0, t_end, dt0, ts):
                    raise ValueError(
                        "`adjoint=BacksolveAdjoint()` with a fixed-step solver needs every "
                        "save time in `ts` on the grid t0 + k * dt0; pick `dt0` to divide "
                        "the save intervals, or use RecursiveCheckpointAdjoint."
                    )
                stepsize_controller = diffrax.ConstantStepSize()
            else:
                stepsize_controller = diffrax.StepTo(ts=jnp.asarray(grid, dtype=ts.dtype))
                if isinstance(solver, AbstractETDRK) and _uniform_steps(grid):
                    # every step would pass the ETDRK solver's per-step "same step size"
                    # check, so let it skip the check (a lax.cond per step)
                    solver = dataclasses.replace(solver, constant_step=True)
                dt0 = None
        else:
            stepsize_controller = diffrax.ConstantStepSize()
    if max_steps is None:
        max_steps = 16**4

    try:
        terms = make_terms(
            dynamics,
            solver,
            t0,
            t_end,
            dt0 if dt0 is not None else 1e-3,
            key,
            jax.ShapeDtypeStruct(y0.shape, y0.dtype),
        )
        sol = diffrax.diffeqsolve(
            terms,
            solver,
            t0,
            t_end,
            dt0,
            y0,
            args=args,
            saveat=saveat,
            stepsize_controller=stepsize_controller,
            adjoint=adjoint,
            max_steps=max_steps,
            throw=False,
            progress_meter=progress_meter or diffrax.NoProgressMeter(),
        )
    except (ValueError, TypeError):
        # a vector field of the wrong shape fails inside diffrax, naming neither the model
        # nor the method: name them (checked only on failure, so calls pay nothing)
        dynamics.check_vector_field(y0, args, t0)
        raise
    # (arrays: every SaveAt allowed here saves something)
    ts_saved, ys = cast(Array, sol.ts), cast(Array, sol.ys)
    # Only real saves count: SaveAt(steps=True) pads unused slots (time inf) with inf.
    saved = jnp.isfinite(ts_saved).reshape(ts_saved.shape + (1,) * (ys.ndim - ts_saved.ndim))
    finite = jnp.all(jnp.isfinite(ys) | ~saved)
    ok = (sol.result == diffrax.RESULTS.successful) & finite
    if throw:
        max_steps_hit, failed = _failures(sol.result)
        ys = eqx.error_if(ys, max_steps_hit, _MAX_STEPS_MESSAGE.format(max_steps))
        ys = eqx.error_if(ys, failed, _FAILED_MESSAGE)
        ys = eqx.error_if(ys, ~finite, _NON_FINITE_MESSAGE)
    stats = sol.stats
    return Trajectory(
        ts=ts_saved,
        ys=ys,
        num_steps=stats["num_steps"],
        num_accepted_steps=stats["num_accepted_steps"],
        num_rejected_steps=stats["num_rejected_steps"],
        result=sol.result,
        success=ok,
    )


_MAX_STEPS_MESSAGE = (
    "simulate: the solver reached max_steps={} before the last save time; increase "
    "`max_steps` or `dt0`, or loosen rtol/atol."
)
_FAILED_MESSAGE = (
    "simulate: the diffrax solve failed (see diffrax.RESULTS); pass throw=False to inspect "
    "Trajectory.result."
)
_NON_FINITE_MESSAGE = (
    "simulate: the trajectory became non-finite (NaN or inf): the step is too large for this "
    "model (reduce `dt0`) or the parameters make it blow up."
)


def _failures(result) -> tuple[Array, Array]:
    """(max_steps reached, another solver failure) from a diffrax result."""
    max_steps_hit = result == diffrax.RESULTS.max_steps_reached
    return max_steps_hit, (result != diffrax.RESULTS.successful) & ~max_steps_hit


def raise_if_failed(traj: Trajectory, max_steps: int | None) -> None:
    """On the host, after a compiled `simulate(..., throw=False)`: raise what `throw=True`
    raises (an `equinox.EquinoxRuntimeError` with the same message) if the solve failed.

    `throw=True` checks with `eqx.error_if`, a host callback on CPU (JAX never stores a
    program holding one in its persistent compilation cache) that `EQX_ON_ERROR=nan` turns
    into NaN; this check needs neither. `max_steps` is named in the message (None: the
    bound `simulate` chose)."""
    max_steps_hit, failed = _failures(traj.result)
    non_finite = (traj.result == diffrax.RESULTS.successful) & ~traj.success
    bound = "its bound" if max_steps is None else max_steps
    for bad, message in (
        (max_steps_hit, _MAX_STEPS_MESSAGE.format(bound)),
        (failed, _FAILED_MESSAGE),
        (non_finite, _NON_FINITE_MESSAGE),
    ):
        if bool(bad):
            raise eqx.EquinoxRuntimeError(message)
