"""Resamplers: a scheme for the draw and a treatment of the gradient through it."""

import math

import equinox as eqx
import jax
import jax.numpy as jnp

from .._checks import check_probability, hyperparameter
from .._custom_types import Key, Scalar
from ._base import AbstractResampler, Ancestors, Weights, draw
from ._schemes import ResamplingScheme, systematic


def _uniform(n: int, dtype) -> Weights:
    return jnp.full((n,), -jnp.log(n), dtype=dtype)


class Resampler(AbstractResampler):
    """Plain resampling: ancestors drawn by `scheme` from the weights w, new weights 1/n.

    No gradient flows through the draw or the new weights (they are constants): the
    resampled particles carry the gradients of their ancestors' values only.

    Arguments:
        scheme: the resampling function (default `systematic`).
    """

    scheme: ResamplingScheme = eqx.field(default=systematic, static=True)

    def __call__(self, key: Key, log_weights: Weights) -> tuple[Ancestors, Weights, Scalar]:
        ancestors = draw(self.scheme, key, jax.nn.softmax(log_weights))
        dtype = log_weights.dtype
        return ancestors, _uniform(log_weights.shape[0], dtype), jnp.zeros((), dtype)


class StopGradientResampler(AbstractResampler):
    """Stop-gradient resampling (Ścibior & Wood 2021, "Differentiable particle filtering
    without modifying the forward pass").

    The new log-weights are log w_{a_j} - stop_gradient(log w_{a_j}) - log n: equal in value
    to the uniform weights of `Resampler` (the forward pass is unchanged), but their gradient
    is the score d log w_{a_j} of the drawn ancestor, so that gradients account for the draw
    (a score-function estimator per particle): expectations under the resampled population
    have unbiased gradients, E[d sum_j w'_j f(x_{a_j})] = d sum_i w_i f(x_i). The gradient
    of the evidence estimate of `smc_step` (which renormalises the weights at the next
    reweighting) is consistent, with an O(1/N) relative bias. `log_weights` must be
    normalised (as `smc_step` passes them).

    Arguments:
        scheme: the resampling function (default `systematic`).
    """

    scheme: ResamplingScheme = eqx.field(default=systematic, static=True)

    def __call__(self, key: Key, log_weights: Weights) -> tuple[Ancestors, Weights, Scalar]:
        n = log_weights.shape[0]
        ancestors = draw(self.scheme, key, jax.nn.softmax(log_weights))
        selected = log_weights[ancestors]
        new = selected - jax.lax.stop_gradient(selected) + _uniform(n, log_weights.dtype)
        return ancestors, new, jnp.zeros((), log_weights.dtype)


class SoftResampler(AbstractResampler):
    r"""Soft resampling (Karkus, Hsu & Lee 2018, "Particle filter networks").

    Ancestors are drawn from the mixture q = alpha w + (1 - alpha) / n and the new weights
    are the importance ratios w_a / q_a (normalised; differentiable in w). `alpha` = 1 is
    plain resampling (the ratios are 1, no gradient through the draw), `alpha` = 0 draws
    ancestors uniformly and keeps their weights (unbiased gradients, no variance reduction);
    in between, gradients flow through the ratios but ignore how the draw depends on w (a
    bias), and the effective sample size after the draw is lower than after plain
    resampling. `log_mass` = log((1/n) sum_j w_{a_j} / q_{a_j}): the mean ratio has
    expectation sum_i q_i w_i / q_i = 1, so adding its log to the log-normaliser (as
    `smc_step` does) keeps the evidence estimate unbiased.

    Arguments:
        scheme: the resampling function (default `systematic`).
        alpha: the mixture weight in [0, 1] (an array field: vmap over it to sweep).
    """

    scheme: ResamplingScheme = eqx.field(default=systematic, static=True)
    alpha: Scalar = eqx.field(default=0.5, converter=hyperparameter)

    def __check_init__(self):
        check_probability("alpha", self.alpha)

    def __call__(self, key: Key, log_weights: Weights) -> tuple[Ancestors, Weights, Scalar]:
        n = log_weights.shape[0]
        log_w = jax.nn.log_softmax(log_weights)
        alpha = self.alpha.astype(log_weights.dtype)
        q = alpha * jnp.exp(log_w) + (1.0 - alpha) / n
        ancestors = draw(self.scheme, key, q)
        ratio = log_w[ancestors] - jnp.log(q[ancestors])
        log_total = jax.nn.logsumexp(ratio)
        return ancestors, ratio - log_total, log_total - math.log(n)
