"""Probabilistic losses: ensemble CRPS (any elementwise ensemble score), energy score, Gaussian
NLL."""

from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp

from .._checks import (
    check_callable,
    check_int,
    check_positive,
    check_probability,
    check_shape,
    hyperparameter,
)
from .._custom_types import Array, Float
from ._base import AbstractLoss, batch_pair, example_keys
from ._scores import (
    check_same_shape,
    crps_almost_fair,
    crps_fair,
    energy_score,
    gaussian_nll,
)

#: An elementwise ensemble score `(ensemble (M, ...), obs (...)) -> (...)`, e.g. `crps_fair`.
EnsembleScore = Callable[[Array, Array], Array]


class AlmostFairCRPS(eqx.Module):
    """`crps_almost_fair` with its `alpha` as an array field (so a sweep over alpha is one
    `vmap`): the score `CRPSLoss` uses for AIFS-CRPS training (Lang et al. 2024, alpha =
    0.95). alpha = 1 is `crps_fair`, alpha = 0 `crps_ensemble`."""

    alpha: Float[Array, ""] = eqx.field(converter=hyperparameter, default=0.95)

    def __check_init__(self):
        check_probability("alpha", self.alpha)
        check_shape("alpha", self.alpha, (), "() (a scalar; a sweep is a vmap outside)")

    def __call__(self, ensemble: Array, obs: Array) -> Array:
        return crps_almost_fair(ensemble, obs, self.alpha)


def _members(model, inputs, targets, key, size: int, name: str):
    """`size` members per example, `model(x, key=k)` with a fresh key per member and example.

    Returns the ensembles, shape (batch, size, *target_shape).
    """
    keys = example_keys(key, targets.shape[0], name)

    def one(x, k):
        return jax.vmap(lambda kk: model(x, key=kk))(jax.random.split(k, size))

    ens = jax.vmap(one)(inputs, keys)
    check_same_shape(ens[:, 0], targets, "model(inputs, key=...) (batched)", "batch targets")
    return ens


def _spread(ens):
    """Mean over batch and components of the ensemble standard deviation (ddof=1)."""
    return jnp.mean(jnp.std(ens, axis=1, ddof=1))


class CRPSLoss(AbstractLoss):
    r"""Ensemble CRPS of a generative model, averaged over components and the batch.

    The model draws one sample per call, `model(x, key=k)` (noise injected inside, as in
    AIFS-CRPS, Lang et al. 2024); `ensemble_size` members per example are drawn with
    independent keys and scored against the target with `score`, an elementwise ensemble
    score `(ensemble, obs) -> values`:

    * `crps_fair` (the default): unbiased for the CRPS of the model's distribution (the
      right training target for a small ensemble, Leutbecher 2019); needs M >= 2;
    * `AlmostFairCRPS(alpha)`: `crps_almost_fair` (Lang et al. use alpha = 0.95);
    * `crps_ensemble`: the CRPS of the members' empirical distribution (its minimiser is
      under-dispersed by the (1 + 1/M) bias, so not advised for training).

    `batch` is (inputs, targets); aux reports the mean ensemble spread.
    """

    ensemble_size: int = eqx.field(static=True)
    score: EnsembleScore = crps_fair

    def __init__(self, ensemble_size: int, score: EnsembleScore = crps_fair):
        self.ensemble_size = check_int("ensemble_size", ensemble_size, 1)
        check_callable(
            "score",
            score,
            "an elementwise ensemble score (ensemble, obs) -> values such as "
            "losses.crps_fair or losses.AlmostFairCRPS(0.95)",
        )
        self.score = score

    def __call__(self, model, batch, *, key=None):
        inputs, targets = batch_pair(batch)
        ens = _members(model, inputs, targets, key, self.ensemble_size, "CRPSLoss")
        value = jnp.mean(jax.vmap(self.score)(ens, targets))
        return value, {"loss": value, "spread": _spread(ens)}


class EnergyScoreLoss(AbstractLoss):
    r"""Energy score (Gneiting & Raftery 2007) of a generative model, averaged over the batch.

    Members are drawn as in `CRPSLoss`; each example's whole target (all components) is one
    vector, so the score rewards correct dependence between components, which the
    componentwise CRPS cannot see. `fair=True` uses the unbiased pair term.
    """

    ensemble_size: int = eqx.field(static=True)
    fair: bool = eqx.field(static=True)

    def __init__(self, ensemble_size: int, fair: bool = True):
        self.ensemble_size = check_int("ensemble_size", ensemble_size, 2)
        self.fair = bool(fair)

    def __call__(self, model, batch, *, key=None):
        inputs, targets = batch_pair(batch)
        ens = _members(model, inputs, targets, key, self.ensemble_size, "EnergyScoreLoss")
        scores = jax.vmap(lambda e, y: energy_score(e, y, fair=self.fair))(ens, targets)
        value = jnp.mean(scores)
        return value, {"loss": value, "spread": _spread(ens)}


class GaussianNLLLoss(AbstractLoss):
    r"""Gaussian negative log-likelihood of a mean-variance model, averaged over everything.

    The model returns a pair `(mean, v)` for one input, both shaped like the target, and
    `to_variance(v)` is the variance: `jnp.exp` (the default: v is the log-variance,
    unconstrained and stable), `jax.nn.softplus`, or the identity for a model that outputs
    the variance itself. Elementwise 0.5 [log(2 pi sigma^2) + (y - mu)^2 / sigma^2]
    (`losses.gaussian_nll`), plus a floor `min_variance` on sigma^2 (an array field) that
    keeps a collapsing variance finite.
    """

    to_variance: Callable[[Array], Array] = jnp.exp
    min_variance: Float[Array, ""] = eqx.field(converter=hyperparameter, default=1e-6)

    def __check_init__(self):
        check_callable("to_variance", self.to_variance, "a function v -> variance such as jnp.exp")
        check_positive("min_variance", self.min_variance, allow_zero=True)
        check_shape("min_variance", self.min_variance, (), "() (a scalar)")

    def __call__(self, model, batch, *, key=None):
        inputs, targets = batch_pair(batch)
        out = jax.vmap(model)(inputs)
        if not isinstance(out, tuple | list) or len(out) != 2:
            raise TypeError(
                "GaussianNLLLoss needs a model that returns a pair (mean, v), v mapped to the "
                f"variance by `to_variance`; got {type(out).__name__}."
            )
        mean, v = out
        check_same_shape(mean, targets, "model mean (batched)", "batch targets")
        check_same_shape(v, targets, "model variance output (batched)", "batch targets")
        var = jnp.maximum(self.to_variance(v), self.min_variance)
        value = jnp.mean(gaussian_nll(mean, var, targets))
        return value, {"loss": value, "mean_std": jnp.mean(jnp.sqrt(var))}
