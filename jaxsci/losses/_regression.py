"""Supervised regression losses: mean squared error, relative L2, Sobolev H^s errors, and any of
them for a stochastic (dropout) network."""

import math

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Real

from .._checks import (
    check_finite,
    check_int,
    check_positive,
    check_shape,
    finite_float,
    float_parameter,
)
from .._custom_types import Array, ArrayLike, Float
from ._base import AbstractLoss, AbstractRegressionLoss, batch_pair, example_keys
from ._scores import check_same_shape, relative_l2, sobolev_norm


class MSELoss(AbstractRegressionLoss):
    """Mean squared error: the batch mean of mean((pred - target)^2) over each example."""

    def error(self, pred, target):
        return jnp.mean((pred - target) ** 2)


class RelativeL2Loss(AbstractRegressionLoss):
    r"""Relative L2 error, per example and averaged over the batch (Li et al. 2021, FNO):

        loss = (1/B) sum_b ||pred_b - target_b||_2 / ||target_b||_2,

    norms over all grid points and channels of an example (`losses.relative_l2`). This is
    the metric the FNO paper reports as test error and trains with; it weights every example
    equally whatever its amplitude.
    """

    def error(self, pred, target):
        return relative_l2(pred, target)


class SobolevLoss(AbstractRegressionLoss):
    r"""Squared Sobolev H^s norm of the error on a periodic grid, averaged over the batch.

        loss = (1/B) sum_b ||pred_b - target_b||_{H^s}^2 / (length^d C)

    with the norm of `losses.sobolev_norm` (Parseval on the last `spatial_dims` axes; the
    C leading channel axes are averaged), normalised so that s = 0 (inhomogeneous) is
    exactly `MSELoss`. Negative s emphasises large scales: s = -1 with `seminorm=True` is
    the H^{-1} loss of Spectral-Refiner (Cao et al. 2024) for mean-zero fields; see
    `sobolev_norm` for the k = 0 mode. With `relative=True` each example's error norm is
    divided by its target's norm (the H^s analogue of `RelativeL2Loss`, not squared).

    The order `s` is a finite real scalar, an array field (sweep it with `vmap`); the grid's
    `length` and `spatial_dims` and the flags are static structure. The weights
    (1 + |kappa|^2)^s reach kappa_max^{2 s}, kappa_max = pi n / length: in float32 they
    overflow once that passes 3e38 (s ~ 6 for n = 1024 points on length 1).
    """

    s: Float[Array, ""]
    length: float = eqx.field(static=True)
    spatial_dims: int = eqx.field(static=True)
    seminorm: bool = eqx.field(static=True)
    relative: bool = eqx.field(static=True)

    def __init__(
        self,
        s: Real[ArrayLike, ""],
        *,
        length: float = 1.0,
        spatial_dims: int = 1,
        seminorm: bool = False,
        relative: bool = False,
    ):
        self.s = float_parameter("s", s)
        check_finite("s", self.s)
        check_shape("s", self.s, (), "() (a scalar; a sweep is a vmap outside)")
        self.length = finite_float("length", length)
        check_positive("length", self.length)
        self.spatial_dims = check_int("spatial_dims", spatial_dims)
        self.seminorm = bool(seminorm)
        self.relative = bool(relative)

    def error(self, pred: Float[Array, "..."], target: Float[Array, "..."]) -> Float[Array, ""]:
        if pred.ndim < self.spatial_dims:
            raise ValueError(
                f"SobolevLoss(spatial_dims={self.spatial_dims}) needs predictions with at "
                f"least {self.spatial_dims} axes, got shape {pred.shape}."
            )
        err = self.norm(pred - target)
        if self.relative:
            return err / self.norm(target)
        channels = math.prod(pred.shape[: pred.ndim - self.spatial_dims])
        return err**2 / (self.length**self.spatial_dims * channels)

    def norm(self, u: Float[Array, "..."]) -> Float[Array, ""]:
        """The H^s norm (`losses.sobolev_norm`) with this loss's settings."""
        return sobolev_norm(
            u, self.s, length=self.length, spatial_dims=self.spatial_dims, seminorm=self.seminorm
        )


class StochasticRegressionLoss(AbstractLoss):
    """A regression loss of a stochastic network, one random draw per example: the batch
    mean of `loss.error(model(x_b, key=k_b), y_b)` with independent keys k_b.

    This is how a network with dropout is trained (Srivastava et al. 2014): a fresh dropout
    mask per example and step, so that `fit` minimises the expected error over masks (the
    objective whose Monte Carlo dropout predictions approximate a Bayesian posterior
    predictive, Gal & Ghahramani 2016). A deterministic regression loss calls `model(x)`,
    which keeps dropout off.

    Arguments:
        loss: the per-example error, any `AbstractRegressionLoss` (`MSELoss()`, ...).
    """

    loss: AbstractRegressionLoss

    def __check_init__(self):
        if not isinstance(self.loss, AbstractRegressionLoss):
            raise TypeError(
                "`loss` must be an AbstractRegressionLoss such as losses.MSELoss(), got "
                f"{type(self.loss).__name__}."
            )

    def __call__(self, model, batch, *, key=None):
        inputs, targets = batch_pair(batch)
        keys = example_keys(key, targets.shape[0], "StochasticRegressionLoss")
        preds = jax.vmap(lambda x, k: model(x, key=k))(inputs, keys)
        check_same_shape(preds, targets, "model(inputs, key=...) (batched)", "batch targets")
        value = jnp.mean(jax.vmap(self.loss.error)(preds, targets))
        return value, {"loss": value}
