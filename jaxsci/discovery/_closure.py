r"""Closures learned from noisy, sparse observations: through a differentiable ensemble
filter (`learn_closure`), or by regressing filter increments on the state
(`fit_closure_to_increments`).

Both start from a model whose physics is known up to unresolved terms (e.g. one-scale
Lorenz-96 standing for the two-scale system) and return the hybrid
`jaxsci.nn.HybridVectorField(physics, closure)`.
"""

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

from .._checks import check_int, check_key, check_positive, finite_float
from .._custom_types import Array, Float, Key
from ..dynamics import AbstractDynamics
from ..filters import (
    AbstractEnsembleFilter,
    AbstractFilter,
    FilterResult,
    Inflation,
    run_filter,
)
from ..integrate import Flow
from ..losses import AbstractLoss, FilterLikelihoodLoss, filter_windows, window_starts
from ..nn import HybridVectorField, LocalPolynomial
from ..observations import AbstractObservation
from ..train import fit


class _Trained(eqx.Module):
    """What `learn_closure` trains: the closure (or the whole hybrid, `train_physics`) and,
    with `train_inflation`, s = log(factor - 1) of the filter's multiplicative inflation."""

    model: Any
    log_excess_inflation: Float[Array, ""] | None


def _inflation_of(log_excess: Float[Array, ""]) -> Float[Array, ""]:
    """The inflation factor 1 + exp(s) of its trained parameter s (always > 1)."""
    return 1.0 + jnp.exp(log_excess)


class _FilterLoss(AbstractLoss):
    """The filter likelihood of `HybridVectorField(physics, closure)` (or of the trained
    hybrid with `train_physics`), its filter inflated by the trained factor when given: the
    physics' parameters (unless trained) and the inner filter are constants of the loss."""

    loss: FilterLikelihoodLoss
    physics: AbstractDynamics
    train_physics: bool = eqx.field(static=True)

    def hybrid(self, trained: _Trained) -> HybridVectorField:
        if self.train_physics:
            return trained.model
        return HybridVectorField(self.physics, trained.model)

    def __call__(self, model, batch, *, key=None):
        loss = self.loss
        if model.log_excess_inflation is not None:
            inner = loss.filter
            assert isinstance(inner, Inflation)  # learn_closure checked it
            factor = _inflation_of(model.log_excess_inflation)
            loss = eqx.tree_at(lambda obj: obj.filter, loss, Inflation(inner.filter, factor))
        value, aux = loss(self.hybrid(model), batch, key=key)
        if model.log_excess_inflation is not None:
            aux = {**aux, "inflation": _inflation_of(model.log_excess_inflation)}
        return value, aux


def _check_driver_inputs(physics, key, dt) -> tuple[Key, float]:
    """The arguments both closure drivers share: the physics, the key, dt > 0."""
    if not isinstance(physics, AbstractDynamics):
        raise TypeError(f"`physics` must be an AbstractDynamics, got {type(physics).__name__}.")
    dt = finite_float("dt", dt)
    check_positive("dt", dt)
    return check_key("key", key), dt


def _check_run(result: FilterResult, what: str) -> None:
    if not bool(jnp.all(result.finite)):
        first = int(np.argmin(np.asarray(result.finite)))
        raise ValueError(
            f"{what}: the ensemble filter diverged (non-finite analysis at cycle {first + 1}); "
            "increase the inflation or the ensemble size, or start nearer the observations."
        )


class ClosureTraining(NamedTuple):
    """What `learn_closure` returns.

    Attributes:
        model: the trained `HybridVectorField(physics, closure)`.
        filter: the filter the closure was trained with: with `train_inflation`, the given
            `Inflation` at its trained factor, else the given filter.
        history: `jaxsci.train.fit`'s history (loss per step, `aux/finite`, `aux/spread_a`,
            `aux/inflation` with `train_inflation`, `stopped`).
        record: the filter run of the physics alone whose analysis ensembles start the
            training windows.
        num_windows: the number of training windows.
    """

    model: HybridVectorField
    filter: AbstractFilter
    history: dict[str, Any]
    record: FilterResult
    num_windows: int


