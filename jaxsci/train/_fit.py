r"""`fit`: minibatch training of an equinox model with optax, reproducible and resumable.

Determinism by construction. Every random choice is a pure function of `key` and the
global step: epoch e shuffles the data with the permutation of
`fold_in(data_key, e)`, step s draws its batch from that permutation and passes
`fold_in(loss_key, s)` to the loss. The update steps run inside one jitted
`lax.fori_loop` whose bounds are arguments, so a run cut into chunks at any steps (epoch
ends, checkpoints, a kill and a resume) executes the same compiled step on the same
inputs and reproduces the uninterrupted run bit for bit.
"""

import functools
import json
import logging
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from tqdm.auto import tqdm

from .._custom_types import Key, PyTree
from ._checkpoint import checkpoint_path, load_checkpoint, save_checkpoint

logger = logging.getLogger("jaxsci.train")

# Salts for jax.random.fold_in: the data order, the loss's randomness and validation draw
# from independent streams of the one `key`.
_DATA, _LOSS, _VAL = 0, 1, 2


def _leading_size(tree: PyTree, name: str) -> int:
    leaves = jax.tree.leaves(tree)
    if not leaves:
        raise ValueError(f"`{name}` has no arrays.")
    sizes = set()
    for leaf in leaves:
        shape = np.shape(leaf)
        if len(shape) == 0:
            raise ValueError(
                f"`{name}` has a scalar leaf; every array needs a leading example axis."
            )
        sizes.add(shape[0])
    if len(sizes) != 1:
        raise ValueError(
            f"`{name}` arrays must share the leading (example) axis, got sizes {sorted(sizes)}."
        )
    return sizes.pop()


def _as_arrays(tree: PyTree) -> PyTree:
    return jax.tree.map(jnp.asarray, tree)


def _split_loss_output(out):
    if isinstance(out, tuple) and len(out) == 2:
        return out
    return out, {}


def _aux_names(aux) -> list[str]:
    """Names of the scalar entries of a loss's aux dict (nested dicts joined with '/')."""
    if not isinstance(aux, dict):
        return []
    names = []
    for k, v in aux.items():
        if isinstance(v, dict):
            names += [f"{k}/{n}" for n in _aux_names(v)]
        elif hasattr(v, "shape") and tuple(v.shape) == ():
            names.append(str(k))
    return names


def _aux_value(aux, name: str):
    for part in name.split("/"):
        aux = aux[part]
    return aux


def _conj_complex(tree):
    # jax.grad of a real loss in a complex parameter z returns conj(dL/dz*)-style cotangents
    # (df/dx - i df/dy); gradient descent needs df/dx + i df/dy, the conjugate.
    return jax.tree.map(lambda g: jnp.conj(g) if jnp.iscomplexobj(g) else g, tree)


def evaluate(
    model, loss: Callable, data: PyTree, *, batch_size: int, key: Key | None = None
) -> float:
    """The loss on `data` in batches of `batch_size` (the last one smaller), as the mean over
    batches weighted by their sizes, i.e. the per-example mean for losses that average
    over the batch. Batch i gets `fold_in(key, i)` (`key` None: no key is passed)."""
    _check_positive_int("batch_size", batch_size)
    params, static = eqx.partition(model, eqx.is_inexact_array)

    def fn(p, batch, k):
        return _eval_batch(p, batch, k, static=_static(static), loss=_static(loss))

    return _evaluate(fn, params, data, batch_size, key)


def _evaluate(fn, params, data, batch_size, key) -> float:
    n = _leading_size(data, "data")
    data = _as_arrays(data)
    total = 0.0
    for i, start in enumerate(range(0, n, batch_size)):
        stop = min(n, start + batch_size)
        batch = jax.tree.map(lambda a, start=start, stop=stop: a[start:stop], data)
        k = None if key is None else jax.random.fold_in(key, i)
        total += float(fn(params, batch, k)) * (stop - start)
    return total / n


class _ById:
    """Wraps an unhashable static value so `jax.jit` can key on its identity instead."""

    def __init__(self, value):
        self.value = value

    def __hash__(self):
        return id(self.value)

    def __eq__(self, other):
        return isinstance(other, _ById) and other.value is self.value


def _static(value):
    """`value` itself when hashable (so equal models/losses/optimisers across `fit` calls share
    compiled code), else an identity wrapper."""
    try:
        hash(value)
        return value
    except TypeError:
        return _ById(value)


