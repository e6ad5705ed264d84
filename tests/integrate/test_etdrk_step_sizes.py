"""ETDRK coefficient caching: correct for varying steps, check skipped only on uniform grids."""

import jax.numpy as jnp
import numpy as np
import pytest

from jaxsci.dynamics import KuramotoSivashinsky
from jaxsci.integrate import ETDRK4, simulate
from jaxsci.integrate._simulate import _step_grid, _uniform_steps


def test_uniform_grid_detection():
    # float32 times up to 1000 in steps of 0.25: rounding only, still uniform
    saves = np.arange(0.0, 1000.5, 1.0).astype(np.float32)
    assert _uniform_steps(_step_grid(0.0, 1000.0, 0.25, saves, np.float32))
    # a save time off the dt grid makes a short step: not uniform
    assert not _uniform_steps(_step_grid(0.0, 1.0, 0.25, np.array([0.0, 0.3, 1.0]), np.float64))


def _rel_err(y, ref):
    return float(jnp.max(jnp.abs(y - ref)) / jnp.max(jnp.abs(ref)))


@pytest.mark.slow
def test_varying_steps_recompute_coefficients(x64):
    """float64. Save times off the dt grid make steps of 0.25, 0.05, 0.2, ...; the solver
    must recompute its coefficients for the odd steps. Its error against a dt = 0.001
    reference must then be that of a uniform dt = 0.25 run (measured 5.0e-5 vs 5.2e-5),
    while forcing the cached dt = 0.25 coefficients onto those steps (`constant_step=True`,
    the negative control) must be far worse."""
    model = KuramotoSivashinsky(length=22.0, num_points=64)
    u0 = model.default_initial_state()
    ts = jnp.array([0.0, 0.3, 1.3, 2.0])
    uniform_ts = jnp.array([0.0, 0.5, 1.0, 2.0])
    ref = simulate(model, u0, ts, solver=ETDRK4(), dt0=0.001).ys
    uniform_ref = simulate(model, u0, uniform_ts, solver=ETDRK4(), dt0=0.001).ys
    err = _rel_err(simulate(model, u0, ts, solver=ETDRK4(), dt0=0.25).ys, ref)
    err_uniform = _rel_err(
        simulate(model, u0, uniform_ts, solver=ETDRK4(), dt0=0.25).ys, uniform_ref
    )
    err_stale = _rel_err(
        simulate(model, u0, ts, solver=ETDRK4(constant_step=True), dt0=0.25).ys, ref
    )
    assert err < 2 * err_uniform
    assert err_stale > 100 * err
