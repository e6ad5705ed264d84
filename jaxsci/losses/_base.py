"""The loss interface: `loss(model, batch, *, key) -> (value, aux)`."""

import abc

import equinox as eqx
import jax
import jax.numpy as jnp

from .._custom_types import Array, Float, Key, PyTree
from ._scores import check_same_shape


def batch_pair(batch, name: str = "batch") -> tuple[Array, Array]:
    """Unpack a supervised batch `(inputs, targets)` with a common leading batch axis."""
    if not isinstance(batch, tuple | list) or len(batch) != 2:
        raise TypeError(
            f"`{name}` must be a pair (inputs, targets) of arrays with a leading batch axis, "
            f"got {type(batch).__name__}"
            + (f" of length {len(batch)}" if isinstance(batch, tuple | list) else "")
            + "."
        )
    inputs, targets = batch
    leading = {jnp.shape(leaf)[0] if jnp.ndim(leaf) else None for leaf in jax.tree.leaves(inputs)}
    nt = jnp.shape(targets)[0] if jnp.ndim(targets) else None
    if None in leading or nt is None or leading != {nt}:
        raise ValueError(
            f"`{name}` inputs and targets must share a leading batch axis; got input leading "
            f"sizes {sorted(x for x in leading if x is not None)} and targets of shape "
            f"{tuple(jnp.shape(targets))}."
        )
    return inputs, jnp.asarray(targets)


def example_keys(key: Key | None, n: int, name: str) -> Array:
    """`n` independent keys, one per example; a TypeError naming the loss if `key` is None."""
    if key is None:
        raise TypeError(f"{name} draws random members and needs `key` (a jax.random.key).")
    return jax.random.split(key, n)


class AbstractLoss(eqx.Module):
    """A training objective: `loss(model, batch, *, key) -> (value, aux)`.

    `model` acts on one example (batching is a `vmap` inside the loss); `batch` is a pytree
    of arrays with a leading batch axis (for supervised losses the pair (inputs, targets));
    `key` feeds stochastic models and ensemble losses (deterministic losses ignore it).
    `value` is a scalar to minimise, `aux` a dict of scalar diagnostics (what `fit`
    records per step).
    """

    @abc.abstractmethod
    def __call__(
        self, model, batch: PyTree, *, key: Key | None = None
    ) -> tuple[Float[Array, ""], dict[str, Array]]:
        """The loss value on `batch` and a dict of scalar diagnostics."""


class AbstractRegressionLoss(AbstractLoss):
    """A supervised loss that averages a per-example error over the batch.

    Subclasses give `error(pred, target) -> scalar` for one example; `__call__` maps the
    model over `inputs`, checks that its output has the targets' shape and returns the
    batch mean of the errors. `RolloutLoss` reuses `error` for every step of a rollout.
    """

    @abc.abstractmethod
    def error(self, pred: Float[Array, "..."], target: Float[Array, "..."]) -> Float[Array, ""]:
        """The error of one prediction against its target."""

    def __call__(self, model, batch, *, key=None):
        inputs, targets = batch_pair(batch)
        preds = jax.vmap(model)(inputs)
        check_same_shape(preds, targets, "model(inputs) (batched)", "batch targets")
        errors = jax.vmap(self.error)(preds, targets)
        value = jnp.mean(errors)
        return value, {"loss": value}
