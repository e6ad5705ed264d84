"""The ETKF / LETKF square root: the Newton-Schulz inverse square root against `eigh` (float64
reference), its derivative against central finite differences, and its failure behaviour."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxsci import filters as F
from jaxsci.filters._ensemble_filters import inv_sqrt_shifted, symmetric_sqrt_transform


def _gram(rng, n, p, scale):
    yw = rng.normal(size=(n, p)) * scale
    yw -= yw.mean(axis=0)
    return yw, yw @ yw.T + (n - 1) * np.eye(n)


def _eigh_inv_sqrt(a):
    lam, v = np.linalg.eigh(a)
    return (v / np.sqrt(lam)) @ v.T


@pytest.mark.parametrize("n", [2, 7, 24, 60])
@pytest.mark.parametrize("scale", [0.0, 1e-3, 0.3, 3.0, 100.0])
def test_inverse_sqrt_matches_eigh_float64(x64, n, scale):
    """Spreads from zero to 100x the observation error (condition numbers 1 to about 4e5).
    Both methods have forward errors of order eps x cond(a) (the reference's smallest
    eigenvalues are only that accurate), hence the bound 50 eps cond(a)."""
    rng = np.random.default_rng(n)
    _, a = _gram(rng, n, 40, scale)
    ref = _eigh_inv_sqrt(a)
    out = np.asarray(inv_sqrt_shifted(jnp.asarray(a), n - 1.0))
    bound = 50 * np.finfo(np.float64).eps * np.linalg.cond(a)
    assert np.max(np.abs(out - ref)) <= bound * np.max(np.abs(ref))


@pytest.mark.parametrize("scale", [0.3, 3.0])
def test_inverse_sqrt_float32_accuracy(scale):
    """Float32 (the default) stays near float32 rounding of the float64 eigh result."""
    rng = np.random.default_rng(0)
    _, a = _gram(rng, 7, 10, scale)
    ref = _eigh_inv_sqrt(a)
    out = np.asarray(inv_sqrt_shifted(jnp.asarray(a, jnp.float32), 6.0), dtype=np.float64)
    assert np.max(np.abs(out - ref)) <= 2e-6 * np.max(np.abs(ref))


def test_batched_over_domains_equals_one_by_one(x64):
    """Under vmap the loop runs until every matrix of the batch converges; the well-conditioned
    ones take extra steps, which must not change them."""
    rng = np.random.default_rng(1)
    mats = np.stack([_gram(rng, 7, 12, s)[1] for s in (0.0, 0.05, 1.0, 30.0)])
    batched = np.asarray(jax.vmap(lambda a: inv_sqrt_shifted(a, 6.0))(jnp.asarray(mats)))
    for a, b in zip(mats, batched, strict=True):
        ref = _eigh_inv_sqrt(a)
        assert np.max(np.abs(b - ref)) <= 1e-12 * np.max(np.abs(ref))


def test_non_finite_input_gives_non_finite_output_without_hanging():
    a = jnp.full((7, 7), jnp.nan)
    assert not np.all(np.isfinite(np.asarray(inv_sqrt_shifted(a, 6.0))))


def test_jvp_matches_central_differences(x64):
    rng = np.random.default_rng(2)
    _, a = _gram(rng, 7, 10, 1.5)
    da = rng.normal(size=(7, 7))
    da = da + da.T
    f = lambda m: inv_sqrt_shifted(m, 6.0)  # noqa: E731
    _, tangent = jax.jvp(f, (jnp.asarray(a),), (jnp.asarray(da),))
    h = 1e-6
    fd = (np.asarray(f(jnp.asarray(a + h * da))) - np.asarray(f(jnp.asarray(a - h * da)))) / (2 * h)
    assert np.max(np.abs(np.asarray(tangent) - fd)) <= 1e-7 * np.max(np.abs(fd))


@pytest.mark.slow
def test_etkf_analysis_gradient_matches_central_differences(x64):
    """Reverse mode through the whole ETKF analysis in ensemble space (5 members, 6 obs); the
    loop itself is not differentiated, the custom JVP is transposed."""
    obs_op = F.LinearObservation(np.eye(6), noise_cov=0.25)
    rng = np.random.default_rng(3)
    ens = jnp.asarray(rng.normal(size=(5, 6)))
    y = jnp.asarray(rng.normal(size=6))
    direction = jnp.asarray(rng.normal(size=(5, 6)))

    def loss(e):
        out = F.ETKF().update(jax.random.key(0), e, y, obs_op)
        return jnp.sum(jnp.sin(out))

    g = jax.grad(loss)(ens)
    h = 1e-6
    fd = (loss(ens + h * direction) - loss(ens - h * direction)) / (2 * h)
    assert abs(float(jnp.sum(g * direction)) - float(fd)) <= 1e-7 * max(1.0, abs(float(fd)))


def test_transform_matches_hunt_formulas(x64):
    """w = dw Yw^T Pw and T = sqrt(N-1) Pw^{1/2} (Hunt et al. 2007, eqs. 21-24) via eigh."""
    rng = np.random.default_rng(4)
    yw, a = _gram(rng, 9, 20, 0.7)
    dw = rng.normal(size=20)
    lam, v = np.linalg.eigh(a)
    pw = (v / lam) @ v.T
    w, t = symmetric_sqrt_transform(jnp.asarray(yw), jnp.asarray(dw))
    np.testing.assert_allclose(np.asarray(w), (yw @ dw) @ pw, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(np.asarray(t), np.sqrt(8.0) * (v / np.sqrt(lam)) @ v.T, atol=1e-13)


@pytest.mark.parametrize("scale", [1.0, 10.0])
def test_float32_large_ensemble_as_accurate_as_float32_eigh(scale):
    """N = 200 members in ensemble space (P = 500). Stopping on the largest entry of
    |ZY - I| instead of its Frobenius norm quit a step early here, 10-20x less accurate
    than float32 `eigh`; the bound is 3x float32 `eigh`'s own error (float64 reference)."""
    rng = np.random.default_rng(5)
    _, a = _gram(rng, 200, 500, scale)
    ref = _eigh_inv_sqrt(a)
    a32 = jnp.asarray(a, jnp.float32)
    lam, v = jnp.linalg.eigh(a32)
    eigh32 = np.asarray((v / jnp.sqrt(lam)) @ v.T, dtype=np.float64)
    out = np.asarray(inv_sqrt_shifted(a32, 199.0), dtype=np.float64)
    err = np.max(np.abs(out - ref)) / np.max(np.abs(ref))
    err_eigh = np.max(np.abs(eigh32 - ref)) / np.max(np.abs(ref))
    assert err <= 3 * err_eigh, (err, err_eigh)
    np.testing.assert_array_equal(out, out.T)


