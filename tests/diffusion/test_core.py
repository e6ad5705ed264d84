"""Schedules, parameterisations, grids and input errors, against closed forms."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxsci.diffusion as jd
from jaxsci.pipelines._diffusion_names import make_sampler

from ._exact import vp_alpha, vp_beta, vp_log_alpha, vp_sigma

ALL = [jd.VPLinear(), jd.VPCosine(), jd.SubVP(), jd.VE(), jd.EDM(), jd.RectifiedFlow()]


def named(arg: str) -> str:
    """A message naming `arg`: ours (`arg`), or the jaxtyping import hook's type-check error
    ("parameter 'arg'", a TypeError) when the test run enables it."""
    return rf"`{arg}`|parameter '{arg}'"


def _times(sch, n=7):
    return jnp.linspace(sch.t_min, sch.t_max, n)[1:-1]


def test_vp_linear_closed_form(x64):
    sch, t = jd.VPLinear(), jnp.linspace(1e-3, 1.0, 9)
    np.testing.assert_allclose(sch.alpha(t), vp_alpha(t), rtol=1e-14)
    np.testing.assert_allclose(sch.sigma(t), vp_sigma(t), rtol=1e-12)
    np.testing.assert_allclose(sch.diffusion_squared(t), vp_beta(t), rtol=1e-10)
    np.testing.assert_allclose(sch.drift(t), -0.5 * vp_beta(t), rtol=1e-12)


def test_cosine_matches_nichol_dhariwal(x64):
    sch, s = jd.VPCosine(), 0.008
    t = np.linspace(0.01, 0.99, 7)
    f = lambda u: np.cos((u + s) / (1 + s) * np.pi / 2) ** 2  # noqa: E731
    np.testing.assert_allclose(np.asarray(sch.alpha(t)) ** 2, f(t) / f(0.0), rtol=1e-12)
    np.testing.assert_allclose(
        np.asarray(sch.alpha(t)) ** 2 + np.asarray(sch.sigma(t)) ** 2, 1.0, rtol=1e-12
    )


def test_cosine_with_a_large_offset_matches_the_float64_closed_form():
    """In float32 (the default) the cosine of (t + s)/(1 + s) pi/2, an argument that rounds
    to pi/2, was NaN at t_max from s ~ 1e5 and inaccurate well before; the sin((1 - t) c)
    form keeps full precision. Reference: the paper's formula in float64."""
    for s in (0.008, 1e2, 1e5):
        sch = jd.VPCosine(s=s)
        t = np.array([sch.t_min, 0.5, 0.9, sch.t_max])
        f = lambda u, s=s: np.cos((u + s) / (1 + s) * np.pi / 2) ** 2  # noqa: E731
        alpha = np.sqrt(f(t) / f(0.0))
        lam = np.log(alpha) - 0.5 * np.log1p(-(alpha**2))
        t32 = jnp.asarray(t, dtype=jnp.float32)
        np.testing.assert_allclose(sch.alpha(t32), alpha, rtol=2e-6)
        # near t_min, lambda = log alpha - log sigma with sigma^2 = -expm1(2 log alpha): the
        # float32 rounding of log alpha (~1e-8 absolute at |log alpha| ~ 1e-4) is a relative
        # 1e-4 of sigma^2, hence atol 1e-4 on lambda; the old form was NaN here for s = 1e5
        np.testing.assert_allclose(sch.lambda_(t32), lam, rtol=2e-6, atol=1e-4)
        np.testing.assert_allclose(
            sch.t_from_lambda(jnp.asarray(lam, jnp.float32)), t, rtol=1e-5, atol=1e-6
        )


def test_schedules_refuse_noise_levels_beyond_the_float_range():
    """sigma_t must be a positive normal float32 at t_min and its square finite at t_max:
    these were accepted with sigma(t_min) = 0 (an infinite eps <-> x0 conversion) or an
    infinite prior variance and g^2 (NaN samples)."""
    cases = [
        (lambda: jd.VE(sigma_max=1e25), "sigma_max"),
        (lambda: jd.VE(t_max=6.0), "t_max"),
        (lambda: jd.VE(sigma_min=1e-50, sigma_max=1.0), "sigma_min"),
        (lambda: jd.EDM(t_max=1e20), "t_max"),
        (lambda: jd.EDM(t_min=1e-39), "t_min"),
        (lambda: jd.VPCosine(s=2e6), "s"),
    ]
    for make, name in cases:
        with pytest.raises(ValueError, match=named(name)):
            make()
    # the largest accepted: sigma^2 and g^2 finite at t_max
    ve = jd.VE(t_max=5.0)
    assert np.isfinite(ve.diffusion_squared(ve.t_max)) and np.isfinite(ve.prior_std())