def learn_closure(
    physics: AbstractDynamics,
    closure: Callable,
    obs_op: AbstractObservation,
    filter: AbstractFilter,
    observations: Float[Array, "time obs"],
    initial_ensemble: Float[Array, "ens dim"],
    dt: float,
    *,
    key: Key,
    window: int = 20,
    stride: int = 10,
    burn_in: int = 5,
    skip: int = 20,
    optimizer: optax.GradientTransformation | None = None,
    num_steps: int = 200,
    batch_size: int = 4,
    step: float | None = None,
    max_steps: int = 4,
    train_physics: bool = False,
    train_inflation: bool = True,
    checkpoint_dir=None,
    progress: bool = True,
    throw: bool = True,
) -> ClosureTraining:
    r"""Train a closure end to end through an ensemble filter, from observations alone.

    1. The physics alone is filtered over `observations` (`run_filter` from
       `initial_ensemble`, analysis ensembles stored); a divergent run is a ValueError.
    2. Windows of `window` cycles every `stride` cycles start from its analysis ensembles
       (`jaxsci.losses.filter_windows`); those starting within the first `skip` cycles (the
       record's own spin-up) are left out.
    3. `jaxsci.train.fit` minimises `jaxsci.losses.FilterLikelihoodLoss` (minus the filter's
       log-likelihood per cycle after `burn_in` cycles of each window) over the closure's
       weights, the gradients flowing through every forecast and analysis of the windows
       (the autodifferentiable EnKF of Chen, Sanz-Alonso & Willett 2022, SIAM J. Math. Data
       Sci. 4; Bocquet et al. 2020, Found. Data Sci. 2, and Brajard et al. 2021, Phil.
       Trans. R. Soc. A 379, train offline on the analyses instead;
       `fit_closure_to_increments` regresses the increments).
    4. With `train_inflation` (the default) the filter's multiplicative inflation is
       trained with the closure (factor 1 + exp(s) > 1, from the given one): the
       likelihood scores the forecast spread as well as the mean, and with the inflation
       fixed at a value tuned for the physics alone (too much for a better model) the
       closure learns to damp the members towards their mean (a spurious negative slope
       of c(x)); trained jointly, the inflation takes up the spread and the closure the
       tendency. Score the trained model with the filter you use in practice: the
       likelihood-optimal inflation need not minimise the analysis RMSE.

    The truth is never used. Start the closure at zero (`LocalMLP(..., zero_init=True)`) to
    start training from the physics alone.

    Arguments:
        physics: the known model (an ODE `AbstractDynamics`).
        closure: the network c_theta(y), as `HybridVectorField` takes it.
        obs_op, filter: the observation model and a filter with a smooth analysis (DEnKF,
            EnKF, ETKF, LETKF, with `Inflation`).
        observations: (K, obs), one every `dt`.
        initial_ensemble: (N, dim), the filter's start at time 0.
        dt: time between observations.
        key: the only source of randomness (the record's filter, the training).
        window, stride, burn_in, skip: the windows (see above).
        optimizer: default `optax.adam(3e-3)`.
        num_steps, batch_size: `fit`'s (windows per step).
        step, max_steps: the forecasts' solver step (default `dt`) and step bound.
        train_physics: also train the physics' parameters (e.g. the forcing F).
        train_inflation: train the inflation with the closure; `filter` must then be an
            `Inflation` with factor > 1.
        checkpoint_dir, progress, throw: as `fit`'s (`throw` covers the training; a
            divergent record is always a ValueError).
    """
    key, dt = _check_driver_inputs(physics, key, dt)
    window = check_int("window", window)
    stride = check_int("stride", stride)
    skip = check_int("skip", skip, minimum=0)
    if train_inflation and not (isinstance(filter, Inflation) and float(filter.factor) > 1.0):
        raise ValueError(
            "`train_inflation` needs `filter` = Inflation(inner, factor) with factor > 1 (the "
            f"start of the trained factor), got {type(filter).__name__}"
            + (f" with factor {float(filter.factor):g}" if isinstance(filter, Inflation) else "")
            + "; or pass train_inflation=False."
        )
    loss = FilterLikelihoodLoss(obs_op, filter, dt, burn_in=burn_in, step=step, max_steps=max_steps)
    if not isinstance(filter, AbstractEnsembleFilter):
        raise TypeError(
            "`filter` must be an ensemble Kalman filter (AbstractEnsembleFilter: a particle "
            f"filter's resampling has no useful gradient), got {type(filter).__name__}."
        )
    n_cycles = observations.shape[0]
    if burn_in >= window:
        raise ValueError(f"`burn_in` = {burn_in} leaves no cycle of a {window}-cycle window.")
    starts = window_starts(n_cycles, window, stride)
    if starts.size == 0:
        raise ValueError(f"`window` = {window} leaves no window in {n_cycles} cycles.")
    keep = starts > skip
    if not keep.any():
        raise ValueError(
            f"`skip` = {skip} leaves no window: the last of {starts.size} starts at cycle "
            f"{starts[-1]}; give more observations or a smaller `skip`."
        )
    key_record, key_fit = jax.random.split(key)
    record = run_filter(
        key_record,
        loss.flow(physics),
        obs_op,
        filter,
        initial_ensemble,
        observations,
        dt=dt,
        store_ensembles=True,
    )
    _check_run(record, "learn_closure's record of the physics alone")
    ens, ys = filter_windows(record, observations, window, stride)
    windows = (ens[keep], ys[keep])
    optimizer = optax.adam(3e-3) if optimizer is None else optimizer
    common: dict[str, Any] = dict(
        optimizer=optimizer,
        key=key_fit,
        batch_size=min(batch_size, int(keep.sum())),
        num_steps=num_steps,
        checkpoint_dir=checkpoint_dir,
        progress=progress,
        throw=throw,
    )
    start = _Trained(
        HybridVectorField(physics, closure) if train_physics else closure,
        jnp.log(filter.factor - 1.0) if isinstance(filter, Inflation) and train_inflation else None,
    )
    objective = _FilterLoss(loss, physics, bool(train_physics))
    trained, history = fit(start, objective, windows, **common)
    trained_filter = filter
    if trained.log_excess_inflation is not None:
        assert isinstance(filter, Inflation)
        trained_filter = Inflation(filter.filter, _inflation_of(trained.log_excess_inflation))
    return ClosureTraining(
        objective.hybrid(trained), trained_filter, history, record, int(keep.sum())
    )


