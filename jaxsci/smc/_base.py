"""The abstract resampler: which particles survive, and with which weights."""

import abc
from typing import TypeAlias

import equinox as eqx
import jax
import jax.numpy as jnp

from .._checks import check_callable
from .._custom_types import Array, Float, Int, Key, Scalar
from ._schemes import ResamplingScheme

#: Log-weights (or weights) of n particles, and the n ancestors a draw picks.
Weights: TypeAlias = Float[Array, " n"]
Ancestors: TypeAlias = Int[Array, " n"]


class AbstractResampler(eqx.Module):
    """Resample a weighted population of n particles into n particles.

    `resampler(key, log_weights) -> (ancestors, log_weights, log_mass)`:

    * `ancestors` (n,) int32: the parent of each new particle, drawn by `scheme` (a function
      `(key, weights, num_samples) -> indices`, e.g. `jaxsci.smc.systematic`);
    * `log_weights` (n,): the normalised log-weights of the resampled population;
    * `log_mass`: the log of the mean importance weight the draw leaves on the new
      particles (zero when they are equally weighted), which `smc_step` adds to its
      log-normaliser increment so that the evidence estimate stays unbiased.

    Concrete resamplers differ in what the ancestors are drawn from and in the weights and
    gradient they give the new population: no gradient through the draw (`Resampler`), the
    score of the drawn ancestors (`StopGradientResampler`), or an importance correction
    (`SoftResampler`). The draw itself carries no gradient.
    """

    scheme: eqx.AbstractVar[ResamplingScheme]

    def __check_init__(self):
        check_callable(
            "scheme",
            self.scheme,
            "a resampling function (key, weights, num_samples) -> indices, e.g. "
            "jaxsci.smc.systematic",
        )

    @abc.abstractmethod
    def __call__(self, key: Key, log_weights: Weights) -> tuple[Ancestors, Weights, Scalar]:
        """Draw n ancestors from the normalised `log_weights` (logsumexp = 0)."""


def draw(scheme: ResamplingScheme, key: Key, weights: Weights) -> Ancestors:
    """n ancestors drawn by `scheme` from `weights`, as int32; no gradient flows through the
    draw."""
    n = weights.shape[0]
    return scheme(key, jax.lax.stop_gradient(weights), n).astype(jnp.int32)
