"""Viscous Burgers against the Cole-Hopf exact solution."""

import jax.numpy as jnp
import numpy as np
import pytest

from jaxsci.dynamics import Burgers
from jaxsci.integrate import ETDRK4, simulate


def _cole_hopf(x, t, nu, k, a, b):
    """u = -2 nu phi_x / phi with phi = a + b e^{-nu k^2 t} cos(k x), a heat-equation solution.

    Cole (1951), Hopf (1950). For a > b > 0, phi > 0 and u is smooth (analytic in a strip of
    half-width acosh(a/b)), so the Fourier coefficients decay like e^{-acosh(a/b) |m|}.
    """
    decay = b * np.exp(-nu * k**2 * t)
    return 2 * nu * k * decay * np.sin(k * x) / (a + decay * np.cos(k * x))


@pytest.mark.slow  # 12-16 s under xdist; CI's slow tier runs it
def test_burgers_matches_cole_hopf(x64):
    """ETDRK4 (h = 1e-2), N = 64, float64, against the exact solution at t = 0.5, 1, 2.

    Errors: spectral truncation ~e^{-1.3 * 21} ~ 1e-12 (a/b = 2, 2/3 de-aliasing keeps 21
    modes) and time stepping ~C h^4 ~ 1e-11; 1e-9 absolute (u is O(0.3)) leaves margin
    without hiding an O(h) or O(h^2) bug (~1e-3, 1e-5).
    """
    nu, k, a, b = 0.2, 1.0, 2.0, 1.0
    model = Burgers(nu=nu, num_points=64)
    (x,) = model.grid.coordinates()
    ts = jnp.array([0.0, 0.5, 1.0, 2.0])
    u0 = jnp.asarray(_cole_hopf(x, 0.0, nu, k, a, b))
    traj = simulate(model, u0, ts, solver=ETDRK4(), dt0=1e-2)
    assert bool(traj.success)
    for t, u in zip(np.asarray(ts), np.asarray(traj.ys), strict=True):
        np.testing.assert_allclose(u, _cole_hopf(x, t, nu, k, a, b), atol=1e-9, rtol=0)


def test_burgers_vector_field_matches_formula(x64):
    """u_t = -u u_x + nu u_xx for u = sin(x): -sin cos - nu sin (resolved, de-aliased)."""
    model = Burgers(nu=0.3, num_points=32)
    (x,) = model.grid.coordinates()
    f = model.vector_field(0.0, jnp.sin(jnp.asarray(x)), None)
    np.testing.assert_allclose(np.asarray(f), -np.sin(x) * np.cos(x) - 0.3 * np.sin(x), atol=1e-13)


@pytest.mark.parametrize("nu", [-0.1, 0.0, float("nan")])
def test_burgers_rejects_bad_viscosity(nu):
    with pytest.raises(ValueError, match="`nu`"):
        Burgers(nu=nu)
