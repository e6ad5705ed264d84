"""Multi-step (autoregressive) rollout loss for learned time steppers."""

from collections.abc import Callable, Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._checks import check_int, concrete_numbers
from .._custom_types import Array, ArrayLike, Float, Key, PyTree
from ..integrate import rollout
from ._base import AbstractLoss, AbstractRegressionLoss, batch_pair
from ._regression import MSELoss
from ._scores import check_same_shape


class RolloutLoss(AbstractLoss):
    r"""Error of an autoregressive rollout of a one-step model, over `num_steps` steps.

    The model maps a state to the next one, u_{k+1} ~ model(u_k). From each example's
    initial state u_0 it is applied `num_steps` times, feeding back its own predictions
    (`jaxsci.integrate.rollout`), and every step is scored with `base.error` (any
    `AbstractRegressionLoss`: MSE, relative L2, a Sobolev norm):

        loss = sum_k w_k (1/B) sum_b base.error(u_b^{(k)}, target_{b,k}) / sum_k w_k,

    k = 1..num_steps, weights `step_weights` (default all 1). Training through the rollout
    teaches the model to correct its own errors (the unrolled training of e.g. Brandstetter,
    Worrall & Welling 2022; Lippe et al. 2023 discuss its stability). `batch` is
    (initial states (B, *state), targets (B, K, *state)) with K >= num_steps; only the first
    `num_steps` targets are used. aux reports the first- and last-step errors.

    Arguments:
        num_steps: steps unrolled (>= 1; it sets the rollout's length, so it is static).
        base: the per-step error (default `MSELoss()`).
        step_weights: w_k, `num_steps` non-negative numbers with a positive sum (default all
            1); an array field, so a `vmap` over weightings works.
    """

    base: AbstractRegressionLoss
    step_weights: Float[Array, " step"] | None
    num_steps: int = eqx.field(static=True)

    def __init__(
        self,
        num_steps: int,
        base: AbstractRegressionLoss | None = None,
        step_weights: Float[ArrayLike, " step"] | Sequence[float | np.floating] | None = None,
    ):
        self.num_steps = check_int("num_steps", num_steps)
        self.base = MSELoss() if base is None else base
        if step_weights is None:
            self.step_weights = None
        else:
            w = concrete_numbers("step_weights", step_weights)
            if w is None:
                raise TypeError("`step_weights` must be concrete numbers, not a traced array.")
            w = np.asarray(w, dtype=np.float64).reshape(-1)
            if w.shape != (self.num_steps,) or np.any(w < 0) or not w.sum() > 0:
                raise ValueError(
                    f"`step_weights` must be {self.num_steps} non-negative numbers with a "
                    f"positive sum, got {tuple(w.tolist())}."
                )
            self.step_weights = jnp.asarray(w, dtype=jnp.result_type(float))

    def __check_init__(self):
        if not isinstance(self.base, AbstractRegressionLoss):
            raise TypeError(
                "`base` must be an AbstractRegressionLoss (MSELoss, RelativeL2Loss, "
                f"SobolevLoss, ...), got {type(self.base).__name__}."
            )

    def rollout(
        self, model: Callable, u0: Float[Array, " *state"], num_steps: int | None = None
    ) -> Float[Array, " step *state"]:
        """The predictions u^{(1)}, ..., u^{(num_steps)} from one initial state
        (`jaxsci.integrate.rollout(model, u0, num_steps)`)."""
        return rollout(model, u0, self.num_steps if num_steps is None else num_steps)

    def __call__(
        self, model: Callable, batch: PyTree, *, key: Key | None = None
    ) -> tuple[Float[Array, ""], dict[str, Array]]:
        inputs, targets = batch_pair(batch)
        k = self.num_steps
        if targets.ndim < 2 or targets.shape[1] < k or targets.shape[2:] != inputs.shape[1:]:
            raise ValueError(
                f"`batch` targets must have shape (B, K >= {k}, *state) with state shape "
                f"{tuple(inputs.shape[1:])} (the initial states' shape), got "
                f"{tuple(targets.shape)}."
            )
        preds = jax.vmap(lambda u: self.rollout(model, u))(inputs)
        check_same_shape(preds, targets[:, :k], "rollout predictions (batched)", "batch targets")
        per = jax.vmap(jax.vmap(self.base.error))(preds, targets[:, :k])  # (B, k)
        per_step = jnp.mean(per, axis=0)
        if self.step_weights is None:
            w = jnp.asarray(np.full(k, 1.0 / k), per_step.dtype)
        else:
            w = (self.step_weights / jnp.sum(self.step_weights)).astype(per_step.dtype)
        value = jnp.sum(w * per_step)
        return value, {"loss": value, "first_step": per_step[0], "last_step": per_step[-1]}
