"""Resampling schemes (functions `(key, weights, num_samples) -> indices`): unbiased offspring
counts, degenerate and uniform weights, particles of zero weight never drawn."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxsci import smc

SCHEMES = {
    fn.__name__: fn for fn in (smc.multinomial, smc.stratified, smc.systematic, smc.residual)
}


@pytest.mark.parametrize("scheme", sorted(SCHEMES))
@pytest.mark.parametrize("num_samples", [50, 7])
def test_expected_offspring(scheme, num_samples):
    """E[#offspring of i] = m w_i: average counts over 4000 replicates, z-score against the
    Monte-Carlo standard error (replicate sd / sqrt(4000)) per index."""
    resample = SCHEMES[scheme]
    w = jax.random.dirichlet(jax.random.key(0), jnp.ones(10))
    reps = 4000
    keys = jax.random.split(jax.random.key(1), reps)
    idx = jax.jit(jax.vmap(lambda k: resample(k, w, num_samples)))(keys)
    assert idx.shape == (reps, num_samples) and idx.dtype == jnp.int32
    assert int(idx.min()) >= 0 and int(idx.max()) < 10
    counts = np.asarray(jax.vmap(lambda i: jnp.bincount(i, length=10))(idx), dtype=np.float64)
    assert np.all(counts.sum(axis=1) == num_samples)
    expected = num_samples * np.asarray(w, dtype=np.float64)
    mcse = counts.std(axis=0, ddof=1) / np.sqrt(reps)
    # low-variance schemes can have zero variance where m w_i is (almost) an integer
    err = np.abs(counts.mean(axis=0) - expected)
    assert np.all(err <= 4.5 * mcse + 1e-3 * num_samples / reps), (scheme, err, mcse)
    if scheme == "systematic":  # every count is floor(m w_i) or ceil(m w_i)
        assert np.all(np.abs(counts - expected) < 1.0 + 1e-4)
    if scheme == "residual":  # at least the floor(m w_i) deterministic copies
        assert np.all(counts >= np.floor(expected + 1e-4))


def test_resampling_degenerate_and_uniform_weights():
    w = jnp.zeros(5).at[3].set(1.0)
    for scheme, fn in SCHEMES.items():
        np.testing.assert_array_equal(fn(jax.random.key(0), w, 6), np.full(6, 3), err_msg=scheme)
    u = jnp.ones(4)
    for scheme in ("systematic", "stratified", "residual"):
        idx = SCHEMES[scheme](jax.random.key(0), u, 8)
        np.testing.assert_array_equal(jnp.bincount(idx, length=4), np.full(4, 2), err_msg=scheme)


@pytest.mark.parametrize("scheme", sorted(SCHEMES))
def test_zero_weight_is_never_drawn(scheme):
    """Particles of weight zero (dropped by an SMC step) at either end, where rounding of the
    cumulative sum or a uniform of exactly 0 could reach them, and unnormalised weights."""
    w = jnp.array([0.0, 3.0, 1e-3, 0.0, 2.0, 0.0])
    keys = jax.random.split(jax.random.key(2), 2000)
    idx = np.asarray(jax.jit(jax.vmap(lambda k: SCHEMES[scheme](k, w, 9)))(keys))
    assert set(np.unique(idx)) <= {1, 2, 4}
    # the last positive weight is drawn when the uniforms run past a cumulative sum below 1
    u = jnp.array([0.0, 0.5, 1.0 - 1e-7])
    np.testing.assert_array_equal(smc._schemes._inverse_cdf(w, u), [1, 1, 4])