def test_sde_coefficients_closed_forms(x64):
    t = jnp.linspace(0.05, 0.95, 5)
    big_b = -2.0 * vp_log_alpha(t)  # int_0^t beta
    np.testing.assert_allclose(
        jd.SubVP().diffusion_squared(t), vp_beta(t) * -jnp.expm1(-2 * big_b), rtol=1e-10
    )
    ve = jd.VE()
    np.testing.assert_allclose(
        ve.diffusion_squared(t), 2 * ve.sigma(t) ** 2 * math.log(50.0 / 0.01), rtol=1e-12
    )
    np.testing.assert_allclose(jd.EDM().diffusion_squared(t), 2 * t, rtol=1e-12)
    np.testing.assert_allclose(jd.RectifiedFlow().alpha(t), 1 - t, rtol=1e-14)


@pytest.mark.parametrize("sch", ALL, ids=lambda s: type(s).__name__)
def test_inverse_lambda(sch, x64):
    t = _times(sch)
    lam = sch.lambda_(t)
    assert np.all(np.diff(np.asarray(lam)) < 0)
    np.testing.assert_allclose(sch.t_from_lambda(lam), t, rtol=1e-10)
    # the generic safeguarded-Newton inverse agrees with the closed form
    np.testing.assert_allclose(jd.newton_t_from_lambda(sch, lam), t, rtol=1e-10)
    # d lambda / dt against central differences
    d = 1e-6 * (sch.t_max - sch.t_min)
    fd = (sch.lambda_(t + d) - sch.lambda_(t - d)) / (2 * d)
    np.testing.assert_allclose(sch.d_lambda(t), fd, rtol=1e-6)
    # gradient of the generic inverse (implicit function theorem)
    g = jax.grad(lambda lm: jd.newton_t_from_lambda(sch, lm))(lam[2])
    np.testing.assert_allclose(g, 1.0 / sch.d_lambda(t[2]), rtol=1e-8)


def test_unknown_names_and_strings_refused():
    """Names live in the pipelines' registry; the library takes objects and refuses strings
    by argument name."""
    with pytest.raises(ValueError, match="Unknown sampler"):
        make_sampler("dpm_solver_9")
    with pytest.raises(TypeError, match=named("parameterization")):
        jd.Denoiser(lambda t, x: x, jd.VPLinear(), "noise")
    with pytest.raises(TypeError, match=named("source")):
        jd.convert(
            jnp.ones(2),
            source="velocity",
            target=jd.EpsPrediction(),
            x=jnp.ones(2),
            t=0.5,
            schedule=jd.VPLinear(),
        )
    with pytest.raises(ValueError, match="t_min < t_max"):
        jd.VPLinear(t_min=0.5, t_max=0.2)


@pytest.mark.parametrize(
    "sch", [jd.VPLinear(), jd.VE(), jd.EDM(), jd.RectifiedFlow()], ids=lambda s: type(s).__name__
)
def test_conversions_exact(sch, x64):
    k1, k2 = jax.random.split(jax.random.key(1))
    x0, eps = jax.random.normal(k1, (3,)), jax.random.normal(k2, (3,))
    t = jnp.asarray(0.5 * (sch.t_min + sch.t_max))
    a, s = sch.alpha(t), sch.sigma(t)
    x = a * x0 + s * eps
    d = 1e-6 * sch.t_max
    da = (sch.alpha(t + d) - sch.alpha(t - d)) / (2 * d)
    ds = (sch.sigma(t + d) - sch.sigma(t - d)) / (2 * d)
    outputs = [  # definitions (flow velocity with finite-difference derivatives)
        (jd.EpsPrediction(), eps),
        (jd.X0Prediction(), x0),
        (jd.VPrediction(), a * eps - s * x0),
        (jd.ScorePrediction(), -eps / s),
        (jd.FlowPrediction(), da * x0 + ds * eps),
    ]
    for src, out in outputs:
        for dst, want in outputs:
            got = jd.convert(out, source=src, target=dst, x=x, t=t, schedule=sch)
            np.testing.assert_allclose(got, want, rtol=1e-7, atol=1e-7 * (1 + abs(want).max()))
    den = jd.Denoiser(lambda tt, xx: a * eps - s * x0 + 0 * xx, sch, jd.VPrediction())
    np.testing.assert_allclose(den.x0(t, x), x0, rtol=1e-10)


