"""Global ensemble Kalman analyses: stochastic EnKF, ETKF, DEnKF and the serial EnSRF.

Row convention: an ensemble E is (N members, M state), anomalies A = E - mean, and observation
anomalies are whitened, Yw = L^{-1}(h(E) - mean h(E)) with R = L L^T, so every update below
has identity observation-error covariance. All updates are written in ensemble space
(N x N systems, Hunt et al. 2007; Sakov & Oke 2008) when the ensemble is no larger than the
number of observations, and in observation space (P x P systems) otherwise, as DAPPER does; the
two are algebraically equal (push-through identity) and the choice is static (shapes only).
"""

import functools
import math
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.scipy.linalg as jsl
import numpy as np

from .._custom_types import Array, Float, Key
from ..observations import AbstractObservation
from ._base import AbstractEnsembleFilter, Ensemble, ObsVector
from ._statistics import ensemble_stats, gram_cholesky_ens, gram_cholesky_obs, use_ensemble_space


def _cho_solve_ens(yw: Float[Array, "ens obs"], rhs: Float[Array, "ens k"]):
    """(Yw Yw^T + (N-1) I)^{-1} rhs via Cholesky."""
    return jsl.cho_solve((gram_cholesky_ens(yw), True), rhs)


def _cho_solve_obs(yw: Float[Array, "ens obs"], rhs: Float[Array, "obs k"]):
    """(Yw^T Yw + (N-1) I)^{-1} rhs via Cholesky."""
    return jsl.cho_solve((gram_cholesky_obs(yw), True), rhs)


def random_mean_preserving_rotation(
    key: Key, n: int, dtype: Any = float
) -> Float[Array, "ens ens"]:
    """A Haar-random orthogonal N x N matrix Q with Q 1 = 1.

    Q = 1 1^T / N + B O B^T, with B an orthonormal basis of the complement of 1 and O Haar
    on O(N-1) (QR of a Gaussian matrix with the sign of diag(R) fixed, Mezzadri 2007).
    Applied on the left of anomalies it keeps their mean (zero) and covariance.
    """
    # the basis depends on N only: build it with NumPy at trace time (a constant)
    m = np.eye(n)
    m[:, 0] = 1.0
    b = jnp.asarray(np.linalg.qr(m)[0][:, 1:], dtype=dtype)
    g = jax.random.normal(key, (n - 1, n - 1), dtype=dtype)
    q, r = jnp.linalg.qr(g)
    o = q * jnp.sign(jnp.diag(r))[None, :]
    return jnp.full((n, n), 1.0 / n, dtype=dtype) + b @ o @ b.T


@functools.partial(jax.custom_jvp, nondiff_argnums=(1,))
def inv_sqrt_shifted(a: Float[Array, "n n"], shift: float) -> Float[Array, "n n"]:
    """a^{-1/2} for a symmetric matrix a = G + shift I with G positive semi-definite.

    Coupled Newton-Schulz iteration (Higham 2008, eq. 6.35) on B = a / c, which converges
    when the eigenvalues of B lie in (0, 2). They do for c = shift + ||G||_F / 2, since the
    eigenvalues of a lie in [shift, shift + ||G||_F]. The loop stops once
    ||Z Y - I||_F < sqrt(eps) and does one more step, which squares that error (about eps).
    Three matrix products per step: 3 steps for the LETKF's 7 x 7 matrices late in a
    Lorenz-96 twin experiment, 5-8 for larger ensembles at unit spread, 11-19 while the
    spread is 10-100x the observation error. The result is symmetrised.

    Why not `eigh`: on XLA:CPU a batch of small eigendecompositions is one LAPACK call per
    matrix, which made the eigendecompositions alone most of an
    LETKF cycle; the iteration is batched matrix products. Non-finite input, or no
    convergence within 100 steps, returns NaN (which the filters report as divergence).

    Derivatives of every order are exact, also where eigenvalues repeat (for the ETKF: fewer
    than N - 1 observations): the tangent solves X dX + dX X = -X^2 da X^2 (X = a^{-1/2})
    by `lax.custom_linear_solve` with an eigendecomposition inside the solve only, which
    gives dF = V (K o (V^T da V)) V^T, K_ij = -1 / (r_i r_j (r_i + r_j)), r = sqrt(lam),
    without ever differentiating `eigh`'s eigenvectors.
    """
    n = a.shape[-1]
    eye = jnp.eye(n, dtype=a.dtype)
    g = a - shift * eye
    g_max = jnp.max(jnp.abs(g))
    scale = jnp.where(g_max > 0, g_max, 1.0)  # ||G||_F without overflow in the squares
    c = shift + 0.5 * scale * jnp.sqrt(jnp.sum((g / scale) ** 2))
    tol = float(np.sqrt(np.finfo(a.dtype).eps))

    def unconverged(carry):
        step, _, _, err = carry
        return (err > tol) & (step < 100)

    def newton_schulz_step(carry):
        step, y, z, _ = carry
        zy = z @ y
        t = 1.5 * eye - 0.5 * zy
        return step + 1, y @ t, t @ z, jnp.sqrt(jnp.sum((zy - eye) ** 2))

    init = (0, a / c, eye, jnp.asarray(jnp.inf, a.dtype))
    _, _, z, err = jax.lax.while_loop(unconverged, newton_schulz_step, init)
    z = jnp.where(err <= tol, z, jnp.nan) / jnp.sqrt(c)
    return 0.5 * (z + z.T)


