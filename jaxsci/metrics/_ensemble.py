r"""Scores of ensembles (or posterior draws) against a verifying truth.

For M members x_1..x_M per case (a time, say) and variable, with mean x_bar:

* rmse: sqrt of the mean over cases and variables of (x_bar - truth)^2, the error of the
  ensemble mean;
* spread: sqrt of the mean over cases and variables of ((M + 1) / M) s^2, s^2 the unbiased
  member variance. The (M + 1)/M factor makes a calibrated ensemble (truth and members
  exchangeable draws of one distribution) have E[spread^2] = E[rmse^2] at any M (Fortin et
  al. 2014, "Why should ensemble spread match the RMSE of the ensemble mean?", J. Hydromet.
  15, 1708), so spread_skill = spread / rmse is 1 for a calibrated ensemble, below 1 for an
  overconfident one;
* crps: the mean fair (unbiased in M) ensemble CRPS (`jaxsci.losses.crps_fair`; Ferro 2014),
  so ensembles of different sizes compare on one scale;
* weighted particles (`ensemble_scores(..., weights=w)`, normalised weights w_i per case, as
  an SMC sampler returns them): the mean sum_i w_i x_i, and the same estimators with the
  equal-weight 1/M replaced by Kish's effective size 1 / sum_i w_i^2 (Kish 1965, "Survey
  Sampling"): spread^2 = (1 + sum w^2) sum_i w_i (x_i - mean)^2 / (1 - sum w^2) and
  crps = sum_i w_i |x_i - y| - (1/2) sum_{i != j} w_i w_j |x_i - x_j| / (1 - sum w^2), the
  kernel form of the CRPS of the weighted distribution (Gneiting & Raftery 2007, eq. 21) with
  the pair term normalised over i != j. Equal weights give the unweighted scores exactly;
  resampling the particles instead and scoring the draws counts duplicates as independent
  members (their zero distances bias the fair CRPS up and the spread down);
* coverage (`interval_coverage`): the rank-based (randomised PIT) fraction of cases and
  variables whose truth lies in the central interval of a given probability of the
  distribution the members are drawn from; exactly the level in expectation for a calibrated
  ensemble at any M.
"""

from typing import NamedTuple

import jax.numpy as jnp
import numpy as np

from .._checks import check_int, check_range, concrete
from .._custom_types import Array, ArrayLike, Float
from ..losses import crps_fair


class EnsembleScores(NamedTuple):
    """Output of `ensemble_scores`: `rmse`, `spread`, `crps`, `spread_skill` (scalars over
    all cases and variables) and `rmse_per_case`, `spread_per_case` (per case)."""

    rmse: Float[Array, ""]
    spread: Float[Array, ""]
    crps: Float[Array, ""]
    spread_skill: Float[Array, ""]
    rmse_per_case: Float[Array, " case"]
    spread_per_case: Float[Array, " case"]


def _weighted_scores(ensembles, truth, weights):
    """Weighted mean, squared error, calibrated variance and CRPS per case (module docstring)."""
    w = weights / jnp.sum(weights, axis=1, keepdims=True)
    s2 = jnp.sum(w**2, axis=1)  # 1 / Kish's effective size, per case
    mean = jnp.einsum("cm,cmd->cd", w, ensembles)
    sq_err = jnp.mean((mean - truth) ** 2, axis=-1)
    dev2 = jnp.einsum("cm,cmd->cd", w, (ensembles - mean[:, None]) ** 2)
    var = (1 + s2) / (1 - s2) * jnp.mean(dev2, axis=-1)
    abs_dev = jnp.einsum("cm,cmd->cd", w, jnp.abs(ensembles - truth[:, None]))
    # sum_{i,j} w_i w_j |x_i - x_j| in O(M log M): for sorted members, x_(k) exceeds the
    # members of weight W_(<k) below it and falls short of those of weight 1 - W_(<=k).
    order = jnp.argsort(ensembles, axis=1)
    x = jnp.take_along_axis(ensembles, order, axis=1)
    ws = jnp.take_along_axis(jnp.broadcast_to(w[:, :, None], ensembles.shape), order, axis=1)
    below = jnp.cumsum(ws, axis=1) - ws
    above = 1.0 - below - ws
    pair = 2.0 * jnp.sum(ws * x * (below - above), axis=1)
    crps = abs_dev - 0.5 * pair / (1 - s2)[:, None]
    return sq_err, var, crps


