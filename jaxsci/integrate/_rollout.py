"""`rollout`: the one loop that applies a model step repeatedly (learned or simulated)."""

from collections.abc import Callable
from typing import cast

import jax
import jax.numpy as jnp

from .._checks import check_int
from .._custom_types import Array, Float, Key, PyTree
from .._interrupts import interruptible_scan
from ._flow import Flow


def rollout(
    step: Callable,
    y0: Float[Array, "*state"],
    num_steps: int,
    *,
    dt: float | None = None,
    t0: float | Float[Array, ""] = 0.0,
    args: PyTree = None,
    key: Key | None = None,
    include_initial: bool = False,
    interruptible: bool = False,
) -> Float[Array, " steps *state"]:
    r"""Apply a model step `num_steps` times, feeding each output back in: y_{k+1} = step(y_k).

    Two kinds of step:

    * **autoregressive** (`dt=None`): `step(y) -> y` maps a state to the next one, e.g. a
      learned time stepper (`jaxsci.nn.Stepper`); with `key`, `step(y, key=k_k)` is called
      with one fresh key per step (a stochastic forecaster, `jaxsci.nn.LocalStochastic`);
    * **flow** (`dt` given): `step(y, t_a, t_b) -> y(t_b)` integrates from t_a to t_b, e.g. a
      `jaxsci.integrate.Flow`; state k is y(t0 + k dt). A `Flow` advances each window with
      `Flow.window(dt)` (fixed steps as a scan; constant step size for autonomous models).

    A `lax.scan` of fixed length: one compilation per (step structure, num_steps), usable
    inside `jit`, `vmap` (over initial states, models or keys) and `grad`. This is the rollout
    of `jaxsci.losses.RolloutLoss`, of the truth run of `jaxsci.filters.assimilate`, of
    `jaxsci.discovery.discover_model_error` and of the training pipelines.

    Arguments:
        step: the model step (see above).
        y0: the initial state (one state; vmap outside for a batch).
        num_steps: steps to take (>= 1; 0 is allowed with `include_initial`).
        dt: the time between states, for a flow; None for an autoregressive map.
        t0: the time of `y0` (flows only).
        args: passed to a `Flow` as `args=` (flows only).
        key: PRNG key for a stochastic autoregressive step (split once per step).
        include_initial: prepend `y0`, giving num_steps + 1 states.
        interruptible: check for Ctrl-C every few steps (a host callback) inside a
            `jaxsci.deferred_interrupts()` block; after one, the call returns within a few
            steps and the remaining states are NaN. A while loop: no reverse-mode gradient.

    Returns:
        The states after steps 1..num_steps, shape (num_steps, *y0.shape), or
        (num_steps + 1, *y0.shape) starting with `y0` when `include_initial`.
    """
    n = check_int("num_steps", num_steps, 0 if include_initial else 1)
    y0 = jnp.asarray(y0)
    t_start = jnp.asarray(t0, dtype=jnp.result_type(float))
    if dt is None:
        if args is not None:
            raise ValueError("`args` is for flows (`dt` given); an autoregressive step takes y.")
        xs = jax.random.split(key, n) if key is not None and n else None
    else:
        if key is not None:
            raise ValueError("`key` is for stochastic autoregressive steps (`dt=None`).")
        if not float(dt) > 0:
            raise ValueError(f"`dt` must be positive, got {dt}.")
        xs = jnp.arange(n)
    flow_window = step.window(float(dt)) if isinstance(step, Flow) and dt is not None else None
    extra = {} if args is None else {"args": args}
    step_fn = cast(Callable[..., Array], step)

    def advance_one(y, x):
        if dt is None:  # autoregressive: x is a key or None
            return step_fn(y) if key is None else step_fn(y, key=x)
        ta = t_start + x * dt
        if flow_window is not None:
            return flow_window(y, ta, args=args)
        return step_fn(y, ta, ta + dt, **extra)

    def body(y, x):
        nxt = advance_one(y, x)
        return nxt, nxt

    if n == 0:
        return y0[None]
    if interruptible:
        _, ys, _ = interruptible_scan(body, y0, xs, n)
    else:
        _, ys = jax.lax.scan(body, y0, xs, length=n)
    if include_initial:
        ys = jnp.concatenate([y0[None], ys])
    return ys
