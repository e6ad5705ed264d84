"""2-D Navier-Stokes: Taylor-Green decay, Kolmogorov forcing and drag against exact solutions."""

import diffrax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxsci.dynamics import NavierStokes2D
from jaxsci.integrate import ETDRK4, SemilinearTerm, simulate


def test_taylor_green_vortex_exact_decay(x64):
    """w = 2k cos(kx) cos(ky) e^{-(2 nu k^2 + drag) t} is an exact solution.

    Its streamfunction psi = w / (2k^2) is proportional to w, so u . grad w = 0 and only the
    linear part acts (Taylor & Green 1937). With drag mu the decay rate is 2 nu k^2 + mu.
    Float64; error is round-off in the (vanishing) nonlinear term, ~1e-13.
    """
    nu, drag, k = 0.05, 0.1, 2.0
    model = NavierStokes2D(nu=nu, drag=drag, num_points=32)
    x, y = model.grid.coordinates()
    shape = 2 * k * np.cos(k * x) * np.cos(k * y)
    ts = jnp.array([0.0, 0.5, 1.0])
    traj = simulate(model, jnp.asarray(shape), ts, solver=ETDRK4(), dt0=0.1)
    for t, w in zip(np.asarray(ts), np.asarray(traj.ys), strict=True):
        exact = shape * np.exp(-(2 * nu * k**2 + drag) * t)
        np.testing.assert_allclose(w, exact, atol=1e-11, rtol=0)

    # Velocity from the streamfunction: u = psi_y = -cos(kx) sin(ky), v = -psi_x = sin(kx) cos(ky).
    u, v = model.velocity(jnp.asarray(shape))
    np.testing.assert_allclose(np.asarray(u), -np.cos(k * x) * np.sin(k * y), atol=1e-12)
    np.testing.assert_allclose(np.asarray(v), np.sin(k * x) * np.cos(k * y), atol=1e-12)


def test_taylor_green_backward_in_time(x64):
    """Integrating from t = 1 back to t = 0 recovers the initial vortex (ETDRK4 with t1 < t0).

    Regression test: ETDRK must follow diffrax's direction of integration (used directly
    through `diffrax.diffeqsolve`; `simulate` only integrates forward). Anti-diffusion
    amplifies round-off by at most e^{nu |k|^2 t} ~ e^{2} here, so 1e-10 is generous.
    """
    nu, k = 0.02, 1.0
    model = NavierStokes2D(nu=nu, num_points=16)
    x, y = model.grid.coordinates()
    shape = 2 * k * np.cos(k * x) * np.cos(k * y)
    w1 = jnp.asarray(shape * np.exp(-2 * nu * k**2))
    sol = diffrax.diffeqsolve(SemilinearTerm(model), ETDRK4(), 1.0, 0.0, -0.25, w1)
    np.testing.assert_allclose(np.asarray(sol.ys[-1]), shape, atol=1e-10, rtol=0)


def test_kolmogorov_laminar_flow_is_exact(x64):
    """Kolmogorov forcing f = -A k_f cos(k_f y) (from the body force (A sin(k_f y), 0)).

    Any w = W(t) cos(k_f y) has v = -psi_x = 0 and w_x = 0, so advection vanishes and
    W' = -(nu k_f^2 + mu) W - A k_f. From rest: W(t) = W* (1 - e^{-(nu k_f^2 + mu) t}) with the
    laminar fixed point W* = -A k_f / (nu k_f^2 + mu). This checks the forcing's sign and
    amplitude and the drag together.
    """
    nu, drag, amp, n_f = 0.05, 0.1, 1.5, 4
    model = NavierStokes2D(
        nu=nu, drag=drag, forcing_amplitude=amp, forcing_wavenumber=n_f, num_points=32
    )
    _, y = model.grid.coordinates()
    kf = float(n_f)  # domain 2 pi, so k_f = 2 pi n_f / L = n_f
    rate = nu * kf**2 + drag
    w_star = -amp * kf / rate * np.cos(kf * y)

    # The fixed point is steady: the vector field vanishes (relative to the forcing, A k_f).
    f = model.vector_field(0.0, jnp.asarray(w_star), None)
    assert float(jnp.max(jnp.abs(f))) < 1e-12 * amp * kf

    ts = jnp.array([0.0, 0.5, 2.0])
    traj = simulate(model, jnp.zeros(model.state_shape), ts, solver=ETDRK4(), dt0=0.1)
    for t, w in zip(np.asarray(ts), np.asarray(traj.ys), strict=True):
        np.testing.assert_allclose(w, w_star * (1 - np.exp(-rate * t)), atol=1e-11, rtol=0)


@pytest.mark.parametrize("name,kwargs", [("nu", dict(nu=-1e-3)), ("drag", dict(drag=-0.1))])
def test_navier_stokes_rejects_negative_coefficients(name, kwargs):
    with pytest.raises(ValueError, match=f"`{name}`"):
        NavierStokes2D(**kwargs)
