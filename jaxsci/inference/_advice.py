"""What to change after a poor MCMC run: Stan's post-run checks, each with a concrete remedy.

`diagnose(result)` runs the checks of CmdStan's `diagnose` and of Vehtari et al. (2021) on a
finished `PosteriorResult` and returns one `Advice` per failed check, naming the numbers and
the setting to change (with the value to try):

- divergences > 0: raise `target_accept` (the next of 0.95, 0.99, 0.999), and reparameterise
  (e.g. non-centred) if they persist; where the divergent draws cluster is named.
- rank-normalised R-hat > 1.01 (Vehtari et al. 2021): the chains disagree: run longer.
- bulk or tail ESS below 100 per chain (Vehtari et al. 2021 ask for 400 over 4 chains): more
  draws, with the number that would reach it.
- NUTS trajectories cut at `max_tree_depth`: raise it.
- E-BFMI < 0.3 in a chain (Betancourt 2016): reparameterise.
- with any of these, a diagonal mass matrix on a posterior with |correlation| >= 0.8 between
  two coordinates: `dense_mass=True`.

A clean run gives no advice.
"""

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from ._diagnostics import _element_names, ebfmi
from ._samplers import NUTS, NumpyroNUTS

if TYPE_CHECKING:
    from ._result import PosteriorResult

# Vehtari et al. (2021), section 4: R-hat above 1.01 flags non-convergence, and bulk and tail
# ESS should exceed 100 per chain (their 400 for 4 chains) for reliable MCSE estimates.
RHAT_MAX = 1.01
ESS_PER_CHAIN = 100
# Stan's E-BFMI threshold (Betancourt 2016, arXiv:1604.00695, section 6).
EBFMI_MIN = 0.3
# Target acceptances to suggest after divergences, in order: a smaller step size each (Stan's
# usual advice: adapt_delta 0.95, then 0.99); the last is as far as step-size tuning goes.
TARGET_ACCEPT_LADDER = (0.95, 0.99, 0.999)
# |correlation| from which a diagonal metric is the likely bottleneck: at 0.8 the 2-D
# correlation matrix has condition number (1 + 0.8) / (1 - 0.8) = 9, so a diagonal metric's
# leapfrog step (set by the narrow direction) is 3x shorter than the long direction's scale.
CORRELATION_MIN = 0.8
# Divergent draws are reported as clustered in a coordinate when their mean lies at least
# half a posterior sd from the posterior mean there and at least 3 standard errors away (a
# random subset of n draws has a mean within about sd / sqrt(n) of the posterior mean).
CLUSTER_SDS = 0.5
CLUSTER_SE = 3.0


class Advice(NamedTuple):
    """One failed check of a run: `kind` ('divergences', 'rhat', 'ess', 'tree_depth',
    'ebfmi' or 'dense_mass'), what was seen (`problem`, with its numbers) and what to change
    (`suggestion`, naming the setting and a value to try)."""

    kind: str
    problem: str
    suggestion: str

    def __str__(self) -> str:
        return f"{self.problem} {self.suggestion}"


def _coordinate_names(result: "PosteriorResult") -> list[str]:
    """Names of the sampler's unconstrained coordinates: the parameters' element names
    (`theta[1]`) when they match one to one, else `u[1]`, `u[2]`, ..."""
    names = [
        n for p in result.parameter_names for n in _element_names(p, result.draws[p].shape[2:])
    ]
    dim = result.unconstrained.shape[-1]
    return names if len(names) == dim else [f"u[{i + 1}]" for i in range(dim)]


def _cluster(result: "PosteriorResult", names: list[str]) -> str:
    """Where the divergent transitions' draws sit, if they cluster in one coordinate."""
    u = result.unconstrained.reshape(-1, result.unconstrained.shape[-1])
    div = np.asarray(result.sample_stats["diverging"]).reshape(-1)
    sd = np.std(u, axis=0)
    z = (u[div].mean(axis=0) - u.mean(axis=0)) / np.where(sd > 0, sd, 1.0)
    j = int(np.argmax(np.abs(z)))
    if abs(z[j]) < CLUSTER_SDS or abs(z[j]) * np.sqrt(div.sum()) < CLUSTER_SE:
        return ""
    return (
        f" They cluster where {names[j]} is {'low' if z[j] < 0 else 'high'} (their mean is "
        f"{abs(z[j]):.1f} posterior sd {'below' if z[j] < 0 else 'above'} the mean): a region "
        "of high curvature there, such as the neck of a hierarchical funnel."
    )


def _strongest_correlation(result: "PosteriorResult", names: list[str]) -> tuple[float, str]:
    u = result.unconstrained.reshape(-1, result.unconstrained.shape[-1])
    if u.shape[1] < 2:
        return 0.0, ""
    sd = np.std(u, axis=0)
    keep = sd > 0
    corr = np.zeros((u.shape[1],) * 2)
    corr[np.ix_(keep, keep)] = np.corrcoef(u[:, keep], rowvar=False)
    np.fill_diagonal(corr, 0.0)
    i, j = np.unravel_index(int(np.argmax(np.abs(corr))), corr.shape)
    return float(corr[i, j]), f"{names[min(i, j)]} and {names[max(i, j)]}"


