r"""`discover_in_filter`: the library coefficients estimated inside the LETKF (MEDIDA-QG).

An alternative to regressing a filter's increments (`discover_from_increments`): every
member carries its own coefficients xi_i of the term library and is forecast by the
corrected model M + sum_j xi_ij theta_j (`CorrectedModel`), so the state is augmented by the
coefficients and the filter estimates both (Anderson 2001; Aksoy, Zhang & Nielsen-Gammon
2006, MWR 134; Kang, Kalnay, Liu, Fung, Miyoshi & Ide 2011, JGR 116). At each analysis the
field goes through the given LETKF (with its inflation or relaxation wrapper) unchanged; the
coefficients, which are global, are updated by the LETKF's local ETKF transforms averaged
over the local domains that hold an observed point (`LETKF.averaged_transform`, the spatially
averaged parameter update of Aksoy et al. 2006).

Why: the increments of a suboptimal filter carry its own analysis error, propagated over the
interval, which is not zero-mean given the library (the analyses are smoother than the truth
at the small scales), and a regression of increments attributes it to dissipation and
advection terms. In the augmented state the ensemble covariance between the coefficients and
the forecast at the observed points is an ensemble estimate of the forecast's sensitivity to
each term (what the integrated design computes), with the analysis uncertainty included.
On 64^2 two-layer QG without its bottom drag, 1% noise, every 2nd point of both layers
observed, the increment regression finds the drag 33-72% off; this estimator (the
`qg_model_error` pipeline's defaults, seeds 0-2) finds it 0.08-0.17% off with every other
term under 2% of its contribution (benchmarks/RESULTS_discovery.md, MEDIDA-QG).

Choices, each named by an argument:

* The coefficients are carried in scaled units z_j = xi_j / s_j, s_j = (RMS of layer l's
  state / `tendency_time`) / RMS(theta_j) over the initial ensemble: z_j = 1 is a tendency
  that changes the layer by its RMS in `tendency_time`. The streamfunction itself ("psi")
  is the exception: a negative coefficient is an anti-damping of rate |xi| / k^2 at the
  gravest mode k = 2 pi / length, far above its rate at the RMS scale, so there z = 1 is
  the rate 1 / `tendency_time` at that mode (else a member with z ~ -0.3 blows up in days).
* The prior is z ~ N(0, `prior_std`^2) per member, its ensemble mean set to exactly 0 (no
  correction: a weakly observed coefficient would otherwise keep its sampling error
  prior_std / sqrt(N)).
* The coefficients are updated from cycle `start` on: before, the innovations are the
  initial (climatological) ensemble's error, which one analysis of 40 members regresses onto
  the coefficient anomalies as spurious tendencies many times the model error, and which
  weakly observed directions take hundreds of cycles to forget.
* Each layer's coefficients are updated from that layer's observations only (`by_layer`,
  variable localisation as Kang et al. 2011 do for carbon fluxes): while the missing term
  makes large systematic innovations in one layer, the ensemble's chance covariances between
  the other layer's coefficients and those forecasts would push them (in the QG twin, upper-
  layer terms of 0.05-0.25x the lower layer's drag, gone by layer).
* After each analysis the spread of every z is floored at `spread_floor` (else the
  coefficients' spread collapses and they stop learning).
* The estimate is the time mean of the ensemble-mean coefficients over the cycles from
  `average_from` (a fraction of the run) to the end.
"""

import logging
import time
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._checks import check_finite, check_int, check_key, check_positive, check_range
from .._custom_types import Array, ArrayLike, Float, Key
from .._progress import progress_bar
from ..filters import LETKF, AbstractEnsembleFilter
from ..integrate import Flow
from ..observations import IndexObservation
from ._increments import _corrected_of, active_terms, check_twin_inputs
from ._layered_library import LayeredLibrary

logger = logging.getLogger("jaxsci.discovery")


class InFilterInfo(NamedTuple):
    """Diagnostics of `discover_in_filter`.

    Attributes:
        analysis_rmse: RMS error of the analysis means against `truth` over the averaged
            cycles (NaN without a truth).
        averaged_cycles: the cycles whose coefficients are averaged into the estimate,
            (first, last + 1).
        seconds: wall time of the "assimilation" (forecasts, analyses and coefficient
            updates, compilation included).
    """

    analysis_rmse: float
    averaged_cycles: tuple[int, int]
    seconds: dict


