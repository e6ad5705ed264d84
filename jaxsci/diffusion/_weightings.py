r"""Weightings of the denoising score-matching objective.

`DenoisingScoreMatching` regresses a target F (any parameterisation) and weights the
squared F-space error by w(t). At fixed (t, x_t) an eps-space error d is an F-space error
c(t) d, c(t) = dF/deps at fixed x (`target_scale`); c_F = c^2 converts weights between
spaces. A weighting returns w(t) in the target space:

* `UniformWeighting`: w = 1 in the target space (Ho et al. 2020's "simple" loss for eps;
  the x0 loss of Karras et al. without their weight; the v loss of Salimans & Ho 2022).
* `SNRWeighting`: w = SNR(t) = alpha^2 / sigma^2 in the target space.
* `MinSNRWeighting(gamma)`: Min-SNR-gamma (Hang et al. 2023, "Efficient diffusion
  training via Min-SNR weighting strategy", eq. 10): the x0-space weight min(SNR, gamma),
  i.e. in eps space min(SNR, gamma)/SNR and for v min(SNR, gamma)/(SNR + 1) on VP
  schedules (their table); here the exact factor for any schedule and target. gamma = 5
  is the paper's default; it is an array field (a vmap over gamma works).
* `LikelihoodWeighting`: the weight g(t)^2 on the score error ||s_hat - s||^2 (Song,
  Durkan, Murray & Ermon 2021, "Maximum likelihood training of score-based diffusion
  models", theorem 1): the eps-space weight g^2/sigma^2 = -2 lambda'(t). With the
  per-example sum over coordinates (multiply the mean by the number of elements),
  (t_max - t_min)/2 times the loss is, up to a constant that does not depend on the model
  (denoising vs explicit score matching, Vincent 2011), the score-matching term of their
  bound on the KL divergence from the data to the model; it applies to every schedule
  here, since g(t)^2 = -2 sigma_t^2 lambda'(t) is defined by the marginals.

`MinSNRWeighting` and `LikelihoodWeighting` weight the objective itself, so their loss
value is the same for every target (only the regressed quantity changes);
`UniformWeighting` and `SNRWeighting` are weights in the target space.
"""

import abc

import equinox as eqx
import jax.numpy as jnp

from .._checks import check_positive
from ._base import AbstractSchedule, RealLike, TimeArray
from ._parameterization import AbstractParameterization


def target_scale(
    target: AbstractParameterization, t: TimeArray, schedule: AbstractSchedule
) -> TimeArray:
    """c(t) = dF/deps at fixed (t, x): the F-space error of a unit eps-space error.

    Every output is linear and homogeneous in (x0, eps), and at fixed x an eps error d
    moves x0 by -(sigma/alpha) d, so c = F(x0 = -sigma/alpha, eps = 1).
    """
    ones = jnp.ones_like(t)
    return target.from_x0_eps(-schedule.sigma(t) / schedule.alpha(t), ones, t, schedule)


class AbstractWeighting(eqx.Module):
    """A weighting of the squared target-space error: `weight(t, schedule, target_factor)`,
    with `target_factor` = c_F(t) = (F-space error / eps-space error)^2."""

    @abc.abstractmethod
    def weight(
        self, t: TimeArray, schedule: AbstractSchedule, target_factor: TimeArray
    ) -> TimeArray:
        """w(t), the weight on the squared target-space error at times t."""


def _snr(t, schedule):
    return (schedule.alpha(t) / schedule.sigma(t)) ** 2


class UniformWeighting(AbstractWeighting):
    """w = 1 in the target space."""

    def weight(self, t, schedule, target_factor):
        return jnp.ones_like(_snr(t, schedule))


class SNRWeighting(AbstractWeighting):
    """w = SNR(t) = alpha_t^2 / sigma_t^2 in the target space."""

    def weight(self, t, schedule, target_factor):
        return _snr(t, schedule)


class MinSNRWeighting(AbstractWeighting):
    """Min-SNR-gamma (Hang et al. 2023): the eps-space weight min(SNR, gamma) / SNR."""

    gamma: RealLike = 5.0

    def __check_init__(self):
        check_positive("gamma", self.gamma)

    def weight(self, t, schedule, target_factor):
        snr = _snr(t, schedule)
        return jnp.minimum(snr, self.gamma) / snr / target_factor


class LikelihoodWeighting(AbstractWeighting):
    """The likelihood weighting g^2 on the score error (Song et al. 2021): the eps-space
    weight -2 lambda'(t)."""

    def weight(self, t, schedule, target_factor):
        return -2.0 * schedule.d_lambda(t) / target_factor
