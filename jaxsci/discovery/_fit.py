r"""`fit_model_error`: regress model-error samples on a term library (MEDIDA's step 3).

Given pairs (x_k, x'_k) of states one interval Delta apart -- observed states, or analysis
states from data assimilation -- and a model, find sparse coefficients xi with

    x'_k ~ Phi_{M(xi)}(x_k),   M(xi) = model + sum_j xi_j theta_j,

by sparse regression of model-error samples on the library (see `_samples.py` for the two
designs). With the integrated design the fit is a Gauss-Newton iteration: linearise the
corrected model's step about the current xi_i,

    (x'_k - Phi_{M(xi_i)}(x_k)) / Delta + Psi_k(xi_i) xi_i  ~  Psi_k(xi_i) xi,

and solve that linear problem with the sparse regression (which re-selects the terms each
time); `refinements` more linearisations follow the first.
"""

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._checks import check_choice, check_finite, check_int, check_positive
from .._custom_types import Array, Bool, Float, Key
from ..dynamics import AbstractSemilinear
from ._base import (
    AbstractSparseRegression,
    SparseRegressionResult,
    fit_normal,
    normal_equations,
)
from ._corrected import CorrectedModel
from ._library import SpectralLibrary
from ._samples import (
    check_finite_design,
    forecast_corrected,
    instantaneous_design,
    integrated_design,
)

DESIGNS = ("integrated", "instantaneous")


class ModelErrorFit(eqx.Module):
    """A discovered model error: coefficients, uncertainty and the selected terms.

    Attributes:
        names: the library's term names.
        coefficients: xi, zero for terms not selected, (terms,).
        covariance: posterior covariance of xi from the last regression, (terms, terms).
        active: the selected terms, (terms,).
        regression: the last `SparseRegressionResult`.
        history: xi after each linearisation (Gauss-Newton iterate), (iterations, terms).
        design: "integrated" or "instantaneous".
    """

    names: tuple[str, ...] = eqx.field(static=True)
    coefficients: Float[Array, " term"]
    covariance: Float[Array, "term term"]
    active: Bool[Array, " term"]
    regression: SparseRegressionResult
    history: Float[Array, "iteration term"]
    design: str = eqx.field(static=True)

    @property
    def std(self) -> Float[Array, " term"]:
        return jnp.sqrt(jnp.clip(jnp.diag(self.covariance), 0.0))

    def terms(self) -> dict[str, float]:
        """{name: coefficient} of the selected terms (Python floats)."""
        active = np.asarray(self.active)
        coef = np.asarray(self.coefficients, dtype=float)
        return {n: float(c) for n, c, a in zip(self.names, coef, active, strict=True) if a}

    def corrected(self, model: AbstractSemilinear, library: SpectralLibrary) -> CorrectedModel:
        """The corrected model: `model` plus the discovered terms."""
        return CorrectedModel(model, library, self.coefficients)


def _normal(design, target):
    return normal_equations(design.reshape(-1, design.shape[-1]), target.reshape(-1))


_normal_jit = jax.jit(_normal)


def _fit(regression, design, target, key):
    return fit_normal(regression, _normal_jit(design, target), key)


