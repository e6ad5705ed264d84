r"""`discover_model_error`: MEDIDA from sporadic, noisy observations, as one function.

The model-error discovery of Mojgani, Chattopadhyay & Hassanzadeh (2022, Chaos 32, 061105,
"MEDIDA"): given observations y_0..y_{K-1} of a truth every Delta and an imperfect model M,

1. (noisy observations) an EnKF runs the model through the observations and gives analysis
   and background means at every observation time (`jaxsci.filters.run_filter`);
2. model-error samples from consecutive states, s_k = (x_{k+1} - Phi_M(x_k)) / Delta, with
   the states chosen by an `AbstractSamplePairs` kind;
3. sparse regression of the samples on a term library (`fit_model_error`, with the
   "integrated" design exact for any Delta);
4. the corrected model M + sum_j xi_j theta_j (`CorrectedModel`).

With noisy observations steps 1-3 are repeated `passes` times, each EnKF running the model
corrected by the previous pass. The first pass runs the imperfect model, which lags the
truth unless the filter's gain is high: give it heavy inflation and relaxation
(`first_filter`); later passes run a nearly perfect model and can use moderate settings
(`filter`), and their background mean is an instrument for the regressors
(`InstrumentalPairs`, the default). Without noise (no `assimilation`) the observations are
the states and one regression is made.
"""

import logging
import time
from typing import NamedTuple

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp

from .._checks import check_choice, check_finite, check_int, check_key, check_positive
from .._custom_types import Array, ArrayLike, Float, Key
from ..dynamics import AbstractSemilinear
from ..filters import AbstractEnsembleFilter, AbstractObservation, run_filter
from ..integrate import Flow
from ._base import AbstractSparseRegression
from ._corrected import CorrectedModel
from ._fit import DESIGNS, ModelErrorFit, fit_model_error
from ._library import SpectralLibrary
from ._pairs import AbstractSamplePairs, InstrumentalPairs

logger = logging.getLogger("jaxsci.discovery")


class EnKFPasses(eqx.Module):
    """The data assimilation of `discover_model_error` for noisy observations.

    Attributes:
        obs_op: the observation model of the observations (its noise is the EnKF's R).
        filter: the ensemble filter of the passes that run the corrected model, e.g.
            `Inflation(RTPS(EnKF(), 0.5), 1.2)`.
        first_filter: the filter of the first pass, which runs the uncorrected model
            (default `filter`); heavy inflation and relaxation keep its analyses close to
            the observations.
        initial_ensemble: the members at the time of the first observation, (ens, dim),
            e.g. the first observation plus noise of the observation error's size.
        passes: EnKF + regression passes (>= 1).
        burn_in: analysis cycles left out of the samples and the rmse (>= 0).
        samples: how the states make samples (`InstrumentalPairs`, `ObservationPairs`,
            `AnalysisPairs`).
    """

    obs_op: AbstractObservation
    filter: AbstractEnsembleFilter
    first_filter: AbstractEnsembleFilter
    initial_ensemble: Float[Array, "ens dim"]
    samples: AbstractSamplePairs
    passes: int = eqx.field(static=True)
    burn_in: int = eqx.field(static=True)

    def __init__(
        self,
        obs_op: AbstractObservation,
        filter: AbstractEnsembleFilter,
        initial_ensemble: Float[Array, "ens dim"],
        *,
        first_filter: AbstractEnsembleFilter | None = None,
        passes: int = 2,
        burn_in: int = 0,
        samples: AbstractSamplePairs | None = None,
    ):
        for name, value in (("filter", filter), ("first_filter", first_filter)):
            if value is not None and not isinstance(value, AbstractEnsembleFilter):
                raise TypeError(
                    f"`{name}` must be an ensemble filter (AbstractEnsembleFilter, e.g. "
                    f"jaxsci.filters.EnKF()), got {type(value).__name__}."
                )
        if not isinstance(obs_op, AbstractObservation):
            raise TypeError(
                f"`obs_op` must be an AbstractObservation, got {type(obs_op).__name__}."
            )
        samples = InstrumentalPairs() if samples is None else samples
        if not isinstance(samples, AbstractSamplePairs):
            raise TypeError(
                "`samples` must be an AbstractSamplePairs (InstrumentalPairs(), "
                f"ObservationPairs(), AnalysisPairs()), got {type(samples).__name__}."
            )
        initial_ensemble = jnp.asarray(initial_ensemble)
        if initial_ensemble.ndim != 2 or initial_ensemble.shape[0] < 2:
            raise ValueError(
                f"`initial_ensemble` must be (ens >= 2, dim), got shape {initial_ensemble.shape}."
            )
        obs_op.check_state(initial_ensemble, "initial_ensemble")
        check_finite("initial_ensemble", initial_ensemble)
        self.obs_op = obs_op
        self.filter = filter
        self.first_filter = filter if first_filter is None else first_filter
        self.initial_ensemble = initial_ensemble
        self.samples = samples
        self.passes = check_int("passes", passes)
        self.burn_in = check_int("burn_in", burn_in, minimum=0)


