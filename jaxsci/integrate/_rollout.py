"""`rollout`: the one loop that applies a model step repeatedly (learned or simulated)."""

from collections.abc import Callable
from typing import cast

import jax
import jax.numpy as jnp

from .._checks import check_int
from .._custom_types import Array, Float, Key, PyTree
from .._interrupts import interruptible_scan, require_concrete
from ._flattened import FlattenedFlow
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
        interruptible: run from the host in compiled chunks of about
            `jaxsci._interrupts.CHUNK_SECONDS` each (`interruptible_scan`: the same states)
            and stop after the running chunk on a Ctrl-C inside a
            `jaxsci.deferred_interrupts()` block; the states not reached are then NaN. Needs
            concrete inputs (a TypeError under `jit`, `vmap` or `grad`); no gradient.

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
        dt = float(dt)  # static in the compiled step (a Flow's window length)
    spec = (step, dt, t_start, args, key is not None)
    if n == 0:
        return y0[None]
    if interruptible:
        require_concrete("rollout(..., interruptible=True)", step, y0, t_start, args, key)
        _, ys, _ = interruptible_scan(_advance, y0, xs, n, operands=spec)
    else:
        _, ys = jax.lax.scan(lambda y, x: _advance(spec, y, x), y0, xs, length=n)
    if include_initial:
        ys = jnp.concatenate([y0[None], ys])
    return ys


def _advance(spec, y, x):
    """One step of `rollout` (`spec`: step, dt, t0, args, keyed); x is the step index (flows),
    a key (keyed autoregressive steps) or None. Module-level, so that an interruptible
    rollout's compiled chunk is reused across calls."""
    step, dt, t_start, args, keyed = spec
    step_fn = cast(Callable[..., Array], step)
    if dt is None:  # autoregressive
        nxt = step_fn(y, key=x) if keyed else step_fn(y)
    else:
        ta = t_start + x * dt
        if isinstance(step, (Flow, FlattenedFlow)):
            nxt = step.window(dt)(y, ta, args=args)
        else:
            nxt = step_fn(y, ta, ta + dt, **({} if args is None else {"args": args}))
    return nxt, nxt
