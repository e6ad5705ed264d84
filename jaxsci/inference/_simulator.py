"""Simulator likelihoods: solve a `jaxsci.dynamics` model inside a log-density, safely.

`solve_ode` integrates a model with `jaxsci.integrate.simulate` (diffrax) and returns the
states at the observation times and a success flag. A failed solve (max_steps reached, a
diffrax error, a NaN or inf state, as stiff blow-ups give for parameters far in the tails)
never raises: the states are replaced by a finite placeholder and the gradient with respect to
every input is exactly 0, while `log_likelihood` / `observe` turn the failure into
log-density -inf. A sampler then sees a rejected (divergent) proposal, and `jax.grad` never
returns NaN. The gradient guard is a custom VJP: `jnp.where` on the values alone would not
stop the NaNs that the solver's own backward pass makes from inf intermediates (0 * inf).

Sensitivities (`sensitivity=`):
- 'forward' (default): forward-mode sensitivities, J = d ys / d(parameters, y0) by `jax.jacfwd`
  through the solve (diffrax `ForwardMode`), contracted with the output cotangent on the
  backward pass. Cheapest when the model has few parameters (Lotka-Volterra: 4 rates + 2
  initial states), and it supports Hessians (`jax.jacfwd(jax.grad(...))`).
- a diffrax adjoint: `RecursiveCheckpointAdjoint()` (discretise-then-optimise reverse mode),
  `BacksolveAdjoint()` (optimise-then-discretise), `DirectAdjoint()` (reverse mode that also
  supports forward-over-reverse Hessians). Reverse mode wins for many parameters.
"""

from collections.abc import Callable
from typing import Any, NamedTuple

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from .._custom_types import Array, Bool, Float
from ..dynamics import AbstractDynamics
from ..integrate import simulate

SENSITIVITIES = ("forward",)
# A bounded step budget: a proposal that makes the ODE stiff must fail fast (under vmap every
# chain waits for the slowest), and 4096 steps is far above what any well-posed posterior
# draw of the zoo's ODEs needs at rtol 1e-5 (Lotka-Volterra over 20 years: ~40 steps).
DEFAULT_MAX_STEPS = 4096


class ODESolution(NamedTuple):
    """States at the save times and whether the solve succeeded.

    Attributes:
        ys: (T, *state_shape) states; where `ok` is False, a finite placeholder (the initial
            state repeated), so that downstream log-densities stay finite.
        ok: True when the solver finished and every saved state is finite.
    """

    ys: Float[Array, "T ..."]
    ok: Bool[Array, ""]


class _Settings(eqx.Module):
    """Static solve settings (solver, controller, step budget) and the save times."""

    ts: Float[Array, " T"]
    t0: Any
    solver: diffrax.AbstractSolver
    stepsize_controller: diffrax.AbstractStepSizeController | None
    dt0: float | None = eqx.field(static=True)
    rtol: float = eqx.field(static=True)
    atol: float = eqx.field(static=True)
    max_steps: int = eqx.field(static=True)
    adjoint: diffrax.AbstractAdjoint


def _raw_solve(diff, static, settings: _Settings):
    dynamics, y0 = eqx.combine(diff, static)
    traj = simulate(
        dynamics,
        y0,
        settings.ts,
        t0=settings.t0,
        solver=settings.solver,
        dt0=settings.dt0,
        stepsize_controller=settings.stepsize_controller,
        rtol=settings.rtol,
        atol=settings.atol,
        max_steps=settings.max_steps,
        adjoint=settings.adjoint,
        throw=False,
    )
    placeholder = jnp.broadcast_to(jax.lax.stop_gradient(y0), traj.ys.shape)
    ys = jnp.where(traj.success, traj.ys, placeholder)
    return ys, traj.success


@eqx.filter_custom_vjp
def _guarded(diff, static, settings, forward):
    return _raw_solve(diff, static, settings)


@_guarded.def_fwd
def _guarded_fwd(perturbed, diff, static, settings, forward):
    # Only the inputs being differentiated get sensitivities (e.g. not a constant y0).
    wanted, rest = eqx.partition(diff, perturbed)
    if forward:
        flat, unravel = ravel_pytree(wanted)

        def f(p):
            ys, ok = _raw_solve(eqx.combine(unravel(p), rest), static, settings)
            return ys, (ys, ok)

        jac, (ys, ok) = jax.jacfwd(f, has_aux=True)(flat)
        jac = jnp.where(ok & jnp.all(jnp.isfinite(jac)), jac, 0.0)
        return (ys, ok), jac
    (ys, ok), vjp = eqx.filter_vjp(
        lambda w: _raw_solve(eqx.combine(w, rest), static, settings), wanted
    )
    return (ys, ok), (vjp, ok)


@_guarded.def_bwd
def _guarded_bwd(residuals, grad_obj, perturbed, diff, static, settings, forward):
    wanted, _ = eqx.partition(diff, perturbed)
    flat, unravel = ravel_pytree(wanted)
    g_ys, _ = grad_obj
    if g_ys is None:
        return jax.tree_util.tree_map(jnp.zeros_like, wanted)
    if forward:
        g = jnp.tensordot(g_ys, residuals, axes=g_ys.ndim)
        return unravel(g.astype(flat.dtype))
    vjp, ok = residuals
    (g,) = vjp((g_ys, None))
    g_flat, _ = ravel_pytree(g)
    good = ok & jnp.all(jnp.isfinite(g_flat))
    return unravel(jnp.where(good, g_flat, 0.0))


