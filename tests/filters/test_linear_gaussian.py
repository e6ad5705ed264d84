"""Ensemble filters against the exact Kalman filter on a linear-Gaussian model (float64).

float64 (the `x64` fixture) because the comparisons are to the exact Kalman moments at the
level of Monte-Carlo error of 64 x 1000 members, and the ETKF / EnSRF / LETKF identities are
checked to 1e-10.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxsci import filters as F

from ._linear import (
    OBS_COV,
    OBS_MATRIX,
    TRANSITION,
    exact,
    linear_flow,
    make_problem,
    sample_ensemble,
)

# 64 replicates so that the Monte-Carlo standard error itself is well estimated (with 16, the
# replicate sd has 15 degrees of freedom and |z| > 4.5 happened by chance for one stream of
# random numbers; a 128-replicate check of the same EnKF gave |z| <= 2.1 everywhere).
N_MEMBERS = 1000
N_REPS = 64
N_CYCLES = 5


def _replicates(filt, obs_op, ys):
    def one(key):
        k_init, k_run = jax.random.split(key)
        ens0 = sample_ensemble(k_init, N_MEMBERS)
        res = F.run_filter(k_run, linear_flow, obs_op, filt, ens0, ys, dt=1.0, store_ensembles=True)
        last = res.ensembles[-1]
        return res.mean_a, jnp.cov(last.T)

    keys = jax.random.split(jax.random.key(1234), N_REPS)
    return jax.vmap(one)(keys)


@pytest.mark.slow
@pytest.mark.parametrize(
    "filt", [F.EnKF(), F.ETKF(), F.DEnKF(), F.SerialEnSRF()], ids=["EnKF", "ETKF", "DEnKF", "EnSRF"]
)
def test_matches_kalman_within_monte_carlo_error(x64, filt):
    obs_op, ys = make_problem(N_CYCLES)
    kf = exact(ys)
    means, covs = _replicates(filt, obs_op, ys)
    # z-scores of the replicate average against the exact moments, with the Monte-Carlo
    # standard error estimated from the spread of the 64 independent replicates.
    for est, ref in ((means, kf.means_a), (covs, kf.covs_a[-1])):
        est, ref = np.asarray(est), np.asarray(ref)
        mcse = est.std(axis=0, ddof=1) / np.sqrt(N_REPS)
        z = (est.mean(axis=0) - ref) / mcse
        if isinstance(filt, F.DEnKF):
            # The DEnKF's half-gain anomaly update is only a first-order square root: its
            # covariance is (I - KH)P + K H P H^T K^T / 4, deliberately larger than Kalman's.
            if est.ndim == 3:
                assert np.all(np.diag(est.mean(axis=0)) >= np.diag(ref) - 4 * np.diag(mcse))
                continue
        assert np.all(np.abs(z) < 4.5), (type(filt).__name__, z)


def test_etkf_ensrf_letkf_agree_exactly(x64):
    """Deterministic square-root filters give the Kalman update of the ensemble's own sample
    moments: ETKF, serial EnSRF and LETKF with an infinite radius agree to float tolerance."""
    obs_op = F.IndexObservation(6, [0, 2, 3, 5], noise_cov=[0.5, 1.0, 2.0, 0.7])
    ens = jax.random.normal(jax.random.key(0), (5, 6), dtype=jnp.float64) * 2.0 + 1.0
    y = jnp.array([0.3, -1.0, 2.0, 0.5])
    key = jax.random.key(1)
    e_etkf = F.ETKF().update(key, ens, y, obs_op)
    e_letkf = F.LETKF(np.inf, obs_op).update(key, ens, y, obs_op)
    e_srf = F.SerialEnSRF().update(key, ens, y, obs_op)
    np.testing.assert_allclose(e_letkf, e_etkf, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(e_srf.mean(0), e_etkf.mean(0), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(jnp.cov(e_srf.T), jnp.cov(e_etkf.T), rtol=1e-9, atol=1e-10)
    # and the analysis moments are the Kalman update of the sample moments
    m, p = ens.mean(0), jnp.cov(ens.T)
    h, r = np.eye(6)[[0, 2, 3, 5]], np.diag([0.5, 1.0, 2.0, 0.7])
    k = p @ h.T @ np.linalg.inv(h @ p @ h.T + r)
    np.testing.assert_allclose(e_etkf.mean(0), m + k @ (y - h @ m), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(jnp.cov(e_etkf.T), (np.eye(6) - k @ h) @ p, atol=1e-10)


@pytest.mark.slow
def test_letkf_infinite_radius_equals_etkf_over_a_run():
    """Float32, a whole L96 run: LETKF(loc_rad=inf) and ETKF track each other to float tolerance."""
    from jaxsci.dynamics import Lorenz96
    from jaxsci.integrate import Flow

    model = Lorenz96(12, 8.0)
    flow = Flow(model, 0.05)
    obs_op = F.every_kth(12, 2, noise_cov=1.0)
    x0 = model.default_initial_state() + jnp.linspace(0, 1, 12)
    kw = dict(n_cycles=30, dt=0.05, ensemble_size=8, init_std=1.0)
    a = F.assimilate(jax.random.key(0), flow, obs_op, F.ETKF(), x0, **kw)
    b = F.assimilate(jax.random.key(0), flow, obs_op, F.LETKF(np.inf, obs_op), x0, **kw)
    np.testing.assert_allclose(b.filter.mean_a, a.filter.mean_a, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("space", ["ensemble", "observation"])
def test_ensemble_and_observation_space_forms_agree(x64, space):
    """The N <= P (ensemble-space) and N > P (observation-space) branches are the same maths:
    compare each against a direct Kalman update of the sample moments."""
    n = 4 if space == "ensemble" else 9
    obs_op = F.LinearObservation(OBS_MATRIX, noise_cov=OBS_COV)
    ens = jax.random.normal(jax.random.key(3), (n, 3), dtype=jnp.float64)
    y = jnp.array([0.5, -0.2])
    m, p = ens.mean(0), jnp.cov(ens.T)
    k = p @ OBS_MATRIX.T @ np.linalg.inv(OBS_MATRIX @ p @ OBS_MATRIX.T + OBS_COV)
    mean_ref = m + k @ (y - OBS_MATRIX @ m)
    cov_ref = (np.eye(3) - k @ OBS_MATRIX) @ p
    for filt in (F.ETKF(), F.DEnKF()):
        e = filt.update(jax.random.key(0), ens, y, obs_op)
        np.testing.assert_allclose(e.mean(0), mean_ref, rtol=1e-10, atol=1e-10)
        if isinstance(filt, F.ETKF):
            np.testing.assert_allclose(jnp.cov(e.T), cov_ref, rtol=1e-9, atol=1e-10)
    # likelihood: ensemble-space / obs-space Woodbury forms vs the dense formula
    s = OBS_MATRIX @ p @ OBS_MATRIX.T + OBS_COV
    d = y - OBS_MATRIX @ m
    ref = -0.5 * (d @ np.linalg.solve(s, d) + np.linalg.slogdet(s)[1] + 2 * np.log(2 * np.pi))
    np.testing.assert_allclose(F.ensemble_log_likelihood(ens, y, obs_op), ref, rtol=1e-10)


def test_rts_smoother_matches_batch_posterior(x64):
    """The RTS smoother equals the joint Gaussian posterior of all states given all data."""
    _, ys = make_problem(4)
    q = 0.1 * np.eye(3)
    kf = exact(ys, q)
    ms, ps = F.rts_smoother(TRANSITION, kf)
    # joint prior of x_1..x_4 and the batch posterior by dense linear algebra
    from ._linear import COV0, MEAN0

    k, n = 4, 3
    mean = []
    cov = np.zeros((k * n, k * n))
    m = MEAN0
    for _ in range(k):
        m = TRANSITION @ m
        mean.append(m)
    # cov(x_i, x_j) = F^{i-j} cov(x_j) for i >= j
    covs = []
    c = COV0
    for _ in range(k):
        c = TRANSITION @ c @ TRANSITION.T + q
        covs.append(c)
    for i in range(k):
        for j in range(k):
            if i >= j:
                blk = np.linalg.matrix_power(TRANSITION, i - j) @ covs[j]
            else:
                blk = (np.linalg.matrix_power(TRANSITION, j - i) @ covs[i]).T
            cov[i * n : (i + 1) * n, j * n : (j + 1) * n] = blk
    big_h = np.kron(np.eye(k), OBS_MATRIX)
    big_r = np.kron(np.eye(k), OBS_COV)
    mu = np.concatenate(mean)
    gain = cov @ big_h.T @ np.linalg.inv(big_h @ cov @ big_h.T + big_r)
    post_m = mu + gain @ (np.asarray(ys).reshape(-1) - big_h @ mu)
    post_c = cov - gain @ big_h @ cov
    np.testing.assert_allclose(np.asarray(ms).reshape(-1), post_m, rtol=1e-8, atol=1e-10)
    for i in range(k):
        np.testing.assert_allclose(
            ps[i], post_c[i * n : (i + 1) * n, i * n : (i + 1) * n], rtol=1e-8, atol=1e-10
        )
    # and the filter's log-likelihood equals the batch marginal likelihood
    s = big_h @ cov @ big_h.T + big_r
    d = np.asarray(ys).reshape(-1) - big_h @ mu
    ll = -0.5 * (d @ np.linalg.solve(s, d) + np.linalg.slogdet(s)[1] + len(d) * np.log(2 * np.pi))
    np.testing.assert_allclose(kf.log_likelihood, ll, rtol=1e-10)


@pytest.mark.parametrize("n_members, n_obs", [(5, 8), (30, 4)])
def test_ensemble_log_likelihood_both_branches_match_scipy(x64, n_members, n_obs):
    """float64. log N(y; mean h(E), cov(h(E)) + R) against scipy in ensemble space (N <= P)
    and observation space (N > P), which factor different matrices."""
    from scipy.stats import multivariate_normal

    rng = np.random.default_rng(0)
    ens = jnp.asarray(rng.normal(size=(n_members, 8)))
    noise = np.linspace(0.5, 1.5, n_obs)
    obs = F.IndexObservation(8, np.arange(n_obs), noise_cov=noise)
    y = rng.normal(size=n_obs)
    hx = np.asarray(ens)[:, :n_obs]
    cov = np.cov(hx, rowvar=False, ddof=1) + np.diag(noise)
    ref = multivariate_normal(hx.mean(axis=0), cov).logpdf(y)
    np.testing.assert_allclose(F.ensemble_log_likelihood(ens, jnp.asarray(y), obs), ref, rtol=1e-10)
