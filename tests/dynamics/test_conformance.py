"""Conformance suite over a registry of every jaxsci.dynamics model."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _params import marked_params

import jaxsci.dynamics as dyn
from jaxsci.integrate import default_step_solver, simulate
from jaxsci.spectral import PeriodicGrid

# Small but representative instances (one per concrete class).
REGISTRY = {
    "Lorenz63": lambda: dyn.Lorenz63(),
    "Lorenz96": lambda: dyn.Lorenz96(n=8),
    "Lorenz96TwoScale": lambda: dyn.Lorenz96TwoScale(k=4, j=4),
    "KuramotoSivashinsky": lambda: dyn.KuramotoSivashinsky(length=22.0, num_points=32),
    "Burgers": lambda: dyn.Burgers(nu=0.1, num_points=32),
    "AllenCahn": lambda: dyn.AllenCahn(num_points=32),
    "NavierStokes2D": lambda: dyn.NavierStokes2D(
        nu=1e-2, num_points=16, drag=0.1, forcing_amplitude=1.0, forcing_wavenumber=2
    ),
    "LotkaVolterra": lambda: dyn.LotkaVolterra(),
    "SIR": lambda: dyn.SIR(),
    "AdditiveNoise": lambda: dyn.AdditiveNoise(dyn.Lorenz63(), 0.5),
    "TwoLayerQG": lambda: dyn.TwoLayerQG(num_points=16),
}
NAMES = list(REGISTRY)


def test_registry_covers_every_model():
    concrete = {
        name
        for name in dir(dyn)
        if isinstance(getattr(dyn, name), type)
        and issubclass(getattr(dyn, name), dyn.AbstractDynamics)
        and not name.startswith("Abstract")
    }
    assert concrete == set(REGISTRY)


def _states(model, n=3):
    y0 = model.default_initial_state()
    noise = jax.random.normal(jax.random.key(1), (n, *y0.shape), y0.dtype)
    return y0 + 0.01 * jnp.abs(y0).mean() * noise


@pytest.mark.parametrize("name", NAMES)
def test_default_state_and_vector_field(name):
    model = REGISTRY[name]()
    y0 = model.default_initial_state()
    assert y0.shape == tuple(model.state_shape)
    assert jnp.issubdtype(y0.dtype, jnp.floating)
    f = model.vector_field(0.0, y0, None)
    assert f.shape == y0.shape and f.dtype == y0.dtype
    assert bool(jnp.all(jnp.isfinite(f)))
    # jit == no-jit
    f_jit = eqx.filter_jit(lambda m, y: m.vector_field(0.0, y, None))(model, y0)
    np.testing.assert_allclose(np.asarray(f_jit), np.asarray(f), rtol=1e-5, atol=1e-5)


# the QG row (4.5 s) in the slow tier; CI runs the slow tier (fast-tier budget)
@pytest.mark.parametrize("name", marked_params(NAMES, {"TwoLayerQG"}))
def test_vmap_over_states(name):
    model = REGISTRY[name]()
    ys = _states(model)
    batched = jax.vmap(lambda y: model.vector_field(0.0, y, None))(ys)
    for i in range(ys.shape[0]):
        single = model.vector_field(0.0, ys[i], None)
        np.testing.assert_allclose(np.asarray(batched[i]), np.asarray(single), rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("name", NAMES)
def test_finite_parameter_gradient(name):
    model = REGISTRY[name]()
    y0 = model.default_initial_state()
    grads = eqx.filter_grad(lambda m: jnp.sum(m.vector_field(0.0, y0, None) ** 2))(model)
    leaves = jax.tree_util.tree_leaves(eqx.filter(grads, eqx.is_inexact_array))
    assert leaves, "model has no differentiable parameters"
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in leaves)
    assert any(bool(jnp.any(g != 0)) for g in leaves)


@pytest.mark.parametrize("name", NAMES)
def test_simulate_a_few_steps(name):
    model = REGISTRY[name]()
    y0 = model.default_initial_state()
    ts = jnp.linspace(0.0, 0.04, 3)
    key = jax.random.key(0) if isinstance(model, dyn.AbstractSDE) else None
    traj = simulate(model, y0, ts, solver=default_step_solver(model), dt0=0.01, key=key)
    assert traj.ys.shape == (3, *y0.shape)
    assert bool(traj.success)
    np.testing.assert_array_equal(np.asarray(traj.ys[0]), np.asarray(y0))


SEMILINEAR = [n for n in NAMES if isinstance(REGISTRY[n](), dyn.AbstractSemilinear)]


@pytest.mark.parametrize("name", SEMILINEAR)
def test_semilinear_models_declare_their_grid(name):
    """The declared PeriodicGrid has the state's shape, the linear operator lives on its
    real-FFT layout, and the spectral transforms are the grid's."""
    model = REGISTRY[name]()
    grid = model.grid
    assert isinstance(grid, PeriodicGrid)
    # the grid spans the last axes; leading axes are channels (TwoLayerQG's layers)
    assert grid.shape == tuple(model.state_shape)[-grid.ndim :]
    channels = tuple(model.state_shape)[: -grid.ndim]
    assert model.spectral_state_shape == channels + grid.spectral_shape
    assert grid.length == model.length and grid.dealias == getattr(model, "dealias", False)
    assert model.linear_operator().shape in {grid.spectral_shape, model.spectral_state_shape}
    y0 = model.default_initial_state()
    np.testing.assert_array_equal(
        np.asarray(model.to_spectral(y0)), np.asarray(grid.to_spectral(y0))
    )
    back = model.from_spectral(model.to_spectral(y0))
    np.testing.assert_allclose(np.asarray(back), np.asarray(y0), atol=1e-5)