def _unwrap(value):
    return value.value if isinstance(value, _ById) else value


@functools.lru_cache(maxsize=32)
def _with_clipping(optimizer, clip_norm):
    # Cached so that repeated fits with one optimizer reuse one transformation (and its
    # compiled update step).
    if clip_norm is None:
        return optimizer
    return optax.chain(optax.clip_by_global_norm(clip_norm), optimizer)


@functools.partial(
    jax.jit,
    static_argnames=("static", "loss", "tx", "ema", "spe", "aux_names"),
    donate_argnums=(0, 1, 2),
)
def _chunk(
    params,
    opt_state,
    ema_params,
    data,
    perm,
    loss_key,
    step0,
    pos0,
    pos1,
    *,
    static,
    loss,
    tx,
    ema,
    spe,
    aux_names,
):
    """Steps at positions pos0 <= pos < pos1 of the epoch whose batches are `perm` (spe, B);
    the global step of position pos is step0 + pos - pos0. Returns the new state and the
    per-step records (spe, 2 + len(aux_names)), NaN outside [pos0, pos1)."""
    static, loss, tx = _unwrap(static), _unwrap(loss), _unwrap(tx)

    def loss_of(p, batch, k):
        return _split_loss_output(loss(eqx.combine(p, static), batch, key=k))

    grad_fn = jax.value_and_grad(loss_of, has_aux=True)

    def body(pos, carry):
        params, opt_state, ema_params, rec = carry
        step = step0 + (pos - pos0)
        idx = perm[pos]
        batch = jax.tree.map(lambda a: jnp.take(a, idx, axis=0), data)
        (value, aux), grads = grad_fn(params, batch, jax.random.fold_in(loss_key, step))
        grads = _conj_complex(grads)
        gnorm = optax.tree.norm(grads)
        updates, opt_state = tx.update(grads, opt_state, params)
        params = optax.apply_updates(params, updates)
        if ema is not None:
            # Warm-up of the decay (as TensorFlow's ExponentialMovingAverage with
            # num_updates): early averages do not cling to the initial weights.
            t = step.astype(rec.dtype)
            d = jnp.minimum(ema, (1.0 + t) / (10.0 + t))
            ema_params = jax.tree.map(
                lambda e, p: (d * e + (1 - d) * p).astype(p.dtype), ema_params, params
            )
        row = [value, gnorm] + [_aux_value(aux, nm) for nm in aux_names]
        row = jnp.stack([jnp.real(r).astype(rec.dtype) for r in row])
        return params, opt_state, ema_params, rec.at[pos].set(row)

    rec = jnp.full((spe, 2 + len(aux_names)), jnp.nan, jnp.result_type(float))
    return jax.lax.fori_loop(pos0, pos1, body, (params, opt_state, ema_params, rec))


@functools.partial(jax.jit, static_argnames=("static", "loss"))
def _eval_batch(params, batch, k, *, static, loss):
    value, _ = _split_loss_output(_unwrap(loss)(eqx.combine(params, _unwrap(static)), batch, key=k))
    return value


@functools.partial(jax.jit, static_argnames=("n", "spe", "batch_size"))
def _epoch_perm(data_key, epoch, *, n, spe, batch_size):
    perm = jax.random.permutation(jax.random.fold_in(data_key, epoch), n)
    return perm[: spe * batch_size].reshape(spe, batch_size)


class _Run:
    """The compiled pieces of one `fit` call (shared with earlier calls through jit's cache)."""

    def __init__(self, static, loss, tx, ema: float | None, steps_per_epoch, aux_names):
        self.static, self.loss = static, loss
        self.statics = dict(
            static=_static(static),
            loss=_static(loss),
            tx=_static(tx),
            ema=ema,
            spe=steps_per_epoch,
            aux_names=tuple(aux_names),
        )
        self.compiled = None
        self.compile_seconds = 0.0

    def run(self, *args):
        if self.compiled is None:
            t = time.perf_counter()
            self.compiled = _chunk.lower(*args, **self.statics).compile()
            self.compile_seconds = time.perf_counter() - t
        return self.compiled(*args)

    def eval_fn(self, params, batch, k):
        return _eval_batch(
            params, batch, k, static=self.statics["static"], loss=self.statics["loss"]
        )


