"""The integrated design (sensitivities of a model step to each library term, by
forward-mode differentiation through ETDRK4) against central finite differences (float64)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxsci.discovery import (
    CorrectedModel,
    SpectralLibrary,
    instantaneous_design,
    integrated_design,
)
from jaxsci.dynamics import KuramotoSivashinsky
from jaxsci.integrate import Flow

from ._cases import DT, L, N, truth_states


@pytest.mark.slow
def test_integrated_design_matches_finite_differences(x64):
    states = truth_states({}, 1.0, 1, spinup=40.0)
    lib = SpectralLibrary(["u", "u_xxx", "u_xxxx", "u*u_x", "u^3"], L, N)
    xi0 = jnp.asarray([0.02, -0.05, 0.0, 0.1, 0.0])
    model = CorrectedModel(KuramotoSivashinsky(L, N), lib, xi0)
    interval = 1.0
    forecast, design = integrated_design(model, states, interval, dt=DT, batch_size=1)
    assert design.shape == (1, N, lib.num_terms)
    # central differences of the diffrax `Flow` (the integrator the forecasts use)
    h = 1e-6
    shifts = jnp.concatenate([h * jnp.eye(lib.num_terms), -h * jnp.eye(lib.num_terms)])

    @jax.jit
    def flows(x):
        def one(xi):
            return Flow(model.with_coefficients(xi), DT)(x, 0.0, interval)

        return one(xi0), jax.vmap(one)(xi0 + shifts)

    for k in range(states.shape[0]):
        centre, moved = flows(states[k])
        np.testing.assert_allclose(forecast[k], centre, rtol=1e-12, atol=1e-12)
        fd = (moved[: lib.num_terms] - moved[lib.num_terms :]) / (2 * h) / interval
        for j in range(lib.num_terms):
            scale = float(jnp.max(jnp.abs(fd[j])))
            np.testing.assert_allclose(
                design[k, :, j], fd[j], atol=1e-6 * scale, err_msg=lib.names[j]
            )


def test_instantaneous_design_is_the_library():
    states = truth_states({}, 1.0, 4, spinup=10.0)
    lib = SpectralLibrary(["u", "u*u_x"], L, N)
    design = instantaneous_design(lib, states)
    for k in range(4):
        np.testing.assert_allclose(design[k], lib(states[k]), rtol=1e-6, atol=1e-6)


@pytest.mark.slow
def test_integrated_design_fallback_through_diffrax(x64):
    # an interval that is no multiple of dt: the sensitivities go through `Flow` (diffrax,
    # forward mode, last step shortened) instead of the solver's fixed-step loop
    states = truth_states({}, 1.0, 1, spinup=20.0)
    lib = SpectralLibrary(["u_xx", "u*u_x"], L, N)
    xi0 = jnp.asarray([0.05, -0.1])
    model = CorrectedModel(KuramotoSivashinsky(L, N), lib, xi0)
    interval, h = 0.6, 1e-6
    forecast, design = integrated_design(model, states, interval, dt=DT)
    flow = Flow(model, DT)
    np.testing.assert_allclose(forecast[0], flow(states[0], 0.0, interval), rtol=1e-12, atol=1e-12)
    for j in range(lib.num_terms):
        e = jnp.zeros(lib.num_terms).at[j].set(h)
        up = Flow(model.with_coefficients(xi0 + e), DT)(states[0], 0.0, interval)
        dn = Flow(model.with_coefficients(xi0 - e), DT)(states[0], 0.0, interval)
        fd = (up - dn) / (2 * h) / interval
        np.testing.assert_allclose(design[0, :, j], fd, atol=1e-6 * float(jnp.max(jnp.abs(fd))))