def test_gradient_with_repeated_eigenvalues(x64):
    """Two observations and seven members: Yw Yw^T + 6 I has the eigenvalue 6 five times.
    The first-order JVP (divided differences, finite at equal eigenvalues) must still match
    central differences; a gradient through `eigh`'s eigenvectors was wrong here."""
    rng = np.random.default_rng(6)
    yw, _ = _gram(rng, 7, 2, 1.0)
    dw = rng.normal(size=2)
    direction = rng.normal(size=yw.shape)

    def loss(y):
        w, t = symmetric_sqrt_transform(y, jnp.asarray(dw))
        return jnp.sum(jnp.sin(w)) + jnp.sum(jnp.sin(t))

    g = jax.grad(loss)(jnp.asarray(yw))
    h = 1e-6
    fd = (loss(jnp.asarray(yw + h * direction)) - loss(jnp.asarray(yw - h * direction))) / (2 * h)
    assert abs(float(jnp.sum(g * direction)) - float(fd)) <= 1e-7 * max(1.0, abs(float(fd)))


def test_second_derivatives_with_repeated_eigenvalues(x64):
    """Two observations, seven members (eigenvalue 6 five times). Nested JVPs against a
    four-point central difference, and a Hessian-vector product (forward over reverse, as
    `jax.hessian` and `inference.laplace` do) of a whole ETKF transform against central
    differences of its gradient. Differentiating `eigh`'s eigenvectors gave NaN here."""
    rng = np.random.default_rng(0)
    yw, a = _gram(rng, 7, 2, 1.0)
    e1, e2 = rng.normal(size=(2, 7, 7))
    e1, e2 = e1 + e1.T, e2 + e2.T
    f = lambda m: inv_sqrt_shifted(m, 6.0)  # noqa: E731

    def d1(m):
        return jax.jvp(f, (m,), (jnp.asarray(e2),))[1]

    d2 = np.asarray(jax.jvp(d1, (jnp.asarray(a),), (jnp.asarray(e1),))[1])
    g = lambda m: np.asarray(f(jnp.asarray(m)))  # noqa: E731
    h = 1e-4
    fd2 = (
        g(a + h * e1 + h * e2)
        - g(a + h * e1 - h * e2)
        - g(a - h * e1 + h * e2)
        + g(a - h * e1 - h * e2)
    ) / (4 * h * h)
    assert np.max(np.abs(d2 - fd2)) <= 1e-6 * np.max(np.abs(fd2))

    dw = jnp.asarray(rng.normal(size=2))

    def loss(y):
        w, t = symmetric_sqrt_transform(y, dw)
        return jnp.sum(jnp.sin(w)) + jnp.sum(jnp.sin(t))

    direction = jnp.asarray(rng.normal(size=yw.shape))
    hvp = np.asarray(jax.jvp(jax.grad(loss), (jnp.asarray(yw),), (direction,))[1])
    grad = jax.grad(loss)
    h = 1e-5
    fd = (np.asarray(grad(yw + h * direction)) - np.asarray(grad(yw - h * direction))) / (2 * h)
    assert np.all(np.isfinite(hvp))
    assert np.max(np.abs(hvp - fd)) <= 1e-6 * max(1.0, np.max(np.abs(fd)))
