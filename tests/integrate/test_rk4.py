"""Our RK4 solver against a tight-tolerance diffrax reference."""

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxsci.dynamics import Lorenz63, Lorenz96
from jaxsci.integrate import RK4, simulate

STEPS = np.array([0.02, 0.01, 0.005, 0.0025])


@pytest.mark.slow
def test_rk4_lorenz96_fourth_order_against_dopri8(x64):
    """Lorenz-96 (N = 40, F = 8) from a generic state, T = 1, float64.

    Reference: diffrax Dopri8 with rtol = atol = 1e-12 (error ~1e-11, far below RK4's
    finest, 1.4e-4). The log-log slope of the max error vs dt must be within 0.3 of 4.
    """
    model = Lorenz96(n=40, forcing=8.0)
    # A generic, O(F)-sized state (the rest state F plus a smooth perturbation).
    y0 = 8.0 + 3.0 * jnp.sin(0.7 * jnp.arange(40.0)) + jnp.cos(0.3 * jnp.arange(40.0) ** 2)
    ts = jnp.linspace(0.0, 1.0, 5)
    ref = simulate(model, y0, ts, solver=diffrax.Dopri8(), rtol=1e-12, atol=1e-12).ys
    run = jax.jit(lambda dt: simulate(model, y0, ts, solver=RK4(), dt0=dt).ys)
    errs = np.array([float(jnp.max(jnp.abs(run(h) - ref))) for h in STEPS])
    slope = np.polyfit(np.log(STEPS), np.log(errs), 1)[0]
    assert abs(slope - 4) < 0.3, (slope, errs)
    # Each halving of dt divides the error by 2^(4 +- 0.3) (measured: 16.5, 16.1, 16.1).
    ratios = errs[:-1] / errs[1:]
    assert np.all(np.abs(np.log2(ratios) - 4) < 0.3), ratios


def test_rk4_backward_in_time_returns_to_start(x64):
    """Forward then backward (diffrax flips the time and the control's sign) with RK4."""
    model = Lorenz63()
    y0 = model.default_initial_state()
    term = diffrax.ODETerm(model.vector_field)
    fwd = diffrax.diffeqsolve(term, RK4(), 0.0, 0.5, 1e-3, y0).ys[-1]
    back = diffrax.diffeqsolve(term, RK4(), 0.5, 0.0, -1e-3, fwd).ys[-1]
    np.testing.assert_allclose(np.asarray(back), np.asarray(y0), rtol=1e-8)
