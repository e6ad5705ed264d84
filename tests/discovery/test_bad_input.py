"""Bad input: an empty library, a library term that is not finite, fewer samples than
terms, and malformed arguments raise errors that name the culprit."""

import jax.numpy as jnp
import numpy as np
import pytest

from jaxsci.discovery import (
    RVM,
    STLSQ,
    CorrectedModel,
    EnKFPasses,
    HorseshoeRegression,
    SpectralLibrary,
    fit_model_error,
    model_error_samples,
)
from jaxsci.dynamics import KuramotoSivashinsky
from jaxsci.filters import EnKF, IndexObservation
from jaxsci.integrate import Flow

from ._cases import DT, L, N, truth_states

REGRESSIONS = [RVM(), STLSQ(), HorseshoeRegression(num_warmup=5, num_samples=5)]


@pytest.mark.parametrize("regression", REGRESSIONS, ids=lambda r: type(r).__name__)
def test_empty_library(regression):
    with pytest.raises(ValueError, match="empty"):
        SpectralLibrary([], L, N)
    with pytest.raises(ValueError, match="library is empty"):
        regression.fit(jnp.zeros((10, 0)), jnp.zeros(10))


@pytest.mark.parametrize("regression", REGRESSIONS, ids=lambda r: type(r).__name__)
def test_non_finite_term_is_named(regression):
    design = np.random.default_rng(0).normal(size=(20, 3))
    design[4, 1] = np.nan
    with pytest.raises(ValueError, match=r"\['u_xx'\]"):
        regression.fit(jnp.asarray(design), jnp.ones(20), names=["u", "u_xx", "u^2"])
    with pytest.raises(ValueError, match="column 1"):
        regression.fit(jnp.asarray(design), jnp.ones(20))
    design[4, 1] = 0.0
    with pytest.raises(ValueError, match="target"):
        regression.fit(jnp.asarray(design), jnp.full(20, jnp.inf))


@pytest.mark.parametrize("regression", REGRESSIONS, ids=lambda r: type(r).__name__)
def test_fewer_samples_than_terms(regression):
    with pytest.raises(ValueError, match=r"fewer samples \(5\) than terms \(8\)"):
        regression.fit(jnp.ones((5, 8)), jnp.ones(5))


@pytest.mark.parametrize("design", ["integrated", "instantaneous"])
def test_model_error_fit_names_the_overflowing_term(design):
    # u^100 overflows float32 where |u| > 2.4 (max |u| ~ 4 on the attractor): not finite
    states = truth_states({}, 1.0, 4, spinup=40.0)
    lib = SpectralLibrary(["u", "u_xx", "u^100"], L, N)
    with pytest.raises(ValueError, match=r"\['u\^100'\] are not finite"):
        fit_model_error(
            RVM(),
            KuramotoSivashinsky(L, N),
            lib,
            states[:-1],
            states[1:],
            1.0,
            dt=DT,
            design=design,
        )


def test_model_error_fit_argument_checks(own_checks):
    states = truth_states({}, 1.0, 4, spinup=10.0)
    model = KuramotoSivashinsky(L, N)
    lib = SpectralLibrary(["u", "u_xx"], L, N)
    with pytest.raises(ValueError, match="fewer samples"):
        small = KuramotoSivashinsky(L, 4)
        fit_model_error(
            RVM(),
            small,
            SpectralLibrary(["u", "u_x", "u_xx", "u_xxx", "u^2"], L, 4),
            jnp.zeros((1, 4)),
            jnp.zeros((1, 4)),
            1.0,
            dt=DT,
        )
    with pytest.raises(ValueError, match="same shape"):
        fit_model_error(RVM(), model, lib, states[:-1], states[:-2], 1.0, dt=DT)
    with pytest.raises(ValueError, match="non-finite"):
        fit_model_error(RVM(), model, lib, states[:-1] * jnp.nan, states[1:], 1.0, dt=DT)
    with pytest.raises(ValueError, match="design"):
        fit_model_error(RVM(), model, lib, states[:-1], states[1:], 1.0, dt=DT, design="exact")
    with pytest.raises(ValueError, match="interval"):
        fit_model_error(RVM(), model, lib, states[:-1], states[1:], 0.0, dt=DT)
    with pytest.raises(TypeError, match="regression"):
        fit_model_error("rvm", model, lib, states[:-1], states[1:], 1.0, dt=DT)
    with pytest.raises(ValueError, match="states"):
        model_error_samples(Flow(model, DT), states[:1], 1.0)
    with pytest.raises(ValueError, match="key"):
        HorseshoeRegression().fit(jnp.ones((10, 2)), jnp.ones(10))
    for bad in (dict(max_iterations=0), dict(tolerance=0.0), dict(noise_floor=2.0)):
        with pytest.raises(ValueError, match=next(iter(bad))):
            RVM(**bad)
    with pytest.raises(ValueError, match="threshold"):
        STLSQ(threshold=-1.0)


def test_corrected_model_names_non_finite_coefficients():
    """NaN coefficients made the model's Fourier symbol NaN, and the semilinear check then
    blamed the grid: "`length` = 22 is too short for the grid" (found by the fuzz)."""
    model = KuramotoSivashinsky(length=L, num_points=N)
    lib = SpectralLibrary(length=L, num_points=N)
    with pytest.raises(ValueError, match="`coefficients` contains non-finite"):
        CorrectedModel(model, lib, np.full(lib.num_terms, np.nan))


def test_enkf_passes_checks_the_initial_ensemble():
    """A NaN initial ensemble, or one of another state dimension than the observation
    operator's, was accepted (NaN analyses, or a shape error deep in the first pass)."""
    obs_op = IndexObservation(8, [0, 2, 4], noise_std=1.0)
    with pytest.raises(ValueError, match="`initial_ensemble` contains non-finite"):
        EnKFPasses(obs_op, EnKF(), jnp.full((4, 8), jnp.nan))
    with pytest.raises(ValueError, match=r"`initial_ensemble` has shape \(4, 6\)"):
        EnKFPasses(obs_op, EnKF(), jnp.zeros((4, 6)))
