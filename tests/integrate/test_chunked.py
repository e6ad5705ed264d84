"""`simulate_chunked`: the chunks join into the one-call trajectory; save spacing adjusted to
the span; the spin-up is the state `spinup` later; a blow-up raises `simulate`'s message from
the host, also where equinox's runtime checks are off."""

import os
import subprocess
import sys
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest

from jaxsci import dynamics, integrate
from jaxsci.integrate._chunked import _chunk_plan


@pytest.mark.slow
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


@pytest.mark.slow
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


_BLOW_UP = """
import equinox as eqx
from jaxsci import dynamics, integrate
model = dynamics.Lorenz96(n=8)
try:  # RK4 at dt = 1 is far beyond Lorenz-96's stability limit (~0.1)
    integrate.simulate_chunked(
        model, model.default_initial_state() + 0.5, 40.0, 1.0, chunks=2, spinup=2.0,
        solver=integrate.RK4(), dt0=1.0,
    )
except eqx.EquinoxRuntimeError as error:
    print(error)
"""


@pytest.mark.slow  # a fresh process (JAX import) and three compilations
@pytest.mark.parametrize("on_error", ["raise", "nan"])
def test_a_blow_up_raises_simulates_message_from_the_host(on_error):
    """The chunks run `simulate(throw=False)` and the host raises `simulate`'s errors after
    each call: no `eqx.error_if` callback of simulate's own in the compiled chunks, and the
    error is raised even with equinox's runtime checks turned into NaN (`EQX_ON_ERROR=nan`,
    which makes the chunks cacheable: JAX never caches a program holding a host callback)."""
    root = Path(__file__).resolve().parents[2]
    env = os.environ | {"EQX_ON_ERROR": on_error, "PYTHONPATH": str(root)}
    proc = subprocess.run(
        [sys.executable, "-c", _BLOW_UP], env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "simulate: the trajectory became non-finite" in proc.stdout
