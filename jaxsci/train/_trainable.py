r"""Training a part of a model: the mask of the parameters that `fit` / `train_step` update.

Fine-tuning only some layers of a trained network (e.g. the last Fourier layer and the
projection of an FNO in Spectral-Refiner, Cao et al. 2024, arXiv:2405.17211; the head of a
pretrained network in transfer learning) is a choice of *which* arrays are parameters. The
training step differentiates the loss with respect to those arrays only, so the others
stay bit for bit what they were, the backward pass stops at the earliest free layer, and
the optimizer (and the EMA) hold state for the free arrays only. (`optax.multi_transform`
with `optax.set_to_zero` on the frozen labels would leave the values unchanged too, but
still computes every gradient and reports them in the gradient norm.)
"""

from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax

from .._custom_types import PyTree


def trainable_mask(model: PyTree, where: Callable[[Any], Any]) -> PyTree:
    """The boolean mask, a pytree of `model`'s structure, of the parameters under `where`.

    `where(model)` returns the parts to train: one node of the model (a layer, a tuple of
    layers, an array) or a tuple of nodes, as the `where` of `equinox.tree_at`; e.g.
    `lambda m: m.net.last_layers()` for an `nn.Stepper` around an `nn.FNO`, or
    `lambda m: (m.layers[-1].weight, m.layers[-1].bias)`. The mask is True at the inexact
    (floating or complex) arrays under those nodes and False everywhere else, the filter
    spec `train_init` / `fit` partition the model with (`eqx.partition(model, mask)`).

    Arguments:
        model: the model (an equinox module or any pytree).
        where: `model -> node or tuple of nodes` of `model`.

    Returns:
        A pytree of Python bools with the structure of `model`.

    Raises:
        TypeError: `where` is not callable.
        ValueError: `where` does not return nodes of `model`, or selects no inexact array.
    """
    if not callable(where):
        raise TypeError(
            "`trainable` must be a function model -> node or tuple of nodes of the model "
            f"(as equinox.tree_at's `where`), got {where!r}."
        )
    unmarked = jax.tree.map(lambda _: False, model)
    try:
        marked = eqx.tree_at(
            where, unmarked, replace_fn=lambda node: jax.tree.map(lambda _: True, node)
        )
    except (TypeError, ValueError, AttributeError, IndexError) as error:
        raise ValueError(
            "`trainable` must return parts (nodes) of the model, as equinox.tree_at's "
            f"`where`; calling it failed: {error}"
        ) from error
    mask = jax.tree.map(lambda m, x: bool(m) and eqx.is_inexact_array(x), marked, model)
    if not any(jax.tree.leaves(mask)):
        raise ValueError(
            "`trainable` selects no inexact (floating or complex) array of the model; "
            "expected at least one parameter to train."
        )
    return mask


def parameter_filter(mask: PyTree | None) -> Any:
    """The filter spec of the trained arrays: `mask`, or every inexact array when None."""
    return eqx.is_inexact_array if mask is None else mask