class InFilterDiscovery(NamedTuple):
    """What `discover_in_filter` found.

    Attributes:
        names: the library's column names.
        coefficients: xi, the time-mean ensemble-mean coefficients over the averaged
            cycles, every column (no pruning), (columns,).
        active: the columns whose contribution |xi_j| column_rms_j is at least `threshold`
            times the largest one.
        column_rms: the RMS of every library column over the initial ensemble (columns,):
            |xi_j| column_rms_j is term j's contribution, how terms of different units
            compare.
        scales: s_j, the unit of the scaled coefficient z_j = xi_j / s_j, (columns,).
        trajectory: the ensemble-mean coefficients after each analysis, (K, columns).
        spread: their ensemble standard deviations, (K, columns).
        analysis, background: the analysis and forecast means of the field, (K, *state)
            (their difference at the observed points is the cycle's increment).
        info: `InFilterInfo`.
    """

    names: tuple[str, ...]
    coefficients: Float[Array, " column"]
    active: Array
    column_rms: Float[Array, " column"]
    scales: Float[Array, " column"]
    trajectory: Float[Array, "time column"]
    spread: Float[Array, "time column"]
    analysis: Float[Array, "time layer y x"]
    background: Float[Array, "time layer y x"]
    info: InFilterInfo

    def terms(self) -> dict[str, float]:
        """{name: coefficient} of the active columns (Python floats)."""
        return active_terms(self.names, self.coefficients, self.active)


def _letkf_of(filter) -> LETKF:
    """The LETKF inside `filter` (itself, or wrapped by inflation / relaxation)."""
    inner = filter
    while not isinstance(inner, LETKF):
        inner = getattr(inner, "filter", None)
        if inner is None:
            raise TypeError(
                "`filter` must be a jaxsci.filters.LETKF, or an inflation or relaxation wrapper "
                f"around one (e.g. RTPS(LETKF(...))), got {type(filter).__name__}: the "
                "coefficients are updated by its local transforms."
            )
    return inner


def coefficient_scales(
    library: LayeredLibrary, states: Float[ArrayLike, "member layer y x"], tendency_time: float
) -> np.ndarray:
    """s_j of `discover_in_filter`: (RMS of layer l's state / `tendency_time`) / RMS(theta_j)
    over `states` (the gravest-mode rate for "psi" columns, see the module docstring),
    (columns,) float64."""
    return _scales(library, _column_rms(library, states), states, tendency_time)


def _column_rms(library: LayeredLibrary, states) -> np.ndarray:
    """RMS of every library column over `states`, (layer, term) float64."""
    theta = np.asarray(jax.vmap(library.term_fields)(jnp.asarray(states)), dtype=float)
    return np.sqrt(np.mean(theta**2, axis=(0, 2, 3)))


def _scales(library, col_rms, states, tendency_time) -> np.ndarray:
    """`coefficient_scales` from the columns' RMS (layer, term) over `states`."""
    check_positive("tendency_time", tendency_time)
    layer_rms = np.sqrt(np.mean(np.asarray(states, dtype=float) ** 2, axis=(0, 2, 3)))
    if np.any(col_rms == 0) or np.any(layer_rms == 0):
        raise ValueError(
            "a library column or a layer is zero on every member of the initial ensemble: its "
            "scale is undefined; give members with flow in every layer."
        )
    scales = (layer_rms[:, None] / tendency_time) / col_rms
    k_min = 2 * np.pi / float(library.grid.length)
    for j, term in enumerate(library.terms):
        if term == "psi":
            scales[:, j] = k_min**2 / tendency_time
    return scales.ravel()


