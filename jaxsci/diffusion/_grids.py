r"""Time grids from the noise end t_max to the data end t_min (strictly decreasing).

`time_grid(schedule, n_steps, spacing)` places n_steps + 1 times; the spacing is an object:

* `TimeUniform()`: t_i uniform in t (DDPM/DDIM practice).
* `LogSNRUniform()`: lambda_i uniform (Lu et al. 2022, "DPM-Solver", section 3.4, the
  grid their order analysis uses), t_i = t(lambda_i).
* `TimeQuadratic()`: sqrt(t_i) uniform (Song et al. 2021a, DDIM's quadratic skip; Lu
  et al. 2022's "time_quadratic").
* `Karras(rho)`: rho-spaced noise-to-signal ratios (Karras et al. 2022, eq. 5):
  r_i = (r_max^{1/rho} + i/N (r_min^{1/rho} - r_max^{1/rho}))^rho with r = sigma/alpha =
  e^{-lambda}, rho = 7 (their choice), t_i = t(-log r_i). For EDM, r is the noise level.

Explicit grids go through `check_grid`.
"""

import abc
from collections.abc import Sequence

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Real

from .._checks import check_int, check_positive, concrete
from .._custom_types import Array, ArrayLike, Float
from ._base import AbstractSchedule, RealLike


class AbstractSpacing(eqx.Module):
    """How a time grid spaces its points: `times(schedule, u, t_max, t_min)` maps fractions
    u in [0, 1] (0: the noise end t_max, 1: the data end t_min) to times."""

    @abc.abstractmethod
    def times(
        self,
        schedule: AbstractSchedule,
        u: Float[Array, " n1"],
        t_max: RealLike,
        t_min: RealLike,
    ) -> Float[Array, " n1"]:
        """The times at fractions `u` of the way from t_max to t_min."""


class TimeUniform(AbstractSpacing):
    """Uniform in t (DDPM / DDIM practice)."""

    def times(self, schedule, u, t_max, t_min):
        return t_max + u * (t_min - t_max)


class TimeQuadratic(AbstractSpacing):
    """Uniform in sqrt(t) (Song et al. 2021a, DDIM's quadratic skip)."""

    def times(self, schedule, u, t_max, t_min):
        return (jnp.sqrt(t_max) + u * (jnp.sqrt(t_min) - jnp.sqrt(t_max))) ** 2


class LogSNRUniform(AbstractSpacing):
    """Uniform in lambda = log(alpha/sigma) (Lu et al. 2022, DPM-Solver, section 3.4)."""

    def times(self, schedule, u, t_max, t_min):
        l0 = schedule.lambda_(jnp.asarray(t_max))
        l1 = schedule.lambda_(jnp.asarray(t_min))
        return schedule.t_from_lambda(l0 + u * (l1 - l0))


class Karras(AbstractSpacing):
    """rho-spaced noise-to-signal ratios r = sigma/alpha (Karras et al. 2022, eq. 5).

    `rho` (default 7, their choice) is an array field, so a vmap over it works.
    """

    rho: RealLike = 7.0

    def __check_init__(self):
        check_positive("rho", self.rho)

    def times(self, schedule, u, t_max, t_min):
        r0 = jnp.exp(-schedule.lambda_(jnp.asarray(t_max)))
        r1 = jnp.exp(-schedule.lambda_(jnp.asarray(t_min)))
        inv = 1 / self.rho
        r = (r0**inv + u * (r1**inv - r0**inv)) ** self.rho
        return schedule.t_from_lambda(-jnp.log(r))


_LOGSNR_UNIFORM = LogSNRUniform()


def time_grid(
    schedule: AbstractSchedule,
    n_steps: int,
    spacing: AbstractSpacing = _LOGSNR_UNIFORM,
    *,
    t_min: RealLike | None = None,
    t_max: RealLike | None = None,
) -> Float[Array, " n1"]:
    """A grid of `n_steps` steps (n_steps + 1 times) from t_max down to t_min.

    Arguments:
        schedule: the noise schedule.
        n_steps: number of steps (>= 1).
        spacing: an `AbstractSpacing` (default `LogSNRUniform()`).
        t_min, t_max: the ends (default: the schedule's).

    Returns:
        Array (n_steps + 1,), strictly decreasing, with the ends pinned exactly.
    """
    if not isinstance(spacing, AbstractSpacing):
        raise TypeError(
            f"`spacing` must be an AbstractSpacing (TimeUniform(), LogSNRUniform(), "
            f"TimeQuadratic() or Karras(rho)), got {spacing!r}."
        )
    check_int("n_steps", n_steps, 1)
    t0 = schedule.t_max if t_max is None else t_max
    t1 = schedule.t_min if t_min is None else t_min
    if not t1 < t0:
        raise ValueError(f"need t_min < t_max, got t_min={t1}, t_max={t0}.")
    u = jnp.linspace(0.0, 1.0, n_steps + 1)
    ts = spacing.times(schedule, u, t0, t1)
    # Pin the ends exactly (the inverse map rounds).
    return ts.at[0].set(t0).at[-1].set(t1)


def check_grid(
    schedule: AbstractSchedule, ts: Real[ArrayLike, "..."] | Sequence, name: str = "grid"
) -> Real[Array, " n1"]:
    """Validate an explicit grid: 1-D, >= 2 times, strictly decreasing (noise to data) and
    inside [t_min, t_max] of `schedule`. Returns it as an array.

    Concrete grids raise ValueError; traced grids (e.g. differentiated) are not checked.
    """
    ts = jnp.asarray(ts)
    if ts.ndim != 1 or ts.shape[0] < 2:
        raise ValueError(f"`{name}` must be a 1-D array of at least 2 times, got shape {ts.shape}.")
    arr = concrete(ts)
    if arr is None:  # traced: checked by the caller's structure only
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
