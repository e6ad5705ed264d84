"""MCMC convergence diagnostics: rank-normalised split R-hat, bulk/tail ESS and MCSE.

Everything here follows Vehtari, Gelman, Simpson, Carpenter and Buerkner (2021),
"Rank-normalization, folding, and localization: an improved R-hat for assessing convergence of
MCMC", Bayesian Analysis 16(2), 667-718 (arXiv:1903.08008), with the arithmetic choices of
ArviZ 0.23 (`arviz.rhat(method="rank")`, `arviz.ess`, `arviz.mcse`) so that the numbers agree
with ArviZ to rounding error in float64. Where ArviZ and Stan differ the docstring says so.

Draws are shaped `(chains, draws, *event)`; every diagnostic is computed separately for each
event element and returned with shape `event`. The functions are pure JAX (jit-compiled per
input shape), so they accept NumPy or device arrays; under `jax.enable_x64` they compute in
float64, otherwise in float32 (ranks and quantile transforms stay exact; the FFT
autocovariances carry ~1e-6 relative error, far below what any decision based on R-hat or ESS
needs).

Notation: M chains of N draws. "Split" chains are the first and last floor(N/2) draws of each
chain (the middle draw is dropped when N is odd), giving 2M chains of n = floor(N/2) draws and
S = 2Mn draws in all.
"""

import math
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import betainc, ndtri

from .._custom_types import Array, ArrayLike, Float

__all__ = [
    "ess_bulk",
    "ess_mean",
    "ess_tail",
    "format_summary",
    "mcse_mean",
    "mcse_quantile",
    "mcse_sd",
    "rhat",
    "summary",
]

# ArviZ treats an array as constant when max - min is below float64's decimal resolution
# (np.finfo(float).resolution = 1e-15) and then returns ESS = number of draws.
_CONSTANT_RANGE = float(np.finfo(np.float64).resolution)
# Blom's (1958) offset in the normal-scores transform z = Phi^-1((r - 3/8) / (S + 1/4)).
_BLOM_C = 3.0 / 8.0
# Phi(-1) and Phi(1): the central 68.27% interval that ArviZ uses for the quantile MCSE.
_PHI_MINUS_ONE = 0.1586553
_PHI_PLUS_ONE = 0.8413447
# Bisection steps for the Beta quantile in `mcse_quantile`: 2^-100 is below float64 spacing.
_BETA_PPF_ITERS = 100
_MIN_DRAWS = 4
_SUMMARY_STATS = (
    "mean",
    "sd",
    "q5",
    "q50",
    "q95",
    "mcse_mean",
    "mcse_sd",
    "ess_bulk",
    "ess_tail",
    "rhat",
)


# ------------------------------------------------------------------------------------------
# Building blocks on one (chains, draws) array.
# ------------------------------------------------------------------------------------------


def _split_chains(x: Float[Array, "m n"]) -> Float[Array, "2m h"]:
    """First and last floor(n/2) draws of every chain, stacked as 2m chains."""
    half = x.shape[1] // 2
    return jnp.concatenate([x[:, :half], x[:, x.shape[1] - half :]], axis=0)


def _average_ranks(x: Float[Array, "m n"]) -> Float[Array, "m n"]:
    """Ranks 1..S over all draws, ties given their average rank (scipy `rankdata` 'average').

    With l the number of draws strictly below x_i and u the number <= x_i, the tied block
    occupies ranks l+1..u, whose average is (l + 1 + u) / 2.
    """
    flat = x.ravel()
    ordered = jnp.sort(flat)
    below = jnp.searchsorted(ordered, flat, side="left")
    at_or_below = jnp.searchsorted(ordered, flat, side="right")
    return ((below + 1 + at_or_below) / 2).astype(x.dtype).reshape(x.shape)


def _z_scale(x: Float[Array, "m n"]) -> Float[Array, "m n"]:
    """Rank-normalisation, eq. (14) of Vehtari et al.: z = Phi^-1((r - 3/8) / (S - 2*3/8 + 1))."""
    ranks = _average_ranks(x)
    return ndtri((ranks - _BLOM_C) / (x.size - 2 * _BLOM_C + 1))


