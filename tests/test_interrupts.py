"""Ctrl-C inside compiled loops (`jaxsci._interrupts`): the loops stop early and say how far
they got; an interrupt swallowed by a dependency is raised at the next check; a run of the
`assimilate` pipeline saves partial metrics marked partial."""

import json
import os
import signal
import threading
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxsci
from jaxsci import dynamics, filters, integrate
from jaxsci._interrupts import (
    CHECK_EVERY,
    check_interrupted,
    interruptible_scan,
    remembered_interrupts,
)

# The signal handlers are installed by the main thread only; elsewhere a SIGINT would stop
# the test process.
pytestmark = pytest.mark.skipif(
    threading.current_thread() is not threading.main_thread(),
    reason="signal handlers need the main thread",
)

SIGNAL_AT = 40  # the step whose body sends SIGINT to this process


def _send_sigint_at(k):
    if int(k) == SIGNAL_AT:
        os.kill(os.getpid(), signal.SIGINT)


def _step(carry, x):
    carry = 0.5 * carry + jnp.sin(x)
    return carry, (carry, x > 10)


def _step_signalling(carry, x):
    jax.debug.callback(_send_sigint_at, x)
    return _step(carry, x)


def test_interruptible_scan_equals_scan_without_interrupt():
    xs = jnp.arange(100)
    want_carry, want = jax.lax.scan(_step, jnp.ones(3), xs)
    carry, out, n_run = jax.jit(interruptible_scan, static_argnums=(0, 3))(
        _step, jnp.ones(3), xs, 100
    )
    assert int(n_run) == 100
    np.testing.assert_array_equal(carry, want_carry)
    for got, expected in zip(out, want, strict=True):
        np.testing.assert_array_equal(got, expected)


