r"""How the training losses draw their times t, with importance weights.

Every sampler returns times t (n,) and weights iw (n,) with E[iw f(t)] = E_{t ~ U}[f(t)],
U the uniform law on [t_min, t_max], so the objective is the same and only its variance
changes:

* `UniformTimes`: t ~ U[t_min, t_max], iw = 1.
* `LogSNRTimes`: lambda ~ U[lambda(t_max), lambda(t_min)], t = t(lambda), and
  iw = (lambda(t_min) - lambda(t_max)) / ((t_max - t_min) |lambda'(t)|) (Kingma et al.
  2021 argue for sampling in lambda; with the likelihood weighting the weighted integrand
  is then constant in t apart from the error itself). Needs finite lambda at both ends.
* `StratifiedTimes`: the batch's times on a stratified grid,
  t_b = t_min + (b + u_b)/B (t_max - t_min), shuffled: the low-discrepancy sampler of
  Kingma et al. 2021, unbiased for the same objective; iw = 1.
"""

import abc

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._checks import concrete
from .._custom_types import Array, Float, Key
from ._base import AbstractSchedule, RealLike


class AbstractTimeSampler(eqx.Module):
    """A law of training times on [t_min, t_max] with importance weights to the uniform
    law: `sample(key, n, schedule, t_min, t_max, dtype) -> (t, iw)`."""

    @abc.abstractmethod
    def sample(
        self,
        key: Key,
        n: int,
        schedule: AbstractSchedule,
        t_min: RealLike,
        t_max: RealLike,
        dtype,
    ) -> tuple[Float[Array, " n"], Float[Array, " n"]]:
        """Times (n,) and importance weights (n,) making E[iw f(t)] = E_{t~U}[f(t)]."""

    @abc.abstractmethod
    def check_range(self, schedule: AbstractSchedule, t_min: RealLike, t_max: RealLike) -> None:
        """Raise a ValueError naming `time_sampling` if the law is undefined on the range."""


class UniformTimes(AbstractTimeSampler):
    """t ~ U[t_min, t_max]."""

    def sample(self, key, n, schedule, t_min, t_max, dtype):
        u = jax.random.uniform(key, (n,), dtype=dtype)
        return t_min + (t_max - t_min) * u, jnp.ones((n,), dtype)

    def check_range(self, schedule, t_min, t_max):
        pass


class StratifiedTimes(AbstractTimeSampler):
    """One time per stratum of [t_min, t_max], shuffled (Kingma et al. 2021)."""

    def sample(self, key, n, schedule, t_min, t_max, dtype):
        u = jax.random.uniform(key, (n,), dtype=dtype)
        strata = jax.random.permutation(jax.random.fold_in(key, 1), n).astype(dtype)
        return t_min + (t_max - t_min) * (strata + u) / n, jnp.ones((n,), dtype)

    def check_range(self, schedule, t_min, t_max):
        pass


class LogSNRTimes(AbstractTimeSampler):
    """lambda uniform on [lambda(t_max), lambda(t_min)], with importance weights."""

    def sample(self, key, n, schedule, t_min, t_max, dtype):
        u = jax.random.uniform(key, (n,), dtype=dtype)
        lam_hi = schedule.lambda_(jnp.asarray(t_min, dtype))
        lam_lo = schedule.lambda_(jnp.asarray(t_max, dtype))
        t = schedule.t_from_lambda(lam_lo + u * (lam_hi - lam_lo))
        t = jnp.clip(t, t_min, t_max)
        weight = (lam_hi - lam_lo) / ((t_max - t_min) * jnp.abs(schedule.d_lambda(t)))
        return t, weight

    def check_range(self, schedule, t_min, t_max):
        ends = concrete(schedule.lambda_(jnp.asarray([t_min, t_max], float)))
        if ends is not None and not np.all(np.isfinite(ends)):
            raise ValueError(
                f"`time_sampling` LogSNRTimes needs a finite log-SNR at both ends of the "
                f"training range; lambda = {ends.tolist()} at [t_min, t_max] = "
                f"[{t_min}, {t_max}] (use UniformTimes or StratifiedTimes, or a narrower "
                "range)."
            )
