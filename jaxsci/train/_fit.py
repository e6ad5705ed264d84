r"""`fit`: minibatch training of an equinox model with optax, reproducible and resumable.

A driver over `train_init` / `train_step` (`_step.py`). Determinism by construction: every
random choice is a pure function of `key` and the global step: epoch e shuffles the data
with the permutation of `fold_in(data_key, e)`, step s draws its batch from that permutation
and its loss key from `state.key` and s. The update steps run inside one compiled
`lax.fori_loop` over `train_step` whose bounds are arguments, so a run cut into chunks
at any steps (epoch ends, checkpoints, a kill and a resume) executes the same compiled step
on the same inputs and reproduces the uninterrupted run bit for bit.
"""

import functools
import logging
import math
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

from .._checks import check_int, check_key, check_positive, check_range
from .._custom_types import Key, PyTree
from .._interrupts import check_interrupted
from .._progress import progress_bar
from .._sharding import _is_key, batch_sharding, batch_size as _batch_size, gather, place_tree
from ._checkpoint import (
    UNREADABLE_NAME,
    checkpoint_path,
    has_checkpoint,
    read_checkpoint,
    restore_state,
    save_checkpoint,
    shorten,
    structure_difference,
    structure_record,
)
from ._step import (
    DATA,
    VAL,
    TrainInfo,
    TrainState,
    split_loss_output,
    train_init,
    train_step,
)

logger = logging.getLogger("jaxsci.train")


def _leading_size(tree: PyTree, name: str) -> int:
    return _batch_size(tree, f"`{name}` arrays")


def _as_arrays(tree: PyTree) -> PyTree:
    return jax.tree.map(jnp.asarray, tree)


@eqx.filter_jit
def _eval_batch(model, loss: Callable, batch: PyTree, key: Key | None):
    return split_loss_output(loss(model, batch, key=key))[0]


def evaluate(
    model, loss: Callable, data: PyTree, *, batch_size: int, key: Key | None = None
) -> float:
    """The loss on `data` in batches of `batch_size` (the last one smaller), as the mean over
    batches weighted by their sizes, i.e. the per-example mean for losses that average
    over the batch. Batch i gets `fold_in(key, i)` (`key` None: no key is passed)."""
    check_int("batch_size", batch_size)
    n = _leading_size(data, "data")
    data = _as_arrays(data)
    total = 0.0
    for i, start in enumerate(range(0, n, batch_size)):
        stop = min(n, start + batch_size)
        batch = jax.tree.map(lambda a, start=start, stop=stop: a[start:stop], data)
        k = None if key is None else jax.random.fold_in(key, i)
        total += float(_eval_batch(model, loss, batch, k)) * (stop - start)
    return total / n


@functools.lru_cache(maxsize=32)
def _with_clipping(optimizer, clip_norm):
    # Cached so that repeated fits with one optimizer reuse one transformation (and its
    # compiled update step).
    if clip_norm is None:
        return optimizer
    return optax.chain(optax.clip_by_global_norm(clip_norm), optimizer)


@eqx.filter_jit(donate="all-except-first")
def _train_chunk(fixed, state: TrainState) -> tuple[TrainState, TrainInfo]:
    """`train_step`s at positions pos0 <= pos < pos1 of the epoch whose batches are `perm`
    (spe, B). The state is donated (its buffers are reused); `fixed` = (data, perm, loss,
    optimizer, ema, records, split, pos0, pos1) is not. Returns the new state and the
    per-step records, shaped like `records` ((spe,) arrays), NaN outside [pos0, pos1).
    `split`: None, or the sharding of a batch's examples over devices (data parallel: the
    gradient's sum over the batch becomes a reduction across devices)."""
    data, perm, loss, optimizer, ema, records, split, pos0, pos1 = fixed

    arrays, static = eqx.partition(state, eqx.is_array)  # a loop carries arrays only

    def body(pos, carry):
        arrays, rec = carry
        batch = jax.tree.map(lambda a: jnp.take(a, perm[pos], axis=0), data)
        if split is not None:
            batch = jax.lax.with_sharding_constraint(batch, split)
        new, info = train_step(
            eqx.combine(arrays, static), batch, loss=loss, optimizer=optimizer, ema=ema
        )
        rec = jax.tree.map(lambda r, v: r.at[pos].set(jnp.real(v).astype(r.dtype)), rec, info)
        return eqx.filter(new, eqx.is_array), rec

    arrays, records = jax.lax.fori_loop(pos0, pos1, body, (arrays, records))
    return eqx.combine(arrays, static), records


