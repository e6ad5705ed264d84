"""Deep ensembles: M networks, each independently initialised and trained by `fit`."""

from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp

from .._checks import check_callable, check_int, check_key
from .._custom_types import Key, PyTree
from ._fit import fit


def stack_models(models: list[Any]) -> Any:
    """Stack models of one architecture into one model whose arrays carry a leading member
    axis (the ensemble layout: apply with `eqx.filter_vmap(lambda m: m(x))(stacked)`)."""
    if not models:
        raise ValueError("`models` is empty; expected at least one model.")
    arrays = [eqx.filter(m, eqx.is_array) for m in models]
    static = eqx.filter(models[0], eqx.is_array, inverse=True)
    stacked = jax.tree.map(lambda *xs: jnp.stack(xs), *arrays)
    return eqx.combine(stacked, static)


def fit_ensemble(
    make_model: Callable[[Key], Any],
    loss: Callable,
    data: PyTree,
    *,
    num_members: int,
    key: Key,
    **fit_kwargs: Any,
) -> tuple[Any, list[dict[str, Any]]]:
    r"""Train a deep ensemble (Lakshminarayanan, Pritzel & Blundell 2017): `num_members`
    networks, each with its own initialisation `make_model(k_init)` and its own data order
    and loss keys, trained independently by `fit` on the same data.

    The spread of the members' predictions estimates the epistemic uncertainty (different
    initialisations land in different modes of the loss). Members are trained one after
    the other (each `fit` is one compiled scan; the members of one architecture share its
    compilation).

    Arguments:
        make_model: `key -> model`, the initialisation of one member.
        loss: as for `fit`.
        data: as for `fit`.
        num_members: M >= 1.
        key: split into M (init, training) key pairs.
        fit_kwargs: the other keywords of `fit` (optimizer, batch_size, epochs, ...).

    Returns:
        (ensemble, histories): the members stacked on a leading axis (`stack_models`) and
        the M training histories.
    """
    check_callable("make_model", make_model, "a function key -> model")
    num_members = check_int("num_members", num_members, 1)
    key = check_key("key", key)
    if "key" in fit_kwargs or "checkpoint_dir" in fit_kwargs:
        raise ValueError(
            "`fit_kwargs` must not set `key` (each member gets its own) or `checkpoint_dir`."
        )
    models, histories = [], []
    for k in jax.random.split(key, num_members):
        k_init, k_fit = jax.random.split(k)
        model, history = fit(make_model(k_init), loss, data, key=k_fit, **fit_kwargs)
        models.append(model)
        histories.append(history)
    return stack_models(models), histories