@inv_sqrt_shifted.defjvp
def _inv_sqrt_shifted_jvp(shift, primals, tangents):
    # X = a^{-1/2} satisfies X^2 = a^{-1}, so its tangent solves the Sylvester equation
    # X dX + dX X = -X^2 da X^2. The operator D -> X D + D X is smooth in X and self-adjoint,
    # and `custom_linear_solve` differentiates the solution implicitly through it: the
    # eigendecomposition inside `solve` (where the operator is diagonal, with entries
    # 1/r_i + 1/r_j) is never differentiated, so derivatives of every order stay exact
    # when eigenvalues repeat.
    (a,), (da,) = primals, tangents
    x = inv_sqrt_shifted(a, shift)
    x2 = x @ x
    lam, v = jnp.linalg.eigh(jax.lax.stop_gradient(a))
    r = jnp.sqrt(lam)
    inverse_diagonal = r[:, None] * r[None, :] / (r[:, None] + r[None, :])

    def sylvester(d):
        return x @ d + d @ x

    def solve(_, b):
        return v @ ((v.T @ b @ v) * inverse_diagonal) @ v.T

    dx = jax.lax.custom_linear_solve(sylvester, -(x2 @ da @ x2), solve, symmetric=True)
    return x, dx


def symmetric_sqrt_transform(yw: Float[Array, "ens obs"], dw: Float[Array, " obs"]):
    """ETKF weights: w = dw Yw^T Pw and T = (N-1)^{1/2} Pw^{1/2}, Pw = (Yw Yw^T + (N-1) I)^{-1}.

    Hunt et al. (2007), eqs. 21-24, with Pw^{1/2} from `inv_sqrt_shifted` and Pw as its
    square. Returns (w, T) with w (N,) and T (N, N) symmetric.
    """
    n = yw.shape[0]
    root = inv_sqrt_shifted(yw @ yw.T + (n - 1) * jnp.eye(n, dtype=yw.dtype), n - 1.0)
    w = ((yw @ dw) @ root) @ root
    return w, math.sqrt(n - 1.0) * root  # a Python float: keeps float32 under x64


def _symmetric_sqrt_obs_space(yw, dw, a):
    """The ETKF update in observation space, for N > P.

    With Yw^T Yw = V diag(lam) V^T and c = N - 1, the symmetric square root is
    T = I + Yw V diag(g(lam)) V^T Yw^T, g(lam) = (sqrt(c / (lam + c)) - 1) / lam
    = -1 / (sqrt(lam + c) (sqrt(c) + sqrt(lam + c))) (no division by lam), and
    w = Yw (Yw^T Yw + c I)^{-1} dw. Returns (w, T A) without forming the N x N matrix T.
    """
    c = yw.shape[0] - 1.0
    lam, v = jnp.linalg.eigh(yw.T @ yw)
    lam = jnp.maximum(lam, 0.0)
    root = jnp.sqrt(lam + c)
    g = -1.0 / (root * (jnp.sqrt(c) + root))
    ta = a + yw @ ((v * g) @ (v.T @ (yw.T @ a)))
    w = yw @ ((v / (lam + c)) @ (v.T @ dw))
    return w, ta


class EnKF(AbstractEnsembleFilter):
    """Stochastic EnKF with perturbed observations (Burgers et al. 1998; Evensen 2009).

    Each member assimilates y + r_i with r_i ~ N(0, R), the draws centred to zero mean (as
    in DAPPER's `PertObs`): E_i <- E_i + K (y + r_i - h(E_i)) with the ensemble gain
    K = A^T Yw (Yw^T Yw + (N-1) I)^{-1} L^{-1}, written in ensemble space.
    """

    def update(
        self, key: Key, ensemble: Ensemble, y_obs: ObsVector, obs_op: AbstractObservation
    ) -> Ensemble:
        n = ensemble.shape[0]
        s = ensemble_stats(ensemble, y_obs, obs_op)
        z = jax.random.normal(key, (n, obs_op.obs_dim), dtype=ensemble.dtype)
        z = z - jnp.mean(z, axis=0)
        # whitened innovation of member i: L^{-1}(y + L z_i - h(E_i)) = dw - Yw_i + z_i
        innov = s.innovation[None, :] - s.obs_anomalies + z
        yw, a = s.obs_anomalies, s.anomalies
        if use_ensemble_space(yw):
            return ensemble + _cho_solve_ens(yw, yw @ innov.T).T @ a
        return ensemble + innov @ _cho_solve_obs(yw, yw.T @ a)


