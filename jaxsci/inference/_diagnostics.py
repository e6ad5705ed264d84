"""MCMC convergence diagnostics: rank-normalised split R-hat, bulk/tail ESS and MCSE.

Everything here follows Vehtari, Gelman, Simpson, Carpenter and Buerkner (2021),
"Rank-normalization, folding, and localization: an improved R-hat for assessing convergence of
MCMC", Bayesian Analysis 16(2), 667-718 (arXiv:1903.08008), with the arithmetic choices of
ArviZ 0.23 (`arviz.rhat(method="rank")`, `arviz.ess`, `arviz.mcse`), so that the numbers agree
with ArviZ to rounding error. Where ArviZ and Stan differ the docstring says so.

Draws are shaped `(chains, draws, *event)`; every diagnostic is computed separately for each
event element and returned as a float64 NumPy array of shape `event`.

Why NumPy and not JAX: diagnostics are host-side post-processing of finished draws. A jitted
JAX version paid an XLA compile for every new draws shape, was
slower per element on CPU (XLA's CPU sort), computed in float32 unless the user enabled x64,
and could not raise on bad draws inside jit anyway. This version accepts NumPy or JAX device
arrays (copied to the host), always computes in float64 and needs no compilation. SciPy (a
dependency of JAX) supplies the average ranks, the normal quantile function and the Beta
quantile.

Notation: M chains of N draws. "Split" chains are the first and last floor(N/2) draws of each
chain (the middle draw is dropped when N is odd), giving 2M chains of n = floor(N/2) draws and
S = 2Mn draws in all. Internally arrays are element-major, shaped (elements, chains, draws).
"""

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import scipy.special
import scipy.stats

from .._custom_types import ArrayLike, Float

