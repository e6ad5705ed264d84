r"""Samplers that step in time t: Euler and Heun (Karras et al. 2022) for the
probability-flow ODE, reverse-SDE Euler-Maruyama, and predictor-corrector with a Langevin
corrector (Song et al. 2021).

The probability-flow ODE is dx/dt = f(t) x - sigma_t lambda_t' eps(t, x) (see
`jaxsci.diffusion.AbstractSchedule`); for EDM (alpha = 1, sigma = t) it is
(x - x0(x, t))/t, Karras et al.'s eq. 3, and for the rectified flow it is the flow velocity.
The reverse SDE is dx = [f x - g^2 score] dt + g dW-bar, with score = -eps/sigma.
"""

from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp

from .._checks import check_int, check_key, check_positive
from ._base import RealLike
from ._exponential import _key_normal, _single_order, _switch
from ._sampler import (
    AbstractSinglestepSampler,
    lower_order_final_field,
)


class Euler(AbstractSinglestepSampler):
    """Explicit Euler on the probability-flow ODE in t (Karras et al. 2022, Alg. 1 with
    the Heun correction removed). First order, one evaluation per step."""

    order: ClassVar[int] = 1
    stochastic: ClassVar[bool] = False
    nfe_per_step: ClassVar[int] = 1

    def update(self, key, g, i, x, denoiser):
        return x + (g.t[i + 1] - g.t[i]) * denoiser.velocity(g.t[i], x), 1


class Heun(AbstractSinglestepSampler):
    """Heun's second-order method on the probability-flow ODE in t (Karras et al. 2022,
    Algorithm 1, deterministic): x~ = x + dt v(t_i, x), x' = x + dt (v(t_i, x) +
    v(t_{i+1}, x~))/2. Two evaluations per step; under `lower_order_final` the final
    steps of short grids are Euler steps (Karras et al. take an Euler step into sigma = 0)."""

    lower_order_final: bool = lower_order_final_field()

    order: ClassVar[int] = 2
    stochastic: ClassVar[bool] = False
    nfe_per_step: ClassVar[int] = 2

    def update(self, key, g, i, x, denoiser):
        dt = g.t[i + 1] - g.t[i]
        v0 = denoiser.velocity(g.t[i], x)

        def euler(x):
            return x + dt * v0

        def heun(x):
            v1 = denoiser.velocity(g.t[i + 1], x + dt * v0)
            return x + 0.5 * dt * (v0 + v1)

        q = _single_order(2, i, g, self.lower_order_final)
        return _switch(q, [euler, heun], x), q


def _reverse_sde_step(key, denoiser, t0, t1, x):
    sch = denoiser.schedule
    dt = t1 - t0  # negative
    eps = denoiser.eps(t0, x)
    g2 = sch.diffusion_squared(t0)
    drift = sch.drift(t0) * x + g2 * eps / sch.sigma(t0)  # f x - g^2 score
    return x + drift * dt + jnp.sqrt(g2 * -dt) * _key_normal(key, x)


class EulerMaruyama(AbstractSinglestepSampler):
    """Euler-Maruyama on the reverse SDE (Song et al. 2021, eq. 6):
    x' = x + [f x - g^2 score] dt + g sqrt(|dt|) z. Weak order 1; one evaluation per step."""

    order: ClassVar[int] = 1
    stochastic: ClassVar[bool] = True
    nfe_per_step: ClassVar[int] = 1

    def update(self, key, g, i, x, denoiser):
        return _reverse_sde_step(key, denoiser, g.t[i], g.t[i + 1], x), 1


class PredictorCorrector(AbstractSinglestepSampler):
    r"""Predictor-corrector sampling (Song et al. 2021, Algorithm 1 with Algorithms 4/5).

    Predictor: an Euler-Maruyama step of the reverse SDE to t_{i+1}. Corrector:
    `n_corrector` unadjusted Langevin steps at t_{i+1},
    x <- x + e score + sqrt(2 e) z, e = 2 (snr sigma_t)^2.
    The paper's rule e = 2 (snr ||z|| / ||score||)^2 is evaluated at its typical values
    ||z||^2 ~ d, ||score||^2 ~ d / sigma_t^2: per example (one example per call, as here)
    the ratio ||z||^2 / ||score||^2 is heavy-tailed in low dimension (infinite mean for
    d = 2) and occasionally takes huge steps. snr = 0.16 is the paper's CIFAR-10 value.
    1 + n_corrector evaluations per step. Langevin steps add a bias that shrinks with snr.
    """

    snr: RealLike = 0.16
    n_corrector: int = eqx.field(default=1, static=True)

    order: ClassVar[int] = 1
    stochastic: ClassVar[bool] = True

    def __check_init__(self):
        check_positive("snr", self.snr)
        check_int("n_corrector", self.n_corrector, 0)

    @property
    def nfe_per_step(self) -> int:
        return 1 + self.n_corrector

    def update(self, key, g, i, x, denoiser):
        keys = jax.random.split(check_key("key", key), 1 + self.n_corrector)
        x = _reverse_sde_step(keys[0], denoiser, g.t[i], g.t[i + 1], x)
        t = g.t[i + 1]

        def langevin(x, k):
            score = denoiser.score(t, x)
            z = _key_normal(k, x)
            e = 2.0 * (self.snr * denoiser.schedule.sigma(t)) ** 2
            return x + e * score + jnp.sqrt(2.0 * e) * z, None

        x, _ = jax.lax.scan(langevin, x, keys[1:])
        return x, 1 + self.n_corrector