def test_vmap_over_parameters():
    """Batching over a model's parameters: build the batch with eqx.filter_vmap."""
    forcings = jnp.array([6.0, 8.0, 10.0])
    models = eqx.filter_vmap(lambda f: dyn.Lorenz96(n=8, forcing=f))(forcings)
    y = jnp.ones(8)
    out = eqx.filter_vmap(lambda m: m.vector_field(0.0, y, None))(models)
    np.testing.assert_allclose(np.asarray(out), np.asarray(forcings[:, None] - 1.0 + 0 * y))


# -- right-hand sides against hand-written formulas (independent of the roll/FFT code) --


def test_lorenz63_formula():
    y = jnp.array([1.0, 2.0, 3.0])
    f = dyn.Lorenz63(sigma=10.0, rho=28.0, beta=8 / 3).vector_field(0.0, y, None)
    np.testing.assert_allclose(np.asarray(f), [10 * (2 - 1), 1 * (28 - 3) - 2, 2 - 8], rtol=1e-6)


def test_lorenz96_formula():
    n, forcing = 7, 8.0
    x = np.sin(np.arange(n) * 1.3) * 3
    ref = [(x[(i + 1) % n] - x[i - 2]) * x[i - 1] - x[i] + forcing for i in range(n)]
    f = dyn.Lorenz96(n=n, forcing=forcing).vector_field(0.0, jnp.asarray(x), None)
    np.testing.assert_allclose(np.asarray(f), ref, rtol=1e-5, atol=1e-5)


def test_lorenz96_two_scale_formula():
    """Lorenz (1996) eqs. (3.1)-(3.2), with Y_{j,k} at flat index k*J + j on one ring."""
    k_, j_, forcing, h, c, b = 4, 3, 10.0, 1.0, 10.0, 10.0
    rng = np.random.default_rng(0)
    x, fast = rng.normal(size=k_), rng.normal(size=k_ * j_)
    m = k_ * j_
    dx = [
        -x[k - 1] * (x[k - 2] - x[(k + 1) % k_])
        - x[k]
        + forcing
        - h * c / b * fast[k * j_ : (k + 1) * j_].sum()
        for k in range(k_)
    ]
    dy = [
        -c * b * fast[(i + 1) % m] * (fast[(i + 2) % m] - fast[i - 1])
        - c * fast[i]
        + h * c / b * x[i // j_]
        for i in range(m)
    ]
    model = dyn.Lorenz96TwoScale(k=k_, j=j_, forcing=forcing)
    f = model.vector_field(0.0, jnp.asarray(np.concatenate([x, fast])), None)
    np.testing.assert_allclose(np.asarray(f), np.concatenate([dx, dy]), rtol=1e-4, atol=1e-4)


def test_kuramoto_sivashinsky_formula(x64):
    """u = sin(qx): -u u_x - u_xx - u_xxxx = -q sin cos + q^2 sin - q^4 sin (q = 2 pi / L)."""
    model = dyn.KuramotoSivashinsky(length=22.0, num_points=32)
    (x,) = model.grid.coordinates()
    q = 2 * np.pi / 22.0
    f = model.vector_field(0.0, jnp.sin(q * jnp.asarray(x)), None)
    ref = -q * np.sin(q * x) * np.cos(q * x) + (q**2 - q**4) * np.sin(q * x)
    np.testing.assert_allclose(np.asarray(f), ref, atol=1e-13)


def test_lotka_volterra_and_sir_formulas():
    lv = dyn.LotkaVolterra(alpha=0.5, beta=0.02, gamma=0.8, delta=0.03)
    f = lv.vector_field(0.0, jnp.array([30.0, 4.0]), None)
    np.testing.assert_allclose(np.asarray(f), [(0.5 - 0.08) * 30, (-0.8 + 0.9) * 4], rtol=1e-5)
    sir = dyn.SIR(beta=0.3, gamma=0.1, population=100.0)
    f = sir.vector_field(0.0, jnp.array([90.0, 10.0, 0.0]), None)
    inf = 0.3 * 90 * 10 / 100
    np.testing.assert_allclose(np.asarray(f), [-inf, inf - 1.0, 1.0], rtol=1e-5)
    assert float(jnp.sum(f)) == pytest.approx(0.0, abs=1e-5)  # population is conserved
