"""AllenCahn: the reaction part against its closed form, ETDRK4's fourth order on it, and
agreement with an independent float64 solve (scipy's DOP853 on the same spectral ODE)."""

import jax.numpy as jnp
import numpy as np
import pytest
from scipy.integrate import solve_ivp

from jaxsci.dynamics import AllenCahn
from jaxsci.integrate import ETDRK4, simulate
from jaxsci.metrics import fit_convergence_order


def test_grid_and_initial_state():
    model = AllenCahn(num_points=16)
    x = model.coordinates()
    np.testing.assert_allclose(x, -1 + np.arange(16) / 8)
    np.testing.assert_allclose(
        np.asarray(model.default_initial_state()), x**2 * np.cos(np.pi * x), rtol=1e-6, atol=1e-7
    )


def test_constant_state_follows_the_reaction_closed_form(x64):
    """A constant u0 = c has u_xx = 0, and u' = r (u - u^3) has the solution
    u(t) = c e^{rt} / sqrt(1 + c^2 (e^{2rt} - 1)). ETDRK4 at dt = 0.05: measured relative
    error 5.1e-6 (1.2e-4 at dt = 0.1, the fourth-order ratio)."""
    model = AllenCahn(num_points=16)
    c, r, t = 0.3, 5.0, 0.8
    ts = jnp.array([0.0, t])
    got = simulate(model, jnp.full(16, c), ts, solver=ETDRK4(), dt0=0.05).ys[-1]
    e = np.exp(r * t)
    exact = c * e / np.sqrt(1 + c**2 * (e**2 - 1))
    np.testing.assert_allclose(np.asarray(got), exact, rtol=2e-5)


def _scipy_reference(model, u0, t_final):
    """DOP853 (rtol 1e-12) on the spectral ODE u_hat' = L u_hat + N(u_hat), in numpy."""
    n = model.num_points
    k = 2 * np.pi * np.fft.rfftfreq(n, d=model.length / n)
    lin = -float(model.diffusion) * k**2
    r = float(model.reaction)

    def rhs(_, y):
        u_hat = y[: len(k)] + 1j * y[len(k) :]
        u = np.fft.irfft(u_hat, n)
        du = lin * u_hat + np.fft.rfft(r * (u - u**3))
        return np.concatenate([du.real, du.imag])

    u_hat0 = np.fft.rfft(np.asarray(u0))
    y0 = np.concatenate([u_hat0.real, u_hat0.imag])
    sol = solve_ivp(rhs, (0.0, t_final), y0, method="DOP853", rtol=1e-12, atol=1e-13)
    y = sol.y[:, -1]
    return np.fft.irfft(y[: len(k)] + 1j * y[len(k) :], n)


@pytest.mark.slow
def test_etdrk4_fourth_order_and_agrees_with_scipy(x64):
    """Measured: order 4.02 on the benchmark (diffusion 1e-4, 64 points, t = 0.5), max errors
    2.7e-5, 1.5e-6, 9.8e-8, 6.2e-9 at 10, 20, 40, 80 steps against the DOP853 reference."""
    model = AllenCahn(num_points=64)
    u0 = model.default_initial_state()
    t_final = 0.5
    ref = _scipy_reference(model, u0, t_final)
    steps = [10, 20, 40, 80]
    errs = []
    for n in steps:
        ys = simulate(model, u0, jnp.array([0.0, t_final]), solver=ETDRK4(), dt0=t_final / n).ys
        errs.append(np.max(np.abs(np.asarray(ys[-1]) - ref)))
    order = fit_convergence_order(steps, errs)
    assert abs(order - 4.0) < 0.3, (order, errs)
    assert errs[-1] < 1e-7, errs


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"diffusion": -1.0}, "diffusion"),
        ({"diffusion": float("nan")}, "diffusion"),
        ({"reaction": float("inf")}, "reaction"),
        ({"start": float("nan")}, "start"),
        ({"start": "left"}, "start"),
        ({"num_points": 7}, "num_points"),
    ],
)
def test_bad_arguments_are_named(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        AllenCahn(**kwargs)


def test_residual_matches_finite_differences(x64):
    """R = u_t - d u_xx - r (u - u^3) for u = sin(2x) e^{-t} + x t, derivatives by central
    differences (h = 1e-4, error O(h^2) ~ 1e-7)."""
    model = AllenCahn(diffusion=0.3, reaction=2.0)

    def u(p):
        x, t = p[0], p[1]
        return jnp.sin(2 * x) * jnp.exp(-t) + x * t

    h = 1e-4
    for x, t in [(0.3, 0.2), (-0.8, 0.9)]:
        f = lambda a, b: float(u(jnp.array([a, b])))  # noqa: E731
        ut = (f(x, t + h) - f(x, t - h)) / (2 * h)
        uxx = (f(x + h, t) - 2 * f(x, t) + f(x - h, t)) / h**2
        v = f(x, t)
        want = ut - 0.3 * uxx - 2.0 * (v - v**3)
        got = float(model.residual(u, jnp.array([x, t])))
        assert got == pytest.approx(want, abs=1e-6)
    with pytest.raises(ValueError, match="point"):
        model.residual(u, jnp.ones(3))
