r"""Horseshoe regression sampled with NUTS (numpyro): full posterior uncertainty.

Model (Carvalho, Polson & Scott 2010, Biometrika 97, 465), on the unit-RMS columns and
target of `_base.rescale`:

    tau ~ HalfCauchy(global_scale),  lambda_j ~ HalfCauchy(1),  sigma ~ HalfNormal(1),
    w_j ~ N(0, tau^2 lambda_j^2),    t ~ N(Phi w, sigma^2 I),

with the Gaussian likelihood written through the normal equations,
log p(t | w, sigma) = -n/2 log(2 pi sigma^2) - (t^T t - 2 w^T b + w^T G w) / (2 sigma^2),
so the sampler's cost does not grow with the sample count. NUTS (Hoffman & Gelman 2014) with
a dense mass matrix handles the correlated coefficients of a library.

A term is selected when its central 95% marginal credible interval excludes zero (the
selection rule whose frequentist coverage van der Pas, Szabo & van der Vaart 2017,
Bayesian Analysis 12, 1221, establish for the horseshoe). The shrinkage-factor rule of
Carvalho et al. (2010), E[1 - kappa_j] > 1/2, assumes orthogonal columns and is unreliable
for the null terms of a large-n problem (their kappa_j sits near 1/2).
"""

from typing import ClassVar

import equinox as eqx
import jax.numpy as jnp

from .._checks import check_int, check_positive, check_range
from .._custom_types import Key
from ._base import AbstractSparseRegression, NormalEquations, SparseRegressionResult, rescale


class HorseshoeRegression(AbstractSparseRegression):
    """Sparse Bayesian regression with a horseshoe prior, sampled by numpyro's NUTS.

    Needs `key`. Slower than the RVM (seconds instead of milliseconds) but gives the full
    posterior: `draws` holds the samples of w in original units; `coefficients` are their
    means on the selected terms and `covariance` their sample covariance.

    Arguments:
        num_warmup, num_samples: NUTS adaptation and kept draws (one chain).
        global_scale: scale of the half-Cauchy prior on tau (normalised units). Piironen &
            Vehtari (2017) suggest p0 / (D - p0) / sqrt(n) for p0 expected relevant terms
            of D; the default 1e-3 is that value for p0 = 1 of D = 8 terms and n ~ 2e4
            samples, and the posterior is insensitive to it within an order of magnitude
            when n is large.
        target_accept: NUTS target acceptance probability. The horseshoe posterior is
            funnel-shaped around the shrunk coefficients; at numpyro's 0.8 (or 0.9) NUTS
            reports divergent transitions there (29 of 400 on the test problem at 0.9),
            at 0.99 none: smaller steps, more of them.
    """

    jittable: ClassVar[bool] = False
    num_warmup: int = eqx.field(static=True, default=500)
    num_samples: int = eqx.field(static=True, default=500)
    global_scale: float = eqx.field(static=True, default=1e-3)
    target_accept: float = eqx.field(static=True, default=0.99)

    def __check_init__(self):
        check_int("num_warmup", self.num_warmup)
        check_int("num_samples", self.num_samples, 2)
        check_positive("global_scale", self.global_scale)
        check_range("target_accept", self.target_accept, 0.0, 1.0, lower_open=True, upper_open=True)

    def fit_normal(self, ne: NormalEquations, key: Key | None = None) -> SparseRegressionResult:
        if key is None:
            raise ValueError("`key` is required: HorseshoeRegression samples with NUTS.")
        import numpyro
        import numpyro.distributions as dist
        from numpyro.infer import MCMC, NUTS

        sc = rescale(ne, True)
        gram, moment, n = sc.gram, sc.moment, sc.num_samples
        m = gram.shape[0]

        def model():
            tau = numpyro.sample("tau", dist.HalfCauchy(self.global_scale))
            lam = numpyro.sample("lam", dist.HalfCauchy(jnp.ones(m)))
            sigma = numpyro.sample("sigma", dist.HalfNormal(1.0))
            w = numpyro.sample("w", dist.Normal(jnp.zeros(m), tau * lam))
            rss = sc.target_sq - 2.0 * w @ moment + w @ (gram @ w)
            numpyro.factor(
                "likelihood", -0.5 * n * jnp.log(2 * jnp.pi * sigma**2) - 0.5 * rss / sigma**2
            )

        kernel = NUTS(model, dense_mass=True, target_accept_prob=self.target_accept)
        mcmc = MCMC(
            kernel,
            num_warmup=self.num_warmup,
            num_samples=self.num_samples,
            num_chains=1,
            progress_bar=False,
        )
        mcmc.run(key)
        draws = mcmc.get_samples()
        w = draws["w"]
        lo, hi = jnp.quantile(w, jnp.asarray([0.025, 0.975]), axis=0)
        active = (lo > 0) | (hi < 0)
        d, scale = sc.column_scale, sc.target_scale
        w_orig = scale * w / d
        mean = jnp.mean(w_orig, axis=0)
        centred = w_orig - mean
        cov = centred.T @ centred / (w_orig.shape[0] - 1)
        both = active[:, None] & active[None, :]
        diverging = mcmc.get_extra_fields()["diverging"]
        return SparseRegressionResult(
            coefficients=jnp.where(active, mean, 0.0),
            covariance=jnp.where(both, cov, 0.0),
            active=active,
            noise_variance=scale**2 * jnp.mean(draws["sigma"] ** 2),
            precisions=jnp.where(active, 0.0, jnp.inf),
            log_evidence=jnp.asarray(jnp.nan, dtype=gram.dtype),
            num_iterations=jnp.asarray(self.num_warmup + self.num_samples),
            converged=~jnp.any(diverging),
            draws=w_orig,
        )