def _median(x: Float[Array, "..."]) -> Float[Array, ""]:
    """Median over all elements; for an even count the mean (a + b) / 2 of the middle two."""
    ordered = jnp.sort(x.ravel())
    size = ordered.size
    if size % 2:
        return ordered[size // 2]
    return (ordered[size // 2 - 1] + ordered[size // 2]) / 2


def _quantile7_sorted(ordered: Float[Array, " n"], prob) -> Float[Array, ""]:
    """Hyndman-Fan type 7 quantile (R's default, numpy's 'linear') of sorted values.

    With n sorted draws x_(1..n): h = n p + (1 - p), k = floor(clip(h, 1, n - 1)),
    g = clip(h - k, 0, 1), Q(p) = (1 - g) x_(k) + g x_(k+1), evaluated in this order as
    scipy's `mquantiles(alphap=1, betap=1)` that ArviZ uses.
    """
    n = ordered.size
    h = n * prob + (1.0 - prob)
    k = jnp.floor(jnp.clip(h, 1, n - 1))
    g = jnp.clip(h - k, 0.0, 1.0)
    k = k.astype(jnp.int32)
    return (1.0 - g) * ordered[k - 1] + g * ordered[k]


def _rhat_basic(x: Float[Array, "m n"]) -> Float[Array, ""]:
    """Potential scale reduction, eq. (3)-(4) of Vehtari et al. (Gelman and Rubin 1992).

    W = mean of the chain variances, B = n * variance of the chain means (both with ddof=1),
    var+ = (n - 1) / n W + B / n, R-hat = sqrt(var+ / W). NaN when W = 0 (constant chains).
    """
    n = x.shape[1]
    chain_mean = jnp.mean(x, axis=1)
    within = jnp.mean(jnp.var(x, axis=1, ddof=1))
    between = n * jnp.var(chain_mean, ddof=1)
    return jnp.sqrt((between / within + n - 1) / n)


def _next_fast_len(target: int) -> int:
    """Smallest 2^a 3^b 5^c >= target: an FFT length without large prime factors."""
    best = 2 ** math.ceil(math.log2(max(target, 1)))
    p5 = 1
    while p5 < best:
        p35 = p5
        while p35 < best:
            candidate = p35
            while candidate < target:
                candidate *= 2
            best = min(best, candidate)
            p35 *= 3
        p5 *= 5
    return best


def _autocov(x: Float[Array, "m n"]) -> Float[Array, "m n"]:
    """Biased autocovariances gamma_t = (1/n) sum_i (x_i - xbar)(x_{i+t} - xbar), t = 0..n-1.

    Computed with a zero-padded FFT (Wiener-Khinchin), padding to length >= 2n so that the
    circular correlation equals the linear one.
    """
    n = x.shape[1]
    length = _next_fast_len(2 * n)
    centred = x - jnp.mean(x, axis=1, keepdims=True)
    spectrum = jnp.fft.rfft(centred, n=length, axis=1)
    power = (spectrum * jnp.conj(spectrum)).real
    return jnp.fft.irfft(power, n=length, axis=1)[:, :n] / n


def _ess_raw(x: Float[Array, "m n"]) -> Float[Array, ""]:
    """Multi-chain effective sample size S / tau of the chains as given (no split, no ranks).

    Vehtari et al. eq. (9)-(10): with W the mean within-chain variance (ddof=1),
    var+ = (n-1)/n W + Var(chain means) (the last term only for m > 1), and gamma_{t,j} the
    autocovariance of chain j at lag t, the combined autocorrelation is
    rho_t = 1 - (W - mean_j gamma_{t,j}) / var+ (rho_0 = 1).
    tau = -1 + 2 sum_{t=0}^{2K-1} rho_t + rho_2K is Geyer's (1992) truncated estimator:
    pairs P_k = rho_2k + rho_{2k+1} are summed while positive (initial positive sequence,
    K = index of the first P_k <= 0, at most floor((n - 3) / 2)), replaced by their running
    minimum (initial monotone sequence), and rho_2K, the even lag of the first non-positive
    pair, is added when positive (Stan's antithetic-chain improvement). tau is bounded below by
    1 / log10(S), i.e. ESS <= S log10(S). An array whose range is below 1e-15 is constant and
    gets ESS = S. These are ArviZ's `_ess` index conventions, which equal Stan's
    `compute_effective_sample_size` / posterior's `ess_mean` up to the loop bound.
    """
    m, n = x.shape
    size = m * n
    acov = _autocov(x)
    chain_mean = jnp.mean(x, axis=1)
    mean_var = jnp.mean(acov[:, 0]) * n / (n - 1.0)
    var_plus = mean_var * (n - 1.0) / n
    if m > 1:
        var_plus = var_plus + jnp.var(chain_mean, ddof=1)
    rho = 1.0 - (mean_var - jnp.mean(acov, axis=0)) / var_plus
    rho = rho.at[0].set(1.0)

    # The last pair index the initial positive sequence may reach (pair 0 alone when n < 5).
    k_max = max((n - 3) // 2, 0)
    pair = rho[0 : 2 * k_max + 2 : 2] + rho[1 : 2 * k_max + 2 : 2]  # P_0..P_kmax
    # Pair k (k >= 1) is examined only while P_0..P_{k-1} are all positive, so K, the number
    # of pairs kept, is the length of the leading run of positive pairs (at most k_max).
    leading = jnp.concatenate([pair[:k_max] > 0, jnp.zeros(1, bool)])
    n_pairs = jnp.argmin(leading)
    monotone = jax.lax.cummin(pair)
    kept = jnp.arange(k_max + 1) < n_pairs
    even_tail = rho[2 * n_pairs]
    # rho_2K enters when positive; also when P_K = 0 exactly (ArviZ then stores the pair).
    tail_term = jnp.where((even_tail > 0) | (pair[n_pairs] >= 0), even_tail, 0.0)
    tau = -1.0 + 2.0 * jnp.sum(jnp.where(kept, monotone, 0.0)) + tail_term
    tau = jnp.maximum(tau, 1.0 / math.log10(size))
    constant = jnp.max(x) - jnp.min(x) < _CONSTANT_RANGE
    return jnp.where(constant, float(size), size / tau)


# ------------------------------------------------------------------------------------------
# Diagnostics of one element. One kernel computes all of them: the rank transforms and the
# five ESS evaluations are batched with vmap, which keeps the compiled program (and its
# compile time, which dominates for one-off calls) small; the public functions pick columns.
# ------------------------------------------------------------------------------------------


def _max_like_python(bulk: Float[Array, ""], tail: Float[Array, ""]) -> Float[Array, ""]:
    """ArviZ's Python `max(bulk, tail)`: a NaN bulk wins, a NaN tail is ignored."""
    return jnp.where(jnp.isnan(bulk), bulk, jnp.where(tail > bulk, tail, bulk))


def _diagnostics1(x: Float[Array, "m n"]) -> Float[Array, " stats"]:
    """Every statistic of `_COLUMNS` for one element's draws."""
    ordered = jnp.sort(x.ravel())
    q05, q50, q95 = (_quantile7_sorted(ordered, p) for p in (0.05, 0.5, 0.95))
    mean = jnp.mean(x)
    sq = (x - mean) ** 2
    split = _split_chains(x)

    # R-hat of the normal scores of the split draws (bulk) and of the folded split draws
    # (tail); with one chain there is nothing to compare and R-hat is NaN.
    folded = jnp.abs(split - _median(split))
    z, z_folded = jax.vmap(_z_scale)(jnp.stack([split, folded]))
    if x.shape[0] > 1:
        rhat_bulk, rhat_tail = jax.vmap(_rhat_basic)(jnp.stack([z, z_folded]))
        rhat_value = _max_like_python(rhat_bulk, rhat_tail)
    else:
        rhat_value = jnp.array(jnp.nan, x.dtype)

    # ESS of: normal scores (bulk), 5% and 95% quantile indicators (tail), the draws (mean),
    # the squared deviations (for the MCSE of the sd).
    ess_inputs = jnp.stack(
        [
            z,
            _split_chains((x <= q05).astype(x.dtype)),
            _split_chains((x <= q95).astype(x.dtype)),
            split,
            _split_chains(sq),
        ]
    )
    ess_bulk_value, ess_q05, ess_q95, ess_mean_value, ess_sq = jax.vmap(_ess_raw)(ess_inputs)

    sd = jnp.std(x, ddof=1)
    evar = jnp.mean(sq)
    # Delta method on sd = sqrt(v), v = E[(x - mu)^2], with the ESS of the squared deviations.
    varvar = (jnp.mean(sq**2) - evar**2) / ess_sq
    columns = {
        "mean": mean,
        "sd": sd,
        "q5": q05,
        "q50": q50,
        "q95": q95,
        "mcse_mean": sd / jnp.sqrt(ess_mean_value),
        "mcse_sd": jnp.sqrt(varvar / evar / 4),
        "ess_bulk": ess_bulk_value,
        "ess_tail": jnp.minimum(ess_q05, ess_q95),
        "rhat": rhat_value,
        "ess_mean": ess_mean_value,
    }
    values = jnp.stack([columns[name] for name in _COLUMNS])
    return jnp.where(jnp.all(jnp.isfinite(x)), values, jnp.nan)


def _beta_ppf(
    q: Float[Array, " k"], a: Float[Array, ""], b: Float[Array, ""]
) -> Float[Array, " k"]:
    """Quantiles of Beta(a, b) at levels q by bisection on the regularised incomplete beta."""

    def halve(_, bracket):
        lo, hi = bracket
        mid = (lo + hi) / 2
        below = betainc(a, b, mid) < q
        return jnp.where(below, mid, lo), jnp.where(below, hi, mid)

    zero = jnp.zeros_like(q)
    lo, hi = jax.lax.fori_loop(0, _BETA_PPF_ITERS, halve, (zero, zero + 1))
    return (lo + hi) / 2


def _mcse_quantile1(x: Float[Array, "m n"], prob: Float[Array, ""]) -> Float[Array, ""]:
    """Vehtari et al. section 4.3: the +-1 sd interval of the Beta(S_eff p + 1, S_eff (1-p) + 1)
    distribution of the indicator mean, mapped through the order statistics; MCSE = half its
    width."""
    ordered = jnp.sort(x.ravel())
    size = ordered.size
    indicator = (x <= _quantile7_sorted(ordered, prob)).astype(x.dtype)
    ess = _ess_raw(_split_chains(indicator))
    a = ess * prob + 1
    b = ess * (1 - prob) + 1
    levels = jnp.array([_PHI_MINUS_ONE, _PHI_PLUS_ONE], x.dtype)
    low, high = _beta_ppf(levels, a, b) * size - 1
    i_low = jnp.floor(jnp.maximum(low, 0)).astype(jnp.int32)
    i_high = jnp.ceil(jnp.minimum(high, size - 1)).astype(jnp.int32)
    value = (ordered[i_high] - ordered[i_low]) / 2
    return jnp.where(jnp.all(jnp.isfinite(x)), value, jnp.nan)


_COLUMNS = (*_SUMMARY_STATS, "ess_mean")
# jit(vmap) over the trailing element axis of a (chains, draws, elements) array.
_DIAGNOSTICS = jax.jit(jax.vmap(_diagnostics1, in_axes=2))
_MCSE_QUANTILE = jax.jit(jax.vmap(_mcse_quantile1, in_axes=(2, None)))


# ------------------------------------------------------------------------------------------
# Input checks and the public functions.
# ------------------------------------------------------------------------------------------


def _as_draws(x: Any, name: str, *, min_chains: int = 1) -> Array:
    """Validate draws shaped (chains, draws, *event) and return them as a float JAX array."""
    if isinstance(x, Mapping):
        raise TypeError(
            f"{name} must be an array of draws shaped (chains, draws, *event); got a "
            f"{type(x).__name__} (use `summary` for a dict of variables)"
        )
    try:
        arr = jnp.asarray(x)
    except TypeError as err:
        raise TypeError(
            f"{name} must be a numeric array of draws shaped (chains, draws, *event); "
            f"got {type(x).__name__}"
        ) from err
    if jnp.issubdtype(arr.dtype, jnp.complexfloating):
        raise TypeError(f"{name} must hold real draws; got dtype {arr.dtype}")
    if not jnp.issubdtype(arr.dtype, jnp.floating):
        arr = arr.astype(jnp.result_type(float))
    if arr.ndim < 2:
        raise ValueError(
            f"{name} must be shaped (chains, draws, *event); got shape {tuple(arr.shape)} "
            "(a single chain of draws is x[None])"
        )
    chains, draws = arr.shape[:2]
    if chains < min_chains:
        raise ValueError(
            f"{name} has shape {tuple(arr.shape)}: {chains} chain(s), but at least "
            f"{min_chains} are needed"
            + (
                " for R-hat, which compares chains (ArviZ returns NaN here; `summary` reports "
                "rhat = nan for a single chain)"
                if min_chains > 1
                else ""
            )
        )
    if draws < _MIN_DRAWS:
        raise ValueError(
            f"{name} has shape {tuple(arr.shape)}: {draws} draws per chain, but at least "
            f"{_MIN_DRAWS} are needed (split chains of >= 2 draws)"
        )
    if not isinstance(arr, jax.core.Tracer):
        finite = np.asarray(jnp.isfinite(arr))
        if not finite.all():
            bad = tuple(int(i) for i in np.argwhere(~finite)[0])
            raise ValueError(
                f"{name} has {int((~finite).sum())} non-finite draw(s) (first at index "
                f"{bad}, value {float(arr[bad])}); diagnostics need finite draws"
            )
    return arr


def _flatten_event(arr: Array) -> Array:
    return arr.reshape(*arr.shape[:2], -1)


def _column(x: Any, column: str, *, min_chains: int = 1) -> Array:
    """One column of the diagnostics kernel for draws `x`, shaped like x's event."""
    arr = _as_draws(x, "x", min_chains=min_chains)
    table = _DIAGNOSTICS(_flatten_event(arr))
    return table[:, _COLUMNS.index(column)].reshape(arr.shape[2:])


def rhat(x: Float[ArrayLike, "chains draws *event"]) -> Float[Array, "*event"]:
    """Rank-normalised split R-hat, the maximum of bulk and folded (tail) R-hat.

    Vehtari et al. (2021) section 4.2: split each chain in halves, replace the draws by their
    normal scores z = Phi^-1((r - 3/8) / (S + 1/4)) (r = average rank over all split draws,
    eq. 14) and compute the classic R-hat = sqrt(((n-1)/n W + B/n) / W) of the z's (bulk);
    do the same for the folded draws |x - median(x)| (tail, sensitive to differences in
    scale); return max(bulk, tail). Values above 1.01 flag non-convergence. Equals
    `arviz.rhat(x, method="rank")`, which folds around the median of the split draws (Stan's
    posterior package folds before splitting; the two agree for an even number of draws).

    Args:
        x: draws shaped (chains, draws, *event); at least 2 chains of at least 4 draws, finite.

    Returns:
        R-hat per event element (NaN for an element whose draws are all equal).
    """
    return _column(x, "rhat", min_chains=2)


def ess_bulk(x: Float[ArrayLike, "chains draws *event"]) -> Float[Array, "*event"]:
    """Bulk effective sample size: the ESS of the rank-normalised split chains.

    Vehtari et al. (2021) section 4.1: ESS (eq. 11, Geyer's initial monotone sequence, see
    `ess_mean`) of z = Phi^-1((r - 3/8) / (S + 1/4)) over the split chains. Robust to heavy
    tails; measures sampling efficiency in the bulk. Equals `arviz.ess(x, method="bulk")`.

    Args:
        x: draws shaped (chains, draws, *event); at least 4 draws per chain, finite.

    Returns:
        Bulk ESS per event element, at most S log10(S).
    """
    return _column(x, "ess_bulk")


def ess_tail(x: Float[ArrayLike, "chains draws *event"]) -> Float[Array, "*event"]:
    """Tail effective sample size: min of the ESS of the 5% and 95% quantile indicators.

    Vehtari et al. (2021) section 4.3: with q_p the type-7 quantile of all draws, the ESS of
    the split chains of I(x <= q_p) for p = 0.05 and 0.95; their minimum. Equals
    `arviz.ess(x, method="tail")`.

    Args:
        x: draws shaped (chains, draws, *event); at least 4 draws per chain, finite.

    Returns:
        Tail ESS per event element.
    """
    return _column(x, "ess_tail")


def ess_mean(x: Float[ArrayLike, "chains draws *event"]) -> Float[Array, "*event"]:
    """Basic (mean) effective sample size of the split chains, S / tau.

    tau = -1 + 2 sum_t rho_t is the integrated autocorrelation time, with the multi-chain
    autocorrelation rho_t = 1 - (W - mean_j gamma_{t,j}) / var+ (Vehtari et al. eq. 10) from
    FFT autocovariances, truncated by Geyer's (1992) initial positive and monotone sequences
    as in Stan and ArviZ, and bounded so that ESS <= S log10(S). For an AR(1) chain with
    coefficient phi the exact value is S (1 - phi) / (1 + phi). Equals
    `arviz.ess(x, method="mean")`.

    Args:
        x: draws shaped (chains, draws, *event); at least 4 draws per chain, finite.

    Returns:
        ESS per event element.
    """
    return _column(x, "ess_mean")


def mcse_mean(x: Float[ArrayLike, "chains draws *event"]) -> Float[Array, "*event"]:
    """Monte Carlo standard error of the posterior mean: sd(x) / sqrt(ess_mean(x)).

    sd is over all draws with ddof=1. Equals `arviz.mcse(x, method="mean")`.

    Args:
        x: draws shaped (chains, draws, *event); at least 4 draws per chain, finite.

    Returns:
        MCSE of the mean per event element.
    """
    return _column(x, "mcse_mean")


def mcse_sd(x: Float[ArrayLike, "chains draws *event"]) -> Float[Array, "*event"]:
    """Monte Carlo standard error of the posterior standard deviation.

    Delta method on sd = sqrt(v), v = E[(x - mu)^2]: with d = (x - mean(x))^2,
    Var(v_hat) = (mean(d^2) - mean(d)^2) / ess_mean(d) and MCSE = sqrt(Var(v_hat) / (4 v)).
    Equals `arviz.mcse(x, method="sd")` (and the `mcse_sd` column of `arviz.summary`).

    Args:
        x: draws shaped (chains, draws, *event); at least 4 draws per chain, finite.

    Returns:
        MCSE of the sd per event element.
    """
    return _column(x, "mcse_sd")


def mcse_quantile(
    x: Float[ArrayLike, "chains draws *event"], prob: float
) -> Float[Array, "*event"]:
    """Monte Carlo standard error of the `prob` quantile.

    Vehtari et al. (2021) section 4.3: with S_eff the ESS of the split indicator chains
    I(x <= q_prob), the interval [Beta^-1(Phi(-1)), Beta^-1(Phi(1))] of
    Beta(S_eff p + 1, S_eff (1 - p) + 1) is mapped to order statistics of the draws
    (indices floor(S a - 1) and ceil(S b - 1)); the MCSE is half the distance between them.
    Equals `arviz.mcse(x, method="quantile", prob=prob)`.

    Args:
        x: draws shaped (chains, draws, *event); at least 4 draws per chain, finite.
        prob: the quantile level, strictly between 0 and 1.

    Returns:
        MCSE of the quantile per event element.
    """
    if not isinstance(prob, int | float | np.floating) or not 0.0 < float(prob) < 1.0:
        raise ValueError(f"prob must be a number strictly between 0 and 1; got {prob!r}")
    arr = _as_draws(x, "x")
    values = _MCSE_QUANTILE(_flatten_event(arr), jnp.asarray(float(prob), arr.dtype))
    return values.reshape(arr.shape[2:])


def _element_names(name: str, event: tuple[int, ...]) -> list[str]:
    """`name` for a scalar, else `name[i,j,...]` with 1-based indices in row-major order."""
    if not event:
        return [name]
    return [f"{name}[{','.join(str(i + 1) for i in index)}]" for index in np.ndindex(*event)]


def summary(
    draws: Mapping[str, Float[ArrayLike, "chains draws *event"]],
) -> dict[str, dict[str, float]]:
    """Posterior summary of every element of every variable, posteriordb / Stan style.

    Args:
        draws: variable name -> draws shaped (chains, draws, *event), all with the same number
            of chains (>= 1) and draws (>= 4), finite.

    Returns:
        element name -> {"mean", "sd", "q5", "q50", "q95", "mcse_mean", "mcse_sd", "ess_bulk",
        "ess_tail", "rhat"} as Python floats. Element names are the variable name for a scalar
        and `name[i]`, `name[i,j]`, ... with 1-based indices (row-major) otherwise, e.g.
        `theta[1]`. sd uses ddof=1; q5, q50, q95 are type-7 quantiles over all draws; the
        other columns are `mcse_mean`, `mcse_sd`, `ess_bulk`, `ess_tail` and `rhat` of this
        module (rhat is NaN when there is a single chain).
    """
    if not isinstance(draws, Mapping):
        raise TypeError(
            f"draws must be a dict of variable name -> array (chains, draws, *event); got "
            f"{type(draws).__name__}"
        )
    if not draws:
        raise ValueError("draws is empty: give at least one variable")
    names: list[str] = []
    columns = []
    shape = None
    for key, value in draws.items():
        if not isinstance(key, str):
            raise TypeError(f"draws keys must be variable names (str); got {key!r}")
        label = f"draws[{key!r}]"
        arr = _as_draws(value, label)
        if shape is None:
            shape = arr.shape[:2]
            first = label
        elif arr.shape[:2] != shape:
            raise ValueError(
                f"{label} has {arr.shape[0]} chains x {arr.shape[1]} draws but {first} has "
                f"{shape[0]} x {shape[1]}; all variables must come from the same run"
            )
        names.extend(_element_names(key, tuple(arr.shape[2:])))
        columns.append(_flatten_event(arr))
    dtype = jnp.result_type(*columns)
    stacked = jnp.concatenate([c.astype(dtype) for c in columns], axis=2)
    table = np.asarray(_DIAGNOSTICS(stacked))
    return {
        name: {stat: float(v) for stat, v in zip(_SUMMARY_STATS, row, strict=False)}
        for name, row in zip(names, table, strict=True)
    }


def _format_value(stat: str, value: float) -> str:
    if math.isnan(value):
        return "nan"
    if stat.startswith("ess"):
        return f"{value:.0f}"
    if stat == "rhat":
        return f"{value:.3f}"
    return f"{value:.4g}"


def format_summary(summary: Mapping[str, Mapping[str, float]]) -> str:
    """A plain-text table of a `summary` result, one row per element.

    Args:
        summary: the dict returned by `summary` (element name -> statistic -> value).

    Returns:
        The table as a string: a header line, then one line per element, columns aligned;
        ESS as integers, R-hat to 3 decimals, the rest to 4 significant digits.
    """
    if not isinstance(summary, Mapping):
        raise TypeError(f"summary must be the dict returned by summary(); got {type(summary)}")
    stats = list(_SUMMARY_STATS)
    rows = [["", *stats]]
    for name, values in summary.items():
        missing = [s for s in stats if s not in values]
        if missing:
            raise ValueError(f"summary[{name!r}] lacks {missing}; expected keys {stats}")
        rows.append([name, *(_format_value(s, float(values[s])) for s in stats)])
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [
        row[0].ljust(widths[0])
        + "".join("  " + c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True))
        for row in rows
    ]
    return "\n".join(lines)
