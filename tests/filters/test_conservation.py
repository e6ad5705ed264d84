"""ProbConserv's conservation update (`conservation_update`) and the Gaussian linear update
under it (`kalman_update`), against dense Gaussian conditioning and constrained least squares
computed independently in NumPy (float64)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxsci import filters as F

DIM = 12


def _problem(seed=0, diagonal=False):
    """A correlated Gaussian prediction of a field on DIM points of [0, 1] (trapezoid
    quadrature row G) whose integral G mu is off the conserved total b."""
    rng = np.random.default_rng(seed)
    if diagonal:
        cov = np.diag(rng.uniform(0.1, 2.0, DIM))
    else:
        a = rng.standard_normal((DIM, DIM))
        cov = a @ a.T / DIM + 0.1 * np.eye(DIM)
    mean = rng.standard_normal(DIM)
    g = np.full(DIM, 1.0 / (DIM - 1))
    g[[0, -1]] *= 0.5
    b = g @ mean + 0.7  # the surrogate misses the total by 0.7
    return mean, cov, g, b


def _condition_numpy(mean, cov, g, b, noise_var):
    """Dense conditioning of the joint Gaussian (u, z = G u + e), e ~ N(0, noise_var I):
    E[u | z = b] and Cov[u | z = b] by the Schur complement (np.linalg.solve)."""
    g = np.atleast_2d(g)
    s = g @ cov @ g.T + noise_var * np.eye(g.shape[0])
    cross = cov @ g.T
    mean_c = mean + cross @ np.linalg.solve(s, np.atleast_1d(b) - g @ mean)
    cov_c = cov - cross @ np.linalg.solve(s, cross.T)
    resid = np.atleast_1d(b) - g @ mean
    _, logdet = np.linalg.slogdet(2 * np.pi * s)
    ll = -0.5 * (resid @ np.linalg.solve(s, resid) + logdet)
    return mean_c, cov_c, ll


def _constrained_least_squares(mean, cov, g, b):
    """argmin (u - mu)^T Sigma^{-1} (u - mu) subject to G u = b, by its KKT system."""
    g = np.atleast_2d(g)
    k = g.shape[0]
    kkt = np.block([[np.linalg.inv(cov), g.T], [g, np.zeros((k, k))]])
    rhs = np.concatenate([np.linalg.solve(cov, mean), np.atleast_1d(b)])
    return np.linalg.solve(kkt, rhs)[:DIM]


@pytest.mark.parametrize("diagonal", [False, True])
def test_hard_constraint_is_exact_conditioning_and_constrained_least_squares(x64, diagonal):
    mean, cov, g, b = _problem(diagonal=diagonal)
    arg = np.diag(cov) if diagonal else cov  # a (dim,) vector is a diagonal Sigma
    out = F.conservation_update(mean, arg, g, b)
    ref_mean, ref_cov, ref_ll = _condition_numpy(mean, cov, g, b, 0.0)
    np.testing.assert_allclose(out.mean, ref_mean, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(out.mean, _constrained_least_squares(mean, cov, g, b), atol=1e-11)
    np.testing.assert_allclose(out.cov, ref_cov, atol=1e-12)
    np.testing.assert_allclose(out.log_likelihood, ref_ll, rtol=1e-12)
    # conserved to round-off (the surrogate alone misses by 0.7)
    assert abs(g @ np.asarray(out.mean) - b) < 1e-12 * np.abs(g) @ np.abs(mean)
    # no variance left along G; variance of any w^T u uncorrelated with G u unchanged
    assert abs(g @ np.asarray(out.cov) @ g) < 1e-13 * (g @ cov @ g)
    rng = np.random.default_rng(1)
    w = rng.standard_normal((5, DIM))
    cg = cov @ g
    w = w - np.outer(w @ cg, cg) / (cg @ cg)  # w Sigma G^T = 0
    np.testing.assert_allclose(
        np.diag(w @ np.asarray(out.cov) @ w.T), np.diag(w @ cov @ w.T), rtol=1e-11
    )
    # and the pointwise variances only shrink
    assert np.all(np.diag(out.cov) <= np.diag(cov) * (1 + 1e-12))
    assert np.min(np.linalg.eigvalsh(np.asarray(out.cov))) > -1e-12


def test_isotropic_prediction_keeps_the_variance_orthogonal_to_g(x64):
    """Sigma = s^2 I: the update removes variance along G only; orthogonal directions keep
    theirs exactly, and the mean moves along G only."""
    mean, _, g, b = _problem()
    cov = 0.3 * np.eye(DIM)
    out = F.conservation_update(mean, cov, g, b)
    q, _ = np.linalg.qr(np.column_stack([g, np.random.default_rng(2).standard_normal((DIM, 4))]))
    ortho = q[:, 1:].T  # orthonormal, orthogonal to G
    np.testing.assert_allclose(ortho @ np.asarray(out.cov) @ ortho.T, 0.3 * np.eye(4), atol=1e-14)
    np.testing.assert_allclose(ortho @ (np.asarray(out.mean) - mean), 0.0, atol=1e-14)
    np.testing.assert_allclose(g @ np.asarray(out.cov) @ g, 0.0, atol=1e-15)


@pytest.mark.parametrize("noise_std", [0.05, 1.0])
def test_soft_constraint_matches_dense_conditioning(x64, noise_std):
    mean, cov, g, b = _problem(seed=3)
    out = F.conservation_update(mean, cov, g, b, noise_std=noise_std)
    ref_mean, ref_cov, ref_ll = _condition_numpy(mean, cov, g, b, noise_std**2)
    np.testing.assert_allclose(out.mean, ref_mean, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(out.cov, ref_cov, atol=1e-13)
    np.testing.assert_allclose(out.log_likelihood, ref_ll, rtol=1e-12)
    # variance along G: g^T Sigma g -> (g^T Sigma g) sigma^2 / (g^T Sigma g + sigma^2)
    v = g @ cov @ g
    np.testing.assert_allclose(g @ np.asarray(out.cov) @ g, v * noise_std**2 / (v + noise_std**2))


def test_several_constraints_match_dense_conditioning(x64):
    """Two rows: the total mass and the first moment (e.g. mass and momentum)."""
    mean, cov, g, b = _problem(seed=4)
    x = np.linspace(0.0, 1.0, DIM)
    rows = np.stack([g, g * x])
    totals = np.array([b, rows[1] @ mean - 0.2])
    out = F.conservation_update(mean, cov, rows, totals)
    ref_mean, ref_cov, _ = _condition_numpy(mean, cov, rows, totals, 0.0)
    np.testing.assert_allclose(out.mean, ref_mean, atol=1e-12)
    np.testing.assert_allclose(out.cov, ref_cov, atol=1e-12)
    np.testing.assert_allclose(rows @ np.asarray(out.mean), totals, atol=1e-13)


def test_float32_conserves_to_round_off():
    """In float32 the conservation residual falls from 0.7 to float32 rounding (~1e-7
    relative to int |mu|); mean and covariance agree with float64 NumPy to ~1e-5."""
    mean, cov, g, b = _problem(seed=5)
    out = F.conservation_update(
        mean.astype(np.float32), cov.astype(np.float32), g.astype(np.float32), np.float32(b)
    )
    assert out.mean.dtype == jnp.float32 and out.cov.dtype == jnp.float32
    scale = np.abs(g) @ np.abs(mean)
    before = abs(g @ mean - b) / scale
    after = abs(np.float64(g) @ np.asarray(out.mean, np.float64) - b) / scale
    assert before > 0.1 and after < 2e-6, (before, after)
    ref_mean, ref_cov, _ = _condition_numpy(mean, cov, g, b, 0.0)
    np.testing.assert_allclose(out.mean, ref_mean, atol=1e-5)
    np.testing.assert_allclose(out.cov, ref_cov, atol=1e-5)


def test_jit_and_vmap_over_a_batch_of_predictions(x64):
    """One prediction per call; a batch (e.g. test fields x times) is a vmap."""
    rng = np.random.default_rng(6)
    _, cov, g, _ = _problem(seed=6)
    means = rng.standard_normal((4, DIM))
    totals = rng.standard_normal(4)
    batched = jax.jit(jax.vmap(lambda m, b: F.conservation_update(m, cov, g, b)))(means, totals)
    for i in range(4):
        one = F.conservation_update(means[i], cov, g, totals[i])
        np.testing.assert_allclose(batched.mean[i], one.mean, rtol=1e-13, atol=1e-14)
        np.testing.assert_allclose(batched.cov[i], one.cov, rtol=1e-13, atol=1e-14)


def test_kalman_update_matches_dense_conditioning(x64):
    """The general update (several observations, correlated R), which `kalman_filter`'s
    analysis step is (its own tests check the filter against ensembles and autodiff)."""
    mean, cov, _, _ = _problem(seed=7)
    h = np.random.default_rng(8).standard_normal((3, DIM))
    r = np.array([[0.5, 0.1, 0.0], [0.1, 1.0, 0.2], [0.0, 0.2, 0.3]])
    y = np.array([0.3, -1.0, 2.0])
    upd = F.kalman_update(mean, cov, h, r, y)
    s = h @ cov @ h.T + r
    np.testing.assert_allclose(upd.mean, mean + cov @ h.T @ np.linalg.solve(s, y - h @ mean))
    np.testing.assert_allclose(upd.cov, cov - cov @ h.T @ np.linalg.solve(s, h @ cov), atol=1e-13)
    resid = y - h @ mean
    ll = -0.5 * (resid @ np.linalg.solve(s, resid) + np.linalg.slogdet(2 * np.pi * s)[1])
    np.testing.assert_allclose(upd.log_likelihood, ll, rtol=1e-13)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        (dict(mean=np.zeros((2, DIM))), "mean"),
        (dict(cov=np.eye(DIM + 1)), "cov"),
        (dict(cov=np.ones(DIM - 1)), "cov"),
        (dict(constraint=np.ones(DIM - 1)), "constraint"),
        (dict(constraint=np.ones((1, 1, DIM))), "constraint"),
        (dict(total=np.zeros(2)), "total"),
        (dict(noise_std=-0.1), "noise_std"),
        (dict(noise_std=np.ones(2)), "noise_std"),
    ],
)
def test_bad_input_names_the_argument(own_checks, kwargs, name):
    args = dict(mean=np.zeros(DIM), cov=np.eye(DIM), constraint=np.ones(DIM), total=1.0)
    args.update(kwargs)
    noise = args.pop("noise_std", 0.0)
    with pytest.raises(ValueError, match=f"`{name}`"):
        F.conservation_update(**args, noise_std=noise)


@pytest.mark.parametrize(
    ("which", "value"),
    [
        ("cov", np.eye(3)),
        ("obs_matrix", np.ones((1, 3))),
        ("obs_cov", np.eye(2)),
        ("observation", np.zeros(2)),
    ],
)
def test_kalman_update_bad_shapes_name_the_argument(own_checks, which, value):
    args = dict(
        mean=np.zeros(DIM),
        cov=np.eye(DIM),
        obs_matrix=np.ones((1, DIM)),
        obs_cov=np.eye(1),
        observation=np.zeros(1),
    )
    args[which] = value
    with pytest.raises(ValueError, match=f"`{which}`"):
        F.kalman_update(**args)
