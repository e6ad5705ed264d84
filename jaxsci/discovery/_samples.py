r"""Model-error samples and the design matrices they are regressed on.

A model-error sample (Mojgani, Chattopadhyay & Hassanzadeh 2022, Chaos 32, 061105, "MEDIDA")
is the difference between an observed (or analysed) state and the model's forecast of it
from the previous state, per unit time:

    s_k = (x_{k+1} - Phi_M(x_k)) / Delta,   Phi_M the model's flow over the interval Delta.

If the truth is u_t = f_M(u) + e(u) with e(u) = sum_j xi_j theta_j(u), then for small Delta
s_k ~ e(x_k), and regressing s_k on the library theta(x_k) ("instantaneous" design, as in
MEDIDA) recovers xi. The approximation error is O(Delta): over one interval the model's
own dynamics act on the error (for a stiff PDE, mode k of the error is weighted by
phi_1(Delta L(k)) = (e^{Delta L(k)} - 1) / (Delta L(k)) rather than 1), which at the
Kuramoto-Sivashinsky observation intervals used in data assimilation (0.25-1 time units)
biases the coefficients by 10-40%.

The "integrated" design removes this bias. With the corrected model M(xi) (model plus
sum_j xi_j theta_j, see `CorrectedModel`) the sample is exactly

    s_k(xi) = (Phi_{M(xi)}(x_k) - Phi_M(x_k)) / Delta = Psi_k xi + O(xi^2),
    Psi_k = (1 / Delta) d Phi_{M(xi)}(x_k) / d xi at xi = 0,

the sensitivity of one model step to each candidate term, computed by forward-mode
differentiation through the integrator (`jax.linearize`). Regressing s_k on Psi_k is then
exact to first order in the model error for any Delta, and Gauss-Newton refinements --
linearising again about the current estimate xi_i, i.e. regressing
(x_{k+1} - Phi_{M(xi_i)}(x_k)) / Delta + Psi_k(xi_i) xi_i on Psi_k(xi_i) -- remove the
second-order remainder too (for noise-free data of a truth in the library's span the
iteration converges to the exact coefficients of the discrete flow).
"""

from collections.abc import Callable

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._checks import check_ndim, check_positive, check_shape
from .._custom_types import Array, Float
from ..integrate import AbstractETDRK, Flow, default_step_solver
from ._corrected import CorrectedModel
from ._library import SpectralLibrary


def _check_states(states, name="states"):
    states = jnp.asarray(states)
    check_ndim(name, states, 2, "(time, dim)")
    if states.shape[0] < 2:
        raise ValueError(f"`{name}` must have at least two times, got shape {states.shape}.")
    return states


def _check_interval(interval):
    check_positive("interval", interval)
    return float(interval)


@eqx.filter_jit
def _forecast(flow, states, times, interval):
    return jax.vmap(lambda x, t: flow(x, t, t + interval))(states, times)


def model_error_samples(
    flow: Callable,
    states: Float[Array, "time dim"],
    interval: float,
    *,
    t0: float = 0.0,
) -> Float[Array, "sample dim"]:
    """s_k = (x_{k+1} - flow(x_k, t_k, t_k + interval)) / interval for k = 0..K-2.

    Arguments:
        flow: the model step `flow(y, t0, t1)` (e.g. a `jaxsci.Flow` of the model).
        states: observed or analysed states x_0..x_{K-1} at t_k = t0 + k interval.
        interval: the time between consecutive states.
        t0: the time of `states[0]`.

    Returns:
        (K-1, dim) samples of the model error per unit time.
    """
    states = _check_states(states)
    interval = _check_interval(interval)
    times = t0 + interval * jnp.arange(states.shape[0] - 1, dtype=states.dtype)
    forecast = _forecast(flow, states[:-1], times, interval)
    return (states[1:] - forecast) / interval


def instantaneous_design(
    library: SpectralLibrary, states: Float[Array, "time dim"]
) -> Float[Array, "time dim term"]:
    """theta(x_k) for every state: the library evaluated on each snapshot (MEDIDA's design)."""
    states = jnp.asarray(states)
    check_ndim("states", states, 2, "(time, dim)")
    return _library_on(library, states)


@eqx.filter_jit
def _library_on(library, states):
    return jax.vmap(library)(states)


def _uniform_steps(solver, dt: float, interval: float) -> int | None:
    """Steps of an ETDRK solver's fixed-step loop over `interval`, or None to use `Flow`."""
    if not isinstance(solver, AbstractETDRK):
        return None
    n = round(interval / dt)
    return n if n >= 1 and abs(n * dt - interval) <= 1e-9 * interval else None