def solve_ode(
    dynamics: AbstractDynamics,
    y0: Float[Array, "..."],
    ts: Float[Array, " T"],
    *,
    t0: float | None = None,
    solver: diffrax.AbstractSolver | None = None,
    rtol: float = 1e-6,
    atol: float = 1e-8,
    dt0: float | None = None,
    stepsize_controller: diffrax.AbstractStepSizeController | None = None,
    max_steps: int = DEFAULT_MAX_STEPS,
    sensitivity: str | diffrax.AbstractAdjoint = "forward",
) -> ODESolution:
    """Solve `dynamics` from `y0` (at `t0`, default `ts[0]`) and save at `ts`, never raising.

    The differentiable inputs are the model's floating-point array fields (its physical
    parameters) and `y0`. See the module docstring for the failure guard and the choice of
    `sensitivity`.

    Arguments:
        dynamics: a `jaxsci.dynamics` ODE model (parameters may be traced).
        y0: initial state of shape `dynamics.state_shape`.
        ts: strictly increasing save times, shape (T,).
        t0: start time (default `ts[0]`; e.g. 0 when the first observation is after t0).
        solver: a diffrax solver (default `Dopri5`, the Dormand-Prince RK45 pair that Stan's
            `ode_rk45` uses).
        rtol, atol: tolerances of the default PID controller (adaptive solvers).
        dt0: a fixed step (with a fixed-step solver or `stepsize_controller`).
        stepsize_controller: a diffrax controller instead of PID(rtol, atol).
        max_steps: step budget; reaching it is a failed solve.
        sensitivity: 'forward' or a diffrax adjoint (see the module docstring).

    Returns:
        An `ODESolution` (ys, ok).
    """
    if not isinstance(dynamics, AbstractDynamics):
        raise TypeError(f"`dynamics` must be an AbstractDynamics, got {type(dynamics).__name__}.")
    y0 = jnp.asarray(y0)
    if not jnp.issubdtype(y0.dtype, jnp.floating):
        y0 = y0.astype(float)
    if tuple(y0.shape) != tuple(dynamics.state_shape):
        raise ValueError(
            f"`y0` has shape {tuple(y0.shape)}, but {type(dynamics).__name__} expects a state "
            f"of shape {tuple(dynamics.state_shape)}."
        )
    ts = jnp.asarray(ts)
    if ts.ndim != 1 or ts.shape[0] < 1:
        raise ValueError(f"`ts` must be a 1-D array of save times, got shape {ts.shape}.")
    if isinstance(sensitivity, str):
        if sensitivity not in SENSITIVITIES:
            raise ValueError(
                f"`sensitivity` must be 'forward' or a diffrax adjoint, got {sensitivity!r}."
            )
        forward, adjoint = True, diffrax.ForwardMode()
    elif isinstance(sensitivity, diffrax.AbstractAdjoint):
        forward, adjoint = False, sensitivity
    else:
        raise TypeError(
            "`sensitivity` must be 'forward' or a diffrax.AbstractAdjoint, got "
            f"{type(sensitivity).__name__}."
        )
    if not isinstance(max_steps, int) or max_steps < 1:
        raise ValueError(f"`max_steps` must be a positive int, got {max_steps!r}.")
    settings = _Settings(
        ts=ts,
        t0=ts[0] if t0 is None else t0,
        solver=diffrax.Dopri5() if solver is None else solver,
        stepsize_controller=stepsize_controller,
        dt0=dt0,
        rtol=rtol,
        atol=atol,
        max_steps=max_steps,
        adjoint=adjoint,
    )
    diff, static = eqx.partition((dynamics, y0), eqx.is_inexact_array)
    try:
        ys, ok = _guarded(diff, static, settings, forward)
    except (ValueError, TypeError):
        dynamics.check_vector_field(y0)  # a wrong-shaped vector field, named (see simulate)
        raise
    return ODESolution(ys=ys, ok=ok)


def log_likelihood(
    solution: ODESolution,
    distribution_fn: Callable[[Array], Any],
    observations: Float[Array, "..."],
) -> Float[Array, ""]:
    """log p(observations | solution): `distribution_fn(solution.ys).log_prob(observations)`
    summed, or -inf when the solve failed.

    Arguments:
        solution: from `solve_ode`.
        distribution_fn: `ys -> numpyro distribution` of the observations (e.g.
            `lambda ys: dist.LogNormal(jnp.log(ys), sigma)`).
        observations: the data, shaped as the distribution's batch shape.
    """
    d = distribution_fn(solution.ys)
    observations = jnp.asarray(observations)
    batch = tuple(d.batch_shape) + tuple(d.event_shape)
    if tuple(observations.shape) != batch:
        raise ValueError(
            f"`observations` has shape {tuple(observations.shape)}, but the observation "
            f"distribution has shape {batch}."
        )
    value = jnp.sum(d.log_prob(observations))
    return jnp.where(solution.ok & jnp.isfinite(value), value, -jnp.inf)


def observe(
    name: str,
    solution: ODESolution,
    distribution_fn: Callable[[Array], Any],
    obs: Float[Array, "..."] | None = None,
) -> Array:
    """Inside a numpyro model: `numpyro.sample(name, distribution_fn(ys), obs=obs)`, plus a
    factor that is -inf when the solve failed (a rejected proposal).

    With `obs=None` (posterior predictive) the site is sampled.
    """
    import numpyro

    d = distribution_fn(solution.ys)
    if obs is not None:
        obs = jnp.asarray(obs)
        batch = tuple(d.batch_shape) + tuple(d.event_shape)
        if tuple(obs.shape) != batch:
            raise ValueError(
                f"`obs` of site {name!r} has shape {tuple(obs.shape)}, but the observation "
                f"distribution has shape {batch}."
            )
    numpyro.factor(f"{name}_solver_ok", jnp.where(solution.ok, 0.0, -jnp.inf))
    return jnp.asarray(numpyro.sample(name, d, obs=obs))
