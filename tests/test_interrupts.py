"""Ctrl-C inside long loops (`jaxsci._interrupts`): interruptible loops run from the host in
compiled chunks without host callbacks (so JAX's persistent cache can keep them), give the
numbers of a plain `lax.scan`, stop after the chunk in which Ctrl-C came and say how far they
got; an interrupt swallowed by a dependency is raised at the next check; runs of the
`assimilate` pipeline and of the `simulate` pipeline's Lyapunov estimate save partial metrics
marked partial."""

import json
import os
import signal
import threading
import time
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _jaxpr import callback_primitives

import jaxsci
from jaxsci import _interrupts, dynamics, filters, integrate, observations
from jaxsci._interrupts import check_interrupted, interruptible_scan, remembered_interrupts

# The signal handlers are installed by the main thread only; elsewhere a SIGINT would stop
# the test process.
pytestmark = pytest.mark.skipif(
    threading.current_thread() is not threading.main_thread(),
    reason="signal handlers need the main thread",
)

ROOT = Path(__file__).resolve().parents[1]
SIGNAL_AT = 40  # the step whose body sends SIGINT to this process
CHUNK = 16  # steps per compiled chunk where a test fixes it (`_interrupts.CHUNK_STEPS`)
STOP_AT = (SIGNAL_AT // CHUNK + 1) * CHUNK  # the end of the chunk holding step SIGNAL_AT


@pytest.fixture
def fixed_chunks(monkeypatch):
    """Interruptible drivers run chunks of CHUNK steps (instead of timed ones)."""
    monkeypatch.setattr(_interrupts, "CHUNK_STEPS", CHUNK)


def _send_sigint_at(k):
    if int(k) == SIGNAL_AT:
        os.kill(os.getpid(), signal.SIGINT)


def _step(scale, carry, x):
    carry = scale * carry + jnp.sin(x)
    return carry, (carry, x > 10)


_steps_run = [0]


def _step_signalling(scale, carry, x):
    def record(k):
        _steps_run[0] += 1
        _send_sigint_at(k)

    jax.debug.callback(record, x)
    return _step(scale, carry, x)


@pytest.mark.parametrize("chunk", [None, 1, 7, 100])
def test_interruptible_scan_equals_scan_whatever_the_chunks(chunk):
    xs = jnp.arange(100)
    want_carry, want = jax.lax.scan(lambda c, x: _step(0.5, c, x), jnp.ones(3), xs)
    init = jnp.ones(3)
    carry, out, n_run = interruptible_scan(_step, init, xs, 100, operands=0.5, chunk=chunk)
    assert n_run == 100
    np.testing.assert_array_equal(carry, want_carry)
    for got, expected in zip(out, want, strict=True):
        np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(init, jnp.ones(3))  # the caller's carry is not donated


def test_interruptible_scan_stops_after_the_chunk_of_the_ctrl_c():
    xs = jnp.arange(200)
    _, want = jax.lax.scan(lambda c, x: _step(0.5, c, x), jnp.ones(3), xs)
    _steps_run[0] = 0
    with jaxsci.deferred_interrupts() as flag:
        _, (values, flags), n_run = interruptible_scan(
            _step_signalling, jnp.ones(3), xs, 200, operands=0.5, chunk=CHUNK
        )
    assert flag.requested
    # the signal comes in step 40's body; the chunk holding it ends after step 47
    assert n_run == STOP_AT == _steps_run[0]
    np.testing.assert_array_equal(values[:n_run], want[0][:n_run])
    assert np.isnan(np.asarray(values[n_run:])).all()
    assert not np.asarray(flags[n_run:]).any()  # bool outputs of skipped steps are False
    # outside the block, with SIGINT ignored, the same loop runs to the end
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        assert interruptible_scan(_step_signalling, jnp.ones(3), xs, 200, operands=0.5)[2] == 200
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def _l96_setup():
    model = dynamics.Lorenz96(n=8, forcing=8.0)
    flow = integrate.Flow(model, 0.05, integrate.RK4())
    obs = filters.IndexObservation(8, jnp.arange(0, 8, 2), noise_cov=1.0)
    return model, flow, obs, model.default_initial_state() + 0.5


def test_interruptible_drivers_refuse_traced_inputs_by_name():
    model, flow, obs, x0 = _l96_setup()
    with pytest.raises(TypeError, match=r"rollout\(\.\.\., interruptible=True\).*concrete"):
        jax.jit(lambda x: integrate.rollout(flow, x, 5, dt=0.05, interruptible=True))(x0)
    with pytest.raises(TypeError, match=r"assimilate\(\.\.\., interruptible=True\)"):
        jax.vmap(
            lambda k: filters.assimilate(
                k,
                flow,
                obs,
                filters.ETKF(),
                x0,
                n_cycles=5,
                dt=0.05,
                ensemble_size=4,
                interruptible=True,
            )
        )(jax.random.split(jax.random.key(0), 2))
    with pytest.raises(TypeError, match=r"lyapunov_exponents\(\.\.\., interruptible=True\)"):
        jax.jit(
            lambda y: (
                integrate.lyapunov_exponents(flow, y, num_intervals=2, interruptible=True).exponents
            )
        )(x0)


@pytest.mark.slow
def test_interruptible_drivers_compile_no_host_callback(monkeypatch):
    """JAX never writes a program holding a host callback to its persistent compilation
    cache: the chunk programs of the interruptible drivers, and the plain Lyapunov run (its
    unresolved-exponent warning is given on the host), hold none."""
    model, flow, obs, x0 = _l96_setup()
    chunk_programs = []
    run_chunk = _interrupts._run_chunk

    def recording(*args):
        chunk_programs.append(eqx.filter_make_jaxpr(run_chunk)(*args)[0])
        return run_chunk(*args)

    monkeypatch.setattr(_interrupts, "_run_chunk", recording)
    filters.assimilate(
        jax.random.key(0), flow, obs, filters.ETKF(), x0, n_cycles=3, dt=0.05,
        ensemble_size=4, interruptible=True,
    )  # fmt: skip
    lyap_flow = integrate.Flow(model, 0.05)
    kwargs = dict(interval=0.1, num_intervals=3, transient=0.2)
    integrate.lyapunov_exponents(lyap_flow, x0, interruptible=True, **kwargs)
    assert len(chunk_programs) >= 4  # truth, filter, transient, intervals
    assert set().union(*map(callback_primitives, chunk_programs)) == set()
    plain = jax.make_jaxpr(lambda y: integrate.lyapunov_exponents(lyap_flow, y, **kwargs))(x0)
    assert callback_primitives(plain) == set()


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
    # the same numbers: the chunked loops run the same step as the one compiled scan
    for got, want in zip(jax.tree.leaves(checked), jax.tree.leaves(plain), strict=True):
        np.testing.assert_array_equal(got, want)
    got, want = checked.metrics(), plain.metrics()
    assert got.pop("divergence_rule") == want.pop("divergence_rule")
    assert got == pytest.approx(want, rel=0, abs=0, nan_ok=True)  # log_likelihood: NaN
    assert "partial" not in checked.metrics()


@pytest.mark.slow  # a twin experiment
def _interrupted_twin(obs, **kwargs):
    """A 400-cycle ETKF twin experiment on 8-site Lorenz-96 from the default state + 0.5, whose
    RK4 flow sends SIGINT when it reaches t = 2.0 (step 40), inside a `deferred_interrupts`
    block; returns the result and whether a stop was requested."""
    model = dynamics.Lorenz96(n=8, forcing=8.0)

    def flow(y, t0, t1):
        jax.debug.callback(lambda t: _send_sigint_at(round(float(t) / 0.05)), t0)
        return integrate.Flow(model, 0.05, integrate.RK4())(y, t0, t1)

    with jaxsci.deferred_interrupts() as flag:
        res = filters.assimilate(
            jax.random.key(0),
            flow,
            obs,
            filters.ETKF(),
            jnp.asarray(model.default_initial_state()) + 0.5,
            n_cycles=400,
            dt=0.05,
            interruptible=True,
            **kwargs,
        )
        jax.block_until_ready(res)
    return res, flag.requested


@pytest.mark.slow
def test_interrupted_assimilation_scores_the_cycles_that_ran():
    obs = filters.IndexObservation(8, jnp.arange(8), noise_cov=1.0)
    res, requested = _interrupted_twin(obs, ensemble_size=8, burn_in=0.5)
    assert requested
    done = np.asarray(res.filter.completed)
    n_done = int(done.sum())
    # the truth run stopped after the chunk holding its step 40, the filter at once
    assert 0 <= n_done < 400 and done[:n_done].all() and not done[n_done:].any()
    metrics = res.metrics()
    assert metrics["partial"] is True and metrics["n_cycles_planned"] == 400
    assert metrics["n_cycles"] == n_done
    if n_done > 10:  # past the burn-in: scored over the completed cycles only
        want = float(np.mean(np.asarray(res.rmse_a)[10:n_done]))
        assert metrics["rmse_a"] == pytest.approx(want, rel=1e-5)
    else:
        assert np.isnan(metrics["rmse_a"]) and metrics["diverged"] is False


_filter_sent = [False]


def _send_sigint_once_at(k):
    """SIGINT once, when step SIGNAL_AT is reached (the forecast calls the flow per member)."""
    if int(k) == SIGNAL_AT and not _filter_sent[0]:
        _filter_sent[0] = True
        os.kill(os.getpid(), signal.SIGINT)


@pytest.mark.slow  # two compilations of an L96 ETKF run (9 s on 2 cores)
def test_interrupted_filter_keeps_the_cycles_of_the_completed_chunks(fixed_chunks):
    """run_filter stops after the chunk holding the cycle in which Ctrl-C came, and the cycles
    it kept are those of the uninterrupted run."""
    model, plain_flow, obs, x0 = _l96_setup()

    def flow(y, t0, t1):
        jax.debug.callback(lambda t: _send_sigint_once_at(round(float(t) / 0.05)), t0)
        return plain_flow(y, t0, t1)

    truth = integrate.rollout(plain_flow, x0, 100, dt=0.05)
    ys = truth[:, ::2] + jax.random.normal(jax.random.key(1), (100, 4))
    ens = x0 + jax.random.normal(jax.random.key(2), (6, 8))
    args = (jax.random.key(0), flow, obs, filters.ETKF(), ens, ys)
    _filter_sent[0] = False
    with jaxsci.deferred_interrupts() as flag:
        stopped = filters.run_filter(*args, dt=0.05, interruptible=True)
    assert flag.requested and _filter_sent[0]
    done = np.asarray(stopped.completed)
    assert done.sum() == STOP_AT and done[:STOP_AT].all()  # cycle 41 is step 40
    whole = filters.run_filter(*args, dt=0.05)  # no signal left to send
    for got, want in zip(jax.tree.leaves(stopped), jax.tree.leaves(whole), strict=True):
        np.testing.assert_array_equal(got[:STOP_AT], want[:STOP_AT])
    assert np.isnan(np.asarray(stopped.mean_a[STOP_AT:])).all()


_drawn = [0]


def _count_states(x):
    _drawn[0] += np.asarray(x).reshape(-1, 8).shape[0]


class _CountingObservation(filters.AbstractObservation):
    """An observation model that counts its noisy draws `sample` (a test wrapper)."""

    noise: observations.GaussianNoise
    state_dim: int = eqx.field(static=True)
    locations: jax.Array | None
    inner: filters.AbstractObservation

    def __call__(self, x):
        return self.inner(x)

    def sample(self, key, x):
        jax.debug.callback(_count_states, x)
        return self.inner.sample(key, x)


@pytest.mark.slow  # a twin experiment
def test_interrupted_assimilation_draws_no_observations_for_cycles_not_run():
    inner = filters.IndexObservation(8, jnp.arange(8), noise_cov=1.0)
    obs = _CountingObservation(inner.noise, inner.state_dim, inner.locations, inner)
    _drawn[0] = 0
    res, requested = _interrupted_twin(obs, ensemble_size=4)
    assert requested
    # The truth run stopped after the chunk holding step 40, the filter at once:
    # observations were drawn for the cycles that ran only (one uninterruptible draw of all
    # cycles before the filter took seconds for 4e5 cycles).
    n_done = int(jnp.sum(res.filter.completed))
    assert n_done < 400
    assert _drawn[0] == n_done
    assert np.isfinite(np.asarray(res.observations[:n_done])).all()
    assert np.isnan(np.asarray(res.observations[n_done:])).all()


LYAPUNOV_INTERVAL = 0.1
LYAPUNOV_TRANSIENT = 0.5
_sent = [False]


def _send_sigint_once_in_interval(t):
    """SIGINT once, in the Lyapunov run's interval SIGNAL_AT (0-based, after the transient)."""
    k = int(np.floor((float(t) - LYAPUNOV_TRANSIENT) / LYAPUNOV_INTERVAL + 1e-6))
    if k == SIGNAL_AT and not _sent[0]:
        _sent[0] = True
        os.kill(os.getpid(), signal.SIGINT)


class _SignallingLorenz63(dynamics.AbstractDynamics):
    """Lorenz-63 whose vector field sends one SIGINT in interval SIGNAL_AT (a test model)."""

    inner: dynamics.Lorenz63

    @property
    def state_shape(self) -> tuple[int, ...]:
        return self.inner.state_shape

    def vector_field(self, t, y, args):
        jax.debug.callback(_send_sigint_once_in_interval, t)
        return self.inner.vector_field(t, y, args)


@pytest.mark.slow  # three compilations of a Lyapunov run (15 s on 2 cores)
def test_interrupted_lyapunov_run_equals_a_run_of_the_completed_intervals(fixed_chunks):
    model = _SignallingLorenz63(dynamics.Lorenz63())
    flow = integrate.Flow(model, 0.01)
    y0 = dynamics.Lorenz63().default_initial_state()
    kwargs = dict(num_exponents=3, interval=LYAPUNOV_INTERVAL, transient=LYAPUNOV_TRANSIENT)
    _sent[0] = False
    with jaxsci.deferred_interrupts() as flag:
        stopped = integrate.lyapunov_exponents(
            flow, y0, num_intervals=400, interruptible=True, **kwargs
        )
        jax.block_until_ready(stopped)
    assert flag.requested and _sent[0]
    done = np.asarray(stopped.completed)
    n_done = int(done.sum())
    # the signal comes in interval 40; the chunk holding it ends after interval 47
    assert n_done == STOP_AT
    assert done[:n_done].all() and not done[n_done:].any()
    assert np.isnan(np.asarray(stopped.running[n_done:])).all()
    # the same as a run asked for exactly the completed intervals (no signal left to send)
    want = integrate.lyapunov_exponents(flow, y0, num_intervals=n_done, **kwargs)
    assert bool(jnp.all(want.completed))
    np.testing.assert_array_equal(stopped.exponents, want.exponents)
    np.testing.assert_array_equal(stopped.running[:n_done], want.running)
    np.testing.assert_array_equal(stopped.final_state, want.final_state)
    np.testing.assert_array_equal(stopped.times[:n_done], want.times)
    # uninterrupted, the checked run is the plain one
    checked = integrate.lyapunov_exponents(
        flow, y0, num_intervals=n_done, interruptible=True, **kwargs
    )
    assert bool(jnp.all(checked.completed))
    for got, expected in zip(jax.tree.leaves(checked), jax.tree.leaves(want), strict=True):
        np.testing.assert_array_equal(got, expected)


def test_lyapunov_run_stopped_before_any_interval_is_nan_not_zero():
    flow = integrate.Flow(dynamics.Lorenz63(), 0.01)
    y0 = dynamics.Lorenz63().default_initial_state()
    with jaxsci.deferred_interrupts() as flag:
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.2)
        res = integrate.lyapunov_exponents(
            flow, y0, interval=0.1, num_intervals=50, transient=0.5, interruptible=True
        )
        jax.block_until_ready(res)
    assert flag.requested
    assert not np.asarray(res.completed).any()
    assert np.isnan(np.asarray(res.exponents)).all()


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