def diagnose(
    result: "PosteriorResult", summary: Mapping[str, Mapping[str, float]] | None = None
) -> tuple[Advice, ...]:
    """The failed post-run checks of `result`, each with what to change (see module doc).

    Arguments:
        result: a finished run.
        summary: `result.summary()` if already computed (it is recomputed otherwise).

    Returns:
        One `Advice` per failed check, most serious first (divergences, R-hat, ESS, tree
        depth, E-BFMI, then the dense-mass hint); empty for a run that passes them all.
    """
    summary = result.summary() if summary is None else summary
    sampler = result.sampler
    chains, draws = result.num_chains, result.num_samples
    num_warmup = int(result.warmup_stats["n_steps"].shape[1])
    names = _coordinate_names(result)
    out: list[Advice] = []

    n_div = result.divergences
    if n_div:
        current = np.asarray(sampler.target_accept)
        # compared in the field's precision (float32 0.95 is 0.94999999) and shown at 4 digits
        higher = [a for a in TARGET_ACCEPT_LADDER if np.asarray(a, current.dtype) > current]
        accept = float(f"{float(current):.4g}")
        reparam = (
            "reparameterise: e.g. the non-centred form of a hierarchical scale (Neal's funnel "
            "v ~ N(0, 3^2), x ~ N(0, e^v) sampled as x = exp(v/2) z, z ~ N(0, 1))"
        )
        suggestion = (
            f"Raise target_accept from {accept:g} to {higher[0]:g} (a smaller step size); if "
            f"divergences persist, {reparam}."
            if higher
            else f"target_accept is already {accept:g}: {reparam}."
        )
        out.append(
            Advice(
                "divergences",
                f"{n_div} of {chains * draws} post-warmup transitions diverged: the draws may "
                "be biased." + _cluster(result, names),
                suggestion,
            )
        )

    rhats = {k: v["rhat"] for k, v in summary.items() if not math.isnan(v["rhat"])}
    if rhats and max(rhats.values()) > RHAT_MAX:
        worst = max(rhats, key=rhats.__getitem__)
        out.append(
            Advice(
                "rhat",
                f"max R-hat {rhats[worst]:.3f} > {RHAT_MAX} ({worst}): the chains have not "
                "mixed (they disagree about the posterior).",
                f"Run longer: e.g. num_warmup {num_warmup} -> {max(2 * num_warmup, 1000)} and "
                f"num_samples {draws} -> {2 * draws}; if R-hat stays high, the posterior may be "
                "multimodal (compare the chains; start them from `init`) or badly shaped (see "
                "the other advice).",
            )
        )

    need = ESS_PER_CHAIN * chains
    ess = {k: min(v["ess_bulk"], v["ess_tail"]) for k, v in summary.items()}
    worst = min(ess, key=ess.__getitem__)
    if ess[worst] < need:
        more = math.ceil(draws * need / max(ess[worst], 1.0) / 100) * 100
        out.append(
            Advice(
                "ess",
                f"min ESS {ess[worst]:.0f} ({worst}, bulk {summary[worst]['ess_bulk']:.0f}, "
                f"tail {summary[worst]['ess_tail']:.0f}) < {need} ({ESS_PER_CHAIN} per chain): "
                "too few effective draws for reliable means and intervals.",
                f"Draw more: about num_samples {more} per chain at this efficiency (now "
                f"{draws})"
                + (", after the changes above, which usually raise it." if out else "."),
            )
        )

    if isinstance(sampler, NUTS | NumpyroNUTS):
        depth = sampler.max_tree_depth
        hits = int(np.sum(np.asarray(result.sample_stats["tree_depth"]) >= depth))
        if hits:
            out.append(
                Advice(
                    "tree_depth",
                    f"{hits} of {chains * draws} transitions hit max_tree_depth {depth}: their "
                    "trajectories were cut short (slow exploration, not bias).",
                    f"Raise max_tree_depth to {min(depth + 2, 20)}.",
                )
            )

    # (static HMC records the trajectory end's energy, which a divergence can make infinite:
    # E-BFMI is then undefined and the divergence advice says what to do)
    energy = np.asarray(result.sample_stats["energy"])
    low = ebfmi(energy) if np.all(np.isfinite(energy)) else np.full(chains, np.inf)
    if np.any(low < EBFMI_MIN):
        bad = [f"{c + 1}: {e:.2f}" for c, e in enumerate(low) if e < EBFMI_MIN]
        out.append(
            Advice(
                "ebfmi",
                f"E-BFMI < {EBFMI_MIN} in chain(s) {', '.join(bad)}: momentum resampling moves "
                "slowly between energy levels (heavy tails or a funnel).",
                "Reparameterise (e.g. non-centred), or lengthen num_warmup.",
            )
        )

    if out and not sampler.dense_mass:
        rho, pair = _strongest_correlation(result, names)
        if abs(rho) >= CORRELATION_MIN:
            out.append(
                Advice(
                    "dense_mass",
                    f"The posterior correlation of {pair} is {rho:+.2f} (unconstrained "
                    "coordinates) and the mass matrix is diagonal.",
                    "Use dense_mass=True (a dense inverse mass matrix adapts to the "
                    "correlations: longer steps, fewer gradients per effective draw).",
                )
            )
    return tuple(out)
