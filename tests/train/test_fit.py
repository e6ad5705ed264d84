"""`fit`: reproducibility, bit-for-bit resume after a kill, and each option against a closed
form (SGD on quadratics, EMA recursion, clipping, early stopping, complex parameters)."""

import json
import math
import signal
import subprocess
import sys
import time
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxsci import losses
from jaxsci.train import evaluate, fit, load_checkpoint, save_checkpoint

from ._problem import FIT_KWARGS, RUN_KEY, problem

HERE = Path(__file__).resolve().parent


def _same(a, b) -> bool:
    """Every array of `a` equals (bit for bit) the corresponding array of `b`."""
    la = jax.tree.leaves(eqx.filter(a, eqx.is_array))
    lb = jax.tree.leaves(eqx.filter(b, eqx.is_array))
    return len(la) == len(lb) and all(
        x.shape == y.shape and bool(jnp.all(x == y)) for x, y in zip(la, lb, strict=True)
    )


def _run(num_steps, key=RUN_KEY, **kwargs):
    model, loss, data, val, opt = problem()
    return fit(
        model,
        loss,
        data,
        optimizer=opt,
        key=jax.random.key(key),
        num_steps=num_steps,
        val_data=val,
        **{**FIT_KWARGS, **kwargs},
    )


def _read_step(path: Path) -> int:
    try:
        with np.load(path) as d:
            return int(json.loads(str(d["meta"]))["step"])
    except (OSError, ValueError, KeyError):
        return -1


