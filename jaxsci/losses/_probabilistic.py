"""Probabilistic losses: ensemble CRPS (standard, fair, almost fair), energy score, Gaussian NLL."""

import equinox as eqx
import jax
import jax.numpy as jnp

from ._base import AbstractLoss, batch_pair, example_keys
from ._scores import (
    check_same_shape,
    crps_almost_fair,
    crps_ensemble,
    crps_fair,
    energy_score,
    gaussian_nll,
)

CRPS_KINDS = ("fair", "almost_fair", "standard")


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
    independent keys and scored against the target with `kind`:

    * "fair": `crps_fair`, unbiased for the CRPS of the model's distribution (the right
      training target for a small ensemble, Leutbecher 2019);
    * "almost_fair": `crps_almost_fair` with `alpha` (Lang et al. use 0.95);
    * "standard": `crps_ensemble`, the CRPS of the members' empirical distribution (its
      minimiser is under-dispersed by the (1 + 1/M) bias, so not advised for training).

    `batch` is (inputs, targets); aux reports the mean ensemble spread.
    """

    ensemble_size: int = eqx.field(static=True)
    kind: str = eqx.field(static=True)
    alpha: float = eqx.field(static=True)

    def __init__(self, ensemble_size: int, kind: str = "fair", alpha: float = 0.95):
        self.ensemble_size = int(ensemble_size)
        self.kind = str(kind)
        self.alpha = float(alpha)

    def __check_init__(self):
        if self.kind not in CRPS_KINDS:
            raise ValueError(f"`kind` must be one of {list(CRPS_KINDS)}, got {self.kind!r}.")
        least = 1 if self.kind == "standard" else 2
        if self.ensemble_size < least:
            raise ValueError(
                f"`ensemble_size` must be >= {least} for kind {self.kind!r}, "
                f"got {self.ensemble_size}."
            )
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"`alpha` must lie in [0, 1], got {self.alpha}.")

    def score(self, ensemble, obs):
        """The elementwise score of one ensemble (M, *shape) against `obs`."""
        if self.kind == "fair":
            return crps_fair(ensemble, obs)
        if self.kind == "almost_fair":
            return crps_almost_fair(ensemble, obs, self.alpha)
        return crps_ensemble(ensemble, obs)

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
        self.ensemble_size = int(ensemble_size)
        self.fair = bool(fair)

    def __check_init__(self):
        if self.ensemble_size < 2:
            raise ValueError(f"`ensemble_size` must be >= 2, got {self.ensemble_size}.")

    def __call__(self, model, batch, *, key=None):
        inputs, targets = batch_pair(batch)
        ens = _members(model, inputs, targets, key, self.ensemble_size, "EnergyScoreLoss")
        scores = jax.vmap(lambda e, y: energy_score(e, y, fair=self.fair))(ens, targets)
        value = jnp.mean(scores)
        return value, {"loss": value, "spread": _spread(ens)}


class GaussianNLLLoss(AbstractLoss):
    r"""Gaussian negative log-likelihood of a mean-variance model, averaged over everything.

    The model returns a pair `(mean, v)` for one input, both shaped like the target; `v` is
    the log-variance (`parameterisation="log_variance"`, the default: unconstrained and
    stable) or the variance itself (`"variance"`). Elementwise
    0.5 [log(2 pi sigma^2) + (y - mu)^2 / sigma^2] (`losses.gaussian_nll`), plus a floor
    `min_variance` on sigma^2 that keeps a collapsing variance finite.
    """

    parameterisation: str = eqx.field(static=True)
    min_variance: float = eqx.field(static=True)

    def __init__(self, parameterisation: str = "log_variance", min_variance: float = 1e-6):
        self.parameterisation = str(parameterisation)
        self.min_variance = float(min_variance)

    def __check_init__(self):
        if self.parameterisation not in ("log_variance", "variance"):
            raise ValueError(
                "`parameterisation` must be 'log_variance' or 'variance', "
                f"got {self.parameterisation!r}."
            )
        if not self.min_variance >= 0:
            raise ValueError(f"`min_variance` must be >= 0, got {self.min_variance}.")

    def __call__(self, model, batch, *, key=None):
        inputs, targets = batch_pair(batch)
        out = jax.vmap(model)(inputs)
        if not isinstance(out, tuple | list) or len(out) != 2:
            raise TypeError(
                "GaussianNLLLoss needs a model that returns a pair (mean, log_variance) or "
                f"(mean, variance); got {type(out).__name__}."
            )
        mean, v = out
        check_same_shape(mean, targets, "model mean (batched)", "batch targets")
        check_same_shape(v, targets, f"model {self.parameterisation} (batched)", "batch targets")
        var = jnp.exp(v) if self.parameterisation == "log_variance" else v
        var = jnp.maximum(var, self.min_variance)
        value = jnp.mean(gaussian_nll(mean, var, targets))
        return value, {"loss": value, "mean_std": jnp.mean(jnp.sqrt(var))}
