"""Checkpoints: a new one replaces the old only once written and verified, the previous one is
kept as a fallback for an unreadable (empty, truncated, corrupt) file, and a checkpoint
refuses to resume under another optimizer or model architecture."""

import io
import logging
import os
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from _params import marked_params

from jaxsci.train import fit, load_checkpoint, save_checkpoint

from ._problem import FIT_KWARGS, RUN_KEY, problem
from .test_fit import _read_step, _run, _same

CURRENT, PREVIOUS = "checkpoint.npz", "checkpoint.prev.npz"


def _fit(num_steps, ckpt, *, model=None, optimizer=None, **kwargs):
    model0, loss, data, val, opt = problem()
    return fit(
        model0 if model is None else model,
        loss,
        data,
        optimizer=opt if optimizer is None else optimizer,
        key=jax.random.key(RUN_KEY),
        num_steps=num_steps,
        val_data=val,
        checkpoint_dir=ckpt,
        **{**FIT_KWARGS, **kwargs},
    )


def _spoil(path: Path, how: str) -> None:
    raw = path.read_bytes()
    if how == "empty":
        path.write_bytes(b"")
    elif how == "truncated":
        path.write_bytes(raw[: len(raw) // 2])
    else:  # one flipped byte in the middle (inside the state's bytes)
        middle = len(raw) // 2
        path.write_bytes(raw[:middle] + bytes([raw[middle] ^ 0xFF]) + raw[middle + 1 :])


@pytest.mark.parametrize(
    "how", marked_params(["empty", "truncated", "flipped"], {"truncated", "empty"})
)
def test_unreadable_checkpoint_falls_back_to_the_previous_one(tmp_path, caplog, how):
    # Checkpoints at steps 4, 5 (epoch end), 8, 10, 12, 13: the current one is step 13, the
    # previous one step 12. With the current one spoiled, the resume starts from step 12 and
    # still reproduces the uninterrupted run bit for bit: nothing is lost.
    _fit(13, tmp_path, checkpoint_every=4)
    assert (tmp_path / PREVIOUS).is_file()
    _spoil(tmp_path / CURRENT, how)
    with caplog.at_level(logging.WARNING, logger="jaxsci.train"):
        _, h_res = _fit(15, tmp_path)
    assert h_res["start_step"] == 12
    # The spoiled file was moved aside, so the checkpoint resumed from stays the fallback.
    assert (tmp_path / "checkpoint.npz.unreadable").is_file()
    assert _read_step(tmp_path / PREVIOUS) == 12 and _read_step(tmp_path / CURRENT) == 15
    resumed, h_res = _fit(30, tmp_path)
    straight, h_str = _run(30)
    assert _same(resumed, straight)
    for name in ("loss", "grad_norm", "eval_step", "val_loss"):
        np.testing.assert_array_equal(h_res[name], h_str[name], err_msg=name)
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(str(tmp_path / CURRENT) in m for m in errors), errors
    assert any(str(tmp_path / PREVIOUS) in m and CURRENT in m for m in warnings), warnings


def test_no_readable_checkpoint_is_an_error_naming_the_files(tmp_path):
    _fit(3, tmp_path)  # one checkpoint (step 3): there is no previous one yet
    assert not (tmp_path / PREVIOUS).exists()
    _spoil(tmp_path / CURRENT, "truncated")
    with pytest.raises(ValueError, match=rf"(?s){CURRENT}.*unreadable.*{PREVIOUS} does not"):
        _fit(10, tmp_path)
    _fit(13, tmp_path / "two", checkpoint_every=4)
    _spoil(tmp_path / "two" / CURRENT, "empty")
    _spoil(tmp_path / "two" / PREVIOUS, "flipped")
    with pytest.raises(ValueError, match=rf"(?s){CURRENT}.*unreadable.*{PREVIOUS}.*unreadable"):
        _fit(20, tmp_path / "two")
    with pytest.raises(ValueError, match=rf"(?s){CURRENT}.*{PREVIOUS}"):
        load_checkpoint(tmp_path / "two", {"w": jnp.zeros(3)})


@pytest.mark.parametrize("ema", [0.9, None])
def test_adam_state_does_not_resume_under_sgd(tmp_path, ema):
    # Without an EMA nothing follows the optimizer state in the checkpoint, and SGD (no
    # state) used to read the model and silently drop Adam's moments.
    _fit(5, tmp_path, ema=ema)  # Adam (with a schedule), gradient clipping
    with pytest.raises(
        ValueError,
        match=r"(?s)written with the optimizer state \(EmptyState\(\), \(ScaleByAdamState\(.*"
        r"this call's `optimizer` has the state \(EmptyState\(\), \(EmptyState\(\), EmptyState",
    ):
        _fit(10, tmp_path, optimizer=optax.sgd(1e-3), ema=ema)
    _, h = _fit(10, tmp_path, ema=ema)  # the refused call left the checkpoint as it was
    assert h["start_step"] == 5


@pytest.mark.parametrize(
    "mlp, differs",
    [
        ((6, 3, 32, 2), r"saved \.mlp\.layers\[0\]\.weight float32\[16, 6\], this run's "
         r"\.mlp\.layers\[0\]\.weight float32\[32, 6\]"),
        ((6, 3, 16, 3), r"saved \.mlp\.layers\[2\]\.weight float32\[3, 16\], this run's "
         r"\.mlp\.layers\[2\]\.weight float32\[16, 16\]"),
    ],
)  # fmt: skip
def test_another_architecture_does_not_resume(tmp_path, mlp, differs):
    _fit(5, tmp_path)
    model = problem()[0]
    other = eqx.tree_at(lambda m: m.mlp, model, eqx.nn.MLP(*mlp, key=jax.random.key(0)))
    with pytest.raises(
        ValueError, match=rf"(?s)written for a NoisyMLP model .* this call's `model`.*{differs}"
    ):
        _fit(10, tmp_path, model=other)


def _state(value):
    return {"w": jnp.full(3, float(value))}


def _saved_step(directory) -> int:
    state, history, meta = load_checkpoint(directory, _state(0))
    assert float(state["w"][0]) == meta["step"] and history["loss"].shape == (meta["step"],)
    return meta["step"]


def _save(directory, step):
    save_checkpoint(directory, _state(step), {"loss": np.ones(step)}, {"step": step})


def test_previous_checkpoint_is_kept_until_the_new_one_is_verified(tmp_path, monkeypatch):
    _save(tmp_path, 2)
    _save(tmp_path, 5)
    real_savez, real_replace = np.savez, os.replace

    def short_write(f, **arrays):  # a write that loses its second half without an error
        buf = io.BytesIO()
        real_savez(buf, **arrays)
        f.write(buf.getvalue()[: len(buf.getvalue()) // 2])

    monkeypatch.setattr(np, "savez", short_write)
    with pytest.raises(OSError, match=r"did not read back intact.*unchanged"):
        _save(tmp_path, 7)
    monkeypatch.setattr(np, "savez", real_savez)

    def crash_before_moving_in(src, dst):  # killed after keeping the previous checkpoint
        if Path(dst).name == CURRENT:
            raise OSError("killed")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", crash_before_moving_in)
    with pytest.raises(OSError, match="killed"):
        _save(tmp_path, 9)
    monkeypatch.setattr(os, "replace", real_replace)
    assert sorted(p.name for p in tmp_path.iterdir()) == [CURRENT, PREVIOUS]  # no temporaries
    assert _saved_step(tmp_path) == 5
    _save(tmp_path, 11)
    assert _saved_step(tmp_path) == 11
    _spoil(tmp_path / CURRENT, "truncated")
    assert _saved_step(tmp_path) == 5  # the previous one, kept as the fallback


def test_load_checks_the_state_structure(tmp_path):
    _save(tmp_path, 2)
    match = r"(?s)checkpoint\.npz.*another structure.*\['w'\] float32\[3\].*float32\[4\]"
    with pytest.raises(ValueError, match=match):
        load_checkpoint(tmp_path, {"w": jnp.zeros(4)})


def test_format_2_checkpoints_still_load(tmp_path):
    # Written before structure records and digests: read without those checks.
    blob = io.BytesIO()
    eqx.tree_serialise_leaves(blob, _state(4))
    np.savez(
        tmp_path / CURRENT,
        **{"history/loss": np.ones(4)},
        state=np.frombuffer(blob.getvalue(), dtype=np.uint8),
        meta=np.asarray('{"version": 2, "step": 4}'),
    )
    assert _saved_step(tmp_path) == 4
