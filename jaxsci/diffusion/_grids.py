r"""Time grids from the noise end t_max to the data end t_min (strictly decreasing).

* ``"time_uniform"``: t_i uniform in t (DDPM/DDIM practice).
* ``"logsnr_uniform"``: lambda_i uniform (Lu et al. 2022, "DPM-Solver", section 3.4, the
  grid their order analysis uses), t_i = t(lambda_i).
* ``"time_quadratic"``: sqrt(t_i) uniform (Song et al. 2021a, DDIM's quadratic skip; Lu
  et al. 2022's "time_quadratic").
* ``"karras"``: rho-spaced noise-to-signal ratios (Karras et al. 2022, eq. 5):
  r_i = (r_max^{1/rho} + i/N (r_min^{1/rho} - r_max^{1/rho}))^rho with r = sigma/alpha =
  e^{-lambda}, rho = 7 (their choice), t_i = t(-log r_i). For EDM, r is the noise level.

Explicit grids go through `check_grid`.
"""

import jax.numpy as jnp
import numpy as np

from ._base import AbstractSchedule

GRIDS = ("time_uniform", "logsnr_uniform", "time_quadratic", "karras")


def time_grid(
    schedule: AbstractSchedule,
    n_steps: int,
    kind: str = "logsnr_uniform",
    *,
    rho: float = 7.0,
    t_min: float | None = None,
    t_max: float | None = None,
):
    """A grid of `n_steps` steps (n_steps + 1 times) from t_max down to t_min.

    Arguments:
        schedule: the noise schedule.
        n_steps: number of steps (>= 1).
        kind: one of `GRIDS`.
        rho: the Karras exponent (kind "karras" only).
        t_min, t_max: the ends (default: the schedule's).

    Returns:
        Array (n_steps + 1,), strictly decreasing.
    """
    if kind not in GRIDS:
        raise ValueError(f"Unknown grid `kind` {kind!r}; expected one of {list(GRIDS)}.")
    if not isinstance(n_steps, (int, np.integer)) or n_steps < 1:
        raise ValueError(f"`n_steps` must be an integer >= 1, got {n_steps!r}.")
    if rho <= 0:
        raise ValueError(f"`rho` must be > 0, got {rho}.")
    t0 = schedule.t_max if t_max is None else t_max
    t1 = schedule.t_min if t_min is None else t_min
    if not t1 < t0:
        raise ValueError(f"need t_min < t_max, got t_min={t1}, t_max={t0}.")
    u = jnp.linspace(0.0, 1.0, n_steps + 1)
    if kind == "time_uniform":
        ts = t0 + u * (t1 - t0)
    elif kind == "time_quadratic":
        ts = (jnp.sqrt(t0) + u * (jnp.sqrt(t1) - jnp.sqrt(t0))) ** 2
    elif kind == "logsnr_uniform":
        l0, l1 = schedule.lambda_(jnp.asarray(t0)), schedule.lambda_(jnp.asarray(t1))
        ts = schedule.t_from_lambda(l0 + u * (l1 - l0))
    else:
        r0 = jnp.exp(-schedule.lambda_(jnp.asarray(t0)))
        r1 = jnp.exp(-schedule.lambda_(jnp.asarray(t1)))
        r = (r0 ** (1 / rho) + u * (r1 ** (1 / rho) - r0 ** (1 / rho))) ** rho
        ts = schedule.t_from_lambda(-jnp.log(r))
    # Pin the ends exactly (the inverse map rounds).
    return ts.at[0].set(t0).at[-1].set(t1)


def check_grid(schedule: AbstractSchedule, ts, name: str = "grid"):
    """Validate an explicit grid: 1-D, >= 2 times, strictly decreasing (noise to data) and
    inside [t_min, t_max] of `schedule`. Returns it as an array.

    Concrete grids raise ValueError; traced grids (e.g. differentiated) are not checked.
    """
    ts = jnp.asarray(ts)
    if ts.ndim != 1 or ts.shape[0] < 2:
        raise ValueError(f"`{name}` must be a 1-D array of at least 2 times, got shape {ts.shape}.")
    try:
        arr = np.asarray(ts, dtype=np.float64)
    except Exception:  # traced: checked by the caller's structure only
        return ts
    d = np.diff(arr)
    if not np.all(d < 0):
        bad = int(np.argmax(d >= 0))
        raise ValueError(
            f"`{name}` must be strictly decreasing (from the noise end t_max to the data end "
            f"t_min); got {arr[bad]} followed by {arr[bad + 1]} at index {bad}."
        )
    tol = 1e-6 * max(1.0, abs(schedule.t_max))
    if arr[0] > schedule.t_max + tol or arr[-1] < schedule.t_min - tol:
        raise ValueError(
            f"`{name}` must lie in [t_min, t_max] = [{schedule.t_min}, {schedule.t_max}] of "
            f"{type(schedule).__name__}; got [{arr[-1]}, {arr[0]}]."
        )
    return ts