class DiscoveryInfo(NamedTuple):
    """Diagnostics of `discover_model_error`, one entry per pass where it says so.

    Attributes:
        analysis_rmse: RMS error of the EnKF analysis means against the truth after the
            burn-in, (passes,); NaN without a truth, empty without assimilation.
        background_rmse: the same for the background (forecast) means, (passes,).
        samples: the sample kind of each pass (class names).
        num_samples: scalar samples of the last regression (state pairs x dim).
        assimilation_seconds, regression_seconds: wall time of the EnKF runs and of the
            regressions, compilation included.
    """

    analysis_rmse: Float[Array, " pass"]
    background_rmse: Float[Array, " pass"]
    samples: tuple[str, ...]
    num_samples: int
    assimilation_seconds: float
    regression_seconds: float


class ModelErrorDiscovery(NamedTuple):
    """What `discover_model_error` found.

    Attributes:
        fit: the last pass's `ModelErrorFit` (coefficients, covariance, selected terms).
        corrected: the corrected model, `model` plus the discovered terms.
        coefficients: xi after each pass, (passes, terms).
        analysis: the last pass's analysis means at the observation times (the initial
            ensemble mean first), (time, dim); None without assimilation.
        background: the background means likewise (the initial ensemble mean first).
        info: `DiscoveryInfo`.
    """

    fit: ModelErrorFit
    corrected: CorrectedModel
    coefficients: Float[Array, "pass term"]
    analysis: Float[Array, "time dim"] | None
    background: Float[Array, "time dim"] | None
    info: DiscoveryInfo


def _rmse(a, b):
    return jnp.sqrt(jnp.mean((a - b) ** 2))


def _assimilate(model, xi, library, flow_args, assimilation, first, observations, interval, key):
    """One EnKF run of the corrected model: (analysis means, background means), each with the
    initial ensemble mean at the first observation time."""
    dt, solver = flow_args
    flow = Flow(CorrectedModel(model, library, xi), dt, solver)
    filt = assimilation.first_filter if first else assimilation.filter
    res = run_filter(
        key,
        flow,
        assimilation.obs_op,
        filt,
        assimilation.initial_ensemble,
        observations[1:],
        dt=interval,
        compute_likelihood=False,
    )
    start = jnp.mean(assimilation.initial_ensemble, axis=0)[None]
    analysis = jnp.concatenate([start, res.mean_a])
    background = jnp.concatenate([start, res.mean_f])
    jax.block_until_ready(analysis)
    if not bool(jnp.all(res.finite)):
        raise ValueError(
            "the EnKF diverged (a non-finite analysis): increase the inflation of the "
            "filter (or the first filter) or the ensemble size."
        )
    return analysis, background