class ETKF(AbstractEnsembleFilter):
    """Ensemble transform Kalman filter with the symmetric square root (Bishop et al. 2001;
    Hunt et al. 2007; DAPPER `EnKF('Sqrt')`).

    mean_a = mean + w A, A_a = T A, with (w, T) from `symmetric_sqrt_transform`. With
    `rotate=True` the analysis anomalies are multiplied on the left by a Haar-random
    mean-preserving rotation (DAPPER's `rot=True`), which removes the outliers a
    deterministic square root accumulates in nonlinear models.
    """

    rotate: bool = eqx.field(static=True, default=False)

    def update(
        self, key: Key, ensemble: Ensemble, y_obs: ObsVector, obs_op: AbstractObservation
    ) -> Ensemble:
        s = ensemble_stats(ensemble, y_obs, obs_op)
        yw, a = s.obs_anomalies, s.anomalies
        if use_ensemble_space(yw):
            w, t = symmetric_sqrt_transform(yw, s.innovation)
            anomalies = t @ a
        else:
            w, anomalies = _symmetric_sqrt_obs_space(yw, s.innovation, a)
        if self.rotate:
            q = random_mean_preserving_rotation(key, ensemble.shape[0], ensemble.dtype)
            anomalies = q @ anomalies
        return s.mean + w @ s.anomalies + anomalies


class DEnKF(AbstractEnsembleFilter):
    """Deterministic EnKF (Sakov & Oke 2008): the mean gets the full Kalman update and the
    anomalies half of it, A_a = A - K H A / 2, an O(K^2) approximation of the square root
    that needs only a linear solve (so it differentiates smoothly).
    """

    def update(
        self, key: Key, ensemble: Ensemble, y_obs: ObsVector, obs_op: AbstractObservation
    ) -> Ensemble:
        s = ensemble_stats(ensemble, y_obs, obs_op)
        yw, a, dw = s.obs_anomalies, s.anomalies, s.innovation
        if use_ensemble_space(yw):
            rhs = jnp.concatenate([(yw @ dw)[:, None], yw @ yw.T], axis=1)
            sol = _cho_solve_ens(yw, rhs)
            mean = s.mean + sol[:, 0] @ a
            anomalies = a - 0.5 * sol[:, 1:].T @ a
        else:
            gain_t = _cho_solve_obs(yw, yw.T @ a)  # K_w^T, (obs, dim)
            mean = s.mean + dw @ gain_t
            anomalies = a - 0.5 * yw @ gain_t
        return mean + anomalies


class SerialEnSRF(AbstractEnsembleFilter):
    """Serial ensemble square-root filter (Whitaker & Hamill 2002).

    Observations are whitened (so a full R is fine) and assimilated one scalar at a time
    with `lax.scan`; the state is augmented with the whitened observed values so later
    observations see the already-updated ensemble. For scalar obs j with prior variance
    s = |Yw_j|^2/(N-1): k = Z^T Yw_j / ((N-1)(s+1)), mean += k d_j, and the anomalies
    Z -= alpha Yw_j k^T with alpha = 1 / (1 + sqrt(1/(s+1))). Equals the ETKF for linear h.
    """

    def update(
        self, key: Key, ensemble: Ensemble, y_obs: ObsVector, obs_op: AbstractObservation
    ) -> Ensemble:
        n, m = ensemble.shape
        s = ensemble_stats(ensemble, y_obs, obs_op)
        y_w = obs_op.whiten(y_obs)
        hmean_w = y_w - s.innovation  # L^{-1} mean h(E)
        mean0 = jnp.concatenate([s.mean, hmean_w])
        z0 = jnp.concatenate([s.anomalies, s.obs_anomalies], axis=1)

        def body(carry, j):
            mean, z = carry
            yj = z[:, m + j]
            var = jnp.sum(yj**2) / (n - 1)
            gain = (yj @ z) / ((n - 1) * (var + 1.0))
            mean = mean + gain * (y_w[j] - mean[m + j])
            alpha = 1.0 / (1.0 + jnp.sqrt(1.0 / (var + 1.0)))
            z = z - alpha * yj[:, None] * gain[None, :]
            return (mean, z), None

        (mean, z), _ = jax.lax.scan(body, (mean0, z0), jnp.arange(obs_op.obs_dim))
        return mean[:m] + z[:, :m]
