"""Multi-step (autoregressive) rollout loss for learned time steppers."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ._base import AbstractLoss, AbstractRegressionLoss, batch_pair
from ._regression import MSELoss
from ._scores import check_same_shape


class RolloutLoss(AbstractLoss):
    r"""Error of an autoregressive rollout of a one-step model, over `num_steps` steps.

    The model maps a state to the next one, u_{k+1} ~ model(u_k). From each example's
    initial state u_0 it is applied `num_steps` times, feeding back its own predictions,
    and every step is scored with `base.error` (any `AbstractRegressionLoss`: MSE, relative
    L2, a Sobolev norm):

        loss = sum_k w_k (1/B) sum_b base.error(u_b^{(k)}, target_{b,k}) / sum_k w_k,

    k = 1..num_steps, weights `step_weights` (default all 1). Training through the rollout
    teaches the model to correct its own errors (the unrolled training of e.g. Brandstetter,
    Worrall & Welling 2022; Lippe et al. 2023 discuss its stability). `batch` is
    (initial states (B, *state), targets (B, K, *state)) with K >= num_steps; only the first
    `num_steps` targets are used. aux reports the first- and last-step errors.
    """

    base: AbstractRegressionLoss
    num_steps: int = eqx.field(static=True)
    step_weights: tuple[float, ...] | None = eqx.field(static=True)

    def __init__(
        self,
        num_steps: int,
        base: AbstractRegressionLoss | None = None,
        step_weights=None,
    ):
        self.num_steps = int(num_steps)
        self.base = MSELoss() if base is None else base
        self.step_weights = (
            None if step_weights is None else tuple(float(w) for w in np.ravel(step_weights))
        )

    def __check_init__(self):
        if self.num_steps < 1:
            raise ValueError(f"`num_steps` must be >= 1, got {self.num_steps}.")
        if not isinstance(self.base, AbstractRegressionLoss):
            raise TypeError(
                "`base` must be an AbstractRegressionLoss (MSELoss, RelativeL2Loss, "
                f"SobolevLoss, ...), got {type(self.base).__name__}."
            )
        if self.step_weights is not None:
            w = np.asarray(self.step_weights)
            if w.shape != (self.num_steps,) or np.any(w < 0) or not w.sum() > 0:
                raise ValueError(
                    f"`step_weights` must be {self.num_steps} non-negative numbers with a "
                    f"positive sum, got {self.step_weights}."
                )

    def rollout(self, model, u0, num_steps: int | None = None):
        """The predictions u^{(1)}, ..., u^{(num_steps)} from one initial state."""
        n = self.num_steps if num_steps is None else int(num_steps)

        def step(u, _):
            nxt = model(u)
            return nxt, nxt

        _, us = jax.lax.scan(step, u0, None, length=n)
        return us

    def __call__(self, model, batch, *, key=None):
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
        w = np.ones(k) if self.step_weights is None else np.asarray(self.step_weights)
        value = jnp.sum(jnp.asarray(w / w.sum(), per_step.dtype) * per_step)
        return value, {"loss": value, "first_step": per_step[0], "last_step": per_step[-1]}