def _check_positive_int(name: str, value, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"`{name}` must be a positive integer, got {value!r}.")


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
    early_stopping: int | None = None,
    min_delta: float = 0.0,
    restore_best: bool = True,
    checkpoint_dir: str | Path | None = None,
    checkpoint_every: int | None = None,
    progress: bool = True,
    throw: bool = True,
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
        early_stopping: patience: stop after this many evaluations (epoch ends) without a
            validation loss below the best by more than `min_delta`; needs `val_data`. With
            `restore_best` the returned model is the best one.
        checkpoint_dir: write `checkpoint.npz` there (atomically) at every epoch end and
            every `checkpoint_every` steps; if it already holds a checkpoint of this run
            (same key, data size and batch size) training resumes from it, and the result
            is bit-for-bit that of an uninterrupted run. Asking for more steps than a
            finished checkpoint has continues that run.
        progress: show a tqdm progress bar.
        throw: raise if the loss becomes non-finite; otherwise stop and report it in
            `history["stopped"]`.

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
    if not callable(loss):
        raise TypeError(f"`loss` must be callable loss(model, batch, *, key), got {loss!r}.")
    _check_positive_int("batch_size", batch_size)
    _check_positive_int("val_batch_size", val_batch_size, allow_none=True)
    _check_positive_int("checkpoint_every", checkpoint_every, allow_none=True)
    _check_positive_int("early_stopping", early_stopping, allow_none=True)
    if (num_steps is None) == (epochs is None):
        raise ValueError(
            f"give exactly one of `num_steps` and `epochs`, got num_steps={num_steps!r}, "
            f"epochs={epochs!r}."
        )
    _check_positive_int("num_steps" if epochs is None else "epochs", num_steps or epochs)
    if ema is not None and not 0.0 < float(ema) < 1.0:
        raise ValueError(f"`ema` must be a decay in (0, 1), got {ema!r}.")
    if clip_norm is not None and not float(clip_norm) > 0:
        raise ValueError(f"`clip_norm` must be positive, got {clip_norm!r}.")
    if early_stopping is not None and val_data is None:
        raise ValueError("`early_stopping` needs `val_data` to monitor.")
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
    val_bs = val_batch_size or batch_size

    params, static = eqx.partition(model, eqx.is_inexact_array)
    # Fresh buffers: the update step donates (reuses) them, and the caller's model must
    # stay valid; EMA and best weights start as separate copies for the same reason.
    params = jax.tree.map(jnp.copy, params)
    clip = None if clip_norm is None else float(clip_norm)
    try:
        tx = _with_clipping(optimizer, clip)
    except TypeError:  # an unhashable transformation: no caching
        tx = _with_clipping.__wrapped__(optimizer, clip)
    data_key = jax.random.fold_in(key, _DATA)
    loss_key = jax.random.fold_in(key, _LOSS)
    val_key = jax.random.fold_in(key, _VAL)

    sample = jax.tree.map(lambda a: a[:batch_size], data)
    aux_shape = jax.eval_shape(
        lambda p, b, k: _split_loss_output(loss(eqx.combine(p, static), b, key=k))[1],
        params,
        sample,
        loss_key,
    )
    aux_names = _aux_names(aux_shape)

    # The training state: (params, opt_state, ema_params, best_params).
    state = (
        params,
        tx.init(params),
        None if ema is None else jax.tree.map(jnp.copy, params),
        None if early_stopping is None else jax.tree.map(jnp.copy, params),
    )
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
    if checkpoint_dir is not None and checkpoint_path(checkpoint_dir).is_file():
        state, saved, meta = _resume(checkpoint_dir, state, meta)
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

    run = _Run(static, loss, tx, None if ema is None else float(ema), spe, aux_names)

    def epoch_perm(e):
        return _epoch_perm(data_key, np.int32(e), n=n, spe=spe, batch_size=batch_size)

    train_seconds = 0.0
    t_start = time.perf_counter()

    def save():
        if checkpoint_dir is not None:
            save_checkpoint(checkpoint_dir, state, {**hist, **evals}, {**meta, "step": step})

    bar = tqdm(
        total=total,
        initial=min(step, total),
        desc="fit",
        unit="step",
        disable=None if progress else True,  # None: only on a terminal
        leave=False,
    )
    with bar:
        while step < total and not meta["stopped"]:
            epoch = step // spe
            epoch_end = min((epoch + 1) * spe, total)
            perm = epoch_perm(epoch)
            while step < epoch_end:
                stop = epoch_end
                if checkpoint_every is not None:
                    stop = min(stop, (step // checkpoint_every + 1) * checkpoint_every)
                p, o, e, b = state
                args = (
                    p,
                    o,
                    e,
                    data,
                    perm,
                    loss_key,
                    np.int32(step),
                    np.int32(step - epoch * spe),
                    np.int32(stop - epoch * spe),
                )
                t = time.perf_counter()
                p, o, e, rec = run.run(*args)
                rec = np.asarray(rec)[step - epoch * spe : stop - epoch * spe]
                train_seconds += time.perf_counter() - t
                state = (p, o, e, b)
                for j, name in enumerate(hist):
                    hist[name].extend(rec[:, j].tolist())
                bad = ~np.isfinite(rec[:, 0])
                if bad.any():
                    where = step + int(np.argmax(bad))
                    msg = f"the loss became non-finite at step {where}"
                    if throw:
                        raise FloatingPointError(
                            f"fit: {msg} (loss {rec[int(np.argmax(bad)), 0]}); lower the "
                            "learning rate, clip gradients (`clip_norm`) or check the data. "
                            "Pass throw=False to stop and return instead."
                        )
                    meta["stopped"] = msg
                step = stop
                bar.update(len(rec))
                bar.set_postfix(loss=f"{rec[-1, 0]:.4g}")
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
            state = _end_of_epoch(
                state,
                step,
                epoch,
                hist,
                evals,
                meta,
                run,
                val_data,
                val_bs,
                val_key,
                early_stopping,
                min_delta,
                t_start,
                partial=step % spe != 0,
            )
            if evals["val_loss"] and np.isfinite(evals["val_loss"][-1]):
                bar.set_postfix(
                    loss=f"{evals['train_loss'][-1]:.4g}", val=f"{evals['val_loss'][-1]:.4g}"
                )
            save()
    p, o, e, b = state
    final = e if ema is not None else p
    if early_stopping is not None and restore_best and meta["best_step"] >= 0:
        final = b
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
    return eqx.combine(final, static), history


def _resume(directory, like_state, meta):
    """Load the checkpoint in `directory` after checking that it belongs to this run."""
    with np.load(checkpoint_path(directory)) as raw:
        saved_meta = json.loads(str(raw["meta"]))
    for name in ("key", "num_examples", "batch_size", "state_options"):
        if saved_meta.get(name) != meta[name]:
            arg = {"num_examples": "data", "state_options": "ema/clip_norm/early_stopping"}.get(
                name, name
            )
            raise ValueError(
                f"`checkpoint_dir` {str(directory)!r} holds a checkpoint of another run: its "
                f"{name} is {saved_meta.get(name)!r}, this call's `{arg}` gives "
                f"{meta[name]!r}. Use a new folder, or the same arguments to resume."
            )
    state, saved, saved_meta = load_checkpoint(directory, like_state)
    return state, saved, {**meta, **{k: saved_meta[k] for k in meta if k in saved_meta}}


def _end_of_epoch(
    state,
    step,
    epoch,
    hist,
    evals,
    meta,
    run,
    val_data,
    val_bs,
    val_key,
    patience,
    min_delta,
    t_start,
    partial,
):
    """Record an evaluation at `step`; update the early-stopping state at full epoch ends (a
    `partial` epoch, where `num_steps` ends a run mid-epoch, is only recorded)."""
    prev = int(evals["eval_step"][-1]) if evals["eval_step"] else 0
    losses_since = hist["loss"][prev:step]
    train_loss = float(np.mean(losses_since)) if losses_since else math.nan
    p, o, e, b = state
    current = e if e is not None else p
    val = math.nan
    if val_data is not None:
        val = _evaluate(run.eval_fn, current, val_data, val_bs, val_key)
    evals["eval_step"].append(step)
    evals["epoch"].append(epoch)
    evals["train_loss"].append(train_loss)
    evals["val_loss"].append(val)
    evals["wall_seconds"].append(time.perf_counter() - t_start)
    logger.debug("step %d epoch %d train %.4g val %.4g", step, epoch, train_loss, val)
    if patience is not None and not partial:
        if val < meta["best_val"] - min_delta:
            meta["best_val"], meta["best_step"], meta["bad_evals"] = val, step, 0
            b = jax.tree.map(jnp.copy, current)
        else:
            meta["bad_evals"] += 1
            if meta["bad_evals"] >= patience:
                meta["stopped"] = (
                    f"early stopping at step {step}: no validation improvement in {patience} "
                    f"evaluations (best {meta['best_val']:.4g} at step {meta['best_step']})"
                )
    return (p, o, e, b)
