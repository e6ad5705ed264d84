"""Conjugate posteriors with closed forms, shared by the sampler and MAP/Laplace tests.

Gaussian linear regression with a Gaussian prior on the coefficients: the exact posterior is
N(S X^T y / s^2, S), S = (I / s0^2 + X^T X / s^2)^{-1}. A Gamma(a, b) prior on a Poisson rate:
the posterior is Gamma(a + sum y, b + n).

Two shapes that defeat a default sampler: a 2-D Gaussian with correlation 0.95 (a diagonal
mass matrix cannot follow it; a dense one can), and Neal's (2003) funnel, "Slice sampling",
Ann. Statist. 31(3), section 8: v ~ N(0, 3^2) and x_1..x_9 | v ~ N(0, e^v) (10 dimensions, as
Neal), whose neck at low v has a curvature no single step size fits (the centred form
diverges); the non-centred form samples v and z_i ~ N(0, 1) (x_i = e^(v/2) z_i), independent
standard shapes, so v's marginal N(0, 3^2) is exact.
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


CORR_MEAN = np.array([1.0, -2.0])
CORR_SD = np.array([1.0, 2.0])
RHO = 0.95
CORR_COV = np.outer(CORR_SD, CORR_SD) * np.array([[1.0, RHO], [RHO, 1.0]])


def correlated_logdensity(params):
    d = params["x"] - jnp.asarray(CORR_MEAN, params["x"].dtype)
    return -0.5 * d @ jnp.asarray(np.linalg.inv(CORR_COV), d.dtype) @ d


CORRELATED = inference.LogDensity(correlated_logdensity, {"x": "real"}, shapes={"x": (2,)})

FUNNEL_DIM = 9  # the x's; with v, Neal's 10 dimensions
FUNNEL_SD = 3.0  # v ~ N(0, 3^2)


def funnel_centred_logdensity(params):
    v, x = params["v"], params["x"]
    return dist.Normal(0.0, FUNNEL_SD).log_prob(v) + jnp.sum(
        dist.Normal(0.0, jnp.exp(v / 2)).log_prob(x)
    )


def funnel_noncentred_logdensity(params):
    return dist.Normal(0.0, FUNNEL_SD).log_prob(params["v"]) + jnp.sum(
        dist.Normal(0.0, 1.0).log_prob(params["z"])
    )


FUNNEL_CENTRED = inference.LogDensity(
    funnel_centred_logdensity, {"v": "real", "x": "real"}, shapes={"v": (), "x": (FUNNEL_DIM,)}
)
FUNNEL_NONCENTRED = inference.LogDensity(
    funnel_noncentred_logdensity, {"v": "real", "z": "real"}, shapes={"v": (), "z": (FUNNEL_DIM,)}
)