@pytest.mark.slow  # a whole (interrupted) pipeline run (4-8 s on 2 cores)
def test_interrupted_lyapunov_run_saves_partial_metrics_and_exits_130(tmp_path, capsys):
    from cli_helpers import run_cli

    from jaxsci.pipelines import is_complete

    out = tmp_path / "run"
    log = out / "run.log"

    def interrupt_once_in_lyapunov():
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            if log.is_file() and "Lyapunov: " in log.read_text():
                time.sleep(0.5)  # inside the deferred block: compiling or running
                os.kill(os.getpid(), signal.SIGINT)
                return
            time.sleep(0.05)

    watcher = threading.Thread(target=interrupt_once_in_lyapunov, daemon=True)
    watcher.start()
    # a short trajectory, then a Lyapunov run of many minutes
    sets = [
        "integrate.t1=0.08",
        "integrate.save_every=0.02",
        "integrate.spinup=0",
        "lyapunov.num_exponents=1",
        "lyapunov.transient=0",
        "lyapunov.num_intervals=2000000",
        "plot.enabled=false",
    ]
    start = time.monotonic()
    argv = ["run", ROOT / "configs" / "l63.yaml", "--out", out, "--quiet"]
    code, _, err = run_cli(capsys, *argv, *[a for s in sets for a in ("--set", s)])
    watcher.join()
    assert code == 130, err
    assert time.monotonic() - start < 120  # not the whole run
    assert not is_complete(out)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["partial"] is True
    done = metrics["lyapunov_intervals"]
    assert 0 <= done < metrics["lyapunov_intervals_planned"] == 2_000_000
    assert "partial metrics" in log.read_text() and "interrupted after" in log.read_text()
    with np.load(out / "lyapunov.npz") as arrays:
        running, times = arrays["running"], arrays["times"]
    assert running.shape == (done, 1) and times.shape == (done,)
    assert np.isfinite(running).all()
    if done:  # the estimate is the running one at the last completed interval
        assert metrics["lyapunov_max"] == pytest.approx(float(running[-1, 0]))
    else:  # none completed: NaN (written as a string), never 0
        assert metrics["lyapunov_max"] == "nan"
