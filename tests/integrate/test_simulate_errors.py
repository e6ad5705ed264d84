"""Bad input gives a clear error naming the argument; failures are never a silent NaN."""

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxsci.dynamics import AdditiveNoise, KuramotoSivashinsky, Lorenz63, Lorenz96
from jaxsci.integrate import RK4, Flow, simulate

TS = jnp.linspace(0.0, 1.0, 5)


def test_wrong_state_shape_names_y0():
    with pytest.raises(ValueError, match=r"`y0` has shape \(4,\).*\(3,\)"):
        simulate(Lorenz63(), jnp.ones(4), TS)
    with pytest.raises(ValueError, match="`y`"):
        Flow(Lorenz63(), 0.01)(jnp.ones((3, 1)), 0.0, 1.0)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_initial_state_names_y0(bad):
    with pytest.raises(ValueError, match="`y0`.*non-finite"):
        simulate(Lorenz63(), jnp.array([1.0, bad, 0.0]), TS)


def test_negative_viscosity_names_nu():
    with pytest.raises(ValueError, match="`nu`"):
        KuramotoSivashinsky(nu=-1.0)


@pytest.mark.parametrize("ts", [[0.0, 1.0, 0.5], [0.0, 0.0, 1.0], [0.0, np.nan]])
def test_bad_save_times_name_ts(ts):
    with pytest.raises(ValueError, match="`ts`"):
        simulate(Lorenz63(), Lorenz63().default_initial_state(), jnp.asarray(ts))


@pytest.mark.parametrize("kw", [{}, dict(solver=RK4(), dt0=0.01)], ids=["adaptive", "fixed"])
@pytest.mark.slow  # 12-16 s under xdist; CI's slow tier runs it
def test_t0_after_the_save_times_names_t0(kw):
    """Was diffrax's "saveat.ts must lie between t0 and t1" runtime error (adaptive) or an
    IndexError from the fixed-step grid."""
    y0 = Lorenz63().default_initial_state()
    with pytest.raises(ValueError, match=r"`t0` = 2.0 is after the first save time ts\[0\]"):
        simulate(Lorenz63(), y0, TS, t0=2.0, **kw)
    with pytest.raises(ValueError, match=r"`t0` = 0.5 is after.*ts = \[0.0, 0.25"):
        simulate(Lorenz63(), y0, TS, t0=0.5, **kw)
    with pytest.raises(ValueError, match="`t0`.*non-finite"):
        simulate(Lorenz63(), y0, TS, t0=np.nan, **kw)
    np.testing.assert_allclose(
        np.asarray(simulate(Lorenz63(), y0, TS[2:], t0=0.0, **kw).ys[0]),
        np.asarray(simulate(Lorenz63(), y0, TS, **kw).ys[2]),
        rtol=1e-4,
    )


def test_t0_after_the_end_of_the_span_names_t0():
    """With SaveAt(t1=True) a t0 after ts[-1] integrated backwards (Lorenz-96 then hit
    max_steps, "increase `dt0`") instead of naming t0."""
    model = Lorenz96(n=8)
    with pytest.raises(ValueError, match=r"`t0` = 50.0 is after the end.*ts\[-1\] = 1.0"):
        simulate(model, model.default_initial_state(), TS, t0=50.0, saveat=diffrax.SaveAt(t1=True))


def test_bad_dt0_names_dt0():
    with pytest.raises(ValueError, match="`dt0`"):
        simulate(Lorenz63(), Lorenz63().default_initial_state(), TS, solver=RK4(), dt0=-0.1)
    with pytest.raises(ValueError, match="`dt0`"):
        simulate(Lorenz63(), Lorenz63().default_initial_state(), TS, solver=RK4())


def test_sde_without_key_names_key():
    with pytest.raises(ValueError, match="`key`"):
        simulate(AdditiveNoise(Lorenz63(), 1.0), Lorenz63().default_initial_state(), TS, dt0=0.01)


@pytest.mark.slow
def test_max_steps_reported_eagerly_and_under_jit():
    model = Lorenz63()
    y0 = model.default_initial_state()
    with pytest.raises(Exception, match="max_steps"):
        simulate(model, y0, TS, solver=RK4(), dt0=0.01, max_steps=10)
    with pytest.raises(Exception, match="max_steps"):
        jax.jit(lambda y: simulate(model, y, TS, solver=RK4(), dt0=0.01, max_steps=10).ys)(y0)
    # Adaptive solver too.
    with pytest.raises(Exception, match="max_steps"):
        simulate(model, y0, TS, max_steps=3)
    traj = simulate(model, y0, TS, solver=RK4(), dt0=0.01, max_steps=10, throw=False)
    assert not bool(traj.success)


@pytest.mark.slow
def test_blow_up_is_reported_not_silent():
    """Lorenz-96 with RK4 at dt = 1 (far beyond its stability limit ~0.1) blows up."""
    model = Lorenz96(n=40)
    y0 = model.default_initial_state() + jnp.sin(jnp.arange(40.0))
    ts = jnp.linspace(0.0, 50.0, 11)
    with pytest.raises(Exception, match="non-finite"):
        simulate(model, y0, ts, solver=RK4(), dt0=1.0)
    with pytest.raises(Exception, match="non-finite"):
        jax.jit(lambda y: simulate(model, y, ts, solver=RK4(), dt0=1.0).ys)(y0)
    traj = simulate(model, y0, ts, solver=RK4(), dt0=1.0, throw=False)
    assert not bool(traj.success)
    assert not bool(jnp.all(jnp.isfinite(traj.ys)))
    ok = simulate(model, y0, ts[:3], solver=RK4(), dt0=0.05, throw=False)
    assert bool(ok.success)


def test_backsolve_needs_save_times_on_the_step_grid():
    import diffrax

    with pytest.raises(ValueError, match="BacksolveAdjoint"):
        simulate(
            Lorenz63(),
            Lorenz63().default_initial_state(),
            jnp.array([0.0, 0.15, 0.3]),
            solver=RK4(),
            dt0=0.1,
            adjoint=diffrax.BacksolveAdjoint(),
        )
