"""ETDRK specifics: a semilinear model is required, and a linear problem is solved exactly.

The convergence orders of ETDRK1-4 (Kassam-Trefethen problem against a Dopri8 reference) are
in the solver conformance suite, `test_conformance.py`.
"""

import jax.numpy as jnp
import numpy as np
import pytest

from jaxsci.dynamics import KuramotoSivashinsky, Lorenz63
from jaxsci.integrate import ETDRK4, simulate


def test_etdrk_needs_semilinear_model():
    with pytest.raises(ValueError, match="semilinear"):
        simulate(Lorenz63(), jnp.ones(3), jnp.array([0.0, 1.0]), solver=ETDRK4(), dt0=0.1)


@pytest.mark.slow  # 4-6 s alone on the 2-core VM (fast-tier budget); CI's slow tier runs it
def test_etdrk_linear_problem_is_exact(x64):
    """With N = 0 (lam = 0) ETDRK4 is the exact solution e^{tL} u0 for any step."""
    ks = KuramotoSivashinsky(length=22.0, num_points=32, lam=0.0)
    u0 = ks.default_initial_state()
    t = 1.5
    exact = ks.from_spectral(jnp.exp(t * ks.linear_operator()) * ks.to_spectral(u0))
    got = simulate(ks, u0, jnp.array([0.0, t]), solver=ETDRK4(), dt0=0.4).ys[-1]
    np.testing.assert_allclose(np.asarray(got), np.asarray(exact), atol=1e-13)
