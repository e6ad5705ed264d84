r"""Forecast skill of a (corrected) model: normalised error and valid time.

Following the convention of machine-learned and corrected chaotic models (Pathak et al.
2018, Phys. Rev. Lett. 120, 024102; Chattopadhyay, Hassanzadeh & Subramanian 2020), the
normalised forecast error at lead time t is

    E(t) = ||u_forecast(t) - u_true(t)||_2 / sqrt(< ||u_true||_2^2 >),

the RMS error over the grid divided by the truth's RMS amplitude (the average over the
verification data), and the valid time is the first lead time at which E exceeds a
threshold (0.5 by default), usually reported in Lyapunov times t * lambda_max.
"""

import jax.numpy as jnp
import numpy as np

from .._custom_types import Array, ArrayLike, Float


def normalised_error(
    forecast: Float[Array, "... time dim"],
    truth: Float[Array, "... time dim"],
    scale: float | Float[Array, ""] | None = None,
) -> Float[Array, "... time"]:
    """E(t) = RMS_x(forecast - truth) / scale; `scale` defaults to the truth's RMS amplitude
    sqrt(mean(truth^2)) over all its times (and leading axes)."""
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
    error: Float[ArrayLike, "... time"],
    times: Float[ArrayLike, " time"],
    threshold: float = 0.5,
) -> np.ndarray | float:
    """The first time in `times` at which `error` exceeds `threshold`, per leading index.

    A forecast whose error never exceeds the threshold gets `times[-1]` (the valid time is
    then at least that: censored by the horizon). A non-finite error counts as exceeded.
    Returns a NumPy array of the leading shape (a float for a single series).
    """
    err = np.asarray(error, dtype=float)
    ts = np.asarray(times, dtype=float)
    if err.shape[-1] != ts.shape[0]:
        raise ValueError(
            f"`error` has {err.shape[-1]} times on its last axis but `times` has {ts.shape[0]}."
        )
    if not threshold > 0:
        raise ValueError(f"`threshold` must be positive, got {threshold}.")
    exceeded = ~(err <= threshold)
    first = np.argmax(exceeded, axis=-1)
    out = np.where(exceeded.any(axis=-1), ts[first], ts[-1])
    return out if out.ndim else float(out)