@functools.partial(jax.jit, static_argnames=("n", "spe", "batch_size"))
def _epoch_perm(data_key, epoch, *, n, spe, batch_size):
    perm = jax.random.permutation(jax.random.fold_in(data_key, epoch), n)
    return perm[: spe * batch_size].reshape(spe, batch_size)


class _Run:
    """One `fit` call's settings and bookkeeping: the compiled chunk, the history, the
    evaluations and the early-stopping record."""

    def __init__(self, loss, val_data, val_batch_size, val_key, patience, min_delta):
        self.loss, self.val_data = loss, val_data
        self.val_batch_size, self.val_key = val_batch_size, val_key
        self.patience, self.min_delta = patience, min_delta
        self.compiled = None
        self.compile_seconds = 0.0
        self.t_start = time.perf_counter()

    def chunk(self, fixed, state):
        if self.compiled is None:
            t = time.perf_counter()
            self.compiled = _train_chunk.lower(fixed, state).compile()
            self.compile_seconds = time.perf_counter() - t
        return self.compiled(fixed, state)

    def end_of_epoch(self, state, best, step, epoch, hist, evals, meta, partial):
        """Record an evaluation at `step`; update the early-stopping state at full epoch ends
        (a `partial` epoch, where `num_steps` ends a run mid-epoch, is only recorded).
        Returns the best model so far."""
        prev = int(evals["eval_step"][-1]) if evals["eval_step"] else 0
        losses_since = hist["loss"][prev:step]
        train_loss = float(np.mean(losses_since)) if losses_since else math.nan
        current = state.model if state.ema_model is None else state.ema_model
        val = math.nan
        if self.val_data is not None:
            val = evaluate(
                current,
                self.loss,
                self.val_data,
                batch_size=self.val_batch_size,
                key=self.val_key,
            )
        evals["eval_step"].append(step)
        evals["epoch"].append(epoch)
        evals["train_loss"].append(train_loss)
        evals["val_loss"].append(val)
        evals["wall_seconds"].append(time.perf_counter() - self.t_start)
        logger.debug("step %d epoch %d train %.4g val %.4g", step, epoch, train_loss, val)
        if self.patience is not None and not partial:
            if val < meta["best_val"] - self.min_delta:
                meta["best_val"], meta["best_step"], meta["bad_evals"] = val, step, 0
                best = jax.tree.map(jnp.copy, eqx.filter(current, eqx.is_inexact_array))
            else:
                meta["bad_evals"] += 1
                if meta["bad_evals"] >= self.patience:
                    meta["stopped"] = (
                        f"early stopping at step {step}: no validation improvement in "
                        f"{self.patience} evaluations (best {meta['best_val']:.4g} at step "
                        f"{meta['best_step']})"
                    )
        return best


