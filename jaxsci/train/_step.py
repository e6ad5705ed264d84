"""The training step: `TrainState`, `train_init` and `train_step`, pure and jittable.

`fit` is a driver over these: it runs chunks of `train_step` inside one compiled
`lax.fori_loop` and adds data order, validation, early stopping and checkpoints.
"""

from collections.abc import Callable
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

from .._checks import check_key
from .._custom_types import Array, ArrayLike, Float, Int, Key, PyTree
from ._trainable import parameter_filter, trainable_mask

# Salts for jax.random.fold_in: the data order, the loss's randomness and validation draw
# from independent streams of the one run key.
DATA, LOSS, VAL = 0, 1, 2


class TrainState(eqx.Module):
    """Everything a training run carries from one step to the next.

    Attributes:
        model: the model being trained (its inexact arrays are the parameters, or those
            of them that `trainable` marks).
        opt_state: the optimizer's state (learning-rate schedules count in it).
        ema_model: the exponential moving average of the model's parameters, or None.
        step: the global step (the number of updates made so far).
        key: the run key; step s's loss gets `fold_in(fold_in(key, LOSS), s)`, so a step's
            randomness depends only on the run key and the global step.
        trainable: None (every inexact array is trained) or the leaves of the boolean
            mask of the trained arrays (`trainable_mask`), one per leaf of `model`; the
            other arrays are constants of the step. Static structure (a tuple of Python
            bools), so a state with a mask passes through `jit` and `lax.scan` (a mask of
            traced booleans could not be a filter spec); `parameters()` rebuilds the mask.
    """

    model: PyTree
    opt_state: PyTree
    ema_model: PyTree | None
    step: Int[Array, ""]
    key: Key
    trainable: tuple[bool, ...] | None = eqx.field(default=None, static=True)

    def parameters(self) -> Any:
        """The filter spec of the trained arrays: the mask over `model`, or every inexact array."""
        if self.trainable is None:
            return parameter_filter(None)
        return jax.tree.unflatten(jax.tree.structure(self.model), list(self.trainable))


class TrainInfo(NamedTuple):
    """One step's record.

    loss: the loss value before the update.
    grad_norm: the global norm of the gradient (before any clipping in the optimizer).
    aux: the scalar entries of the loss's aux dict, nested names joined with '/'.
    """

    loss: Float[Array, ""]
    grad_norm: Float[Array, ""]
    aux: dict[str, Float[Array, ""]]


def _copy(tree: PyTree) -> PyTree:
    return jax.tree.map(lambda a: jnp.copy(a) if eqx.is_array(a) else a, tree)


def train_init(
    model: PyTree,
    optimizer: optax.GradientTransformation,
    *,
    key: Key,
    ema: bool = False,
    trainable: Callable[[Any], Any] | None = None,
) -> TrainState:
    """The state before the first step: `optimizer.init` on the model's trained arrays,
    the EMA (with `ema`) starting as a copy of the model, step 0.

    Arguments:
        model: an equinox module (or any pytree); its inexact arrays are trained.
        optimizer: an optax transformation.
        key: the run key (see `TrainState`).
        ema: keep an exponential moving average of the parameters.
        trainable: train only part of the model: `model -> node or tuple of nodes`, the
            parts whose inexact arrays are trained (as `equinox.tree_at`'s `where`, see
            `trainable_mask`; e.g. `lambda m: m.net.last_layers()` to fine-tune the last
            Fourier layer and the projection of an `nn.FNO` inside an `nn.Stepper`). The
            other arrays are frozen: `train_step` takes no gradient with respect to them,
            the optimizer keeps no state for them, and they stay bit for bit the same.
            None: every inexact array is trained.
    """
    if not isinstance(optimizer, optax.GradientTransformation):
        raise TypeError(
            f"`optimizer` must be an optax.GradientTransformation, got {type(optimizer).__name__}."
        )
    mask = None if trainable is None else trainable_mask(model, trainable)
    return TrainState(
        model=model,
        opt_state=optimizer.init(eqx.filter(model, parameter_filter(mask))),
        ema_model=_copy(model) if ema else None,
        step=jnp.zeros((), jnp.int32),
        key=check_key("key", key),
        trainable=None if mask is None else tuple(bool(b) for b in jax.tree.leaves(mask)),
    )


