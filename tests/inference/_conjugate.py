"""Conjugate posteriors with closed forms, shared by the sampler and MAP/Laplace tests.

Gaussian linear regression with a Gaussian prior on the coefficients: the exact posterior is
N(S X^T y / s^2, S), S = (I / s0^2 + X^T X / s^2)^{-1}. A Gamma(a, b) prior on a Poisson rate:
the posterior is Gamma(a + sum y, b + n).
"""

import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist

from jaxsci import inference

RNG = np.random.default_rng(0)
X = RNG.normal(size=(12, 3))
Y = X @ np.array([1.0, -0.5, 0.3]) + 0.5 * RNG.normal(size=12)
S0, S = 2.0, 0.5
PRECISION = np.eye(3) / S0**2 + X.T @ X / S**2
COV = np.linalg.inv(PRECISION)
MEAN = COV @ (X.T @ Y / S**2)

COUNTS = np.array([3, 5, 2, 4, 6, 3, 4])
A, B = 2.0, 0.5
RATE_SHAPE, RATE_RATE = A + COUNTS.sum(), B + COUNTS.size  # exact Gamma posterior


def regression_logdensity(params):
    beta = params["beta"]
    prior = jnp.sum(dist.Normal(0.0, S0).log_prob(beta))
    return prior + jnp.sum(dist.Normal(jnp.asarray(X) @ beta, S).log_prob(jnp.asarray(Y)))


def poisson_logdensity(params):
    lam = params["rate"]
    return dist.Gamma(A, B).log_prob(lam) + jnp.sum(dist.Poisson(lam).log_prob(COUNTS))


def numpyro_regression(x, y=None):
    beta = numpyro.sample("beta", dist.Normal(0.0, S0).expand([3]))
    numpyro.sample("y", dist.Normal(x @ beta, S), obs=y)


REGRESSION = inference.LogDensity(
    regression_logdensity, {"beta": "real"}, prior={"beta": dist.Normal(0.0, S0).expand([3])}
)
POISSON = inference.LogDensity(
    poisson_logdensity, {"rate": "positive"}, prior={"rate": dist.Gamma(A, B)}
)
