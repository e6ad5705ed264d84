"""`GaussianMixture`: the noised marginal against a direct Monte-Carlo-free check (numerical
gradient of its own log-density is not used: the score is compared with `jax.grad` of the
independent NumPy/SciPy mixture log-density) and moments of its samples."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.stats import multivariate_normal

from jaxsci.diffusion import GaussianMixture, VPLinear


def _scipy_logpdf(x, w, m, v, a, s):
    return np.log(
        sum(
            wk * multivariate_normal(a * mk, np.diag(a**2 * vk + s**2)).pdf(x)
            for wk, mk, vk in zip(w, m, v, strict=True)
        )
    )


def test_marginal_density_score_and_eps_against_scipy(x64):
    w, m, v = [0.3, 0.7], [[-2.0, 1.0], [1.5, -0.5]], [[0.2, 0.5], [0.3, 0.1]]
    mix = GaussianMixture(w, m, v)
    x = np.array([0.3, -0.4])
    a, s = 0.8, 0.6
    ref = _scipy_logpdf(x, np.array(w) / 1.0, np.array(m), np.array(v), a, s)
    np.testing.assert_allclose(mix.marginal_logpdf(jnp.asarray(x), a, s), ref, rtol=1e-12)
    h = 1e-6
    fd = [
        (
            _scipy_logpdf(x + h * e, w, np.array(m), np.array(v), a, s)
            - _scipy_logpdf(x - h * e, w, np.array(m), np.array(v), a, s)
        )
        / (2 * h)
        for e in np.eye(2)
    ]
    np.testing.assert_allclose(mix.score(jnp.asarray(x), a, s), fd, rtol=1e-6)
    np.testing.assert_allclose(mix.eps(jnp.asarray(x), a, s), -s * np.asarray(fd), rtol=1e-6)
    sched = VPLinear()
    t = 0.4
    np.testing.assert_allclose(
        mix.eps_model(sched)(t, jnp.asarray(x)),
        mix.eps(jnp.asarray(x), sched.alpha(t), sched.sigma(t)),
        rtol=1e-12,
    )


def test_samples_have_the_mixture_moments():
    mix = GaussianMixture([1.0, 3.0], [[-2.0, 0.0], [2.0, 1.0]], [[0.5, 0.5], [0.25, 1.0]])
    x = np.asarray(mix.sample(jax.random.key(0), 200_000, alpha=0.5, sigma=0.5))
    w = np.array([0.25, 0.75])
    mean = 0.5 * (w[:, None] * np.array([[-2.0, 0.0], [2.0, 1.0]])).sum(0)
    se = x.std(0) / np.sqrt(len(x))
    assert np.all(np.abs(x.mean(0) - mean) < 5 * se), (x.mean(0), mean, se)
    # Per-coordinate variance: sum_k w_k (a^2 v_k + s^2 + a^2 mu_k^2) - mean^2.
    mu, v = np.array([[-2.0, 0.0], [2.0, 1.0]]), np.array([[0.5, 0.5], [0.25, 1.0]])
    var = (w[:, None] * (0.25 * v + 0.25 + 0.25 * mu**2)).sum(0) - mean**2
    np.testing.assert_allclose(x.var(0), var, rtol=0.02)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(weights=[], means=np.zeros((0, 2)), variances=np.zeros((0, 2))), "weights"),
        (dict(weights=[1.0, -1.0], means=np.zeros((2, 2)), variances=np.ones((2, 2))), "weights"),
        (dict(weights=[1.0, 1.0], means=np.zeros((3, 2)), variances=np.ones((3, 2))), "means"),
        (dict(weights=[1.0], means=np.zeros((1, 2)), variances=np.ones((1, 3))), "variances"),
        (dict(weights=[1.0], means=np.zeros((1, 2)), variances=np.zeros((1, 2))), "variances"),
    ],
)
def test_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        GaussianMixture(**kwargs)
