"""Observation models: one registry (index, matrix, matrix-free, nonlinear), the noise
arguments, the Gram matrix, log-likelihoods against SciPy-style references, named errors."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxsci import observations as O

DIM = 5
MATRIX = np.array(
    [[1.0, 0.5, 0.0, 0.0, -1.0], [0.0, 2.0, 0.0, 1.0, 0.0], [0.3, 0.0, 0.0, 0.0, 1.0]]
)
COV = np.array([[0.5, 0.1, 0.0], [0.1, 1.0, 0.2], [0.0, 0.2, 0.8]])


def _matrix_free(x):
    return jnp.asarray(MATRIX, dtype=x.dtype) @ x


OBSERVATIONS = {
    "index": lambda: O.IndexObservation(DIM, [0, 2, 4], noise_cov=[0.5, 1.0, 2.0]),
    "every_kth": lambda: O.every_kth(DIM, 2, noise_std=0.7),
    "matrix": lambda: O.LinearObservation(MATRIX, noise_cov=COV, locations=[0.0, 1.0, 4.0]),
    "matrix-free": lambda: O.LinearObservation(_matrix_free, COV, dim=DIM),
    "nonlinear": lambda: O.NonlinearObservation(lambda x: x[:3] ** 2, DIM, 3, noise_std=0.5),
}


@pytest.mark.parametrize("name", list(OBSERVATIONS))
def test_contract(name):
    o = OBSERVATIONS[name]()
    assert isinstance(o, O.AbstractObservation) and o.state_dim == DIM
    x = jnp.linspace(-1.0, 1.0, DIM)
    hx = o(x)
    assert hx.shape == (o.obs_dim,) and hx.dtype == x.dtype
    r = o.noise_cov
    np.testing.assert_allclose(o.noise_chol @ o.noise_chol.T, r, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(o.noise_inv_chol @ o.noise_chol, np.eye(o.obs_dim), atol=1e-5)
    y = hx + 0.3
    ref = jax.scipy.stats.multivariate_normal.logpdf(y, hx, r)
    np.testing.assert_allclose(o.log_likelihood(y, x), ref, rtol=1e-5)
    np.testing.assert_allclose(O.gaussian_log_density(y - hx, o.noise_chol), ref, rtol=1e-5)
    np.testing.assert_allclose(eqx.filter_jit(o.log_likelihood)(y, x), ref, rtol=1e-5)
    xs = jnp.stack([x, 2 * x, -x])
    np.testing.assert_allclose(jax.vmap(o)(xs)[1], o(2 * x), rtol=1e-6)
    ys = O.synthetic_observations(jax.random.key(0), o, xs)
    assert ys.shape == (3, o.obs_dim) and bool(jnp.all(jnp.isfinite(ys)))
    g = jax.grad(o.log_likelihood, argnums=1)(y, x)
    assert bool(jnp.all(jnp.isfinite(g)))


def test_matrix_free_equals_matrix(x64):
    """A linear callable with `dim` is the same observation model as its matrix: h(x), the
    Gram matrix H H^T (from the columns H e_j), `matrix()` and the likelihood."""
    dense = O.LinearObservation(MATRIX, noise_std=[0.5, 1.0, 0.8])
    free = O.LinearObservation(_matrix_free, noise_std=[0.5, 1.0, 0.8], dim=DIM)
    x = jnp.arange(DIM, dtype=jnp.float64)
    np.testing.assert_allclose(free(x), dense(x), rtol=1e-14)
    np.testing.assert_allclose(free.gram, MATRIX @ MATRIX.T, rtol=1e-14)
    np.testing.assert_allclose(dense.gram, MATRIX @ MATRIX.T, rtol=1e-14)
    np.testing.assert_allclose(free.matrix(), MATRIX, rtol=1e-14)
    np.testing.assert_array_equal(dense.matrix(), MATRIX)
    y = jnp.array([0.1, -0.2, 0.3])
    np.testing.assert_allclose(free.log_likelihood(y, x), dense.log_likelihood(y, x), rtol=1e-14)


def test_index_observation_is_linear(x64):
    """An IndexObservation is the linear observation of its one-hot matrix: `matrix()`, the
    Gram matrix H H^T (1 where two observations read the same variable, a repeated index
    included), h(x) and the likelihood equal those of `LinearObservation(H)`."""
    idx = [4, 0, 2, 0]
    obs = O.IndexObservation(DIM, idx, noise_std=[0.5, 1.0, 0.8, 0.6])
    h = np.zeros((len(idx), DIM))
    h[np.arange(len(idx)), idx] = 1.0
    dense = O.LinearObservation(h, noise_std=[0.5, 1.0, 0.8, 0.6])
    assert isinstance(obs, O.AbstractLinearObservation)
    assert isinstance(dense, O.AbstractLinearObservation)
    np.testing.assert_array_equal(obs.matrix(), h)
    np.testing.assert_array_equal(obs.gram, h @ h.T)
    assert obs.gram[1, 3] == 1.0 and obs.gram[0, 1] == 0.0
    x = jnp.arange(DIM, dtype=jnp.float64) - 1.5
    np.testing.assert_array_equal(obs(x), dense(x))
    y = jnp.array([0.1, -0.2, 0.3, 0.0])
    np.testing.assert_allclose(obs.log_likelihood(y, x), dense.log_likelihood(y, x), rtol=1e-14)
    assert not isinstance(OBSERVATIONS["nonlinear"](), O.AbstractLinearObservation)


def test_noise_arguments(x64):
    """noise_std s is noise_cov s^2 (scalar or per observation); a full covariance keeps its
    correlations; neither gives R = I; a diagonal R is flagged `diagonal`."""
    by_std = O.IndexObservation(4, noise_std=[0.5, 1.0, 2.0, 3.0])
    by_cov = O.IndexObservation(4, noise_cov=[0.25, 1.0, 4.0, 9.0])
    for a, b in zip(
        (by_std.noise_cov, by_std.noise_chol, by_std.noise_inv_chol),
        (by_cov.noise_cov, by_cov.noise_chol, by_cov.noise_inv_chol),
        strict=True,
    ):
        np.testing.assert_allclose(a, b, rtol=1e-15)
    assert by_std.diagonal and by_cov.diagonal
    np.testing.assert_array_equal(O.IndexObservation(3).noise_cov, np.eye(3))
    np.testing.assert_allclose(O.every_kth(6, 2, noise_std=0.5).noise_chol, 0.5 * np.eye(3))
    full = O.LinearObservation(MATRIX, noise_cov=COV)
    assert not full.diagonal
    np.testing.assert_allclose(full.noise_chol, np.linalg.cholesky(COV), rtol=1e-14)
    assert O.LinearObservation(MATRIX, noise_cov=np.diag([1.0, 2.0, 3.0])).diagonal


def test_diagonal_noise_holds_no_obs_by_obs_matrix(x64):
    """A diagonal R (and an index observation's H H^T) is held in O(obs) numbers, not as
    obs x obs matrices: an IndexObservation of 10^5 points is ~3 x 10^5 numbers (indices,
    std, locations) where three dense matrices would be 3 x 10^10. Whitening, sampling and
    the log-likelihood use the standard deviations and equal the dense formulas (checked at
    a small size against the built matrices); a diagonal matrix given as noise_cov is held
    the same way."""
    big = O.IndexObservation(100_000, noise_std=2.0)
    leaves = jax.tree_util.tree_leaves(big)
    assert sum(np.size(leaf) for leaf in leaves) <= 3 * 100_000, [np.shape(x) for x in leaves]
    std = np.array([0.5, 1.0, 2.0])
    for obs in (
        O.IndexObservation(DIM, [0, 2, 4], noise_std=std),
        O.LinearObservation(MATRIX, noise_cov=np.diag(std**2)),
    ):
        assert obs.diagonal and max(np.ndim(x) for x in jax.tree_util.tree_leaves(obs.noise)) == 1
        np.testing.assert_allclose(obs.noise_cov, np.diag(std**2), rtol=1e-15)
        np.testing.assert_allclose(obs.noise_chol, np.diag(std), rtol=1e-15)
        np.testing.assert_allclose(obs.noise_inv_chol, np.diag(1 / std), rtol=1e-15)
        v = jnp.asarray([[1.0, -2.0, 3.0], [0.5, 0.0, -1.0]])
        np.testing.assert_allclose(obs.whiten(v), v @ np.diag(1 / std), rtol=1e-15)
        np.testing.assert_allclose(obs.log_det_noise_cov(), np.log(np.prod(std**2)), rtol=1e-14)
        x = jnp.linspace(-1.0, 1.0, DIM)
        key = jax.random.key(0)
        z = jax.random.normal(key, (3,), dtype=x.dtype)
        np.testing.assert_allclose(obs.sample(key, x), obs(x) + std * z, rtol=1e-15)
    np.testing.assert_array_equal(
        O.IndexObservation(4, [0, 2, 2]).gram, [[1, 0, 0], [0, 1, 1], [0, 1, 1]]
    )


def test_noise_is_sweepable_under_vmap():
    """A traced noise level (a vmapped sweep) gives the same model as concrete values."""
    stds = jnp.array([0.5, 1.0, 2.0])
    x, y = jnp.ones(DIM), jnp.zeros(3)

    def loglik(std):
        return O.LinearObservation(MATRIX, noise_std=std).log_likelihood(y, x)

    def loglik_cov(cov):
        return O.LinearObservation(MATRIX, noise_cov=cov).log_likelihood(y, x)

    swept = jax.vmap(loglik)(stds)
    swept_cov = jax.vmap(loglik_cov)(jnp.stack([s**2 * jnp.asarray(COV) for s in stds]))
    for i, s in enumerate(np.asarray(stds)):
        np.testing.assert_allclose(swept[i], loglik(float(s)), rtol=1e-5)
        np.testing.assert_allclose(swept_cov[i], loglik_cov(s**2 * COV), rtol=1e-5)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="noise_cov"):
        O.LinearObservation(np.eye(2), noise_cov=[[1.0, 2.0], [2.0, 1.0]])
    with pytest.raises(ValueError, match="noise_cov"):
        O.IndexObservation(3, noise_cov=[1.0, 0.0, 1.0])
    with pytest.raises(ValueError, match="noise_std"):
        O.IndexObservation(3, noise_std=-1.0)
    with pytest.raises(ValueError, match="noise_std"):
        O.IndexObservation(3, noise_std=np.eye(3))
    with pytest.raises(ValueError, match="at most one"):
        O.IndexObservation(3, noise_cov=1.0, noise_std=1.0)
    with pytest.raises(ValueError, match="dim"):
        O.LinearObservation(_matrix_free)
    with pytest.raises(ValueError, match="dim"):
        O.LinearObservation(MATRIX, dim=4)
    with pytest.raises(ValueError, match="operator"):
        O.LinearObservation(_matrix_free, dim=4)  # (3, 5) @ (4,) fails
    with pytest.raises(ValueError, match="operator"):
        O.LinearObservation(np.ones(3))
    with pytest.raises(ValueError, match="k"):
        O.every_kth(6, 0)
    with pytest.raises(TypeError, match="state_dim"):
        O.IndexObservation(4.5)  # pyright: ignore[reportArgumentType]
    o = O.IndexObservation(4, [0, 2])
    with pytest.raises(ValueError, match="y_obs"):
        o.check_observation(jnp.array([0.0, jnp.nan]))
    with pytest.raises(ValueError, match="truth"):
        O.synthetic_observations(jax.random.key(0), o, jnp.zeros((3, 5)))