def test_interruptible_scan_stops_at_the_next_check_after_ctrl_c():
    xs = jnp.arange(200)
    run = jax.jit(lambda xs: interruptible_scan(_step_signalling, jnp.ones(3), xs, 200))
    _, want = jax.lax.scan(_step, jnp.ones(3), xs)
    with jaxsci.deferred_interrupts() as flag:
        _, (values, flags), n_run = run(xs)
        n_run = int(n_run)
    assert flag.requested
    # the signal comes in step 40's body; the next check is after step 47
    assert n_run == (SIGNAL_AT // CHECK_EVERY + 1) * CHECK_EVERY
    np.testing.assert_array_equal(values[:n_run], want[0][:n_run])
    assert np.isnan(np.asarray(values[n_run:])).all()
    assert not np.asarray(flags[n_run:]).any()  # bool outputs of skipped steps are False
    # outside the block the same program runs to the end (no signal handler is left)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        assert int(run(xs)[2]) == 200
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.mark.slow  # two compilations of a twin experiment
def test_interruptible_assimilation_matches_the_plain_one():
    model = dynamics.Lorenz96(n=8, forcing=8.0)
    flow = integrate.Flow(model, 0.05, integrate.RK4())
    obs = filters.IndexObservation(8, jnp.arange(0, 8, 2), noise_cov=1.0)
    x0 = model.default_initial_state() + 0.5
    kwargs = dict(n_cycles=60, dt=0.05, ensemble_size=6, compute_likelihood=False)
    key = jax.random.key(3)
    plain = filters.assimilate(key, flow, obs, filters.ETKF(), x0, **kwargs)
    checked = filters.assimilate(key, flow, obs, filters.ETKF(), x0, interruptible=True, **kwargs)
    assert bool(jnp.all(checked.filter.completed)) and bool(jnp.all(plain.filter.completed))
    np.testing.assert_allclose(checked.filter.mean_a, plain.filter.mean_a, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(checked.rmse_a_mean, plain.rmse_a_mean, rtol=1e-6)
    got, want = checked.metrics(), plain.metrics()
    assert got.pop("divergence_rule") == want.pop("divergence_rule")
    assert got == pytest.approx(want, rel=1e-5, nan_ok=True)
    assert "partial" not in checked.metrics()


@pytest.mark.slow  # a twin experiment
def test_interrupted_assimilation_scores_the_cycles_that_ran():
    model = dynamics.Lorenz96(n=8, forcing=8.0)

    def flow(y, t0, t1):  # RK4 steps that send SIGINT in the filter's cycle 40 (t0 = 2.0)
        jax.debug.callback(lambda t: _send_sigint_at(round(float(t) / 0.05)), t0)
        return integrate.Flow(model, 0.05, integrate.RK4())(y, t0, t1)

    obs = filters.IndexObservation(8, jnp.arange(8), noise_cov=1.0)
    x0 = model.default_initial_state() + 0.5
    with jaxsci.deferred_interrupts() as flag:
        res = filters.assimilate(
            jax.random.key(0),
            flow,
            obs,
            filters.ETKF(),
            x0,
            n_cycles=400,
            dt=0.05,
            ensemble_size=8,
            burn_in=0.5,
            interruptible=True,
        )
        jax.block_until_ready(res)
    assert flag.requested
    done = np.asarray(res.filter.completed)
    n_done = int(done.sum())
    # the truth run stopped at its first check after its step 40, the filter at once
    assert 0 <= n_done < 400 and done[:n_done].all() and not done[n_done:].any()
    metrics = res.metrics()
    assert metrics["partial"] is True and metrics["n_cycles_planned"] == 400
    assert metrics["n_cycles"] == n_done
    if n_done > 10:  # past the burn-in: scored over the completed cycles only
        want = float(np.mean(np.asarray(res.rmse_a)[10:n_done]))
        assert metrics["rmse_a"] == pytest.approx(want, rel=1e-5)
    else:
        assert np.isnan(metrics["rmse_a"]) and metrics["diverged"] is False


def test_a_swallowed_ctrl_c_is_raised_at_the_next_check():
    with remembered_interrupts():
        try:  # a dependency's bare `except:` swallowing the KeyboardInterrupt
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(1.0)  # the handler runs here
        except:  # noqa: E722
            pass
        with pytest.raises(KeyboardInterrupt):
            check_interrupted()
        with pytest.raises(KeyboardInterrupt):
            with jaxsci.deferred_interrupts():
                pass
    check_interrupted()  # forgotten after the block


def test_second_ctrl_c_in_a_deferred_block_raises():
    with pytest.raises(KeyboardInterrupt):
        with jaxsci.deferred_interrupts() as flag:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.2)
            assert flag.requested
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(1.0)


@pytest.mark.slow  # a whole (interrupted) pipeline run
def test_interrupted_assimilate_run_saves_partial_metrics(tmp_path):
    from jaxsci.pipelines import is_complete, run_config

    out = tmp_path / "run"
    log = out / "run.log"

    def interrupt_once_running():
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            if log.is_file() and "running 1 seed" in log.read_text():
                time.sleep(0.5)
                os.kill(os.getpid(), signal.SIGINT)
                return
            time.sleep(0.05)

    watcher = threading.Thread(target=interrupt_once_running, daemon=True)
    watcher.start()
    sets = ["experiment.n_cycles=2000000", "experiment.spinup=1", "plot.enabled=false"]
    start = None
    with pytest.raises(KeyboardInterrupt):
        start = time.monotonic()
        run_config("configs/quickstart.yaml", out, sets, echo=False)
    watcher.join()
    assert start is not None and time.monotonic() - start < 200  # not the whole run
    assert not is_complete(out)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["partial"] is True
    assert 0 <= metrics["n_cycles"] < metrics["n_cycles_planned"] == 2_000_000
    assert "interrupted" in log.read_text() and "partial metrics" in log.read_text()
    with np.load(out / "assimilation.npz") as arrays:
        assert arrays["times"].shape == (metrics["n_cycles"],)
        assert np.isfinite(arrays["rmse_a"]).all()
