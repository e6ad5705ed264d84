"""`jaxsci.metrics.mmd2` against a brute-force NumPy double loop, the closed-form MMD^2 of two
Gaussians (Monte Carlo within standard errors: the estimator is unbiased), and bad input."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxsci.data import two_moons
from jaxsci.metrics import mmd2


def named(arg: str) -> str:
    """A message naming `arg`: ours (`arg`), or the jaxtyping import hook's type-check error
    ("parameter 'arg'", a TypeError) when the test run enables it."""
    return rf"`{arg}`|parameter '{arg}'"


def _brute_force(x, y, bandwidths):
    """Gretton et al. (2012), eq. 3, term by term in float64 loops."""

    def k(a, b):
        return sum(math.exp(-np.sum((a - b) ** 2) / (2 * h**2)) for h in bandwidths)

    m, n = len(x), len(y)
    sxx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    syy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    sxy = sum(k(x[i], y[j]) for i in range(m) for j in range(n)) / (m * n)
    return sxx + syy - 2 * sxy


@pytest.mark.slow
def test_matches_brute_force(x64):
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(7, 3)), rng.normal(0.5, 1.5, size=(5, 3))
    bw = [0.5, 2.0]
    got = mmd2(jnp.asarray(x), jnp.asarray(y), bw)
    assert got.dtype == jnp.float64 and got.shape == ()
    np.testing.assert_allclose(float(got), _brute_force(x, y, bw), rtol=1e-12)
    # symmetric in its two samples, and a float32 input stays float32
    np.testing.assert_allclose(float(mmd2(y, x, bw)), float(got), rtol=1e-12)
    assert mmd2(x.astype(np.float32), y.astype(np.float32), bw).dtype == jnp.float32


def test_unbiased_for_two_gaussians():
    """For x ~ N(mu_1, s^2 I_d), y ~ N(mu_2, s^2 I_d) and one Gaussian kernel of bandwidth h,
    E k(x, x') = c = (h^2 / (h^2 + 2 s^2))^{d/2} and E k(x, y) = c exp(-|D|^2 / (2 (h^2 +
    2 s^2))), so MMD^2 = 2 c (1 - exp(-|D|^2 / (2 (h^2 + 2 s^2)))). The mean of 64 estimates
    from 200 + 200 draws lies within 4 standard errors of it, for D = 0 (where unbiasedness
    means zero mean) and for a shift."""
    d, s, h, n, reps = 2, 0.7, 0.8, 200, 64
    c = (h**2 / (h**2 + 2 * s**2)) ** (d / 2)

    @jax.jit
    def estimates(shift, key):
        def one(k):
            kx, ky = jax.random.split(k)
            x = s * jax.random.normal(kx, (n, d))
            y = shift + s * jax.random.normal(ky, (n, d))
            return mmd2(x, y, [h])

        return jax.vmap(one)(jax.random.split(key, reps))

    for i, delta in enumerate((0.0, 0.5)):
        shift = jnp.asarray([delta, 0.0])
        want = 2 * c * (1 - math.exp(-(delta**2) / (2 * (h**2 + 2 * s**2))))
        est = np.asarray(estimates(shift, jax.random.key(i)), np.float64)
        se = est.std(ddof=1) / math.sqrt(reps)
        assert abs(est.mean() - want) < 4 * se, (delta, est.mean(), se, want)
        if delta > 0:
            assert est.mean() > 10 * se  # the shift is detected


def test_separates_two_moons_from_shifted():
    """Two samples of one distribution give MMD^2 near 0 (mean over 6 pairs within 4
    standard errors); a shifted distribution gives a clearly positive value."""
    keys = jax.random.split(jax.random.key(3), 12)
    moons = [two_moons(k, 300, 0.05) for k in keys]
    same = [float(mmd2(moons[2 * i], moons[2 * i + 1], [0.2, 1.0])) for i in range(6)]
    se = np.std(same, ddof=1) / np.sqrt(len(same))
    assert abs(np.mean(same)) < 4 * se
    shifted = mmd2(moons[0] + jnp.asarray([0.3, 0.0]), moons[1], [0.2, 1.0])
    assert float(shifted) > 10 * max(se, 1e-4)


def test_bad_input_names_the_argument():
    x = np.zeros((4, 2))
    # wrong shapes: our ValueError, or the jaxtyping hook's TypeError when it is enabled
    with pytest.raises((ValueError, TypeError), match=named("x")):
        mmd2(np.zeros(4), x, [1.0])
    with pytest.raises((ValueError, TypeError), match=named("y")):
        mmd2(x, np.zeros((4, 3)), [1.0])
    with pytest.raises(ValueError, match=r"`y.shape\[0\]` must be an integer >= 2, got 1"):
        mmd2(x, np.zeros((1, 2)), [1.0])
    with pytest.raises(ValueError, match="`bandwidths` must be finite and positive"):
        mmd2(x, x, [1.0, 0.0])
    with pytest.raises(ValueError, match="`bandwidths` must be a non-empty 1-D list"):
        mmd2(x, x, [])
