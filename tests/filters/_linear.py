"""A small linear-Gaussian twin problem shared by the filter tests (float64 callers)."""

import jax
import jax.numpy as jnp
import numpy as np

from jaxsci import filters as F

# x_k = F x_{k-1}: a slowly expanding rotation-shear so the covariance neither collapses
# nor explodes over a few cycles; y_k = H x_k + r with a correlated 2 x 2 R.
TRANSITION = np.array([[0.98, 0.25, 0.0], [-0.25, 0.98, 0.1], [0.0, 0.05, 1.02]])
OBS_MATRIX = np.array([[1.0, 0.0, 0.0], [0.0, 0.5, 1.0]])
OBS_COV = np.array([[0.5, 0.1], [0.1, 1.0]])
MEAN0 = np.array([1.0, 0.0, -1.0])
COV0 = np.diag([1.0, 0.5, 2.0])


def linear_flow(x, t0, t1):
    return jnp.asarray(TRANSITION, dtype=x.dtype) @ x


def make_problem(n_cycles=5, seed=0):
    rng = np.random.default_rng(seed)
    x = MEAN0 + np.linalg.cholesky(COV0) @ rng.standard_normal(3)
    ys = []
    for _ in range(n_cycles):
        x = TRANSITION @ x
        ys.append(OBS_MATRIX @ x + np.linalg.cholesky(OBS_COV) @ rng.standard_normal(2))
    obs_op = F.LinearObservation(OBS_MATRIX, noise_cov=OBS_COV)
    return obs_op, jnp.asarray(np.stack(ys))


def sample_ensemble(key, n):
    z = jax.random.normal(key, (n, 3), dtype=jnp.float64)
    return jnp.asarray(MEAN0) + z @ jnp.asarray(np.linalg.cholesky(COV0)).T


def exact(ys, q=None):
    q = np.zeros((3, 3)) if q is None else q
    return F.kalman_filter(TRANSITION, q, OBS_MATRIX, OBS_COV, MEAN0, COV0, ys)
