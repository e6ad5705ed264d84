r"""Convergence orders: the log-log slope of an error against a resolution.

A method of order p has error e(N) ~ C N^{-p} in the number of steps N (h ~ 1/N), so
log e = log C - p log N; the order is minus the least-squares slope of log e against log N
(the usual empirical order of convergence, e.g. Hairer, Norsett & Wanner, "Solving
ordinary differential equations I", section II.1, and the order plots of Lu et al. 2022,
DPM-Solver).
"""

import math
from collections.abc import Sequence

import numpy as np
from jaxtyping import Real

from .._custom_types import ArrayLike


def fit_convergence_order(
    steps: Sequence[int | float] | Real[ArrayLike, " n"],
    errors: Sequence[int | float] | Real[ArrayLike, " n"],
) -> float:
    """The empirical order p of errors e_i at resolutions N_i: minus the least-squares slope
    of log e against log N.

    Points whose error is not finite or not positive are left out (a run that diverged, or
    one exact to rounding, says nothing about the slope). With fewer than two usable points,
    or a single distinct resolution, the order is undefined and NaN is returned.

    Arguments:
        steps: the resolutions N_i (steps, NFE, particles, ...), positive.
        errors: the errors e_i, same length.

    Returns:
        p as a Python float (positive when errors fall as N grows).
    """
    n = np.asarray(steps, dtype=np.float64)
    e = np.asarray(errors, dtype=np.float64)
    if n.ndim != 1 or e.shape != n.shape:
        raise ValueError(
            f"`steps` and `errors` must be 1-D of the same length, got shapes {n.shape} and "
            f"{e.shape}."
        )
    if not np.all(np.isfinite(n) & (n > 0)):
        raise ValueError(f"`steps` must be finite and positive, got {n.tolist()}.")
    ok = np.isfinite(e) & (e > 0)
    if ok.sum() < 2 or len(set(n[ok].tolist())) < 2:
        return math.nan
    return float(-np.polyfit(np.log(n[ok]), np.log(e[ok]), 1)[0])