__all__ = [
    "ebfmi",
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
# Phi(-1) and Phi(1) to 7 digits, as ArviZ: the +-1 sd interval for the quantile MCSE.
_PHI_MINUS_ONE = 0.1586553
_PHI_PLUS_ONE = 0.8413447
_TAIL_PROBS = (0.05, 0.95)
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

Draws = Float[ArrayLike, "chains draws *event"]


# ------------------------------------------------------------------------------------------
# Building blocks on element-major arrays (elements, chains, draws).
# ------------------------------------------------------------------------------------------


def _split_chains(x: np.ndarray) -> np.ndarray:
    """First and last floor(n/2) draws of every chain, stacked as 2m chains."""
    n = x.shape[-1]
    half = n // 2
    return np.concatenate([x[..., :half], x[..., n - half :]], axis=-2)


def _z_scale(x: np.ndarray) -> np.ndarray:
    """Rank-normalisation, eq. (14) of Vehtari et al.: z = Phi^-1((r - 3/8) / (S - 2*3/8 + 1)),
    r the rank over all draws of an element, ties given their average rank."""
    flat = x.reshape(x.shape[0], -1)
    ranks = scipy.stats.rankdata(flat, method="average", axis=-1)
    size = flat.shape[-1]
    return scipy.special.ndtri((ranks - _BLOM_C) / (size - 2 * _BLOM_C + 1)).reshape(x.shape)


def _sorted_draws(x: np.ndarray) -> np.ndarray:
    """Each element's draws (all chains) in ascending order, shaped (elements, S)."""
    return np.sort(x.reshape(x.shape[0], -1), axis=-1)


def _quantile7(ordered: np.ndarray, prob: float) -> np.ndarray:
    """Hyndman-Fan type 7 quantile (R's default, numpy's 'linear') from sorted draws.

    With n sorted draws x_(1..n): h = n p + (1 - p), k = floor(clip(h, 1, n - 1)),
    g = clip(h - k, 0, 1), Q(p) = (1 - g) x_(k) + g x_(k+1), evaluated in this order, as
    scipy's `mquantiles(alphap=1, betap=1)` that ArviZ uses.
    """
    n = ordered.shape[-1]
    h = n * prob + (1.0 - prob)
    k = int(np.floor(np.clip(h, 1, n - 1)))
    g = float(np.clip(h - k, 0.0, 1.0))
    return (1.0 - g) * ordered[:, k - 1] + g * ordered[:, k]


def _rhat_basic(x: np.ndarray) -> np.ndarray:
    """Potential scale reduction, eq. (3)-(4) of Vehtari et al. (Gelman and Rubin 1992).

    W = mean of the chain variances, B = n * variance of the chain means (both with ddof=1),
    var+ = (n - 1) / n W + B / n, R-hat = sqrt(var+ / W). NaN when W = 0 (constant chains).
    """
    n = x.shape[-1]
    within = np.mean(np.var(x, axis=-1, ddof=1), axis=-1)
    between = n * np.var(np.mean(x, axis=-1), axis=-1, ddof=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.sqrt((between / within + n - 1) / n)


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


def _autocov(x: np.ndarray) -> np.ndarray:
    """Biased autocovariances gamma_t = (1/n) sum_i (x_i - xbar)(x_{i+t} - xbar), t = 0..n-1,
    of every chain, by a zero-padded FFT (Wiener-Khinchin; padding to >= 2n makes the
    circular correlation the linear one)."""
    n = x.shape[-1]
    length = _next_fast_len(2 * n)
    centred = x - np.mean(x, axis=-1, keepdims=True)
    spectrum = np.fft.rfft(centred, n=length, axis=-1)
    power = spectrum * np.conjugate(spectrum)
    return np.fft.irfft(power, n=length, axis=-1)[..., :n] / n


def _ess_raw(x: np.ndarray) -> np.ndarray:
    """Multi-chain effective sample size S / tau of each element's chains as given.

    Vehtari et al. eq. (9)-(10): with W the mean within-chain variance (ddof=1),
    var+ = (n-1)/n W + Var(chain means) (the last term only for m > 1), and gamma_{t,j} the
    autocovariance of chain j at lag t, the combined autocorrelation is
    rho_t = 1 - (W - mean_j gamma_{t,j}) / var+ (rho_0 = 1).
    tau = -1 + 2 sum_{t=0}^{2K-1} rho_t + rho_2K is Geyer's (1992) truncated estimator:
    pairs P_k = rho_2k + rho_{2k+1} are summed while positive (initial positive sequence,
    K = index of the first P_k <= 0, at most floor((n - 3) / 2)), replaced by their running
    minimum (initial monotone sequence), and rho_2K, the even lag of the first non-positive
    pair, is added when positive (Stan's improvement for antithetic chains). tau is bounded
    below by 1 / log10(S), i.e. ESS <= S log10(S). An element whose draws span less than
    1e-15 is constant and gets ESS = S. These are ArviZ's `_ess` index conventions, which equal
    Stan's `compute_effective_sample_size` (and the posterior R package) up to the loop bound.
    """
    _, m, n = x.shape
    size = m * n
    acov = _autocov(x)
    mean_var = np.mean(acov[..., 0], axis=-1) * n / (n - 1.0)
    var_plus = mean_var * (n - 1.0) / n
    if m > 1:
        var_plus = var_plus + np.var(np.mean(x, axis=-1), axis=-1, ddof=1)
    constant = np.max(x, axis=(1, 2)) - np.min(x, axis=(1, 2)) < _CONSTANT_RANGE
    with np.errstate(divide="ignore", invalid="ignore"):  # constant elements, replaced below
        rho = 1.0 - (mean_var[:, None] - np.mean(acov, axis=1)) / var_plus[:, None]
    rho[:, 0] = 1.0

    # The last pair index the initial positive sequence may reach (pair 0 alone when n < 5).
    k_max = max((n - 3) // 2, 0)
    pair = rho[:, 0 : 2 * k_max + 2 : 2] + rho[:, 1 : 2 * k_max + 2 : 2]  # P_0..P_kmax
    # Pair k (k >= 1) is examined only while P_0..P_{k-1} are all positive, so K, the number
    # of pairs kept, is the length of the leading run of positive pairs (at most k_max).
    leading = np.concatenate([pair[:, :k_max] > 0, np.zeros((len(x), 1), bool)], axis=1)
    n_pairs = np.argmin(leading, axis=1)
    monotone = np.minimum.accumulate(pair, axis=1)
    kept = np.arange(k_max + 1) < n_pairs[:, None]
    rows = np.arange(len(x))
    even_tail = rho[rows, 2 * n_pairs]
    # rho_2K enters when positive; also when P_K = 0 exactly (ArviZ then stores the pair).
    tail_term = np.where((even_tail > 0) | (pair[rows, n_pairs] >= 0), even_tail, 0.0)
    tau = -1.0 + 2.0 * np.sum(np.where(kept, monotone, 0.0), axis=1) + tail_term
    tau = np.maximum(tau, 1.0 / math.log10(size))
    ess = size / tau
    ess[np.isnan(rho).any(axis=1)] = np.nan
    ess[constant] = size
    return ess


# ------------------------------------------------------------------------------------------
# Diagnostics of element-major draws (elements, chains, draws).
# ------------------------------------------------------------------------------------------


def _rhat_rank(x: np.ndarray, z_split: np.ndarray | None = None) -> np.ndarray:
    """max(bulk, folded) rank-normalised split R-hat; `z_split` = _z_scale(split) if known."""
    split = _split_chains(x)
    if z_split is None:
        z_split = _z_scale(split)
    bulk = _rhat_basic(z_split)
    median = np.median(split.reshape(len(x), -1), axis=-1)
    tail = _rhat_basic(_z_scale(np.abs(split - median[:, None, None])))
    # ArviZ takes Python's max(bulk, tail): a NaN bulk wins, a NaN tail is ignored.
    return np.where(tail > bulk, tail, bulk)


def _ess_bulk(x: np.ndarray) -> np.ndarray:
    return _ess_raw(_z_scale(_split_chains(x)))


def _ess_quantile(x: np.ndarray, prob: float, ordered: np.ndarray | None = None) -> np.ndarray:
    """ESS of the split chains of I(x <= q_prob); `ordered` = _sorted_draws(x) if known."""
    if ordered is None:
        ordered = _sorted_draws(x)
    indicator = (x <= _quantile7(ordered, prob)[:, None, None]).astype(np.float64)
    return _ess_raw(_split_chains(indicator))


def _ess_tail(x: np.ndarray, ordered: np.ndarray | None = None) -> np.ndarray:
    if ordered is None:
        ordered = _sorted_draws(x)
    return np.minimum(*(_ess_quantile(x, p, ordered) for p in _TAIL_PROBS))


def _ess_mean(x: np.ndarray) -> np.ndarray:
    return _ess_raw(_split_chains(x))


def _sd(x: np.ndarray) -> np.ndarray:
    return np.std(x.reshape(len(x), -1), axis=-1, ddof=1)


def _mcse_mean(x: np.ndarray) -> np.ndarray:
    return _sd(x) / np.sqrt(_ess_mean(x))


def _mcse_sd(x: np.ndarray) -> np.ndarray:
    # Delta method on sd = sqrt(v), v = E[(x - mu)^2], with the ESS of the squared deviations.
    flat = x.reshape(len(x), -1)
    sq = (x - np.mean(flat, axis=-1)[:, None, None]) ** 2
    sq_flat = sq.reshape(len(x), -1)
    evar = np.mean(sq_flat, axis=-1)
    varvar = (np.mean(sq_flat**2, axis=-1) - evar**2) / _ess_mean(sq)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.sqrt(varvar / evar / 4)


def _mcse_quantile(x: np.ndarray, prob: float) -> np.ndarray:
    # Vehtari et al. section 4.3: the +-1 sd interval of the Beta(S_eff p + 1, S_eff (1-p) + 1)
    # distribution of the indicator mean, mapped through the order statistics; MCSE = half
    # its width.
    ordered = _sorted_draws(x)
    ess = _ess_quantile(x, prob, ordered)
    a = ess * prob + 1
    b = ess * (1 - prob) + 1
    size = ordered.shape[-1]
    low = scipy.special.betaincinv(a, b, _PHI_MINUS_ONE) * size - 1
    high = scipy.special.betaincinv(a, b, _PHI_PLUS_ONE) * size - 1
    i_low = np.floor(np.maximum(low, 0)).astype(int)
    i_high = np.ceil(np.minimum(high, size - 1)).astype(int)
    rows = np.arange(len(x))
    return (ordered[rows, i_high] - ordered[rows, i_low]) / 2


# ------------------------------------------------------------------------------------------
# Input checks and the public functions.
# ------------------------------------------------------------------------------------------


def _as_draws(x: Any, name: str, *, min_chains: int = 1) -> np.ndarray:
    """Validate draws shaped (chains, draws, *event); return them float64, element-major."""
    if isinstance(x, Mapping):
        raise TypeError(
            f"{name} must be an array of draws shaped (chains, draws, *event); got a "
            f"{type(x).__name__} (use `summary` for a dict of variables)"
        )
    try:
        arr = np.asarray(x)
    except (TypeError, ValueError) as err:  # a JAX tracer (under jit), a ragged list, ...
        raise TypeError(
            f"{name} must be a concrete numeric array of draws shaped (chains, draws, *event) "
            f"(the diagnostics run on the host, outside jit); could not convert "
            f"{type(x).__name__}: {err}"
        ) from err
    if arr.dtype.kind == "c":
        raise TypeError(f"{name} must hold real draws; got dtype {arr.dtype}")
    if arr.dtype.kind not in "biuf":
        raise TypeError(
            f"{name} must be a numeric array of draws shaped (chains, draws, *event); got "
            f"{type(x).__name__} of dtype {arr.dtype}"
        )
    if arr.ndim < 2:
        raise ValueError(
            f"{name} must be shaped (chains, draws, *event); got shape {arr.shape} "
            "(a single chain of draws is x[None])"
        )
    chains, draws = arr.shape[:2]
    if chains < min_chains:
        raise ValueError(
            f"{name} has shape {arr.shape}: {chains} chain(s), but at least {min_chains} are "
            "needed"
            + (
                " for R-hat, which compares chains (ArviZ returns NaN here; `summary` reports "
                "rhat = nan for a single chain)"
                if min_chains > 1
                else ""
            )
        )
    if draws < _MIN_DRAWS:
        raise ValueError(
            f"{name} has shape {arr.shape}: {draws} draws per chain, but at least {_MIN_DRAWS} "
            "are needed (two split halves of >= 2 draws)"
        )
    arr = arr.astype(np.float64)
    finite = np.isfinite(arr)
    if not finite.all():
        bad = tuple(int(i) for i in np.argwhere(~finite)[0])
        raise ValueError(
            f"{name} has {int((~finite).sum())} non-finite draw(s) (first at index {bad}, "
            f"value {arr[bad]}); diagnostics need finite draws"
        )
    return np.moveaxis(arr.reshape(chains, draws, -1), -1, 0)


def _per_element(fn, x: Any, *args, min_chains: int = 1) -> np.ndarray:
    elements = _as_draws(x, "x", min_chains=min_chains)
    event = np.shape(x)[2:]
    return fn(elements, *args).reshape(event)


def rhat(x: Draws) -> np.ndarray:
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
        R-hat per event element, float64 of shape `event` (NaN for an element whose draws are
        all equal).
    """
    return _per_element(_rhat_rank, x, min_chains=2)


def ess_bulk(x: Draws) -> np.ndarray:
    """Bulk effective sample size: the ESS of the rank-normalised split chains.

    Vehtari et al. (2021) section 4.1: ESS (eq. 11, Geyer's initial monotone sequence, see
    `ess_mean`) of z = Phi^-1((r - 3/8) / (S + 1/4)) over the split chains. Robust to heavy
    tails; measures sampling efficiency in the bulk. Equals `arviz.ess(x, method="bulk")`.

    Args:
        x: draws shaped (chains, draws, *event); at least 4 draws per chain, finite.

    Returns:
        Bulk ESS per event element (float64, shape `event`), at most S log10(S).
    """
    return _per_element(_ess_bulk, x)


def ess_tail(x: Draws) -> np.ndarray:
    """Tail effective sample size: min of the ESS of the 5% and 95% quantile indicators.

    Vehtari et al. (2021) section 4.3: with q_p the type-7 quantile of all draws, the ESS of
    the split chains of I(x <= q_p) for p = 0.05 and 0.95; their minimum. Equals
    `arviz.ess(x, method="tail")`.

    Args:
        x: draws shaped (chains, draws, *event); at least 4 draws per chain, finite.

    Returns:
        Tail ESS per event element (float64, shape `event`).
    """
    return _per_element(_ess_tail, x)


def ess_mean(x: Draws) -> np.ndarray:
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
        ESS per event element (float64, shape `event`).
    """
    return _per_element(_ess_mean, x)


def mcse_mean(x: Draws) -> np.ndarray:
    """Monte Carlo standard error of the posterior mean: sd(x) / sqrt(ess_mean(x)).

    sd is over all draws with ddof=1. Equals `arviz.mcse(x, method="mean")`.

    Args:
        x: draws shaped (chains, draws, *event); at least 4 draws per chain, finite.

    Returns:
        MCSE of the mean per event element (float64, shape `event`).
    """
    return _per_element(_mcse_mean, x)


def mcse_sd(x: Draws) -> np.ndarray:
    """Monte Carlo standard error of the posterior standard deviation.

    Delta method on sd = sqrt(v), v = E[(x - mu)^2]: with d = (x - mean(x))^2,
    Var(v_hat) = (mean(d^2) - mean(d)^2) / ess_mean(d) and MCSE = sqrt(Var(v_hat) / (4 v)).
    Equals `arviz.mcse(x, method="sd")` (and the `mcse_sd` column of `arviz.summary`).

    Args:
        x: draws shaped (chains, draws, *event); at least 4 draws per chain, finite.

    Returns:
        MCSE of the sd per event element (float64, shape `event`; NaN for constant draws).
    """
    return _per_element(_mcse_sd, x)


def mcse_quantile(x: Draws, prob: float) -> np.ndarray:
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
        MCSE of the quantile per event element (float64, shape `event`).
    """
    if (
        isinstance(prob, bool)
        or not isinstance(prob, int | float | np.floating)
        or not 0.0 < float(prob) < 1.0
    ):
        raise ValueError(f"prob must be a number strictly between 0 and 1; got {prob!r}")
    return _per_element(_mcse_quantile, x, float(prob))


def ebfmi(energy: Float[ArrayLike, "chains draws"]) -> np.ndarray:
    """Estimated Bayesian fraction of missing information (E-BFMI) of each chain.

    Betancourt (2016), "Diagnosing suboptimal cotangent disintegrations in Hamiltonian Monte
    Carlo" (arXiv:1604.00695), eq. 10: the mean of (E_t - E_{t-1})^2 over the variance of a
    chain's Hamiltonian energies E_t (ddof=1, as `arviz.bfmi`, which this equals). It compares
    how far one momentum resampling moves the energy with the spread of the energy's
    marginal: below 0.3 (Stan's threshold) the chain explores the energy levels slowly,
    typically in heavy tails or a funnel.

    Args:
        energy: Hamiltonian energies shaped (chains, draws) (`sample_stats["energy"]`), at
            least 4 draws per chain, finite.

    Returns:
        E-BFMI per chain, float64 of shape (chains,).
    """
    x = _as_draws(energy, "energy")
    if x.shape[0] != 1:
        raise ValueError(f"energy must be shaped (chains, draws); got shape {np.shape(energy)}")
    e = x[0]
    return np.mean(np.square(np.diff(e, axis=-1)), axis=-1) / np.var(e, axis=-1, ddof=1)


def _element_names(name: str, event: tuple[int, ...]) -> list[str]:
    """`name` for a scalar, else `name[i,j,...]` with 1-based indices in row-major order."""
    if not event:
        return [name]
    return [f"{name}[{','.join(str(i + 1) for i in index)}]" for index in np.ndindex(*event)]


def summary(draws: Mapping[str, Draws]) -> dict[str, dict[str, float]]:
    """Posterior summary of every element of every variable, posteriordb / Stan style.

    Args:
        draws: variable name -> draws shaped (chains, draws, *event), all with the same number
            of chains (>= 1) and draws (>= 4), finite.

    Returns:
        element name -> {"mean", "sd", "q5", "q50", "q95", "mcse_mean", "mcse_sd", "ess_bulk",
        "ess_tail", "rhat"} as Python floats. Element names are the variable name for a scalar
        and `name[i]`, `name[i,j]`, ... with 1-based indices (row-major) otherwise, e.g.
        `theta[1]`. sd uses ddof=1; q5, q50, q95 are type-7 quantiles over all draws (R's and
        numpy's default); the other columns are `mcse_mean`, `mcse_sd`, `ess_bulk`, `ess_tail`
        and `rhat` of this module (rhat is NaN when there is a single chain, as in ArviZ).
    """
    if not isinstance(draws, Mapping):
        raise TypeError(
            f"draws must be a dict of variable name -> array (chains, draws, *event); got "
            f"{type(draws).__name__}"
        )
    if not draws:
        raise ValueError("draws is empty: give at least one variable")
    names: list[str] = []
    blocks = []
    first = ""
    for key, value in draws.items():
        if not isinstance(key, str):
            raise TypeError(f"draws keys must be variable names (str); got {key!r}")
        label = f"draws[{key!r}]"
        elements = _as_draws(value, label)
        if blocks and elements.shape[1:] != blocks[0].shape[1:]:
            (m0, n0), (m, n) = blocks[0].shape[1:], elements.shape[1:]
            raise ValueError(
                f"{label} has {m} chains x {n} draws but {first} has {m0} x {n0}; all "
                "variables must come from the same run"
            )
        first = first or label
        names.extend(_element_names(key, np.shape(value)[2:]))
        blocks.append(elements)
    x = np.concatenate(blocks, axis=0)
    ordered = _sorted_draws(x)
    z_split = _z_scale(_split_chains(x))  # shared by bulk ESS and R-hat
    columns = {
        "mean": np.mean(x.reshape(len(x), -1), axis=-1),
        "sd": _sd(x),
        "q5": _quantile7(ordered, 0.05),
        "q50": _quantile7(ordered, 0.5),
        "q95": _quantile7(ordered, 0.95),
        "mcse_mean": _mcse_mean(x),
        "mcse_sd": _mcse_sd(x),
        "ess_bulk": _ess_raw(z_split),
        "ess_tail": _ess_tail(x, ordered),
        "rhat": _rhat_rank(x, z_split) if x.shape[1] > 1 else np.full(len(x), np.nan),
    }
    return {
        name: {stat: float(columns[stat][i]) for stat in _SUMMARY_STATS}
        for i, name in enumerate(names)
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
        raise TypeError(
            f"summary must be the dict returned by summary(); got {type(summary).__name__}"
        )
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