def fit(
    model: eqx.Module,
    loss: Callable,
    data: PyTree,
    *,
    optimizer: optax.GradientTransformation,
    key: Key,
    batch_size: int,
    num_steps: int | None = None,
    epochs: int | None = None,
    val_data: PyTree | None = None,
    val_batch_size: int | None = None,
    ema: float | None = None,
    clip_norm: float | None = None,
    trainable: Callable[[Any], Any] | None = None,
    early_stopping: int | None = None,
    min_delta: float = 0.0,
    restore_best: bool = True,
    checkpoint_dir: str | Path | None = None,
    checkpoint_every: int | None = None,
    progress: bool = True,
    throw: bool = True,
    devices: Sequence[Any] | None = None,
) -> tuple[Any, dict[str, Any]]:
    r"""Train `model` on `data` by minibatch gradient descent; return (model, history).

    Each step draws `batch_size` examples (the pytree `data` with a leading example axis,
    e.g. (inputs, targets)), evaluates `loss(model, batch, key=k) -> (value, aux)`, and
    applies `optimizer` (an optax transformation, after global-norm clipping at
    `clip_norm` when given). An epoch is `len(data) // batch_size` steps over a fresh
    permutation (the remainder of the permutation is dropped, so every batch has the same
    shape). Complex parameters get the conjugate of `jax.grad`'s cotangent, the steepest
    descent direction.

    Arguments:
        model: an equinox module; its inexact arrays (`eqx.is_inexact_array`) are trained.
        loss: `loss(model, batch, *, key) -> (value, aux)` (a `jaxsci.losses.AbstractLoss`
            or any callable of that form; aux is a dict whose scalar entries are recorded).
        data, val_data: pytrees of arrays with a common leading example axis.
        optimizer: an `optax.GradientTransformation` (learning-rate schedules are indexed by
            its own step count, which checkpoints carry).
        key: the only source of randomness (data order, loss keys, validation keys).
        batch_size: examples per step (`val_batch_size` for validation, default the same).
        num_steps / epochs: the length of training; give exactly one.
        ema: decay of an exponential moving average of the weights (e.g. 0.999), with the
            warm-up min(ema, (1 + t)/(10 + t)); the returned model and the validation use
            the averaged weights.
        clip_norm: clip gradients to this global norm.
        trainable: train only part of the model, `model -> node or tuple of nodes` (as
            `equinox.tree_at`'s `where`; see `train_init` and `trainable_mask`), e.g.
            `lambda m: m.net.last_layers()` to fine-tune the last Fourier layer and the
            projection of an FNO stepper. The other arrays are returned bit for bit
            unchanged, get no gradient (the backward pass stops at the earliest free
            layer) and no optimizer state. None: every inexact array is trained.
        early_stopping: patience: stop after this many evaluations (epoch ends) without a
            validation loss below the best by more than `min_delta`; needs `val_data`. With
            `restore_best` the returned model is the best one.
        checkpoint_dir: write `checkpoint.npz` there at every epoch end and every
            `checkpoint_every` steps: each one is verified by reading it back before it
            replaces the current one, which is kept as `checkpoint.prev.npz` (see
            `save_checkpoint`). If the folder already holds a checkpoint of this run (same
            key, data size, batch size and options, model architecture and optimizer state
            structure; another is a ValueError naming both) training resumes from it, and
            the result is bit-for-bit that of an uninterrupted run. An unreadable (empty,
            truncated, corrupt) `checkpoint.npz` is logged as an error, moved aside to
            `checkpoint.npz.unreadable`, and the run resumes from `checkpoint.prev.npz`;
            if neither can be read, a ValueError names both.
            Asking for more steps than a finished checkpoint has continues that run.
        progress: show a tqdm progress bar.
        throw: raise if the loss becomes non-finite; otherwise stop and report it in
            `history["stopped"]`.
        devices: data-parallel training over these devices (e.g. `jax.devices()`: all of
            them, those of every process in a multi-process run, see `jaxsci.distributed`):
            the model, optimizer state and data are replicated on every device, each step's
            batch is split over them, and the gradient's sum over the batch becomes a
            reduction across devices (GSPMD inserts the all-reduce). The same steps as on one
            device up to floating-point rounding (another summation order); the returned
            model is whole on every process. None (default): one device. Not with
            `checkpoint_dir` in a multi-process run (every process would write the file).

    Returns:
        The trained model, and `history`, a dict of numpy arrays and scalars: per step
        `loss`, `grad_norm` and `aux/<name>`; per evaluation (epoch ends) `eval_step`,
        `epoch`, `train_loss` (mean step loss since the last evaluation), `val_loss` (NaN
        without `val_data`) and `wall_seconds`; and `compile_seconds`, `train_seconds`
        (update steps of this call, compile excluded), `steps_per_second`, `start_step`
        (where this call resumed), `best_step`, `stopped` ("" or the reason).
    """
    if not isinstance(optimizer, optax.GradientTransformation):
        raise TypeError(
            f"`optimizer` must be an optax.GradientTransformation, got {type(optimizer).__name__}."
        )
    key = check_key("key", key)
    if not callable(loss):
        raise TypeError(f"`loss` must be callable loss(model, batch, *, key), got {loss!r}.")
    check_int("batch_size", batch_size)
    for name, value in (
        ("val_batch_size", val_batch_size),
        ("checkpoint_every", checkpoint_every),
        ("early_stopping", early_stopping),
    ):
        if value is not None:
            check_int(name, value)
    if (num_steps is None) == (epochs is None):
        raise ValueError(
            f"give exactly one of `num_steps` and `epochs`, got num_steps={num_steps!r}, "
            f"epochs={epochs!r}."
        )
    check_int("num_steps" if epochs is None else "epochs", num_steps or epochs)
    if ema is not None:
        check_range("ema", ema, 0.0, 1.0, lower_open=True, upper_open=True)
    if clip_norm is not None:
        check_positive("clip_norm", clip_norm)
    check_positive("min_delta", min_delta, allow_zero=True)
    if early_stopping is not None and val_data is None:
        raise ValueError("`early_stopping` needs `val_data` to monitor.")
    split = None if devices is None else batch_sharding(devices)
    if split is not None and checkpoint_dir is not None and not split.is_fully_addressable:
        raise ValueError(
            "`checkpoint_dir` is not supported with `devices` of several processes (every "
            "process would write the same files); give checkpoint_dir=None."
        )
    n = _leading_size(data, "data")
    if batch_size > n:
        raise ValueError(f"`batch_size` {batch_size} exceeds the {n} examples in `data`.")
    if val_data is not None:
        _leading_size(val_data, "val_data")
        if jax.tree.structure(val_data) != jax.tree.structure(data):
            raise ValueError(
                "`val_data` must have the same structure as `data`, got "
                f"{jax.tree.structure(val_data)} and {jax.tree.structure(data)}."
            )
    data = _as_arrays(data)
    val_data = None if val_data is None else _as_arrays(val_data)
    spe = n // batch_size
    total = int(num_steps) if num_steps is not None else int(epochs or 0) * spe

    clip = None if clip_norm is None else float(clip_norm)
    try:
        tx = _with_clipping(optimizer, clip)
    except TypeError:  # an unhashable transformation: no caching
        tx = _with_clipping.__wrapped__(optimizer, clip)
    # Fresh buffers: the compiled steps donate (reuse) the state's, and the caller's model
    # must stay valid.
    state = train_init(
        jax.tree.map(lambda a: jnp.copy(a) if eqx.is_array(a) else a, model),
        tx,
        key=jnp.copy(key),  # the state is donated: keep the caller's key valid
        ema=ema is not None,
        trainable=trainable,
    )
    if split is not None:  # everything but the batches whole on every device
        whole = jax.sharding.NamedSharding(split.mesh, jax.sharding.PartitionSpec())
        state, data = place_tree((state, data), whole)
    best = (
        None
        if early_stopping is None
        else jax.tree.map(jnp.copy, eqx.filter(model, eqx.is_inexact_array))
    )
    ema_decay = None if ema is None else jnp.asarray(float(ema), jnp.result_type(float))
    data_key = jax.random.fold_in(key, DATA)
    val_key = jax.random.fold_in(key, VAL)

    # The per-step records: shaped like one step's TrainInfo, one entry per epoch position.
    sample = jax.tree.map(lambda a: a[:batch_size], data)
    info_shape = eqx.filter_eval_shape(
        lambda s, b: train_step(s, b, loss=loss, optimizer=tx, ema=ema_decay)[1], state, sample
    )
    aux_names = list(info_shape.aux)
    nan = jnp.full((spe,), jnp.nan, jnp.result_type(float))
    records = TrainInfo(loss=nan, grad_norm=nan, aux={name: nan for name in aux_names})

    key_data = np.asarray(jax.random.key_data(key)).tolist()
    meta = {
        "step": 0,
        "num_examples": n,
        "batch_size": batch_size,
        "key": key_data,
        # Options that change the checkpointed state's structure.
        "state_options": {
            "ema": ema is not None,
            "clip_norm": clip_norm is not None,
            "early_stopping": early_stopping is not None,
            # which arrays are trained (only recorded when some are frozen, so that the
            # checkpoints of full training keep their meta)
            **({} if state.trainable is None else {"trainable": list(state.trainable)}),
        },
        # What the checkpointed arrays belong to: a resume under another architecture or
        # optimizer is refused (their arrays may even fit the other structure by chance).
        "parts": {
            "model": structure_record(_saved_arrays(state.model)),
            "optimizer": structure_record(_saved_arrays(state.opt_state)),
        },
        "best_val": math.inf,
        "best_step": -1,
        "bad_evals": 0,
        "stopped": "",
    }
    hist: dict[str, list] = {
        name: [] for name in ("loss", "grad_norm", *[f"aux/{a}" for a in aux_names])
    }
    evals: dict[str, list] = {
        name: [] for name in ("eval_step", "epoch", "train_loss", "val_loss", "wall_seconds")
    }
    if checkpoint_dir is not None and has_checkpoint(checkpoint_dir):
        (state, best), saved, meta = _resume(checkpoint_dir, (state, best), meta)
        for name in hist:
            hist[name] = list(saved.get(name, []))
        for name in evals:
            evals[name] = list(saved.get(name, []))
        # An evaluation at the end of a run that stopped mid-epoch is provisional: a run
        # continued past it evaluates at the epoch end instead (as an uninterrupted run).
        if meta["step"] < total:
            while evals["eval_step"] and evals["eval_step"][-1] % spe:
                for name in evals:
                    evals[name].pop()
        logger.info("resumed from %s at step %d", checkpoint_dir, meta["step"])
    start_step = step = int(meta["step"])

    run = _Run(loss, val_data, val_batch_size or batch_size, val_key, early_stopping, min_delta)
    train_seconds = 0.0

    def save():
        if checkpoint_dir is not None:
            save_checkpoint(
                checkpoint_dir,
                _saved_arrays((state, best)),
                {**hist, **evals},
                {**meta, "step": step},
            )

    bar = progress_bar(progress, total=total, initial=min(step, total), desc="fit", unit="step")
    with bar:
        while step < total and not meta["stopped"]:
            epoch = step // spe
            epoch_end = min((epoch + 1) * spe, total)
            perm = _epoch_perm(data_key, np.int32(epoch), n=n, spe=spe, batch_size=batch_size)
            fixed = (data, perm, loss, tx, ema_decay, records, split)
            while step < epoch_end:
                check_interrupted()  # a Ctrl-C that jax's tracing swallowed
                stop = epoch_end
                if checkpoint_every is not None:
                    stop = min(stop, (step // checkpoint_every + 1) * checkpoint_every)
                pos0, pos1 = step - epoch * spe, stop - epoch * spe
                t = time.perf_counter()
                state, rec = run.chunk((*fixed, np.int32(pos0), np.int32(pos1)), state)
                rec = jax.tree.map(lambda a, sl=slice(pos0, pos1): np.asarray(a)[sl], gather(rec))
                train_seconds += time.perf_counter() - t
                columns = [rec.loss, rec.grad_norm, *(rec.aux[a] for a in aux_names)]
                for name, column in zip(hist, columns, strict=True):
                    hist[name].extend(column.tolist())
                bad = ~np.isfinite(rec.loss)
                if bad.any():
                    where = step + int(np.argmax(bad))
                    msg = f"the loss became non-finite at step {where}"
                    if throw:
                        raise FloatingPointError(
                            f"fit: {msg} (loss {rec.loss[int(np.argmax(bad))]}); lower the "
                            "learning rate, clip gradients (`clip_norm`) or check the data. "
                            "Pass throw=False to stop and return instead."
                        )
                    meta["stopped"] = msg
                step = stop
                bar.update(len(rec.loss))
                bar.set_postfix(loss=f"{rec.loss[-1]:.4g}")
                if meta["stopped"]:
                    break
                if (
                    step < epoch_end
                    and checkpoint_every is not None
                    and step % checkpoint_every == 0
                ):
                    save()
            if meta["stopped"]:
                break
            best = run.end_of_epoch(
                state, best, step, epoch, hist, evals, meta, partial=step % spe != 0
            )
            if evals["val_loss"] and np.isfinite(evals["val_loss"][-1]):
                bar.set_postfix(
                    loss=f"{evals['train_loss'][-1]:.4g}", val=f"{evals['val_loss'][-1]:.4g}"
                )
            save()
    final = state.model if ema is None else state.ema_model
    if early_stopping is not None and restore_best and meta["best_step"] >= 0:
        final = eqx.combine(best, final)
    final = gather(final)  # after combining: `best` spans every process's devices too
    history: dict[str, Any] = {k: np.asarray(v, dtype=np.float64) for k, v in hist.items()}
    history.update(
        eval_step=np.asarray(evals["eval_step"], dtype=np.int64),
        epoch=np.asarray(evals["epoch"], dtype=np.int64),
        train_loss=np.asarray(evals["train_loss"], dtype=np.float64),
        val_loss=np.asarray(evals["val_loss"], dtype=np.float64),
        wall_seconds=np.asarray(evals["wall_seconds"], dtype=np.float64),
        compile_seconds=run.compile_seconds,
        train_seconds=train_seconds - run.compile_seconds,
        start_step=start_step,
        best_step=int(meta["best_step"]),
        stopped=str(meta["stopped"]),
    )
    done = step - start_step
    history["steps_per_second"] = done / history["train_seconds"] if done else 0.0
    return final, history


def _saved_arrays(tree: PyTree) -> PyTree:
    """The arrays of a training state that a checkpoint holds: all but PRNG keys (the run
    key is in the checkpoint's metadata, and the resuming call must give the same one)."""
    return eqx.filter(tree, lambda a: eqx.is_array(a) and not _is_key(a))


_PART_WORDS = {
    # part: (what the checkpoint was written with, the argument, what it gives)
    "model": (
        "written for a {types} model with {n} arrays",
        "model",
        "is a {types} with {n} arrays",
    ),
    "optimizer": (
        "written with the optimizer state {types} ({n} arrays)",
        "optimizer",
        "has the state {types} ({n} arrays)",
    ),
}


def _check_part(path: Path, part: str, saved: dict, wanted: dict) -> None:
    difference = structure_difference(saved, wanted)
    if difference is None:
        return
    held, arg, given = _PART_WORDS[part]

    def words(template, record):
        return template.format(types=shorten(record["types"], 300), n=len(record["arrays"]))

    raise ValueError(
        f"the checkpoint {path} was {words(held, saved)}, but this call's "
        f"`{arg}` {words(given, wanted)} (first difference: {shorten(difference)}). Resume "
        f"with the {part} the checkpoint was written with, or use a new `checkpoint_dir`."
    )


def _resume(directory, like, meta):
    """Load the checkpoint in `directory` (or its fallback, the previous one) after checking
    that it belongs to this run: the same key, data size, batch size and options, model
    architecture and optimizer. The state `like` gives the structure, and the parts a
    checkpoint does not hold."""
    ckpt = read_checkpoint(directory)
    saved_meta = ckpt.meta
    for name in ("key", "num_examples", "batch_size", "state_options"):
        if saved_meta.get(name) != meta[name]:
            options = "ema/clip_norm/early_stopping"
            if "trainable" in meta["state_options"] or "trainable" in (
                saved_meta.get("state_options") or {}
            ):
                options += "/trainable"
            arg = {"num_examples": "data", "state_options": options}.get(name, name)
            raise ValueError(
                f"`checkpoint_dir` {str(directory)!r} holds a checkpoint of another run: its "
                f"{name} is {saved_meta.get(name)!r}, this call's `{arg}` gives "
                f"{meta[name]!r}. Use a new folder, or the same arguments to resume."
            )
    saved_parts = saved_meta.get("parts")
    if saved_parts is None:
        logger.warning(
            "%s predates structure records: its model and optimizer are not checked", ckpt.path
        )
    else:
        for part in ("model", "optimizer"):
            _check_part(ckpt.path, part, saved_parts[part], meta["parts"][part])
    arrays = restore_state(ckpt, _saved_arrays(like))
    state = eqx.combine(arrays, like)
    current = checkpoint_path(directory)
    if ckpt.path != current and current.is_file():
        # The current file is unreadable: moved aside (kept for inspection), the next save
        # keeps the checkpoint resumed from as the previous one instead of this file.
        aside = current.with_name(UNREADABLE_NAME)
        os.replace(current, aside)
        logger.warning("moved the unreadable %s to %s", current, aside)
    return state, ckpt.history, {**meta, **{k: saved_meta[k] for k in meta if k in saved_meta}}
