r"""Sequentially thresholded least squares (STLSQ), the SINDy baseline.

Brunton, Proctor & Kutz (2016, PNAS 113, 3932, "Discovering governing equations from data
by sparse identification of nonlinear dynamical systems"): least squares, then repeatedly
zero every coefficient smaller than a threshold lambda and refit the rest by least squares,
until the selected set stops changing.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.scipy.linalg as jsl

from .._checks import check_int, check_positive, check_shape, hyperparameter
from .._custom_types import Array, Float, Key
from ._base import (
    AbstractSparseRegression,
    NormalEquations,
    SparseRegressionResult,
    rescale,
)


def _masked_solve(gram, moment, active, ridge):
    """Least squares (G_aa + ridge I) w_a = b_a on the active set; zero elsewhere."""
    m = gram.shape[0]
    both = active[:, None] & active[None, :]
    h = jnp.where(both, gram, 0.0) + jnp.diag(jnp.where(active, ridge, 1.0))
    chol = jnp.linalg.cholesky(h)
    inv = jnp.where(both, jsl.cho_solve((chol, True), jnp.eye(m, dtype=gram.dtype)), 0.0)
    return inv @ moment, inv


class STLSQ(AbstractSparseRegression):
    """Sequentially thresholded least squares (Brunton et al. 2016).

    Coefficients are thresholded in normalised units: with every column and the target
    scaled to unit RMS, w~_j = w_j RMS(theta_j) / RMS(t) is the RMS contribution of term j
    as a fraction of the target's RMS, so `threshold` reads "drop a term that explains less
    than this fraction of the target", whatever the units of the term (u_xxxx and u differ
    by orders of magnitude on a fine grid; an absolute threshold would not mean the same
    thing for both).

    The covariance reported is the least-squares one, sigma^2 (Phi_a^T Phi_a)^{-1} with
    sigma^2 = RSS / (n - k) on the k selected terms (for samples that are independent;
    correlated samples make it a lower bound).

    Arguments:
        threshold: lambda in normalised units (0.05: a term must carry 5% of the target's
            RMS). Too small keeps noise-fitting terms, too large drops weak true terms.
        max_iterations: threshold-and-refit rounds (Brunton et al. use 10; the selected set
            usually settles in 2-3).
        ridge: optional L2 regularisation (in normalised units) of each refit, as in
            PySINDy's STLSQ `alpha`; 0 is plain least squares.
        normalize: threshold in normalised units (recommended); False thresholds raw
            coefficients as in the original paper.

    `threshold` and `ridge` are array fields: a `vmap` over thresholds fits a whole sweep.
    """

    threshold: Float[Array, ""] = eqx.field(default=0.05, converter=hyperparameter)
    ridge: Float[Array, ""] = eqx.field(default=0.0, converter=hyperparameter)
    max_iterations: int = eqx.field(static=True, default=10)
    normalize: bool = eqx.field(static=True, default=True)

    def __check_init__(self):
        check_positive("threshold", self.threshold, allow_zero=True)
        check_int("max_iterations", self.max_iterations)
        check_positive("ridge", self.ridge, allow_zero=True)
        # one fit's values (a sweep is a vmap outside, where they are traced scalars)
        check_shape("threshold", self.threshold, (), "() (a scalar)")
        check_shape("ridge", self.ridge, (), "() (a scalar)")

    def fit_normal(self, ne: NormalEquations, key: Key | None = None) -> SparseRegressionResult:
        del key
        sc = rescale(ne, self.normalize)
        gram, moment, n = sc.gram, sc.moment, sc.num_samples
        # A tiny ridge keeps the Cholesky factorisation defined for collinear columns
        # without changing a well-posed least-squares solution measurably.
        ridge = self.ridge + 10 * jnp.finfo(gram.dtype).eps * jnp.max(jnp.diag(gram))

        def body(carry):
            active, _, it, _ = carry
            w, _ = _masked_solve(gram, moment, active, ridge)
            keep = active & (jnp.abs(w) >= self.threshold)
            return keep, w, it + 1, jnp.all(keep == active)

        active0 = sc.usable
        w0, _ = _masked_solve(gram, moment, active0, ridge)
        carry = (active0, w0, jnp.asarray(0), jnp.asarray(False))
        active, _, it, converged = jax.lax.while_loop(
            lambda c: ~c[3] & (c[2] < self.max_iterations), body, carry
        )
        w, inv = _masked_solve(gram, moment, active, ridge)
        rss = jnp.maximum(sc.target_sq - 2.0 * w @ moment + w @ (gram @ w), 0.0)
        k = jnp.sum(active)
        sigma2 = rss / jnp.maximum(n - k, 1.0)
        d, scale = sc.column_scale, sc.target_scale
        return SparseRegressionResult(
            coefficients=jnp.where(active, scale * w / d, 0.0),
            covariance=scale**2 * sigma2 * inv / (d[:, None] * d[None, :]),
            active=active,
            noise_variance=scale**2 * sigma2,
            precisions=jnp.where(active, 0.0, jnp.inf),
            log_evidence=jnp.asarray(jnp.nan, dtype=gram.dtype),
            num_iterations=it,
            converged=converged,
        )
