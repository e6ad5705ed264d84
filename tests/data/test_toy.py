"""`jaxsci.data.two_moons` and `ring`: geometry without noise, reproducibility, bad input."""

import jax
import numpy as np
import pytest

from jaxsci.data import ring, two_moons


def named(arg: str) -> str:
    """A message naming `arg`: ours (`arg`), or the jaxtyping import hook's type-check error
    ("parameter 'arg'", a TypeError) when the test run enables it."""
    return rf"`{arg}`|parameter '{arg}'"


def test_two_moons_geometry():
    """Without noise every point lies on one of the two unit half circles: the upper one
    centred at (0, 0) with y >= 0, the lower one centred at (1, 1/2) with y <= 1/2."""
    x = np.asarray(two_moons(jax.random.key(0), 500, 0.0), np.float64)
    assert x.shape == (500, 2)
    upper = np.abs(np.hypot(x[:, 0], x[:, 1]) - 1) < 1e-5
    lower = np.abs(np.hypot(x[:, 0] - 1, x[:, 1] - 0.5) - 1) < 1e-5
    assert np.all(upper | lower)
    assert np.all(x[upper, 1] >= -1e-6) and np.all(x[lower & ~upper, 1] <= 0.5 + 1e-6)
    assert 0.4 < upper.mean() < 0.6  # each moon with probability 1/2
    np.testing.assert_array_equal(two_moons(jax.random.key(0), 500, 0.0), x.astype(np.float32))
    noisy = np.asarray(two_moons(jax.random.key(0), 500, 0.1))
    assert 0.05 < np.std(noisy - x) < 0.15  # the same draws plus N(0, 0.1^2) noise


def test_ring_geometry():
    x = np.asarray(ring(jax.random.key(1), 400, components=6, std=0.0), np.float64)
    np.testing.assert_allclose(np.hypot(x[:, 0], x[:, 1]), 1.0, rtol=1e-6)
    angles = np.round(np.mod(np.arctan2(x[:, 1], x[:, 0]), 2 * np.pi) / (2 * np.pi / 6)) % 6
    assert set(angles.astype(int).tolist()) == set(range(6))


def test_bad_input_names_the_argument():
    with pytest.raises(ValueError, match="`n` must be an integer >= 1"):
        two_moons(jax.random.key(0), 0)
    with pytest.raises(ValueError, match="`noise` must be finite and non-negative"):
        two_moons(jax.random.key(0), 3, -0.1)
    with pytest.raises(ValueError, match="`components` must be an integer >= 1"):
        ring(jax.random.key(0), 3, components=0)
    with pytest.raises(TypeError, match=named("key")):
        ring(None, 3)
