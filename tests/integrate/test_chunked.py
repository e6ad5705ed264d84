"""`simulate_chunked`: the chunks join into the one-call trajectory; save spacing adjusted to
the span; the spin-up is the state `spinup` later."""

import jax.numpy as jnp
import numpy as np
import pytest

from jaxsci import dynamics, integrate
from jaxsci.integrate._chunked import _chunk_plan


def test_chunks_join_into_one_simulate_call():
    model = dynamics.Lorenz63()
    y0 = model.default_initial_state()
    sim = integrate.simulate_chunked(
        model, y0, 2.0, 0.1, chunks=3, t0=5.0, solver=integrate.RK4(), dt0=0.01
    )
    assert sim.ts.shape == (21,) and sim.ys.shape == (21, 3)
    np.testing.assert_allclose(sim.ts, 5.0 + 0.1 * np.arange(21), rtol=1e-12)
    ref = integrate.simulate(
        model, y0, jnp.asarray(0.1 * np.arange(21)), solver=integrate.RK4(), dt0=0.01
    )
    np.testing.assert_allclose(sim.ys, np.asarray(ref.ys), rtol=1e-4, atol=1e-4)
    assert sim.num_steps >= 200 and sim.compile_seconds >= 0.0 and sim.run_seconds >= 0.0


def test_save_spacing_fits_the_span_and_spinup():
    model = dynamics.Lorenz63()
    y0 = model.default_initial_state()
    sim = integrate.simulate_chunked(
        model, y0, 1.0, 0.3, chunks=2, spinup=0.5, solver=integrate.RK4(), dt0=0.01
    )
    assert sim.every == pytest.approx(1.0 / 3) and sim.ys.shape == (4, 3)
    spun = integrate.simulate(model, y0, jnp.asarray([0.0, 0.5]), solver=integrate.RK4(), dt0=0.01)
    np.testing.assert_allclose(sim.ys[0], np.asarray(spun.ys[-1]), rtol=1e-6)
    assert sim.num_steps_spinup == 50
    with pytest.raises(ValueError, match="`every`"):
        integrate.simulate_chunked(model, y0, 1.0, 0.0)


@pytest.mark.parametrize("span, every, chunks", [(10, 1, 3), (400, 0.5, 20), (1, 1, 20)])
def test_chunk_plan_covers_the_run(span, every, chunks):
    n_saves, per_chunk, n_chunks = _chunk_plan(span, every, chunks)
    assert n_saves == round(span / every)
    assert n_chunks <= chunks and per_chunk * n_chunks >= n_saves
    assert per_chunk * (n_chunks - 1) < n_saves