def discover_in_filter(
    flow: Flow,
    library: LayeredLibrary,
    filter: AbstractEnsembleFilter,
    obs_op: IndexObservation,
    initial_ensemble: Float[ArrayLike, "ens dim"],
    observations: Float[ArrayLike, "time obs"],
    interval: float,
    *,
    key: Key,
    tendency_time: float,
    prior_std: float = 0.1,
    spread_floor: float = 0.05,
    start: int = 20,
    average_from: float = 0.5,
    threshold: float = 0.1,
    by_layer: bool = True,
    truth: Float[ArrayLike, "..."] | None = None,
    chunk: int = 20,
    progress: bool = True,
) -> InFilterDiscovery:
    r"""Estimate the library coefficients of a layered 2-D model's error inside the LETKF.

    See the module docstring for the estimator and its choices.

    Arguments:
        flow: the imperfect model's `jaxsci.integrate.Flow` (its dynamics a semilinear
            layered model such as `TwoLayerQG`, or a `CorrectedModel` of `library`, whose
            coefficients are then the base the estimated ones add to).
        library: the candidate terms (`LayeredLibrary` with the model's `streamfunction`).
        filter: the field's filter: a `jaxsci.filters.LETKF`, or an inflation / relaxation
            wrapper around one (e.g. `RTPS(LETKF(...), 0.7)`).
        obs_op: the observation of grid points, an `IndexObservation` of the flattened state.
        initial_ensemble: the members at t_0, (ens, dim) flattened states.
        observations: y_1..y_K at t_k = k `interval`, (K, obs).
        interval: Delta, the time between observations.
        key: PRNG key (the prior draws and the filter's keys).
        tendency_time: the time in which a unit scaled coefficient changes a layer by its
            RMS (the model's time units): sets the scales s_j.
        prior_std: the prior standard deviation of every scaled coefficient z_j (> 0).
        spread_floor: the smallest spread of every z_j after an analysis (>= 0).
        start: the first cycle whose analysis updates the coefficients (0-based).
        average_from: the estimate averages the cycles from this fraction of the run, in
            [0, 1), and from cycle `start` on.
        threshold: `active` marks the columns whose contribution is at least this fraction
            of the largest (the coefficients themselves are all kept).
        by_layer: update each layer's coefficients from that layer's observations only
            (variable localisation; False: every coefficient from all observations).
        truth: the true states at t_1..t_K, (K, *state), for the analysis RMSE (twins).
        chunk: cycles per compiled scan (the progress bar's step).
        progress: show a progress bar (on a terminal).

    Returns:
        `InFilterDiscovery`.

    Raises:
        ValueError: bad shapes or arguments (naming them), a non-finite analysis or
            coefficient (naming the cycle).
    """
    if not isinstance(library, LayeredLibrary):
        raise TypeError(f"`library` must be a LayeredLibrary, got {type(library).__name__}.")
    if not isinstance(obs_op, IndexObservation):
        raise TypeError(
            f"`obs_op` must be an IndexObservation of grid points, got {type(obs_op).__name__}."
        )
    letkf = _letkf_of(filter)
    if letkf.rotate:
        raise ValueError(
            "`filter`'s LETKF has rotate=True: its random rotation of the field's anomalies "
            "would not be applied to the coefficients', breaking their pairing; use rotate=False."
        )
    corrected = _corrected_of(flow, library)
    check_positive("interval", interval)
    check_positive("tendency_time", tendency_time)
    check_positive("prior_std", prior_std)
    check_positive("spread_floor", spread_floor, allow_zero=True)
    check_range("average_from", average_from, 0.0, 1.0, upper_open=True)
    check_range("threshold", threshold, 0.0, 1.0)
    chunk = check_int("chunk", chunk, minimum=1)
    key = check_key("key", key)
    shape = library.state_shape
    observations, initial_ensemble, truth = check_twin_inputs(
        library, obs_op, observations, initial_ensemble, truth
    )
    check_finite("observations", observations)
    num_cycles = observations.shape[0]
    start = check_int("start", start, minimum=0)
    first = max(start, int(average_from * num_cycles))
    if first >= num_cycles:
        raise ValueError(
            f"`start` = {start} and `average_from` = {average_from} leave no cycle of "
            f"{num_cycles} to average: give more observations."
        )
    n_members = initial_ensemble.shape[0]
    if n_members < 2:
        raise ValueError(f"`initial_ensemble` needs at least 2 members, got {n_members}.")
    check_finite("initial_ensemble", initial_ensemble)

    members = initial_ensemble.reshape(n_members, *shape)
    col_rms = _column_rms(library, members)  # once: the scales and the contributions
    scales = _scales(library, col_rms, members, tendency_time)
    column_rms = col_rms.ravel()
    n_cols = library.num_terms
    dtype = initial_ensemble.dtype
    # the domains whose transforms are averaged: those holding an observed point
    domains = np.unique(np.asarray(letkf.point_domain)[np.asarray(obs_op.indices)])
    # variable localisation: (observation mask, coefficient columns) per layer
    obs_layer = np.asarray(obs_op.indices) // int(np.prod(shape[1:]))
    n_terms = len(library.terms)
    if by_layer:
        groups = [
            (obs_layer == lay, np.arange(lay * n_terms, (lay + 1) * n_terms))
            for lay in range(shape[0])
        ]
        for lay, (mask, _) in enumerate(groups):
            if not mask.any():
                raise ValueError(
                    f"`obs_op` observes no point of layer {lay + 1}: with by_layer=True every "
                    "layer's coefficients need that layer's observations."
                )
    else:
        groups = [(None, np.arange(n_cols))]
    base = corrected.coefficients.astype(dtype)
    scale = jnp.asarray(scales, dtype=dtype)
    flow0 = Flow(corrected, flow.dt, flow.solver)
    key_prior, key_run = jax.random.split(key)
    z0 = prior_std * jax.random.normal(key_prior, (n_members, n_cols), dtype)
    z0 = z0 - jnp.mean(z0, axis=0)

    def forecast(x, z, t0):
        member = eqx.tree_at(lambda f: f.dynamics.coefficients, flow0, base + z * scale)
        return member.window(interval)(x.reshape(shape), t0).reshape(-1)

    def cycle(carry, inputs):
        x, z = carry
        y, k, i = inputs
        xf = jax.vmap(forecast, in_axes=(0, 0, None))(x, z, i * interval)
        xa = filter.update(k, xf, y, obs_op)
        zm = jnp.mean(z, axis=0)
        a = z - zm
        parts = []
        for mask, cols in groups:
            w, t = letkf.averaged_transform(xf, y, obs_op, domains, mask)
            parts.append((cols, w @ a[:, cols], t @ a[:, cols]))
        inc = jnp.zeros_like(zm)
        za = jnp.zeros_like(a)
        for cols, dm, da in parts:
            inc, za = inc.at[cols].set(dm), za.at[:, cols].set(da)
        sd = jnp.std(za, axis=0, ddof=1)
        za = za * jnp.maximum(1.0, spread_floor / jnp.maximum(sd, jnp.finfo(dtype).tiny))
        z_new = jnp.where(i >= start, zm + inc + za, z)
        zs = jnp.std(z_new, axis=0, ddof=1)
        return (xa, z_new), (jnp.mean(z_new, axis=0), zs, xa.mean(0), xf.mean(0))

    @eqx.filter_jit
    def run(carry, inputs):
        return jax.lax.scan(cycle, carry, inputs)

    keys = jax.random.split(key_run, num_cycles)
    steps = jnp.arange(num_cycles)
    carry = (initial_ensemble, z0)
    outs = []
    t = time.perf_counter()
    with progress_bar(progress, total=num_cycles, desc="in-filter discovery", unit="cycle") as bar:
        for lo in range(0, num_cycles, chunk):
            hi = min(lo + chunk, num_cycles)
            carry, out = run(carry, (observations[lo:hi], keys[lo:hi], steps[lo:hi]))
            zm, _, xm, _ = out
            finite = np.asarray(jnp.all(jnp.isfinite(xm), axis=1) & jnp.all(jnp.isfinite(zm), 1))
            if not finite.all():
                raise ValueError(
                    f"the augmented filter diverged at cycle {lo + int(np.argmin(finite)) + 1} "
                    "(counting from 1; a non-finite analysis or coefficient): lower `prior_std`, "
                    "raise the "
                    "ensemble size or the filter's relaxation."
                )
            outs.append(out)
            bar.update(hi - lo)
    seconds = {"assimilation": time.perf_counter() - t}
    zm = jnp.concatenate([o[0] for o in outs])
    zs = jnp.concatenate([o[1] for o in outs])
    analysis = jnp.concatenate([o[2] for o in outs]).reshape(num_cycles, *shape)
    background = jnp.concatenate([o[3] for o in outs]).reshape(num_cycles, *shape)
    trajectory = base + zm * scale
    spread = zs * scale
    coefficients = jnp.mean(trajectory[first:], axis=0)
    contribution = np.abs(np.asarray(coefficients, dtype=float)) * column_rms
    active = jnp.asarray(contribution >= threshold * contribution.max())
    rmse = float("nan")
    if truth is not None:
        rmse = float(jnp.sqrt(jnp.mean((analysis[first:] - truth[first:]) ** 2)))
    info = InFilterInfo(analysis_rmse=rmse, averaged_cycles=(first, num_cycles), seconds=seconds)
    logger.info(
        "in-filter discovery: %d cycles in %.1f s, averaged %d..%d",
        num_cycles,
        seconds["assimilation"],
        first,
        num_cycles,
    )
    return InFilterDiscovery(
        names=library.names,
        coefficients=coefficients,
        active=active,
        column_rms=jnp.asarray(column_rms),
        scales=jnp.asarray(scales),
        trajectory=trajectory,
        spread=spread,
        analysis=analysis,
        background=background,
        info=info,
    )
