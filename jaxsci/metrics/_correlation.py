r"""Pattern correlation of a rollout with the truth, and the high-correlation time.

Lippe et al. (2023, "PDE-Refiner", NeurIPS, section 4.1) score long rollouts of chaotic
PDEs by the Pearson correlation between the predicted and the true field at each time,

    rho(t) = sum_x (u(x,t) - mean_x u)(v(x,t) - mean_x v)
             / sqrt(sum_x (u - mean_x u)^2 sum_x (v - mean_x v)^2),

and by the *high-correlation time*, how long rho stays above a threshold (0.8): unlike an
error threshold it does not depend on the field's amplitude, and a rollout that has
decorrelated from the truth (rho ~ 0) but stays on the attractor is not rewarded.
"""

import jax.numpy as jnp
import numpy as np

from .._checks import check_range
from .._custom_types import Array, ArrayLike, Float
from ._forecast import valid_time


def pearson_correlation(
    forecast: Float[ArrayLike, "*batch dim"],
    truth: Float[ArrayLike, "*batch dim"],
) -> Float[Array, "*batch"]:
    """rho, the Pearson correlation over the last axis (the grid) of `forecast` and `truth`.

    Flatten multi-channel or 2-D fields onto one last axis first. A constant field (zero
    variance) has no correlation: NaN, which `high_correlation_time` counts as decorrelated.

    Returns:
        The correlation per leading index (e.g. per trajectory and time), (...).
    """
    u = jnp.asarray(forecast)
    v = jnp.asarray(truth)
    if u.shape != v.shape or u.ndim < 1:
        raise ValueError(
            f"`forecast` has shape {u.shape} but `truth` has shape {v.shape}; expected the "
            "same shape (..., dim)."
        )
    du = u - jnp.mean(u, axis=-1, keepdims=True)
    dv = v - jnp.mean(v, axis=-1, keepdims=True)
    num = jnp.sum(du * dv, axis=-1)
    den = jnp.sqrt(jnp.sum(du**2, axis=-1) * jnp.sum(dv**2, axis=-1))
    return jnp.where(den > 0, num / jnp.where(den > 0, den, 1.0), jnp.nan)


def high_correlation_time(
    forecast: Float[ArrayLike, "*batch time dim"],
    truth: Float[ArrayLike, "*batch time dim"],
    times: Float[ArrayLike, " time"],
    threshold: float = 0.8,
) -> np.ndarray | float:
    """The last lead time before the correlation with the truth first drops below `threshold`.

    `times` are the lead times t_1 < t_2 < ... of the rollout states (after the initial
    state, t_1 > 0). With j the first index at which rho(t_j) < threshold (or is NaN), the
    high-correlation time is t_{j-1}, and 0 when j = 1 (never highly correlated); a
    rollout that stays correlated to the end gets t_T (censored by the horizon). For states
    `dt` apart from the initial one, t_j = j dt and this is (number of steps before the
    first drop) x dt: the `metrics.valid_time` of the error 1 - rho at threshold
    1 - `threshold`, with rho(0) = 1 prepended.

    Arguments:
        forecast, truth: the rollout and the true states, (..., time, dim).
        times: the lead time of each state, (time,), positive.
        threshold: the correlation that ends the high-correlation time, in (-1, 1)
            (Lippe et al.: 0.8).

    Returns:
        A NumPy array of the leading shape (a float for a single rollout).
    """
    check_range("threshold", threshold, -1.0, 1.0, lower_open=True, upper_open=True)
    ts = np.asarray(times, dtype=float)
    if ts.ndim != 1 or not np.all(ts > 0) or np.any(np.diff(ts) <= 0):
        raise ValueError(
            f"`times` must be increasing positive lead times (time,), got {ts.tolist()}."
        )
    rho = np.asarray(pearson_correlation(forecast, truth), dtype=float)
    if rho.shape[-1] != ts.shape[0]:
        raise ValueError(
            f"`forecast` has {rho.shape[-1]} times but `times` has shape {ts.shape}; expected "
            "one time per state."
        )
    err = np.concatenate([np.zeros(rho.shape[:-1] + (1,)), 1.0 - rho], axis=-1)
    return valid_time(err, np.concatenate([[0.0], ts]), 1.0 - threshold, last_below=True)
