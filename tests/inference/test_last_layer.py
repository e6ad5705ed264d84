"""Bayesian last layer (`last_layer_laplace`, `last_layer_logdensity`) against closed forms.

The model is exactly Bayesian linear regression, y = Phi w + N(0, sigma^2), w ~ N(0, I/alpha).
References written independently of the library's eigenbasis formulas: the posterior by
Gaussian conditioning in data space (the Kalman form, mean = K y, cov = S0 - K Phi S0), the
evidence as the density of y under its marginal N(0, Phi Phi^T / alpha + sigma^2 I), and the
Hessian of the log-density by automatic differentiation.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxsci import inference

RNG = np.random.default_rng(3)
N, P = 80, 4
PHI = np.concatenate([RNG.normal(size=(N, P - 1)), np.ones((N, 1))], axis=1)
W_TRUE = np.array([0.8, -1.2, 0.4, 0.5])
Y = PHI @ W_TRUE + 0.3 * RNG.normal(size=N)
ALPHA, SIGMA = 2.0, 0.3


def _kalman_posterior(alpha, sigma):
    s0 = np.eye(P) / alpha
    gain = s0 @ PHI.T @ np.linalg.inv(PHI @ s0 @ PHI.T + sigma**2 * np.eye(N))
    return gain @ Y, s0 - gain @ PHI @ s0


def _log_evidence(alpha, sigma):
    cov = PHI @ PHI.T / alpha + sigma**2 * np.eye(N)
    _, logdet = np.linalg.slogdet(cov)
    return -0.5 * (Y @ np.linalg.solve(cov, Y) + logdet + N * np.log(2 * np.pi))


def test_laplace_is_the_exact_gaussian_posterior(x64):
    post = inference.last_layer_laplace(PHI, Y, noise_std=SIGMA, prior_precision=ALPHA)
    mean, cov = _kalman_posterior(ALPHA, SIGMA)
    np.testing.assert_allclose(post.mean, mean, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(post.cov, cov, rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(post.scale @ post.scale.T, cov, rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(post.log_evidence, _log_evidence(ALPHA, SIGMA), rtol=1e-10)


def test_laplace_precision_is_the_hessian_and_the_mean_its_mode(x64):
    """GGN = exact Hessian of the negative log posterior for the linear-Gaussian model."""
    post = inference.last_layer_laplace(PHI, Y, noise_std=SIGMA, prior_precision=ALPHA)
    logp = inference.last_layer_logdensity(PHI, Y, noise_std=SIGMA, prior_precision=ALPHA)
    w = jnp.asarray(RNG.normal(size=P))
    hess = jax.hessian(lambda v: -logp({"w": v}))(w)
    np.testing.assert_allclose(np.linalg.inv(post.cov), hess, rtol=1e-9)
    grad = jax.grad(lambda v: logp({"w": v}))(post.mean)
    assert np.max(np.abs(grad)) < 1e-9


def test_evidence_fixed_point_maximises_the_marginal_likelihood(x64):
    post = inference.last_layer_laplace(PHI, Y, iterations=500)
    alpha, sigma = float(post.prior_precision), float(post.noise_std)
    np.testing.assert_allclose(post.log_evidence, _log_evidence(alpha, sigma), rtol=1e-10)
    # a stationary point of the reference evidence in (log alpha, log sigma) ...
    h = 1e-4
    for da, ds in ((h, 0.0), (0.0, h)):
        up = _log_evidence(alpha * np.exp(da), sigma * np.exp(ds))
        down = _log_evidence(alpha * np.exp(-da), sigma * np.exp(-ds))
        assert abs(up - down) / (2 * h) < 1e-6
    # ... and its maximum on a grid around it
    grid = [_log_evidence(alpha * a, sigma * s) for a in (0.5, 0.8, 1.25, 2.0) for s in (0.9, 1.1)]
    assert max(grid) < float(post.log_evidence)
    assert 0.2 < sigma < 0.4  # near the simulated noise std 0.3


def test_predictive_samples_match_the_posterior_predictive(x64):
    post = inference.last_layer_laplace(PHI, Y, noise_std=SIGMA, prior_precision=ALPHA)
    x_new = PHI[:3]
    draws = np.asarray(post.predictive(x_new, key=jax.random.key(0), num_samples=20000))
    mean, cov = _kalman_posterior(ALPHA, SIGMA)
    ref_cov = x_new @ cov @ x_new.T + SIGMA**2 * np.eye(3)
    se = np.sqrt(np.diag(ref_cov) / draws.shape[0])
    assert np.all(np.abs(draws.mean(0) - x_new @ mean) < 4 * se)
    np.testing.assert_allclose(np.cov(draws.T), ref_cov, atol=0.05 * ref_cov.max())
    epistemic = np.asarray(
        post.predictive(x_new, key=jax.random.key(1), num_samples=20000, noise=False)
    )
    np.testing.assert_allclose(epistemic.var(0), np.diag(x_new @ cov @ x_new.T), rtol=0.05)


@pytest.mark.slow  # ~9 s each on 2 loaded cores, most of it NUTS compilation
@pytest.mark.parametrize("precondition", [False, True])
def test_nuts_on_the_last_layer_matches_the_closed_form(x64, precondition):
    """NUTS on w, or on z with w = m + L z (L from a Laplace fit with other alpha and
    sigma, so that z is not exactly standard normal), matches the exact posterior."""
    pre = (
        inference.last_layer_laplace(PHI, Y, noise_std=0.5, prior_precision=0.5)
        if precondition
        else None
    )
    logp = inference.last_layer_logdensity(
        PHI, Y, noise_std=SIGMA, prior_precision=ALPHA, precondition=pre
    )
    result = inference.posterior(
        logp,
        constraints={"w": "real"},
        shapes={"w": (P,)},
        key=jax.random.key(2),
        num_chains=4,
        num_warmup=300,
        num_samples=500,
        progress_bar=False,
        chunk_size=800,
    )
    mean, cov = _kalman_posterior(ALPHA, SIGMA)
    if pre is not None:  # back to w, a linear map of the draws
        draws = np.asarray(pre.unwhiten(result.draws["w"]))  # (chains, draws, P)
        for i in range(P):
            x = draws[..., i]
            assert abs(x.mean() - mean[i]) < 4 * inference.mcse_mean(x), i
            assert abs(x.std(ddof=1) - np.sqrt(cov[i, i])) < 4 * inference.mcse_sd(x), i
            assert inference.rhat(x) < 1.01
        assert result.divergences == 0
        return
    summary = result.summary()
    for i in range(P):
        row = summary[f"w[{i + 1}]"]
        assert abs(row["mean"] - mean[i]) < 4 * row["mcse_mean"], (i, row)
        assert abs(row["sd"] - np.sqrt(cov[i, i])) < 4 * row["mcse_sd"], (i, row)
        assert row["rhat"] < 1.01
    assert result.divergences == 0


def test_bad_shapes_are_named(own_checks):
    with pytest.raises(ValueError, match="`targets` has shape"):
        inference.last_layer_laplace(PHI, Y[:-1])
    with pytest.raises(ValueError, match="`features` has shape"):
        inference.last_layer_laplace(PHI[:, 0], Y)
    with pytest.raises(ValueError, match="noise_std"):
        inference.last_layer_laplace(PHI, Y, noise_std=-1.0)


def test_evidence_fit_matches_scikit_learn_bayesian_ridge(x64):
    """Peer: scikit-learn's BayesianRidge runs MacKay's fixed point too; with its Gamma
    hyperpriors made flat it must land on the same alpha, sigma and posterior mean."""
    from sklearn.linear_model import BayesianRidge

    post = inference.last_layer_laplace(PHI, Y, iterations=500)
    ridge = BayesianRidge(
        max_iter=500,
        tol=1e-14,
        alpha_1=0.0,
        alpha_2=0.0,
        lambda_1=0.0,
        lambda_2=0.0,
        fit_intercept=False,
    ).fit(PHI, Y)
    np.testing.assert_allclose(post.prior_precision, ridge.lambda_, rtol=1e-8)
    np.testing.assert_allclose(post.noise_std, ridge.alpha_**-0.5, rtol=1e-8)
    np.testing.assert_allclose(post.mean, ridge.coef_, rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(post.cov, ridge.sigma_, rtol=1e-7, atol=1e-14)


def _hyper_reference(a0=1e-3, b0=1e-3):
    """The fully Bayesian posterior by quadrature over (log alpha, log beta): the weights'
    marginal is the mixture of the exact conditional Gaussians N(m(a, b), S(a, b)) weighted
    by p(log a, log b | y) ~ evidence(a, b) a^a0 e^{-b0 a} (alpha ~ Gamma(a0, b0), beta
    Jeffreys 1/beta: flat in log coordinates). Returns E[w], sd[w], E[log alpha], E[log beta]."""
    la = np.linspace(-9.0, 7.0, 321)
    lb = np.linspace(0.0, 5.0, 251)
    grid_a, grid_b = np.meshgrid(la, lb, indexing="ij")
    a, b = np.exp(grid_a)[..., None], np.exp(grid_b)[..., None]
    lam, vecs = np.linalg.eigh(PHI.T @ PHI)
    c = vecs.T @ PHI.T @ Y
    d = a + b * lam  # (A, B, P) precision eigenvalues
    u = b * c / d  # V^T m
    sq = Y @ Y - 2 * np.sum(u * c, -1) + np.sum(lam * u**2, -1)  # |y - Phi m|^2
    log_ev = 0.5 * (
        P * np.log(a[..., 0])
        + N * np.log(b[..., 0])
        - b[..., 0] * sq
        - a[..., 0] * np.sum(u**2, -1)
        - np.sum(np.log(d), -1)
        - N * np.log(2 * np.pi)
    )
    # the eigenbasis evidence is the data-space density at one grid point
    np.testing.assert_allclose(
        log_ev[200, 120], _log_evidence(np.exp(la[200]), np.exp(-lb[120] / 2)), rtol=1e-9
    )
    logw = log_ev + a0 * grid_a - b0 * np.exp(grid_a)
    wt = np.exp(logw - logw.max())
    wt /= wt.sum()
    assert wt[[0, -1]].sum() + wt[:, [0, -1]].sum() < 1e-6  # the grid holds the mass
    mean_k = u @ vecs.T  # (A, B, P)
    var_k = (1.0 / d) @ (vecs.T**2)  # diag of V diag(1/d) V^T
    mean = np.einsum("ab,abp->p", wt, mean_k)
    second = np.einsum("ab,abp->p", wt, var_k + mean_k**2)
    return mean, np.sqrt(second - mean**2), np.sum(wt * grid_a), np.sum(wt * grid_b)


@pytest.mark.slow  # a statistical study: NUTS on 6 parameters, 4 x 1000 draws
def test_fully_bayesian_last_layer_nuts_matches_quadrature(x64):
    """NUTS over (w, alpha, beta) (alpha ~ Gamma(1e-3, 1e-3), beta Jeffreys), preconditioned in w
    only by a Laplace fit, against the quadrature reference: the w marginals (mean and sd),
    and E[log alpha], E[log beta], within 4 MCSE."""
    pre = inference.last_layer_laplace(PHI, Y)
    logp = inference.last_layer_logdensity(
        PHI, Y, noise_std=None, prior_precision=None, precondition=pre
    )
    result = inference.posterior(
        logp,
        constraints={"w": "real", "prior_precision": "positive", "noise_precision": "positive"},
        shapes={"w": (P,), "prior_precision": (), "noise_precision": ()},
        key=jax.random.key(5),
        num_chains=4,
        num_warmup=500,
        num_samples=1000,
        progress_bar=False,
        chunk_size=1500,
    )
    mean, sd, e_log_alpha, e_log_beta = _hyper_reference()
    w = np.asarray(pre.unwhiten(result.draws["w"]))
    for i in range(P):
        x = w[..., i]
        assert abs(x.mean() - mean[i]) < 4 * inference.mcse_mean(x), i
        assert abs(x.std(ddof=1) - sd[i]) < 4 * inference.mcse_sd(x), i
    for name, ref in (("prior_precision", e_log_alpha), ("noise_precision", e_log_beta)):
        x = np.log(np.asarray(result.draws[name]))
        assert abs(x.mean() - ref) < 4 * inference.mcse_mean(x), (name, x.mean(), ref)
        assert inference.rhat(x) < 1.01
    assert result.divergences == 0
    # the hyper-uncertainty is real: the w marginal is wider than the evidence-optimal Gaussian
    assert np.all(sd > np.sqrt(np.diag(np.asarray(pre.cov))))


def test_evidence_fit_reports_convergence_and_refuses_degenerate_data(x64):
    post = inference.last_layer_laplace(PHI, Y)
    assert 1 < int(post.iterations) < 100 and float(post.relative_change) < 1e-10
    short = inference.last_layer_laplace(PHI, Y, iterations=2)
    assert int(short.iterations) == 2 and float(short.relative_change) > 1e-10
    fixed = inference.last_layer_laplace(PHI, Y, noise_std=SIGMA, prior_precision=ALPHA)
    assert int(fixed.iterations) == 0 and float(fixed.relative_change) == 0.0
    # all-zero targets: |m|^2 = 0, alpha = gamma / 0 (was a silent NaN/inf)
    with pytest.raises(Exception, match="non-finite or non-positive"):
        jax.block_until_ready(inference.last_layer_laplace(PHI, np.zeros(N)).prior_precision)


def test_laplace_at_given_weights_keeps_the_precision(x64):
    """Laplace at the trained weights (Daxberger et al. 2021): centred at the given weights,
    covariance (beta Phi^T Phi + alpha I)^{-1} of the closed form."""
    w_trained = W_TRUE + 0.1
    post = inference.last_layer_laplace(
        PHI, Y, noise_std=SIGMA, prior_precision=ALPHA, mean=w_trained
    )
    np.testing.assert_allclose(post.mean, w_trained)
    np.testing.assert_allclose(post.cov, _kalman_posterior(ALPHA, SIGMA)[1], rtol=1e-10, atol=1e-13)
    with pytest.raises((ValueError, TypeError), match="mean"):
        inference.last_layer_laplace(PHI, Y, mean=np.zeros(P + 1))