def fit_model_error(
    regression: AbstractSparseRegression,
    model: AbstractSemilinear,
    library: SpectralLibrary,
    starts: Float[Array, "sample dim"],
    ends: Float[Array, "sample dim"],
    interval: float,
    *,
    dt: float,
    solver: diffrax.AbstractSolver | None = None,
    design: str = "integrated",
    refinements: int = 2,
    coefficients: Float[Array, " term"] | None = None,
    times: Float[Array, " sample"] | None = None,
    design_states: Float[Array, "sample dim"] | None = None,
    key: Key | None = None,
    batch_size: int = 1024,
) -> ModelErrorFit:
    """Discover the model error of `model` from state pairs (starts[k], ends[k]).

    Arguments:
        regression: the sparse regression (`RVM`, `STLSQ`, `HorseshoeRegression`).
        model: the imperfect model (semilinear, on the library's grid).
        library: the candidate terms.
        starts: states x_k, (K, dim) (e.g. analysis states at t_k).
        ends: states one `interval` later, (K, dim) (analysis or observed states at t_k +
            interval).
        interval: Delta, the time between a start and its end.
        dt: the integrator step of the model's forecasts.
        solver: the integrator (default ETDRK4).
        design: "integrated" (sensitivities of the model step; exact for any interval) or
            "instantaneous" (theta(x_k), MEDIDA; biased by O(interval)).
        refinements: Gauss-Newton re-linearisations after the first fit (integrated only).
        coefficients: where to linearise first (default zeros: the model itself).
        times: start time of each pair (default zeros; only non-autonomous models care).
        design_states: states at which the regressors are evaluated (default `starts`).
            When the starts are noisy, their noise enters both the target (through the
            forecast) and the regressors, which biases least squares (errors in
            variables; Fuller 1987, "Measurement Error Models", ch. 1). Regressors
            evaluated at states whose errors are independent of that noise -- e.g. the EnKF
            forecast (background) mean when the starts and ends are observations -- are
            instrumental variables and remove the bias.
        key: PRNG key for sampling regressions (split per fit).
        batch_size: states per batch of the sensitivity computation.

    Raises:
        ValueError: shapes, a library term that is not finite on the states, non-finite
            samples (a blown-up forecast), fewer samples than terms, an unknown design.
    """
    if not isinstance(regression, AbstractSparseRegression):
        raise TypeError(
            f"`regression` must be an AbstractSparseRegression (RVM, STLSQ, ...), got "
            f"{type(regression).__name__}."
        )
    check_choice("design", design, DESIGNS)
    refinements = check_int("refinements", refinements, minimum=0)
    starts = jnp.asarray(starts)
    ends = jnp.asarray(ends, dtype=starts.dtype)
    if starts.ndim != 2 or ends.shape != starts.shape:
        raise ValueError(
            f"`starts` and `ends` must both be (samples, dim) of the same shape, got "
            f"{starts.shape} and {ends.shape}."
        )
    if starts.shape[0] * starts.shape[1] < library.num_terms:
        raise ValueError(
            f"{starts.shape[0]} state pairs of dimension {starts.shape[1]} give fewer samples "
            f"({starts.shape[0] * starts.shape[1]}) than library terms ({library.num_terms})."
        )
    check_finite("starts", starts)
    check_finite("ends", ends)
    check_positive("interval", interval)
    interval = float(interval)
    corrected = CorrectedModel(model, library, coefficients)
    xi = corrected.coefficients
    keys = (
        [None] * (refinements + 1) if key is None else list(jax.random.split(key, refinements + 1))
    )
    if times is None:
        times = jnp.zeros(starts.shape[0], dtype=starts.dtype)
    if design_states is not None:
        design_states = jnp.asarray(design_states, dtype=starts.dtype)
        if design_states.shape != starts.shape:
            raise ValueError(
                f"`design_states` has shape {design_states.shape}, wanted {starts.shape}."
            )
        check_finite("design_states", design_states)
    where = starts if design_states is None else design_states

    # every term must be finite on the states (a non-finite column would also poison the
    # forecasts of the integrated design, where it enters with coefficient zero: 0 * inf)
    theta = instantaneous_design(library, where)
    check_finite_design(theta, library.names)
    if design == "instantaneous":
        forecast = forecast_corrected(corrected, solver, float(dt), starts, times, interval)
        target = (ends - forecast) / interval + theta @ xi
        _check_target(target)
        result = _fit(regression, theta, target, keys[0])
        history = result.coefficients[None]
    else:
        iterates = []
        for i in range(refinements + 1):
            model_i = corrected.with_coefficients(xi)
            forecast, psi = integrated_design(
                model_i,
                where,
                interval,
                dt=dt,
                solver=solver,
                times=times,
                batch_size=batch_size,
            )
            if design_states is not None:
                forecast = forecast_corrected(model_i, solver, float(dt), starts, times, interval)
            check_finite_design(psi, library.names)
            target = (ends - forecast) / interval + psi @ xi
            _check_target(target)
            result = _fit(regression, psi, target, keys[i])
            xi = result.coefficients
            iterates.append(xi)
        history = jnp.stack(iterates)
    return ModelErrorFit(
        names=library.names,
        coefficients=result.coefficients,
        covariance=result.covariance,
        active=result.active,
        regression=result,
        history=history,
        design=design,
    )


def _check_target(target):
    if not np.all(np.isfinite(np.asarray(target))):
        raise ValueError(
            "the model-error samples are not finite: a one-step forecast of the (corrected) "
            "model blew up; reduce `dt` or check the states."
        )