def test_guidance_and_threshold():
    cfg = jd.ClassifierFreeGuidance(lambda t, x: 2 * x, lambda t, x: x, 3.0)
    np.testing.assert_allclose(cfg(0.5, jnp.ones(2)), 4.0 * jnp.ones(2))
    x0 = jnp.asarray([0.5, -3.0, 2.0, 0.1])
    s = np.quantile(np.abs(np.asarray(x0)), 0.75)
    np.testing.assert_allclose(
        jd.DynamicThreshold(0.75)(x0), np.clip(np.asarray(x0), -s, s) / s, rtol=1e-6
    )


def test_grids(x64):
    sch = jd.VPLinear()
    g = jd.time_grid(sch, 10, jd.LogSNRUniform())
    np.testing.assert_allclose(
        np.diff(np.asarray(sch.lambda_(g))), (sch.lambda_(1e-3) - sch.lambda_(1.0)) / 10, rtol=1e-9
    )
    g = jd.time_grid(sch, 10, jd.TimeQuadratic())
    np.testing.assert_allclose(np.diff(np.sqrt(np.asarray(g))), (np.sqrt(1e-3) - 1) / 10, rtol=1e-9)
    edm = jd.EDM()
    g = np.asarray(jd.time_grid(edm, 10, jd.Karras()))
    ref = (80 ** (1 / 7) + np.arange(11) / 10 * (0.002 ** (1 / 7) - 80 ** (1 / 7))) ** 7
    np.testing.assert_allclose(g, ref, rtol=1e-10)
    g = np.asarray(jd.time_grid(sch, 4, jd.TimeUniform()))
    np.testing.assert_allclose(g, np.linspace(1.0, 1e-3, 5), rtol=1e-12)
    with pytest.raises(TypeError, match=named("spacing")):
        jd.time_grid(sch, 4, "cosine")


def test_bad_grids_and_nfe():
    sch = jd.VPLinear()
    model = lambda t, x: x  # noqa: E731
    with pytest.raises(ValueError, match="strictly decreasing"):
        jd.sample(jd.DDIM(), model, sch, jnp.asarray([1.0, 0.5, 0.6, 0.1]), jnp.ones(2))
    with pytest.raises(ValueError, match="strictly decreasing"):
        jd.check_grid(sch, [0.1, 0.5, 1.0])
    with pytest.raises(ValueError, match="lie in"):
        jd.check_grid(sch, [2.0, 0.5, 0.1])
    # grids shorter than a multistep sampler's order run at lower orders (issue 13; they were
    # refused): see test_multistep_samplers_run_on_grids_shorter_than_their_order
    for sampler in (jd.DPMSolverPPMultistep(3), jd.UniPC(3)):
        out = jd.sample(sampler, model, sch, jd.time_grid(sch, 2), jnp.ones(2))
        assert bool(jnp.all(jnp.isfinite(out.x)))
    with pytest.raises(ValueError, match="key"):
        jd.sample(jd.EulerMaruyama(), model, sch, jd.time_grid(sch, 3), jnp.ones(2))
    with pytest.raises(ValueError, match="order"):
        jd.DPMSolver(order=4)


def test_x_T_is_checked_against_the_model(own_checks):
    """A non-finite x_T was a silent NaN sample; a model of another event shape failed with
    a broadcasting TypeError or "the model returned shape ... for x", naming neither x_T nor
    the shape it should have."""
    sch = jd.VPLinear()
    grid = jd.time_grid(sch, 3)
    with pytest.raises(ValueError, match="`x_T` contains non-finite"):
        jd.sample(jd.DDIM(), lambda t, x: x, sch, grid, jnp.array([0.0, jnp.nan]))
    with pytest.raises(
        ValueError,
        match=r"returned shape \(3,\) for `x_T` of shape \(2,\).*"
        r"expected \(3,\)",
    ):
        jd.sample(jd.DDIM(), lambda t, x: jnp.zeros(3), sch, grid, jnp.ones(2))
    model3 = jd.GaussianMixture([1.0], [[0.0, 0.0, 0.0]], [[1.0, 1.0, 1.0]]).eps_model(sch)
    with pytest.raises(ValueError, match=r"cannot be applied to `x_T` of shape \(2,\)"):
        jd.sample(jd.DDIM(), model3, sch, grid, jnp.ones(2))
    # traced x_T (vmap over examples) still samples
    out = jax.vmap(lambda x: jd.sample(jd.DDIM(), model3, sch, grid, x).x)(jnp.ones((2, 3)))
    assert out.shape == (2, 3)
