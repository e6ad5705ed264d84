"""Spectral term libraries against analytic derivatives and products; `CorrectedModel`
against the Kuramoto-Sivashinsky class (an independent implementation of the same terms)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxsci.discovery import DEFAULT_TERMS, CorrectedModel, SpectralLibrary, parse_term, term_name
from jaxsci.dynamics import Burgers, KuramotoSivashinsky, Lorenz96
from jaxsci.integrate import Flow

L, N = 22.0, 64


def test_term_grammar_and_canonical_names():
    assert parse_term("u") == ((0, 1),)
    assert parse_term("u_xxxx") == ((4, 1),)
    assert parse_term("u*u_x") == ((0, 1), (1, 1))
    assert parse_term("u_x * u") == ((0, 1), (1, 1))
    assert parse_term("u*u") == ((0, 2),)
    assert parse_term("u^2*u_xx^3") == ((0, 2), (2, 3))
    assert parse_term("1") == ()
    assert term_name(parse_term("u_x*u")) == "u*u_x"
    assert term_name(parse_term("u*u")) == "u^2"
    lib = SpectralLibrary(["u_x*u", "u", "u_xx"], L, N)
    assert lib.names == ("u*u_x", "u", "u_xx")
    assert lib.is_linear == (False, True, True)
    for bad in ("v", "u_y", "u^", "u**2", "u_x^-1", "2u", ""):
        with pytest.raises(ValueError, match="library term"):
            parse_term(bad)
    with pytest.raises(ValueError, match="twice"):
        SpectralLibrary(["u^2", "u*u"], L, N)
    with pytest.raises(ValueError, match="empty"):
        SpectralLibrary([], L, N)
    with pytest.raises(TypeError, match="terms"):
        SpectralLibrary("u_xx", L, N)
    with pytest.raises(ValueError, match="num_points"):
        SpectralLibrary(["u"], L, 33)


def test_columns_match_analytic_derivatives_and_products(x64):
    # u = a sin(k1 x) + b cos(k2 x) with modes 2 and 5 (products stay below N/3 = 21).
    # float64: in float32 the rounding noise of u is amplified by k_max^4 ~ 7e3 in u_xxxx.
    x = np.arange(N) * L / N
    k1, k2, a, b = 2 * 2 * np.pi / L, 5 * 2 * np.pi / L, 1.3, -0.7
    u = a * np.sin(k1 * x) + b * np.cos(k2 * x)
    ux = a * k1 * np.cos(k1 * x) - b * k2 * np.sin(k2 * x)
    uxx = -a * k1**2 * np.sin(k1 * x) - b * k2**2 * np.cos(k2 * x)
    uxxx = -a * k1**3 * np.cos(k1 * x) + b * k2**3 * np.sin(k2 * x)
    uxxxx = a * k1**4 * np.sin(k1 * x) + b * k2**4 * np.cos(k2 * x)
    expected = {
        "1": np.ones(N),
        "u": u,
        "u_x": ux,
        "u_xx": uxx,
        "u_xxx": uxxx,
        "u_xxxx": uxxxx,
        "u^2": u**2,
        "u^3": u**3,
        "u*u_x": u * ux,
        "u_x^2": ux**2,
        "u*u_xx": u * uxx,
        "u^2*u_x": u**2 * ux,
    }
    lib = SpectralLibrary(list(expected), L, N)
    theta = np.asarray(lib(jnp.asarray(u)))
    assert theta.dtype == np.float64
    for j, (name, ref) in enumerate(expected.items()):
        scale = np.max(np.abs(ref))
        np.testing.assert_allclose(theta[:, j], ref, atol=1e-11 * scale, err_msg=name)


def test_dealiasing_drops_modes_above_two_thirds():
    # cos(m x) with m = 12: u^2 = (1 + cos(24 x)) / 2 and 24 >= N/3, so the de-aliased
    # product keeps only the mean; without de-aliasing the grid product is exact.
    x = np.arange(N) * L / N
    u = np.cos(12 * 2 * np.pi / L * x)
    dealiased = SpectralLibrary(["u^2", "u"], L, N, dealias=True)
    plain = SpectralLibrary(["u^2", "u"], L, N, dealias=False)
    np.testing.assert_allclose(np.asarray(dealiased(jnp.asarray(u)))[:, 0], 0.5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(plain(jnp.asarray(u)))[:, 0], u**2, atol=1e-6)
    # linear terms use every mode
    np.testing.assert_allclose(np.asarray(dealiased(jnp.asarray(u)))[:, 1], u, atol=1e-6)


def _state():
    ks = KuramotoSivashinsky(L, N)
    flow = Flow(ks, 0.25)
    x = ks.default_initial_state()
    return jax.jit(lambda x: jax.lax.fori_loop(0, 200, lambda i, x: flow(x, 0.0, 0.25), x))(x)


@pytest.mark.parametrize(
    "changes, terms",
    [
        ({"alpha": 1.1}, {"u_xx": -0.1}),
        ({"dispersion": 0.1}, {"u_xxx": -0.1}),
        ({"growth": -0.1}, {"u": -0.1}),
        ({"lam": 1.1}, {"u*u_x": -0.1}),
        # two changes at once: 6 s; CI runs the slow tier (fast-tier budget)
        pytest.param(
            {"nu": 0.9, "lam": 0.8}, {"u_xxxx": 0.1, "u*u_x": 0.2}, marks=pytest.mark.slow
        ),
    ],
)
def test_corrected_ks_is_the_changed_ks(changes, terms):
    # KS: u_t = -lam u u_x - alpha u_xx - nu u_xxxx - dispersion u_xxx + growth u; the
    # corrected standard KS with the hand-derived coefficients is the changed KS.
    lib = SpectralLibrary(DEFAULT_TERMS, L, N)
    xi = jnp.asarray([terms.get(n, 0.0) for n in lib.names])
    corrected = CorrectedModel(KuramotoSivashinsky(L, N), lib, xi)
    truth = KuramotoSivashinsky(L, N, **changes)
    u = _state()
    f_c = np.asarray(corrected.vector_field(0.0, u, None))
    f_t = np.asarray(truth.vector_field(0.0, u, None))
    np.testing.assert_allclose(f_c, f_t, atol=2e-5 * np.abs(f_t).max())
    if "nu" in changes:
        # the linear terms join the stiff linear operator: ETDRK4 steps agree too
        y_c = np.asarray(Flow(corrected, 0.25)(u, 0.0, 2.0))
        y_t = np.asarray(Flow(truth, 0.25)(u, 0.0, 2.0))
        np.testing.assert_allclose(y_c, y_t, atol=2e-5 * np.abs(y_t).max())
        np.testing.assert_allclose(
            corrected.linear_operator(), truth.linear_operator(), rtol=1e-6, atol=1e-6
        )


def test_corrected_model_checks():
    lib = SpectralLibrary(["u", "u_xx"], L, N)
    with pytest.raises(TypeError, match="model"):
        CorrectedModel(Lorenz96(N), lib)
    with pytest.raises(ValueError, match="grid"):
        CorrectedModel(KuramotoSivashinsky(L, 32), lib)
    with pytest.raises(ValueError, match="length"):
        CorrectedModel(KuramotoSivashinsky(30.0, N), lib)
    with pytest.raises(ValueError, match="coefficients"):
        CorrectedModel(KuramotoSivashinsky(L, N), lib, jnp.zeros(3))
    # any rfft-based semilinear model works, e.g. Burgers
    burgers = CorrectedModel(Burgers(0.1, L, N), lib, jnp.asarray([0.0, 0.05]))
    ref = Burgers(0.15, L, N)
    u = jnp.sin(2 * jnp.pi / L * jnp.arange(N) * L / N)
    np.testing.assert_allclose(
        burgers.vector_field(0.0, u, None), ref.vector_field(0.0, u, None), atol=1e-5
    )