def discover_model_error(
    model: AbstractSemilinear,
    library: SpectralLibrary,
    regression: AbstractSparseRegression,
    observations: Float[ArrayLike, "time obs"],
    interval: float,
    *,
    dt: float,
    solver: diffrax.AbstractSolver | None = None,
    design: str = "integrated",
    refinements: int = 2,
    assimilation: EnKFPasses | None = None,
    truth: Float[ArrayLike, "time dim"] | None = None,
    key: Key | None = None,
    regression_key: Key | None = None,
) -> ModelErrorDiscovery:
    r"""Discover the error of `model` from observations every `interval` (MEDIDA).

    See the module docstring for the steps. The model can be any semilinear model whose
    state is the field on the library's periodic grid and whose spectral state is its
    `rfft` (what `CorrectedModel` needs): an `AbstractSemilinear` with `linear_operator()`
    of shape (n // 2 + 1,), `nonlinear(t, u_hat, args)`, `to_spectral`/`from_spectral` and
    `state_shape == (n,)`, n = `library.num_points` (and `length == library.length` if it
    has a length). Time steps: `jaxsci.integrate.Flow(model, dt, solver)`.

    Arguments:
        model: the imperfect model.
        library: the candidate terms of its error.
        regression: the sparse regression (`RVM`, `STLSQ`, `HorseshoeRegression`).
        observations: y_0..y_{K-1}, (K, obs). Without `assimilation` they are full states,
            (K, dim), taken as noise-free.
        interval: Delta, the time between observations (a multiple of `dt` keeps the model
            steps exact).
        dt: the integrator step of the model.
        solver: the integrator (default ETDRK4).
        design: "integrated" or "instantaneous" (see `fit_model_error`).
        refinements: Gauss-Newton re-linearisations of the integrated design.
        assimilation: `EnKFPasses` for noisy observations; None: noise-free states.
        truth: the true states at the observation times, (K, dim), to report the analysis
            rmse (twin experiments); not used by the discovery.
        key: PRNG key of the EnKF (the same in every pass, so passes differ only by the
            model); needed with `assimilation`.
        regression_key: PRNG key of sampling regressions (`HorseshoeRegression`), folded
            with the pass index.

    Returns:
        `ModelErrorDiscovery(fit, corrected, coefficients, analysis, background, info)`.

    Raises:
        ValueError: bad shapes, a sample kind that needs the full state with partial
            observations, a burn-in that leaves fewer than two pairs, a diverged EnKF, and
            the errors of `fit_model_error`.
    """
    check_choice("design", design, DESIGNS)
    check_positive("interval", interval)
    check_positive("dt", dt)
    interval = float(interval)
    observations = jnp.asarray(observations)
    if observations.ndim != 2 or observations.shape[0] < 2:
        raise ValueError(
            f"`observations` must be (time >= 2, obs), got shape {observations.shape}."
        )
    dim = library.num_points
    if truth is not None:
        truth = jnp.asarray(truth)
        if truth.shape != (observations.shape[0], dim):
            raise ValueError(
                f"`truth` has shape {truth.shape}, expected (time, dim) = "
                f"{(observations.shape[0], dim)}."
            )
    if assimilation is None:
        if observations.shape[1] != dim:
            raise ValueError(
                f"`observations` of shape {observations.shape} are not full states of "
                f"dimension {dim}; partial or noisy observations need `assimilation`."
            )
        passes, burn_in = 1, 0
    else:
        if key is None:
            raise TypeError("`key` (the EnKF's PRNG key) is needed with `assimilation`.")
        key = check_key("key", key)
        assimilation.obs_op.check_observation(observations, "observations")
        if assimilation.initial_ensemble.shape[1] != dim:
            raise ValueError(
                f"`assimilation.initial_ensemble` has shape "
                f"{assimilation.initial_ensemble.shape}; the state dimension is {dim}."
            )
        if assimilation.samples.needs_full_state and observations.shape[1] != dim:
            raise ValueError(
                f"`assimilation.samples` ({type(assimilation.samples).__name__}) uses the "
                f"observations as states, but they have dimension {observations.shape[1]}, "
                f"not the state's {dim}; use AnalysisPairs with partial observations."
            )
        passes, burn_in = assimilation.passes, assimilation.burn_in
        if burn_in + 3 > observations.shape[0]:
            raise ValueError(
                f"`assimilation.burn_in` = {burn_in} leaves fewer than 2 sample pairs of "
                f"{observations.shape[0]} observations."
            )
    xi = jnp.zeros(library.num_terms)
    history, rmse_a, rmse_f, kinds = [], [], [], []
    analysis = background = None
    seconds = {"assimilation": 0.0, "regression": 0.0}
    fit = None
    starts = observations
    for p in range(passes):
        if assimilation is None:
            starts, ends, where = observations[:-1], observations[1:], None
            kinds.append("noise-free")
        else:
            t = time.perf_counter()
            analysis, background = _assimilate(
                model, xi, library, (dt, solver), assimilation, p == 0, observations, interval, key
            )
            seconds["assimilation"] += time.perf_counter() - t
            if truth is not None:
                rmse_a.append(_rmse(analysis[burn_in:], truth[burn_in:]))
                rmse_f.append(_rmse(background[burn_in:], truth[burn_in:]))
            else:
                rmse_a.append(jnp.nan)
                rmse_f.append(jnp.nan)
            kind = assimilation.samples.for_pass(p == 0)
            kinds.append(type(kind).__name__)
            starts, ends, where = kind.pairs(observations, analysis, background, burn_in)
            logger.info(
                "pass %d: EnKF analysis rmse %.3g, background rmse %.3g; %s",
                p + 1,
                float(rmse_a[-1]),
                float(rmse_f[-1]),
                kinds[-1],
            )
        t = time.perf_counter()
        fit = fit_model_error(
            regression,
            model,
            library,
            starts,
            ends,
            interval,
            dt=dt,
            solver=solver,
            design=design,
            refinements=refinements,
            coefficients=xi,
            design_states=where,
            key=None if regression_key is None else jax.random.fold_in(regression_key, p),
        )
        jax.block_until_ready(fit.coefficients)
        seconds["regression"] += time.perf_counter() - t
        xi = fit.coefficients
        history.append(xi)
        logger.info("pass %d: found %s", p + 1, _fmt(fit.terms()))
    assert fit is not None  # passes >= 1
    info = DiscoveryInfo(
        analysis_rmse=jnp.asarray(rmse_a, dtype=jnp.result_type(float)),
        background_rmse=jnp.asarray(rmse_f, dtype=jnp.result_type(float)),
        samples=tuple(kinds),
        num_samples=int(starts.shape[0] * starts.shape[1]),
        assimilation_seconds=seconds["assimilation"],
        regression_seconds=seconds["regression"],
    )
    return ModelErrorDiscovery(
        fit=fit,
        corrected=fit.corrected(model, library),
        coefficients=jnp.stack(history),
        analysis=analysis,
        background=background,
        info=info,
    )


def _fmt(coefs: dict[str, float]) -> str:
    return "{" + ", ".join(f"{k}: {v:+.4g}" for k, v in coefs.items()) + "}"
