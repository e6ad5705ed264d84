"""Exact Kalman filter and Rauch-Tung-Striebel smoother for linear-Gaussian models."""

from typing import NamedTuple

import jax
import jax.numpy as jnp
import jax.scipy.linalg as jsl

from .._custom_types import Array, ArrayLike, Float


class KalmanResult(NamedTuple):
    """Forecast (`*_f`) and analysis (`*_a`) moments at cycles 1..K, the per-cycle
    log-likelihood increments log p(y_k | y_{1:k-1}) and their sum."""

    means_f: Float[Array, "time dim"]
    covs_f: Float[Array, "time dim dim"]
    means_a: Float[Array, "time dim"]
    covs_a: Float[Array, "time dim dim"]
    log_likelihoods: Float[Array, " time"]
    log_likelihood: Float[Array, ""]


def _check_square(name, a, n):
    if a.shape != (n, n):
        raise ValueError(f"`{name}` has shape {a.shape}, wanted ({n}, {n}).")


def kalman_filter(
    transition: Float[ArrayLike, "dim dim"],
    transition_cov: Float[ArrayLike, "dim dim"],
    obs_matrix: Float[ArrayLike, "obs dim"],
    obs_cov: Float[ArrayLike, "obs obs"],
    mean0: Float[ArrayLike, " dim"],
    cov0: Float[ArrayLike, "dim dim"],
    observations: Float[ArrayLike, "time obs"],
) -> KalmanResult:
    """Kalman (1960) filter for x_k = F x_{k-1} + q_k, y_k = H x_k + r_k, k = 1..K,
    q ~ N(0, Q), r ~ N(0, R), x_0 ~ N(m0, P0) (no observation at k = 0, as in `assimilate`).

    Forecast m_f = F m, P_f = F P F^T + Q; innovation covariance S = H P_f H^T + R;
    gain K = P_f H^T S^{-1}; analysis m = m_f + K (y - H m_f), P = (I - K H) P_f (I - K H)^T
    + K R K^T (Joseph form, symmetric positive semi-definite in floating point).
    log p(y_k | y_{1:k-1}) = log N(y_k; H m_f, S).
    """
    f, q = jnp.asarray(transition), jnp.asarray(transition_cov)
    h, r = jnp.asarray(obs_matrix), jnp.asarray(obs_cov)
    m0, p0 = jnp.asarray(mean0), jnp.asarray(cov0)
    ys = jnp.asarray(observations)
    n, p = m0.shape[0], h.shape[0]
    for name, a in (("transition", f), ("transition_cov", q), ("cov0", p0)):
        _check_square(name, a, n)
    _check_square("obs_cov", r, p)
    if h.shape != (p, n):
        raise ValueError(f"`obs_matrix` has shape {h.shape}, wanted (obs, {n}).")
    if ys.ndim != 2 or ys.shape[1] != p:
        raise ValueError(f"`observations` has shape {ys.shape}, wanted (time, {p}).")
    eye = jnp.eye(n, dtype=m0.dtype)

    def step(carry, y):
        m, cov = carry
        m_f = f @ m
        p_f = f @ cov @ f.T + q
        s = h @ p_f @ h.T + r
        chol = jnp.linalg.cholesky(s)
        gain = jsl.cho_solve((chol, True), h @ p_f).T
        innov = y - h @ m_f
        m_a = m_f + gain @ innov
        ikh = eye - gain @ h
        p_a = ikh @ p_f @ ikh.T + gain @ r @ gain.T
        z = jsl.solve_triangular(chol, innov, lower=True)
        ll = -0.5 * (z @ z + 2 * jnp.sum(jnp.log(jnp.diag(chol))) + p * jnp.log(2 * jnp.pi))
        return (m_a, p_a), (m_f, p_f, m_a, p_a, ll)

    _, (mf, pf, ma, pa, lls) = jax.lax.scan(step, (m0, p0), ys)
    return KalmanResult(mf, pf, ma, pa, lls, jnp.sum(lls))


def rts_smoother(
    transition: Float[ArrayLike, "dim dim"], result: KalmanResult
) -> tuple[Float[Array, "time dim"], Float[Array, "time dim dim"]]:
    """Rauch, Tung & Striebel (1965) smoother on the output of `kalman_filter`.

    Backward from m_s,K = m_a,K: G_k = P_a,k F^T P_f,k+1^{-1},
    m_s,k = m_a,k + G_k (m_s,k+1 - m_f,k+1), P_s,k = P_a,k + G_k (P_s,k+1 - P_f,k+1) G_k^T.
    Returns smoothed means and covariances at cycles 1..K.
    """
    f = jnp.asarray(transition)

    def step(carry, xs):
        m_s, p_s = carry
        m_a, p_a, m_f_next, p_f_next = xs
        g = jnp.linalg.solve(p_f_next, f @ p_a).T
        m = m_a + g @ (m_s - m_f_next)
        cov = p_a + g @ (p_s - p_f_next) @ g.T
        return (m, cov), (m, cov)

    xs = (result.means_a[:-1], result.covs_a[:-1], result.means_f[1:], result.covs_f[1:])
    last = (result.means_a[-1], result.covs_a[-1])
    _, (ms, ps) = jax.lax.scan(step, last, xs, reverse=True)
    return (
        jnp.concatenate([ms, last[0][None]], axis=0),
        jnp.concatenate([ps, last[1][None]], axis=0),
    )