def ensemble_scores(
    ensembles: Float[ArrayLike, "case M dim"],
    truth: Float[ArrayLike, "case dim"],
    weights: Float[ArrayLike, "case M"] | None = None,
) -> EnsembleScores:
    """RMSE of the ensemble mean, calibrated spread, fair CRPS and the spread-skill ratio.

    See the module docstring for the definitions, with and without weights.

    Arguments:
        ensembles: (cases, M >= 2 members, variables).
        truth: the verifying states, (cases, variables).
        weights: optional non-negative weights of the members per case, (cases, M), e.g. the
            normalised weights of SMC particles (normalised here); at least two members of a
            case need a positive weight (one alone has no spread: the scores are then NaN).
            None: equal weights.

    Returns:
        `EnsembleScores`.
    """
    ensembles, truth = jnp.asarray(ensembles), jnp.asarray(truth)
    if ensembles.ndim != 3:
        raise ValueError(f"`ensembles` must have shape (case, M, dim), got {ensembles.shape}.")
    m = check_int("ensembles.shape[1] (members)", ensembles.shape[1], 2)
    if truth.shape != (ensembles.shape[0], ensembles.shape[2]):
        raise ValueError(
            f"`truth` must have shape (case, dim) = ({ensembles.shape[0]}, "
            f"{ensembles.shape[2]}), got {truth.shape}."
        )
    if weights is None:
        mean = jnp.mean(ensembles, axis=1)
        sq_err = jnp.mean((mean - truth) ** 2, axis=-1)
        var = (m + 1) / m * jnp.mean(jnp.var(ensembles, axis=1, ddof=1), axis=-1)
        crps = crps_fair(jnp.swapaxes(ensembles, 0, 1), truth)
    else:
        weights = jnp.asarray(weights, ensembles.dtype)
        if weights.shape != ensembles.shape[:2]:
            raise ValueError(
                f"`weights` must have shape (case, M) = {ensembles.shape[:2]}, got {weights.shape}."
            )
        w = concrete(weights)
        if w is not None and not (np.all(np.isfinite(w)) and np.all(w >= 0)):
            raise ValueError("`weights` must be finite and non-negative.")
        if w is not None and np.any(np.sum(w > 0, axis=1) < 2):
            raise ValueError("`weights` must have at least two positive entries per case.")
        sq_err, var, crps = _weighted_scores(ensembles, truth, weights)
    rmse = jnp.sqrt(jnp.mean(sq_err))
    spread = jnp.sqrt(jnp.mean(var))
    return EnsembleScores(
        rmse=rmse,
        spread=spread,
        crps=jnp.mean(crps),
        spread_skill=spread / rmse,
        rmse_per_case=jnp.sqrt(sq_err),
        spread_per_case=jnp.sqrt(var),
    )


def interval_coverage(
    ensembles: Float[ArrayLike, "case M dim"],
    truth: Float[ArrayLike, "case dim"],
    level: float = 0.9,
) -> Float[Array, ""]:
    r"""Fraction of cases and variables whose truth lies in the central `level` interval of
    the distribution the members are drawn from, unbiased at any ensemble size M.

    Rank-based (randomised PIT): with r the number of members below the truth and t the
    number equal to it, the truth's probability integral transform is taken uniform on
    [r, r + t + 1] / (M + 1), and the covered fraction of a case and variable is the exact
    expectation, over that uniform tie-breaker, of the PIT falling in
    [(1 - level)/2, (1 + level)/2]: the length of the overlap divided by (t + 1)/(M + 1).
    For a truth exchangeable with the members the rank is uniform on 0..M, so the expected
    coverage is exactly `level` at every M (no random key: the tie-breaker is integrated
    out). A calibrated predictive distribution covers the truth with frequency `level`
    (Gneiting, Balabdaoui & Raftery 2007); below it the ensemble is over-confident. A
    non-finite (NaN) member or truth makes the result NaN.

    Arguments:
        ensembles: (cases, M >= 2 members, variables).
        truth: the verifying values, (cases, variables).
        level: the central probability in (0, 1).

    Returns:
        The covered fraction in [0, 1] (NaN if a member or truth is NaN).
    """
    check_range("level", level, 0.0, 1.0, lower_open=True, upper_open=True)
    ensembles, truth = jnp.asarray(ensembles), jnp.asarray(truth)
    if ensembles.ndim != 3:
        raise ValueError(f"`ensembles` must have shape (case, M, dim), got {ensembles.shape}.")
    check_int("ensembles.shape[1] (members)", ensembles.shape[1], 2)
    if truth.shape != (ensembles.shape[0], ensembles.shape[2]):
        raise ValueError(
            f"`truth` must have shape (case, dim) = ({ensembles.shape[0]}, "
            f"{ensembles.shape[2]}), got {truth.shape}."
        )
    m = ensembles.shape[1]
    below = jnp.sum(ensembles < truth[:, None, :], axis=1)
    ties = jnp.sum(ensembles == truth[:, None, :], axis=1)
    lo, hi = (1 - level) / 2 * (m + 1), (1 + level) / 2 * (m + 1)
    overlap = jnp.clip(jnp.minimum(below + ties + 1, hi) - jnp.maximum(below, lo), 0.0, None)
    covered = overlap / (ties + 1)
    bad = jnp.any(jnp.isnan(ensembles), axis=1) | jnp.isnan(truth)
    return jnp.mean(jnp.where(bad, jnp.nan, covered))
