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


class KalmanUpdate(NamedTuple):
    """One Kalman analysis: the conditioned mean and covariance and the log marginal
    likelihood log N(y; H m, H P H^T + R) of the observation."""

    mean: Float[Array, " dim"]
    cov: Float[Array, "dim dim"]
    log_likelihood: Float[Array, ""]


@jax.jit
def _update(m, p, h, r, y) -> KalmanUpdate:
    """The analysis of `kalman_update`, unchecked (shared with `kalman_filter`'s scan; jitted
    so that an eager call is one compiled program, not a dozen op-by-op dispatches)."""
    s = h @ p @ h.T + r
    chol = jnp.linalg.cholesky(s)
    gain = jsl.cho_solve((chol, True), h @ p).T
    innov = y - h @ m
    m_a = m + gain @ innov
    ikh = jnp.eye(m.shape[0], dtype=m.dtype) - gain @ h
    p_a = ikh @ p @ ikh.T + gain @ r @ gain.T
    z = jsl.solve_triangular(chol, innov, lower=True)
    ll = -0.5 * (z @ z + 2 * jnp.sum(jnp.log(jnp.diag(chol))) + y.shape[0] * jnp.log(2 * jnp.pi))
    return KalmanUpdate(m_a, p_a, ll)


def _check_square(name, a, n):
    if a.shape != (n, n):
        raise ValueError(f"`{name}` has shape {a.shape}, wanted ({n}, {n}).")


def kalman_update(
    mean: Float[ArrayLike, " dim"],
    cov: Float[ArrayLike, "dim dim"],
    obs_matrix: Float[ArrayLike, "obs dim"],
    obs_cov: Float[ArrayLike, "obs obs"],
    observation: Float[ArrayLike, " obs"],
) -> KalmanUpdate:
    r"""Condition a Gaussian x ~ N(m, P) on a linear observation y = H x + r, r ~ N(0, R):
    the exact Gaussian linear update, the analysis step of `kalman_filter`.

    Innovation covariance S = H P H^T + R (factored by Cholesky; nothing is inverted);
    gain K = P H^T S^{-1}; m_a = m + K (y - H m);
    P_a = (I - K H) P (I - K H)^T + K R K^T (Joseph form: symmetric positive semi-definite in
    floating point, equal to P - K S K^T in exact arithmetic);
    log_likelihood = log N(y; H m, S).

    R may be singular, R = 0 included: then y = H x is a hard linear constraint, m_a satisfies
    H m_a = y to round-off and P_a has zero variance along the rows of H (this is the
    constrained least-squares update of ProbConserv, `conservation_update`). Only S must be
    positive definite: the constrained directions H x must have prior variance. A singular S
    gives NaNs (under `jit` nothing is raised).

    Arguments:
        mean, cov: m (dim,) and P (dim, dim), symmetric positive semi-definite.
        obs_matrix: H (obs, dim).
        obs_cov: R (obs, obs), symmetric positive semi-definite.
        observation: y (obs,).

    Returns:
        A `KalmanUpdate` (mean, cov, log_likelihood).
    """
    m, p = jnp.asarray(mean), jnp.asarray(cov)
    h, r, y = jnp.asarray(obs_matrix), jnp.asarray(obs_cov), jnp.asarray(observation)
    if m.ndim != 1:
        raise ValueError(f"`mean` has shape {m.shape}, wanted (dim,).")
    n = m.shape[0]
    _check_square("cov", p, n)
    if h.ndim != 2 or h.shape[1] != n:
        raise ValueError(f"`obs_matrix` has shape {h.shape}, wanted (obs, {n}).")
    _check_square("obs_cov", r, h.shape[0])
    if y.shape != (h.shape[0],):
        raise ValueError(f"`observation` has shape {y.shape}, wanted ({h.shape[0]},).")
    dtype = jnp.result_type(m, p, h, r, y)
    return _update(*(a.astype(dtype) for a in (m, p, h, r, y)))


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
    + K R K^T (Joseph form, symmetric positive semi-definite in floating point; the analysis
    is `kalman_update`). log p(y_k | y_{1:k-1}) = log N(y_k; H m_f, S).
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

    def step(carry, y):
        m, cov = carry
        m_f = f @ m
        p_f = f @ cov @ f.T + q
        upd = _update(m_f, p_f, h, r, y)
        return (upd.mean, upd.cov), (m_f, p_f, upd.mean, upd.cov, upd.log_likelihood)

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
