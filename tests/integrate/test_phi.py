"""phi-functions against exact rational references, at and around the Taylor/recurrence switch."""

import math
from fractions import Fraction

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxsci.integrate import phi, phi_functions
from jaxsci.integrate._phi import TAYLOR_RADIUS

ORDER = 4


def _phi_exact(k: int, z: complex) -> complex:
    """phi_k(z) = sum_j z^j / (j+k)! in exact rational arithmetic (z's parts as Fractions).

    60 terms: for |z| <= 3 the neglected tail is below 3^60 / 60! ~ 1e-53.
    """
    re, im = Fraction(z.real), Fraction(z.imag)
    total_re, total_im = Fraction(0), Fraction(0)
    pow_re, pow_im = Fraction(1), Fraction(0)
    for j in range(60):
        f = math.factorial(j + k)
        total_re += pow_re / f
        total_im += pow_im / f
        pow_re, pow_im = pow_re * re - pow_im * im, pow_re * im + pow_im * re
    return complex(float(total_re), float(total_im))


# Points inside, at and just outside the switch |z| = TAYLOR_RADIUS (= 1), real and complex.
R = TAYLOR_RADIUS
POINTS = [
    0.0,
    1e-12,
    -1e-8,
    0.3,
    -0.7,
    0.999 * R,
    -0.999 * R,
    1.001 * R,
    -1.001 * R,
    2.5,
    -3.0,
    0.5 + 0.5j,
    -0.6 + 0.7j,
    0.999j * R,
    1.001j * R,
    -0.8 - 0.9j,
    1.5 - 2.0j,
]


def test_phi_at_zero_is_inverse_factorial(x64):
    """phi_k(0) = 1/k! exactly (float64)."""
    vals = phi_functions(jnp.zeros(()), ORDER)
    for k, v in enumerate(vals):
        assert float(v) == pytest.approx(1 / math.factorial(k), rel=1e-15)


def test_phi_matches_exact_series_float64(x64):
    """Both branches (Taylor inside |z| < 1, recurrence outside) against the exact series.

    The recurrence phi_k = (phi_{k-1} - 1/(k-1)!)/z amplifies rounding by about
    1/(k! |z|^k |phi_k|) <~ 10 at |z| ~ 1 for k <= 4, so 1e-13 relative (~500 ulp) is a
    strict float64 bound; the naive formula would lose ~|log10 z|*k digits near 0.
    """
    for zc in POINTS:
        dtype = jnp.complex128 if isinstance(zc, complex) else jnp.float64
        vals = phi_functions(jnp.asarray(zc, dtype=dtype), ORDER)
        for k in range(ORDER + 1):
            ref = _phi_exact(k, complex(zc))
            got = complex(vals[k])
            assert abs(got - ref) <= 1e-13 * abs(ref), (zc, k, got, ref)


def test_phi_large_negative_arguments(x64):
    """Stiff modes (z = h L ~ -1e2..-1e4): the closed form has no cancellation there."""
    z = np.array([-10.0, -128.0, -5000.0])
    vals = phi_functions(jnp.asarray(z), 3)
    for k in range(4):
        poly = sum(z**j / math.factorial(j) for j in range(k))
        ref = (np.exp(z) - poly) / z**k
        np.testing.assert_allclose(np.asarray(vals[k]), ref, rtol=1e-14)


def test_phi_float32_small_arguments_are_accurate():
    """In float32 the naive (e^z - 1)/z has O(1) relative error at |z| ~ 1e-7; ours has ~1 ulp."""
    z = jnp.asarray([1e-7, -3e-6, 1e-3], dtype=jnp.float32)
    vals = phi_functions(z, 3)
    for k in range(4):
        ref = np.array([_phi_exact(k, complex(float(zi))).real for zi in np.asarray(z)])
        np.testing.assert_allclose(np.asarray(vals[k]), ref, rtol=2e-7)


def test_phi_gradient_finite_at_zero(x64):
    """d/dz phi_k(z) at 0 equals 1/(k+1)! (the series' linear coefficient) and is finite."""
    for k in range(ORDER + 1):
        g = jax.grad(lambda z, k=k: phi(k, z))(0.0)
        assert np.isfinite(float(g))
        assert float(g) == pytest.approx(1 / math.factorial(k + 1), rel=1e-14)
    # Also through a vector containing zero, inside jit.
    g = jax.jit(jax.grad(lambda z: jnp.sum(phi(3, z))))(jnp.array([0.0, -2.0, 0.5]))
    assert bool(jnp.all(jnp.isfinite(g)))


def test_phi_order_validation():
    with pytest.raises(ValueError, match="order"):
        phi_functions(jnp.ones(3), -1)