def _propagate(model, solver, dt, interval, x, t):
    """The model's state one `interval` after x (at time t).

    For an ETDRK solver and an interval that is a multiple of dt this is the solver's own
    step (`coefficients`, `spectral_step`, the formulas `Flow` runs inside diffrax) in a
    `fori_loop`: the same numbers to rounding, but without diffrax's machinery, which
    makes its forward-mode derivative several times cheaper to compile. Otherwise
    (another solver, e.g. `Filtered(ETDRK4(), filter)` of a QG model, or an interval that
    is no multiple of dt) it is `Flow` with forward-mode differentiation enabled, through
    `Flow.window` (a `lax.scan` over the solver's steps when the interval is a whole number
    of them).
    """
    n = _uniform_steps(solver, dt, interval)
    if n is None:
        flow = Flow(model, dt, solver, adjoint=diffrax.ForwardMode())
        return flow.window(interval)(x, t)
    coeffs = solver.coefficients(model.linear_operator(), dt)

    def body(i, u):
        return solver.spectral_step(model, t + i * dt, dt, u, None, coeffs)

    u = jax.lax.fori_loop(0, n, body, model.to_spectral(x))
    return model.from_spectral(u).astype(x.dtype)


@eqx.filter_jit
def forecast_corrected(model, solver, dt, states, times, interval):
    """One-interval forecasts of `model` from each state (the propagator of the design)."""
    solver = default_step_solver(model) if solver is None else solver
    return jax.vmap(lambda x, t: _propagate(model, solver, dt, interval, x, t))(states, times)


@eqx.filter_jit
def _integrated(model, solver, dt, states, times, interval):
    solver = default_step_solver(model) if solver is None else solver

    def one(x, t):
        def step(xi):
            y = _propagate(model.with_coefficients(xi), solver, dt, interval, x, t)
            return y, y

        jac, forecast = jax.jacfwd(step, has_aux=True)(model.coefficients)
        return forecast, jac / interval

    return jax.vmap(one)(states, times)


def integrated_design(
    model: CorrectedModel,
    states: Float[Array, " time *state"],
    interval: float,
    *,
    dt: float,
    solver: diffrax.AbstractSolver | None = None,
    times: Float[Array, " time"] | None = None,
    batch_size: int = 1024,
) -> tuple[Float[Array, " time *state"], Float[Array, " time *state term"]]:
    """One-step forecasts of the corrected model and their sensitivities to its terms.

    For each state x_k (at time `times[k]`, default 0 for autonomous models) returns
    Phi_{M(xi)}(x_k), the corrected model's forecast over `interval`, and
    Psi_k = (1/interval) d Phi_{M(xi)}(x_k) / d xi at xi = `model.coefficients` (see the
    module docstring), by forward-mode differentiation through `Flow(model, dt, solver)`
    (one linearisation and one tangent solve per term).

    The states are fields on the model's grid, (K, n) with a `SpectralLibrary`, or layered
    fields (K, layer, y, x) with a `LayeredLibrary` (two-layer QG: the design block of state
    k is `design[k].reshape(-1, terms)`, rows in `q.ravel()` order, the layout of
    `LayeredLibrary.design`'s one-state block). Memory: terms x state per forecast, times
    `batch_size`.

    Arguments:
        model: the corrected model, linearised about its `coefficients`.
        states: (K, *state) states, state = `model.state_shape`.
        interval: forecast length.
        dt: integrator step (as for the model's own forecasts).
        solver: as `Flow` (default ETDRK4).
        times: (K,) start time of each forecast (default zeros).
        batch_size: states per compiled call (bounds memory; the last batch is padded).

    Returns:
        (forecasts (K, *state), design (K, *state, terms)).
    """
    if not isinstance(model, CorrectedModel):
        raise TypeError(f"`model` must be a CorrectedModel, got {type(model).__name__}.")
    states = jnp.asarray(states)
    if states.ndim < 2 or states.shape[1:] != model.state_shape:
        raise ValueError(
            f"`states` must be (time, *{model.state_shape}) (the model's state shape), got "
            f"shape {states.shape}."
        )
    interval = _check_interval(interval)
    check_positive("dt", dt)
    if times is None:
        times = jnp.zeros(states.shape[0], dtype=states.dtype)
    times = jnp.asarray(times, dtype=states.dtype)
    check_shape("times", times, (states.shape[0],))
    batch = int(max(1, min(batch_size, states.shape[0])))
    pieces = []
    for i in range(0, states.shape[0], batch):
        chunk, tchunk = states[i : i + batch], times[i : i + batch]
        pad = batch - chunk.shape[0]  # pad the last chunk: one compiled shape
        if pad:
            chunk = jnp.concatenate([chunk, jnp.repeat(chunk[-1:], pad, axis=0)])
            tchunk = jnp.concatenate([tchunk, jnp.repeat(tchunk[-1:], pad, axis=0)])
        forecast, design = _integrated(model, solver, float(dt), chunk, tchunk, interval)
        pieces.append((forecast[: batch - pad], design[: batch - pad]))
    if len(pieces) == 1:
        return pieces[0]
    return (
        jnp.concatenate([f for f, _ in pieces]),
        jnp.concatenate([d for _, d in pieces]),
    )


def check_finite_design(design, names) -> None:
    """ValueError naming the library terms whose columns are not finite (concrete arrays)."""
    values = np.asarray(design)
    finite = np.all(np.isfinite(values.reshape(-1, values.shape[-1])), axis=0)
    if not finite.all():
        bad = [names[j] for j in np.flatnonzero(~finite)]
        raise ValueError(
            f"library term(s) {bad} are not finite (NaN or inf) on the given states; check the "
            "states (a blown-up forecast or analysis) and the term definitions."
        )
