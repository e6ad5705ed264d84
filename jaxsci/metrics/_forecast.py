r"""Forecast skill: the normalised error of a forecast against the truth, and its valid time.

Following the convention of machine-learned and corrected chaotic models (Pathak et al.
2018, Phys. Rev. Lett. 120, 024102; Chattopadhyay, Hassanzadeh & Subramanian 2020), the
normalised forecast error at lead time t is

    E(t) = ||u_forecast(t) - u_true(t)||_2 / sqrt(< ||u_true||_2^2 >),

the RMS error over the grid divided by the truth's RMS amplitude (the average over the
verification data), and the valid time is the first lead time at which an error exceeds a
threshold (0.5 by default), usually reported in Lyapunov times t * lambda_max. The same
valid time serves any error curve (a relative L2 error of a learned stepper's rollout, say).
"""

import jax.numpy as jnp
import numpy as np

from .._checks import check_positive
from .._custom_types import Array, ArrayLike, Float


def normalised_error(
    forecast: Float[ArrayLike, "*batch time dim"],
    truth: Float[ArrayLike, "*batch time dim"],
    scale: Float[ArrayLike, ""] | None = None,
) -> Float[Array, "*batch time"]:
    """E(t) = RMS_x(forecast - truth) / scale, the normalised forecast error.

    Arguments:
        forecast: forecast states, (..., time, dim).
        truth: the true states at the same times, same shape.
        scale: the normaliser; default the truth's RMS amplitude sqrt(mean(truth^2)) over
            all its times and leading axes.

    Returns:
        The error per leading index and time, (..., time).
    """
    forecast = jnp.asarray(forecast)
    truth = jnp.asarray(truth)
    if forecast.shape != truth.shape:
        raise ValueError(
            f"`forecast` has shape {forecast.shape} but `truth` has shape {truth.shape}."
        )
    if scale is None:
        scale = jnp.sqrt(jnp.mean(truth**2))
    return jnp.sqrt(jnp.mean((forecast - truth) ** 2, axis=-1)) / scale


def valid_time(
    error: Float[ArrayLike, "*batch time"],
    times: Float[ArrayLike, " time"],
    threshold: float = 0.5,
    *,
    last_below: bool = False,
) -> np.ndarray | float:
    """The first time in `times` at which `error` exceeds `threshold`, per leading index.

    An error exceeds the threshold when it is larger or not finite. A forecast whose error
    never exceeds it gets `times[-1]` (the valid time is then at least that: censored by the
    horizon). With `last_below`, the time before the first exceedance is returned instead
    (`times[j - 1]` for a first exceedance at index j, `times[0]` when j = 0): the last time
    up to which the forecast stayed within the threshold. With `times[0] = 0` and a zero
    error there (the initial state) this is the number of valid steps times the step.

    Arguments:
        error: error curves, (..., time), e.g. from `normalised_error`.
        times: the lead time of each error, (time,).
        threshold: the error that ends the valid time (> 0).
        last_below: return the last time before the first exceedance.

    Returns:
        A NumPy array of the leading shape (a float for a single series).
    """
    err = np.asarray(error, dtype=float)
    ts = np.asarray(times, dtype=float)
    if ts.ndim != 1 or err.ndim < 1 or err.shape[-1] != ts.shape[0]:
        raise ValueError(
            f"`error` has {err.shape[-1] if err.ndim else 0} times on its last axis but `times` "
            f"has shape {ts.shape}; expected one time per error."
        )
    check_positive("threshold", threshold)
    exceeded = ~(err <= threshold)
    first = np.argmax(exceeded, axis=-1)
    if last_below:
        first = np.maximum(first - 1, 0)
    out = np.where(exceeded.any(axis=-1), ts[first], ts[-1])
    return out if out.ndim else float(out)
