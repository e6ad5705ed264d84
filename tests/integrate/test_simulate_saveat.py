"""`simulate` passes a user `diffrax.SaveAt` through to diffrax."""

import diffrax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxsci.dynamics import Lorenz63, Lorenz96
from jaxsci.integrate import RK4, simulate


@pytest.mark.slow
def test_saveat_t1_matches_last_save_time():
    model = Lorenz96(n=40, forcing=8.0)
    y0 = model.default_initial_state()
    ts = jnp.linspace(0.0, 1.0, 11)
    full = simulate(model, y0, ts, solver=RK4(), dt0=0.01)
    last = simulate(model, y0, ts, solver=RK4(), dt0=0.01, saveat=diffrax.SaveAt(t1=True))
    assert last.ys.shape == (1, 40)
    np.testing.assert_allclose(last.ys[0], full.ys[-1], rtol=1e-5, atol=1e-5)


def test_saveat_steps_pads_with_inf_and_still_counts_as_success():
    model = Lorenz63()
    ts = jnp.array([0.0, 0.5])
    traj = simulate(
        model,
        model.default_initial_state(),
        ts,
        solver=RK4(),
        dt0=0.1,
        saveat=diffrax.SaveAt(steps=True),
        max_steps=8,
    )
    saved = np.isfinite(np.asarray(traj.ts))
    assert saved.sum() == 5 and np.all(np.isfinite(np.asarray(traj.ys)[saved]))
    assert bool(traj.success)
    np.testing.assert_allclose(np.asarray(traj.ts)[saved], [0.1, 0.2, 0.3, 0.4, 0.5], rtol=1e-6)


def test_dense_saveat_is_rejected():
    model = Lorenz63()
    with pytest.raises(ValueError, match="saveat"):
        simulate(
            model,
            model.default_initial_state(),
            jnp.array([0.0, 1.0]),
            saveat=diffrax.SaveAt(dense=True),
        )


@pytest.mark.parametrize("t0", [None, 0.0])
def test_jit_with_closed_over_save_times(t0):
    # Under jit, indexing a closed-over concrete `ts` is traced: a given concrete `t0` once
    # sent simulate into its eager grid code, which called float() on the traced end time.
    # Traced times take constant steps; on a dt0 that divides the save intervals the
    # result equals the eager run's to float32 rounding of the step times.
    import jax

    model = Lorenz63()
    y0 = model.default_initial_state()
    ts = jnp.linspace(0.0, 1.0, 11)
    eager = simulate(model, y0, ts, solver=RK4(), dt0=0.025, t0=t0).ys
    jitted = jax.jit(lambda y: simulate(model, y, ts, solver=RK4(), dt0=0.025, t0=t0).ys)(y0)
    np.testing.assert_allclose(jitted, eager, rtol=1e-4, atol=1e-4)
