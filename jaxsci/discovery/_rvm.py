r"""The relevance vector machine: sparse Bayesian regression with ARD priors.

Model (Tipping 2001, J. Mach. Learn. Res. 1, 211-244): t = Phi w + eps, eps ~ N(0, I/beta),
and an automatic-relevance-determination prior w_j ~ N(0, 1/alpha_j) with one precision per
term. The hyperparameters maximise the evidence (type-II likelihood)

    L(alpha, beta) = log N(t; 0, C),   C = I/beta + Phi A^{-1} Phi^T,   A = diag(alpha);

terms whose evidence-optimal alpha_j is infinite are pruned (w_j = 0 exactly), which is
where the sparsity comes from. Given (alpha, beta) the posterior is Gaussian:
Sigma = (A + beta Phi^T Phi)^{-1}, mu = beta Sigma Phi^T t.

Evidence maximisation uses the fast sequential algorithm of Tipping & Faul (2003, AISTATS,
"Fast marginal likelihood maximisation for sparse Bayesian models"). With s_j = phi_j^T
C_{-j}^{-1} phi_j and q_j = phi_j^T C_{-j}^{-1} t (C without term j), L depends on alpha_j
only through l(alpha_j) = [log alpha_j - log(alpha_j + s_j) + q_j^2 / (alpha_j + s_j)] / 2,
whose maximiser is in closed form:

    alpha_j = s_j^2 / (q_j^2 - s_j)  if q_j^2 > s_j,   alpha_j = inf  otherwise.

Each iteration computes s_j, q_j for every term from the current posterior and applies the
single update (add a term, re-estimate one, or delete one) that increases L the most, then
re-estimates the noise precision beta = (n - sum_j gamma_j) / ||t - Phi mu||^2 with
gamma_j = 1 - alpha_j Sigma_jj (MacKay 1992). It stops when no term can be added
(q_j^2 <= s_j for all excluded j), none should be deleted, every re-estimate changes log
alpha_j by less than `tolerance` and beta has settled likewise. All of this runs on the
normal equations with a fixed-size active mask inside one `lax.while_loop`, so `fit` is
jit-compatible and its cost after forming Phi^T Phi is independent of the sample count.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.scipy.linalg as jsl

from .._checks import (
    check_int,
    check_positive,
    check_range,
    check_shape,
    hyperparameter,
    optional_hyperparameter,
)
from .._custom_types import Array, Float, Key
from ._base import (
    AbstractSparseRegression,
    NormalEquations,
    SparseRegressionResult,
    rescale,
)


class _State(eqx.Module):
    active: jax.Array
    alpha: jax.Array
    beta: jax.Array
    iteration: jax.Array
    done: jax.Array


def _posterior(gram, moment, active, alpha, beta):
    """Sigma (masked to the active set), mu and log det of the posterior precision H."""
    m = gram.shape[0]
    both = active[:, None] & active[None, :]
    h = jnp.where(both, beta * gram, 0.0) + jnp.diag(jnp.where(active, alpha, 1.0))
    chol = jnp.linalg.cholesky(h)
    sigma = jsl.cho_solve((chol, True), jnp.eye(m, dtype=gram.dtype))
    sigma = jnp.where(both, sigma, 0.0)
    mu = beta * (sigma @ moment)
    logdet_h = 2.0 * jnp.sum(jnp.log(jnp.diag(chol)))
    return sigma, mu, logdet_h


def _sparsity_quality(gram, moment, active, alpha, beta, sigma, mu):
    """T&F's s_j, q_j (leave-one-out sparsity and quality factors) for every term.

    S_j = beta phi_j^T phi_j - beta^2 phi_j^T Phi Sigma Phi^T phi_j and Q_j likewise with t;
    s_j = S_j, q_j = Q_j for excluded terms. For included terms T&F use
    s_j = alpha_j S_j / (alpha_j - S_j), which cancels catastrophically when s_j >> alpha_j
    (a well-determined coefficient: alpha_j - S_j ~ alpha_j^2 / s_j); there the identities
    Sigma_jj = 1 / (alpha_j + s_j) and mu_j = q_j Sigma_jj (the marginal posterior of w_j)
    give s_j = 1 / Sigma_jj - alpha_j and q_j = mu_j / Sigma_jj without cancellation.
    """
    gs = gram @ sigma
    big_s = beta * jnp.diag(gram) - beta**2 * jnp.sum(gs * gram, axis=1)
    big_q = beta * moment - beta**2 * (gs @ moment)
    diag = jnp.where(active, jnp.diag(sigma), 1.0)
    inv_diag = 1.0 / diag
    well_determined = inv_diag > 2.0 * alpha  # s_j > alpha_j
    denom = jnp.where(active & ~well_determined, alpha - big_s, 1.0)
    s_weak = alpha * big_s / denom
    q_weak = alpha * big_q / denom
    s_strong = inv_diag - alpha
    q_strong = mu * inv_diag
    s = jnp.where(active, jnp.where(well_determined, s_strong, s_weak), big_s)
    q = jnp.where(active, jnp.where(well_determined, q_strong, q_weak), big_q)
    return s, q


def _ell(alpha, s, q):
    # the part of the log evidence that depends on alpha_j (T&F eq. 15), for finite alpha
    return 0.5 * (jnp.log(alpha) - jnp.log(alpha + s) + q**2 / (alpha + s))


class RVM(AbstractSparseRegression):
    """Relevance vector machine regression (Tipping 2001; Tipping & Faul 2003).

    See the module docstring for the model and the algorithm. Columns and target are first
    rescaled to unit RMS (the ARD evidence is invariant to column scaling -- alpha_j absorbs
    it -- but the conditioning of A + beta Phi^T Phi is not); results are reported in the
    original units. The posterior covariance treats samples as independent: for model-error
    samples that are correlated in space and time it is a lower bound on the uncertainty.

    Arguments:
        max_iterations: cap on the add/re-estimate/delete updates (each touches one term,
            so a few times the number of terms is usually enough; 500 is generous).
        tolerance: convergence threshold on |Delta log alpha_j| and |Delta log beta|.
            1e-4 changes a coefficient by about 1e-4 of its posterior standard deviation
            at most, far below anything float32 rounding of the normal equations resolves.
        noise_floor: smallest noise variance, as a fraction of the target's mean square.
            The residual ||t - Phi mu||^2 is computed from the normal equations
            (t^T t - 2 mu^T b + mu^T G mu), whose rounding error is about eps * t^T t;
            a smaller noise variance cannot be told from rounding and would make beta (and
            the inclusion of terms fitted to rounding noise) arbitrary. Default None:
            100 eps of the dtype (1.2e-5 in float32, 2.2e-14 in float64). Noise-free data
            then sit on the floor, which is what makes exact-data fits well posed.
        normalize: rescale columns and target to unit RMS before fitting (recommended).

    `tolerance` and `noise_floor` are array fields (a `vmap` over them works).
    """

    tolerance: Float[Array, ""] = eqx.field(default=1e-4, converter=hyperparameter)
    noise_floor: Float[Array, ""] | None = eqx.field(
        default=None, converter=optional_hyperparameter
    )
    max_iterations: int = eqx.field(static=True, default=500)
    normalize: bool = eqx.field(static=True, default=True)

    def __check_init__(self):
        check_int("max_iterations", self.max_iterations)
        check_positive("tolerance", self.tolerance)
        if self.noise_floor is not None:
            check_range("noise_floor", self.noise_floor, 0.0, 1.0, lower_open=True, upper_open=True)
            check_shape("noise_floor", self.noise_floor, (), "() (a scalar)")
        check_shape("tolerance", self.tolerance, (), "() (a scalar)")

    def fit_normal(self, ne: NormalEquations, key: Key | None = None) -> SparseRegressionResult:
        del key
        sc = rescale(ne, self.normalize)
        gram, moment, n = sc.gram, sc.moment, sc.num_samples
        dtype = gram.dtype
        m = gram.shape[0]
        eps = jnp.finfo(dtype).eps
        floor = 100 * eps if self.noise_floor is None else self.noise_floor
        rss_min = floor * sc.target_sq
        tiny = jnp.finfo(dtype).tiny

        def residual(mu):
            return sc.target_sq - 2.0 * mu @ moment + mu @ (gram @ mu)

        def noise_precision(active, alpha, sigma, mu):
            gamma = jnp.where(active, 1.0 - alpha * jnp.diag(sigma), 0.0)
            dof = jnp.maximum(n - jnp.sum(gamma), 1.0)
            return dof / jnp.maximum(residual(mu), rss_min)

        # Initialise (T&F section 4): beta from 10% noise variance, and the one term with the
        # largest normalised projection |phi_j^T t|^2 / ||phi_j||^2, at its optimal alpha.
        beta0 = 1.0 / (0.1 * sc.target_sq / n)
        diag = jnp.diag(gram)
        proj = jnp.where(sc.usable, moment**2 / jnp.where(sc.usable, diag, 1.0), -jnp.inf)
        first = jnp.argmax(proj)
        excess = jnp.maximum(proj[first] - 1.0 / beta0, eps * diag[first])
        alpha0 = jnp.ones(m, dtype=dtype).at[first].set(diag[first] / excess)
        active0 = jnp.zeros(m, dtype=bool).at[first].set(sc.usable[first])
        state0 = _State(
            active0, alpha0, jnp.asarray(beta0, dtype), jnp.asarray(0), jnp.asarray(False)
        )

        def body(st: _State) -> _State:
            sigma, mu, _ = _posterior(gram, moment, st.active, st.alpha, st.beta)
            s, q = _sparsity_quality(gram, moment, st.active, st.alpha, st.beta, sigma, mu)
            theta = q**2 - s
            relevant = (theta > 0) & sc.usable
            alpha_new = jnp.where(relevant, s**2 / jnp.where(relevant, theta, 1.0), jnp.inf)
            alpha_new = jnp.maximum(alpha_new, tiny)
            safe_new = jnp.where(relevant, alpha_new, 1.0)
            safe_s = jnp.where(relevant, s, 1.0)
            # increase of L for each possible update (T&F 2003, eqs. 27-29)
            gain_add = 0.5 * (
                (q**2 - s) / safe_s + jnp.log(safe_s / jnp.where(relevant, q**2, 1.0))
            )
            gain_re = _ell(safe_new, s, q) - _ell(st.alpha, s, q)
            gain_del = -_ell(st.alpha, s, q)
            gain = jnp.where(
                st.active,
                jnp.where(relevant, gain_re, gain_del),
                jnp.where(relevant, gain_add, -jnp.inf),
            )
            gain = jnp.where(jnp.isfinite(gain), gain, -jnp.inf)
            can_add = jnp.any(~st.active & relevant)
            should_delete = jnp.any(st.active & ~relevant)
            dlog = jnp.where(
                st.active & relevant, jnp.abs(jnp.log(safe_new) - jnp.log(st.alpha)), 0.0
            )
            # The best update by evidence gain; once no term is to be added or deleted, the
            # re-estimate that moves log alpha most (near the optimum the gains are second
            # order in the change and fall below rounding before the changes do).
            j = jnp.where(can_add | should_delete, jnp.argmax(gain), jnp.argmax(dlog))
            add_j = ~st.active[j] & relevant[j]
            del_j = st.active[j] & ~relevant[j]
            active = st.active.at[j].set(add_j | (st.active[j] & ~del_j))
            alpha = st.alpha.at[j].set(jnp.where(relevant[j], alpha_new[j], st.alpha[j]))
            # Changes below the rounding resolution of the residual (relative error about
            # eps t^T t / ||t - Phi mu||^2, times a safety factor 16) are noise, not progress.
            rss = jnp.maximum(residual(mu), rss_min)
            tol = self.tolerance + 16 * eps * sc.target_sq / rss
            sigma2, mu2, _ = _posterior(gram, moment, active, alpha, st.beta)
            beta = noise_precision(active, alpha, sigma2, mu2)
            settled = jnp.abs(jnp.log(beta) - jnp.log(st.beta)) < tol
            done = ~can_add & ~should_delete & (jnp.max(dlog) < tol) & settled
            return _State(active, alpha, beta, st.iteration + 1, done)

        def cond(st: _State):
            return ~st.done & (st.iteration < self.max_iterations)

        st = jax.lax.while_loop(cond, body, state0)
        sigma, mu, logdet_h = _posterior(gram, moment, st.active, st.alpha, st.beta)
        beta = st.beta
        # log N(t~; 0, C) with log|C| = -n log beta - sum log alpha_active + log|H| and
        # t^T C^{-1} t = beta t^T t - beta^2 b^T Sigma b (determinant lemma, Woodbury)
        log_alpha = jnp.sum(jnp.where(st.active, jnp.log(st.alpha), 0.0))
        logdet_c = -n * jnp.log(beta) - log_alpha + logdet_h
        quad = beta * sc.target_sq - beta**2 * moment @ (sigma @ moment)
        log_ev = -0.5 * (n * jnp.log(2 * jnp.pi) + logdet_c + quad) - n * jnp.log(sc.target_scale)
        d, scale = sc.column_scale, sc.target_scale
        coefficients = jnp.where(st.active, scale * mu / d, 0.0)
        covariance = scale**2 * sigma / (d[:, None] * d[None, :])
        precisions = jnp.where(st.active, st.alpha * d**2 / scale**2, jnp.inf)
        return SparseRegressionResult(
            coefficients=coefficients,
            covariance=covariance,
            active=st.active,
            noise_variance=scale**2 / beta,
            precisions=precisions,
            log_evidence=log_ev,
            num_iterations=st.iteration,
            converged=st.done,
        )
