"""The training loss of PDE-Refiner: one-step MSE and noise prediction at a random step k."""

import jax
import jax.numpy as jnp

from .._custom_types import Array, Float, Key, PyTree
from ..nn import PDERefiner
from ._base import AbstractLoss, batch_pair, example_keys


class PDERefinerLoss(AbstractLoss):
    r"""The PDE-Refiner objective (Lippe et al. 2023, NeurIPS, Algorithm 1).

    For each example (u(t), u(t + Delta)) a refinement step k is drawn uniformly from
    {0, ..., K} (K = `model.num_refinement_steps`) and one network evaluation is scored:

        k = 0:   || f_0(u(t), 0) - u(t + Delta) ||^2          (the one-step MSE; with a
                 residual model f_0 + u(t) is the prediction)
        k >= 1:  || f_k(u(t), u(t + Delta) + sigma_k eps) - eps ||^2,   eps ~ N(0, I),
                 sigma_k = sigma_min^(k / K)                  (noise prediction)

    each a mean over the state's entries; the loss is the batch mean. With K = 0 every k is
    0 and this is the MSE loss of the one-step model (the paper's baseline). aux: `loss`, and
    `one_step_mse`, the k = 0 term averaged over the examples that drew it (0 if none did).

    `batch` is (u(t) (B, C, *spatial), u(t + Delta) (B, C, *spatial)); `model` a
    `jaxsci.nn.PDERefiner`; `key` draws k and eps (one key per example).
    """

    def __call__(
        self, model: PDERefiner, batch: PyTree, *, key: Key | None = None
    ) -> tuple[Float[Array, ""], dict[str, Array]]:
        if not isinstance(model, PDERefiner):
            raise TypeError(f"`model` must be a jaxsci.nn.PDERefiner, got {type(model).__name__}.")
        inputs, targets = batch_pair(batch)
        if inputs.shape != targets.shape:
            raise ValueError(
                "`batch` inputs u(t) and targets u(t + Delta) must have the same shape "
                f"(B, C, *spatial), got {tuple(inputs.shape)} and {tuple(targets.shape)}."
            )
        keys = example_keys(key, inputs.shape[0], "PDERefinerLoss")
        errors, is_zero = jax.vmap(lambda u, v, k: _example(model, u, v, k))(inputs, targets, keys)
        value = jnp.mean(errors)
        n0 = jnp.sum(is_zero)
        one_step = jnp.sum(jnp.where(is_zero, errors, 0.0)) / jnp.maximum(n0, 1)
        return value, {"loss": value, "one_step_mse": one_step}


def _example(model: PDERefiner, u, target, key):
    """The error of one example at its random step k, and whether k = 0."""
    k_key, eps_key = jax.random.split(key)
    k = jax.random.randint(k_key, (), 0, model.num_refinement_steps + 1)
    eps = jax.random.normal(eps_key, target.shape, target.dtype)
    sigma = model.noise_std(k).astype(target.dtype)
    zero = k == 0
    noisy = jnp.where(zero, jnp.zeros_like(target), target + sigma * eps)
    out = model.predict(u, noisy, k)
    pred_state = u + out if model.residual else out
    wanted = jnp.where(zero, target, eps)
    got = jnp.where(zero, pred_state, out)
    return jnp.mean((got - wanted) ** 2), zero