#: The smallest gain estimate a secant step accepts (a step at most 20x the pass's fit):
#: an ensemble Kalman filter observing at least a few percent of the state corrects more.
_MIN_GAIN = 0.05


class IncrementFit(NamedTuple):
    """What `fit_closure_to_increments` returns.

    Attributes:
        model: `HybridVectorField(physics, LocalPolynomial)` after the last pass.
        coefficients: the polynomial's coefficients after each pass, (passes, degree + 1).
        increment_rms: the RMS over cycles and sites of the increments per unit time of
            each pass's filter run (before its fit), (passes,): it shrinks as the closure
            takes up the systematic part.
        gains: the gain g each pass's step was divided by, (passes,) (1 for the first).
        records: each pass's filter run.
    """

    model: HybridVectorField
    coefficients: np.ndarray
    increment_rms: np.ndarray
    gains: np.ndarray
    records: tuple[FilterResult, ...]


def fit_closure_to_increments(
    physics: AbstractDynamics,
    obs_op: AbstractObservation,
    filter: AbstractFilter,
    observations: Float[Array, "time obs"],
    initial_ensemble: Float[Array, "ens dim"],
    dt: float,
    *,
    key: Key,
    degree: int = 3,
    passes: int = 4,
    burn_in: int = 20,
    step: float | None = None,
    max_steps: int = 4,
) -> IncrementFit:
    r"""A local polynomial closure regressed on the filter's analysis increments.

    Each pass filters `observations` with the current model, takes the increments of the
    ensemble mean per unit time d_k = (x^a_k - x^f_k) / dt (k > `burn_in`) and fits, by least
    squares pooled over sites (`LocalPolynomial.fit`), the polynomial of degree `degree` of
    the previous analysis x^a_{k-1,i} (the forecast's start) to them, which is added to the
    closure. One pass is the classic estimate of a model's systematic error from analysis
    increments (Danforth, Kalnay & Miyoshi 2007, "Estimating and correcting global weather
    model error", Mon. Wea. Rev. 135, with time-mean increments; state-dependent here). An
    ensemble Kalman filter corrects a forecast only by its gain (nothing directly at
    unobserved sites), so one pass recovers only a fraction g of the missing tendency, and
    added pass after pass the fits converge slowly (a missing constant forcing of Lorenz-96,
    half observed: 22% after one pass, 62% after four). Pass p > 1 therefore divides its
    fit f_p by the gain estimated from the previous step s_{p-1} (a secant step):
    g = <f_{p-1} - f_p, s_{p-1}> / |s_{p-1}|^2, s_p = f_p / g; an estimate outside [0.05, 1]
    (the fits have converged to noise) keeps the previous gain. Dividing by g also divides
    the biases below by g. Two
    biases stay: the regressors are analyses, whose errors the next increment partly
    undoes (errors in variables: a spurious negative slope of order var(x^a - x) /
    (dt var(x)), large for frequent observations), and the fit sees only the states the
    filter visits. `learn_closure` fits through the filter instead. MEDIDA's
    `discover_model_error` with `AnalysisPairs` is the library-regression counterpart
    (samples from the forecast of the analysis mean over one interval, sparse regression
    on a spectral term library, passes re-filtering with the corrected model); here the
    samples are the filter's own increments (the mean of the members' forecasts), the
    regression a dense local polynomial on a ring, and the passes add secant steps.

    Arguments:
        physics: the known model (one-scale Lorenz-96 for the two-scale system).
        obs_op, filter, observations, initial_ensemble, dt, key: the filter runs (as
            `learn_closure`'s record).
        degree: the polynomial's degree (3: the cubic of Arnold et al. 2013, Phil. Trans.
            R. Soc. A 371; Wilks 2005 fits degree 4).
        passes: filter + fit passes (>= 1).
        burn_in: the cycles of each run left out of the fit.
        step, max_steps: the forecasts' solver step (default `dt`) and step bound.
    """
    key, dt = _check_driver_inputs(physics, key, dt)
    degree = check_int("degree", degree, minimum=0)
    passes = check_int("passes", passes)
    burn_in = check_int("burn_in", burn_in, minimum=1)
    if observations.shape[0] <= burn_in + degree + 1:
        raise ValueError(
            f"`observations` has {observations.shape[0]} cycles; `burn_in` = {burn_in} leaves "
            f"too few for a degree-{degree} fit."
        )
    h = dt if step is None else finite_float("step", step)
    coef = np.zeros(degree + 1)
    mean, scale = 0.0, 1.0
    coefficients, sizes, records, gains = [], [], [], []
    previous_fit = previous_step = None
    for p, k in enumerate(jax.random.split(key, passes)):
        closure = LocalPolynomial(coef, mean=mean, scale=scale)
        model = HybridVectorField(physics, closure)
        record = run_filter(
            k,
            Flow(model, h, max_steps=max_steps),
            obs_op,
            filter,
            initial_ensemble,
            observations,
            dt=dt,
        )
        _check_run(record, f"fit_closure_to_increments pass {p + 1}")
        increments = (record.mean_a[burn_in:] - record.mean_f[burn_in:]) / dt
        starts = record.mean_a[burn_in - 1 : -1]
        if p == 0:  # the normalisation of every pass: the first run's analyses
            mean, scale = float(jnp.mean(starts)), float(jnp.std(starts))
        fitted = np.asarray(
            LocalPolynomial.fit(starts, increments, degree, mean=mean, scale=scale).coefficients,
            dtype=np.float64,
        )
        gain = gains[-1] if gains else 1.0
        if previous_fit is not None and previous_step is not None:
            # the increments' fit responds to the closure's step by about -gain x step
            norm2 = float(previous_step @ previous_step)
            estimate = float((previous_fit - fitted) @ previous_step) / norm2 if norm2 else 0.0
            if math.isfinite(estimate) and _MIN_GAIN <= estimate <= 1.0:
                gain = estimate
            # else: the fits are noise (converged) or the response is not a gain: keep the
            # last gain rather than a step blown up by a tiny or negative estimate
        step_ = fitted / gain
        coef = coef + step_
        previous_fit, previous_step = fitted, step_
        coefficients.append(coef.copy())
        sizes.append(float(jnp.sqrt(jnp.mean(increments**2))))
        records.append(record)
        gains.append(gain)
    closure = LocalPolynomial(coef, mean=mean, scale=scale)
    return IncrementFit(
        HybridVectorField(physics, closure),
        np.stack(coefficients),
        np.asarray(sizes),
        np.asarray(gains),
        tuple(records),
    )