@pytest.mark.slow
def test_killed_and_resumed_run_equals_uninterrupted_run_bit_for_bit(tmp_path):
    # A child process trains with a checkpoint every 3 steps and is SIGKILLed once a
    # checkpoint past step 12 exists (wherever it is: mid-step, mid-write). Resuming here
    # to 20 steps past the kill must reproduce the uninterrupted run of that length exactly:
    # weights, EMA and the whole loss history. (The child may run on between the parent's
    # polls on a loaded machine, so the run length follows the checkpoint actually left.)
    ckpt = tmp_path / "ckpt"
    child = subprocess.Popen(
        [sys.executable, str(HERE / "_kill_child.py"), str(ckpt)],
        cwd=HERE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 120
        while _read_step(ckpt / "checkpoint.npz") < 12:
            assert child.poll() is None, child.stderr.read().decode()
            assert time.monotonic() < deadline, "the child never checkpointed past step 12"
            time.sleep(0.05)
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    killed_at = _read_step(ckpt / "checkpoint.npz")
    assert 12 <= killed_at < 5000, killed_at
    total = killed_at + 20
    resumed, h_res = _run(total, checkpoint_dir=ckpt)
    straight, h_str = _run(total)
    assert h_res["start_step"] == killed_at
    assert _same(resumed, straight)
    for name in ("loss", "grad_norm", "aux/spread", "train_loss", "val_loss", "eval_step"):
        np.testing.assert_array_equal(h_res[name], h_str[name], err_msg=name)
    # Not a vacuous comparison: training moved the weights and another seed differs.
    model0 = problem()[0]
    assert not _same(model0, straight)


def test_stop_and_continue_equals_one_run_and_seed_reproducible(tmp_path):
    first, _ = _run(13, checkpoint_dir=tmp_path, checkpoint_every=4)
    again, h_again = _run(13, checkpoint_dir=tmp_path)  # finished checkpoint: no new steps
    assert h_again["start_step"] == 13 and len(h_again["loss"]) == 13
    assert _same(first, again)
    cont, h_cont = _run(30, checkpoint_dir=tmp_path)
    straight, h_str = _run(30)
    repeat, _ = _run(30)
    other, _ = _run(30, key=RUN_KEY + 1)
    assert _same(cont, straight) and _same(straight, repeat) and not _same(straight, other)
    np.testing.assert_array_equal(h_cont["loss"], h_str["loss"])
    # The provisional evaluation at step 13 (mid-epoch) was replaced by the epoch ends.
    np.testing.assert_array_equal(h_cont["eval_step"], [5, 10, 15, 20, 25, 30])
    np.testing.assert_array_equal(h_cont["val_loss"], h_str["val_loss"])
    assert np.isfinite(h_str["aux/spread"]).all() and h_str["aux/spread"].shape == (30,)


def test_checkpoint_of_another_run_is_refused(tmp_path):
    _run(5, checkpoint_dir=tmp_path)
    with pytest.raises(ValueError, match="checkpoint of another run: its key"):
        _run(10, key=RUN_KEY + 1, checkpoint_dir=tmp_path)
    with pytest.raises(ValueError, match="its batch_size is 16"):
        _run(10, checkpoint_dir=tmp_path, batch_size=8)
    with pytest.raises(ValueError, match="its state_options .* `ema/clip_norm/early_stopping`"):
        _run(10, checkpoint_dir=tmp_path, ema=None)


def test_checkpoint_write_is_atomic(tmp_path, monkeypatch):
    state = {"w": jnp.arange(3.0)}
    save_checkpoint(tmp_path, state, {"loss": np.ones(2)}, {"step": 2})

    def broken(f, **arrays):
        f.write(b"half a file")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", broken)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(tmp_path, {"w": jnp.zeros(3)}, {"loss": np.zeros(5)}, {"step": 5})
    monkeypatch.undo()
    loaded, history, meta = load_checkpoint(tmp_path, {"w": jnp.zeros(3)})
    np.testing.assert_array_equal(loaded["w"], [0.0, 1.0, 2.0])
    assert meta["step"] == 2 and history["loss"].shape == (2,)


# ----------------------------------------------------------- options against closed forms


class Scalar(eqx.Module):
    a: jax.Array

    def __call__(self, x):
        return self.a * jnp.ones_like(x)


def _quadratic(target):
    """loss(a) = mean over the batch of (a - target)^2 (the batch values are ignored)."""

    def loss(model, batch, *, key=None):
        x, y = batch
        value = jnp.mean((model(x) - target) ** 2)
        return value, {}

    return loss


def _dummy(n=8):
    return (jnp.zeros((n, 1)), jnp.zeros((n, 1)))


def test_sgd_and_ema_follow_their_recursions(x64):
    # SGD on (a - 1)^2 with rate lr: a_{k+1} = a_k - 2 lr (a_k - 1). EMA with warm-up
    # d_t = min(0.8, (1 + t)/(10 + t)): e_{t+1} = d_t e_t + (1 - d_t) a_{t+1}.
    lr, steps = 0.1, 12
    model, hist = fit(
        Scalar(jnp.asarray(0.0)),
        _quadratic(1.0),
        _dummy(),
        optimizer=optax.sgd(lr),
        key=jax.random.key(0),
        batch_size=4,
        num_steps=steps,
        ema=0.8,
        progress=False,
    )
    a, e, losses_ref = 0.0, 0.0, []
    for t in range(steps):
        losses_ref.append((a - 1.0) ** 2)
        a = a - 2 * lr * (a - 1.0)
        d = min(0.8, (1 + t) / (10 + t))
        e = d * e + (1 - d) * a
    assert float(model.a) == pytest.approx(e, rel=1e-12)
    np.testing.assert_allclose(hist["loss"], losses_ref, rtol=1e-12)
    np.testing.assert_allclose(hist["grad_norm"], 2 * np.sqrt(losses_ref), rtol=1e-12)
    np.testing.assert_array_equal(hist["eval_step"], np.arange(2, steps + 1, 2))


def test_gradient_clipping_bounds_the_step(x64):
    # Gradient 2 (a - 100) ~ -200 at a = 0; clipped to norm 0.5 SGD with lr 1 moves a by
    # exactly 0.5 per step while the recorded (pre-clip) gradient norm stays ~200.
    model, hist = fit(
        Scalar(jnp.asarray(0.0)),
        _quadratic(100.0),
        _dummy(),
        optimizer=optax.sgd(1.0),
        key=jax.random.key(0),
        batch_size=8,
        num_steps=4,
        clip_norm=0.5,
        progress=False,
    )
    assert float(model.a) == pytest.approx(2.0, rel=1e-12)
    np.testing.assert_allclose(hist["grad_norm"], [200.0, 199.0, 198.0, 197.0], rtol=1e-12)


def test_early_stopping_restores_the_best_epoch(x64):
    # Train on (a - 1)^2, validate on (a - 0.45)^2; SGD from a=0 with lr 0.05 gives
    # a_k = 1 - 0.9^k after k steps (one step per epoch). Validation is best at the epoch
    # whose a_k is closest to 0.45, then worsens; patience 3 stops 3 epochs later.
    def loss(model, batch, *, key=None):
        x, y = batch
        return jnp.mean((model(x) - y) ** 2), {}

    ones = jnp.ones((4, 1))
    a_k = 1 - 0.9 ** np.arange(1, 40)
    best = int(np.argmin((a_k - 0.45) ** 2))  # epoch index (0-based) of the best weights
    model, hist = fit(
        Scalar(jnp.asarray(0.0)),
        loss,
        (ones, ones),
        val_data=(ones, 0.45 * ones),
        optimizer=optax.sgd(0.05),
        key=jax.random.key(0),
        batch_size=4,
        epochs=39,
        early_stopping=3,
        progress=False,
    )
    assert float(model.a) == pytest.approx(a_k[best], rel=1e-12)
    assert hist["best_step"] == best + 1 and "early stopping" in hist["stopped"]
    assert len(hist["val_loss"]) == best + 1 + 3
    np.testing.assert_allclose(hist["val_loss"], (a_k[: best + 4] - 0.45) ** 2, rtol=1e-10)


def test_complex_parameters_descend(x64):
    # loss |z - c|^2: the steepest-descent step is z - lr * 2 (z - c); jax.grad's raw
    # cotangent (its conjugate) would drive Im z the wrong way.
    class Complex(eqx.Module):
        z: jax.Array

    c = 1.0 - 2.0j

    def loss(model, batch, *, key=None):
        return jnp.abs(model.z - c) ** 2, {}

    model, _ = fit(
        Complex(jnp.asarray(0.0 + 0.0j)),
        loss,
        _dummy(),
        optimizer=optax.sgd(0.1),
        key=jax.random.key(0),
        batch_size=8,
        num_steps=3,
        progress=False,
    )
    assert complex(model.z) == pytest.approx(c * (1 - 0.8**3), rel=1e-12)


def test_non_finite_loss_is_reported():
    def loss(model, batch, *, key=None):
        return jnp.log(model.a) * jnp.ones(()), {}  # a crosses 0 -> log(a) = nan

    common = dict(optimizer=optax.sgd(0.3), key=jax.random.key(0), batch_size=8, num_steps=10)
    with pytest.raises(FloatingPointError, match="non-finite at step 1"):
        fit(Scalar(jnp.asarray(0.25)), loss, _dummy(), progress=False, **common)
    model, hist = fit(
        Scalar(jnp.asarray(0.25)), loss, _dummy(), progress=False, throw=False, **common
    )
    assert "non-finite at step 1" in hist["stopped"]
    assert len(hist["loss"]) == 2 and np.isnan(hist["loss"][1])  # one step per epoch here


def test_bad_arguments_are_named():
    model, data = Scalar(jnp.asarray(0.0)), _dummy(8)
    common = dict(optimizer=optax.sgd(0.1), key=jax.random.key(0), progress=False)
    with pytest.raises(ValueError, match="exactly one of `num_steps` and `epochs`"):
        fit(model, _quadratic(1.0), data, batch_size=4, **common)
    with pytest.raises(ValueError, match="`batch_size` 9 exceeds the 8 examples"):
        fit(model, _quadratic(1.0), data, batch_size=9, num_steps=1, **common)
    with pytest.raises(ValueError, match="`data` arrays must share one leading batch size"):
        fit(
            model,
            _quadratic(1.0),
            (jnp.zeros((8, 1)), jnp.zeros((7, 1))),
            batch_size=4,
            num_steps=1,
            **common,
        )
    with pytest.raises(ValueError, match="`early_stopping` needs `val_data`"):
        fit(model, _quadratic(1.0), data, batch_size=4, num_steps=1, early_stopping=2, **common)
    with pytest.raises(ValueError, match=r"`ema` must be finite and in \(0, 1\), got 1.5"):
        fit(model, _quadratic(1.0), data, batch_size=4, num_steps=1, ema=1.5, **common)
    # ours, or the jaxtyping import hook's type-check error when the test run enables it
    with pytest.raises(TypeError, match="`optimizer` must be an optax|parameter 'optimizer'"):
        fit(
            model,
            _quadratic(1.0),
            data,
            batch_size=4,
            num_steps=1,
            optimizer="adam",
            key=jax.random.key(0),
        )
    with pytest.raises(ValueError, match="`val_data` must have the same structure"):
        fit(model, _quadratic(1.0), data, batch_size=4, num_steps=1, val_data=[data[0]], **common)


def test_min_delta_is_checked():
    """A NaN `min_delta` was accepted: with it no validation loss ever counts as an
    improvement, so early stopping ends the run after `early_stopping` evaluations, silently."""
    model, data = Scalar(jnp.asarray(0.0)), _dummy(8)
    common = dict(optimizer=optax.sgd(0.1), key=jax.random.key(0), progress=False)
    for bad in (math.nan, -0.1):
        with pytest.raises(ValueError, match="`min_delta` must be finite and non-negative"):
            fit(model, _quadratic(1.0), data, batch_size=4, num_steps=1, min_delta=bad, **common)


def test_evaluate_weights_batches_by_size(x64):
    # MSE of u -> a * u over 10 examples in batches of 4, 4, 2: the size-weighted mean of the
    # batch losses is the MSE over all examples.

    class Gain(eqx.Module):
        a: jax.Array

        def __call__(self, u):
            return self.a * u

    rng = np.random.default_rng(0)
    x, y = jnp.asarray(rng.normal(size=(10, 3))), jnp.asarray(rng.normal(size=(10, 3)))
    value = evaluate(Gain(jnp.asarray(0.5)), losses.MSELoss(), (x, y), batch_size=4)
    assert value == pytest.approx(float(np.mean((0.5 * np.asarray(x) - np.asarray(y)) ** 2)))