def split_loss_output(out: Any) -> tuple[Any, Any]:
    """(value, aux) of a loss output: `(value, aux)`, or a bare value (aux {})."""
    if isinstance(out, tuple) and len(out) == 2:
        return out
    return out, {}


def scalar_aux(aux: Any, prefix: str = "") -> dict[str, Array]:
    """The scalar array entries of a loss's aux dict, nested dicts flattened with '/'."""
    if not isinstance(aux, dict):
        return {}
    out = {}
    for k, v in aux.items():
        name = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(scalar_aux(v, f"{name}/"))
        elif isinstance(v, jax.Array | np.ndarray | np.generic) and np.shape(v) == ():
            out[name] = v
    return out


def _conj_complex(tree: PyTree) -> PyTree:
    # jax.grad of a real loss in a complex parameter z returns conj(dL/dz*)-style cotangents
    # (df/dx - i df/dy); gradient descent needs df/dx + i df/dy, the conjugate.
    return jax.tree.map(lambda g: jnp.conj(g) if jnp.iscomplexobj(g) else g, tree)


@eqx.filter_jit
def train_step(
    state: TrainState,
    batch: PyTree,
    *,
    loss: Callable,
    optimizer: optax.GradientTransformation,
    ema: float | Float[ArrayLike, ""] | None = None,
) -> tuple[TrainState, TrainInfo]:
    r"""One update: the loss and its gradient on `batch`, the optimizer step, the EMA.

    The loss is called as `loss(model, batch, key=k) -> (value, aux)` with
    k = fold_in(fold_in(state.key, LOSS), state.step). Complex parameters get the conjugate
    of `jax.grad`'s cotangent, the steepest-descent direction. With `ema` (a decay such as
    0.999; an array, so a sweep over it compiles once) the average follows
    e_{t+1} = d_t e_t + (1 - d_t) p_{t+1} with the warm-up d_t = min(ema, (1 + t)/(10 + t)).
    Gradient clipping belongs to the optimizer (`optax.chain(optax.clip_by_global_norm(c),
    optimizer)`, as `fit(clip_norm=c)` does). With a state made by
    `train_init(..., trainable=where)` only the arrays under `where` are differentiated,
    updated and averaged; the gradient norm is theirs.

    Arguments:
        state: from `train_init` (with `ema=True` when `ema` is given) or a previous step.
        batch: the examples of this step (any pytree the loss takes).
        loss: `loss(model, batch, *, key) -> (value, aux)`; aux's scalar entries are
            recorded in `TrainInfo.aux`.
        optimizer: the optax transformation `state.opt_state` belongs to.
        ema: the EMA decay, or None.

    Returns:
        The new state and this step's `TrainInfo`.
    """
    params, static = eqx.partition(state.model, state.parameters())
    key = jax.random.fold_in(jax.random.fold_in(state.key, LOSS), state.step)

    def loss_of(p):
        return split_loss_output(loss(eqx.combine(p, static), batch, key=key))

    (value, aux), grads = jax.value_and_grad(loss_of, has_aux=True)(params)
    grads = _conj_complex(grads)
    grad_norm = optax.tree.norm(grads)
    updates, opt_state = optimizer.update(grads, state.opt_state, params)
    params = optax.apply_updates(params, updates)
    ema_model = state.ema_model
    if ema is not None:
        if ema_model is None:
            raise ValueError("`ema` needs a state made by train_init(..., ema=True).")
        # Warm-up of the decay (as TensorFlow's ExponentialMovingAverage with num_updates):
        # early averages do not cling to the initial weights.
        t = state.step.astype(jnp.result_type(float))
        d = jnp.minimum(ema, (1.0 + t) / (10.0 + t))
        averaged, ema_static = eqx.partition(ema_model, state.parameters())
        averaged = jax.tree.map(
            lambda e, p: (d * e + (1 - d) * p).astype(p.dtype), averaged, params
        )
        ema_model = eqx.combine(averaged, ema_static)
    new = TrainState(
        model=eqx.combine(params, static),
        opt_state=opt_state,
        ema_model=ema_model,
        step=state.step + 1,
        key=state.key,
        trainable=state.trainable,
    )
    return new, TrainInfo(loss=value, grad_norm=grad_norm, aux=scalar_aux(aux))
