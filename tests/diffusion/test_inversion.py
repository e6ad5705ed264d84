"""Exact inversion (BDIA, EDICT) and DDIM inversion on the exact-score mixture (float64).

References: round trips must return their input to round-off (the methods are exact by
construction, so any slip in the algebra shows at 1e-3 or worse); BDIA's update against the
official code's form of eq. 19 written out in NumPy; EDICT against the paper's eq. 14 with
its a_t, b_t coefficients; DDIM inversion against diffusers' DDIMInverseScheduler
(`tests/data/diffusers_ddim_inverse.npz`, from `tests/data/make_diffusers_ddim_inverse.py`)
and its first-order round trip error (log-log slope 1).
"""

import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxsci.diffusion as jd

from ._exact import Mixture

WEIGHTS, MEANS, VARS = [0.3, 0.7], [[-1.0, 0.5], [1.0, -0.5]], [[0.25, 0.25], [0.3, 0.2]]
DATA = np.load(pathlib.Path(__file__).parents[1] / "data" / "diffusers_ddim_inverse.npz")


def _setup(n=12):
    sch = jd.VPLinear()
    mix = jd.GaussianMixture(WEIGHTS, MEANS, VARS)
    return sch, mix.eps_model(sch), jd.time_grid(sch, n, jd.LogSNRUniform())


def _rel(a, b):
    return float(jnp.linalg.norm(a - b) / jnp.linalg.norm(b))


@pytest.mark.parametrize("method", [jd.BDIA(), jd.BDIA(gamma=0.7), jd.EDICT()], ids=str)
def test_round_trips_are_exact(method, x64):
    """invert then generate returns x_0, generate then invert returns x_T (< 1e-10)."""
    sch, model, grid = _setup()
    x0, xT = jnp.array([0.7, -0.2]), jnp.array([0.3, 1.1])
    inv = jd.invert(method, model, sch, grid, x0)
    back = jd.generate(method, model, sch, grid, inv.x, companion=inv.companion)
    assert _rel(back.x, x0) < 1e-10
    gen = jd.generate(method, model, sch, grid, xT)
    rec = jd.invert(method, model, sch, grid, gen.x, companion=gen.companion)
    assert _rel(rec.x, xT) < 1e-10
    per = method.nfe_per_step
    assert int(inv.nfe) == 12 * per and int(gen.nfe) == 12 * per
    # DDIM inversion is not exact on the same grid
    d = jd.invert(jd.DDIMInversion(), model, sch, grid, x0)
    assert _rel(jd.generate(jd.DDIMInversion(), model, sch, grid, d.x).x, x0) > 1e-3


@pytest.mark.slow  # 12-16 s under xdist; CI's slow tier runs it
def test_round_trip_any_schedule_and_parameterization(x64):
    """Through a Denoiser with a v-prediction model on EDM, and x0-prediction on VE."""
    mix = jd.GaussianMixture(WEIGHTS, MEANS, VARS)
    x0 = jnp.array([0.4, 0.9])
    for sch, par in ((jd.EDM(), jd.VPrediction()), (jd.VE(), jd.X0Prediction())):
        eps = mix.eps_model(sch)

        def model(t, x, sch=sch, par=par, eps=eps):
            e = eps(t, x)
            return par.from_x0_eps((x - sch.sigma(t) * e) / sch.alpha(t), e, t, sch)

        den = jd.Denoiser(model, sch, par)
        grid = jd.time_grid(sch, 8, jd.Karras())
        for m in (jd.BDIA(), jd.EDICT()):
            inv = jd.invert(m, den, sch, grid, x0)
            back = jd.generate(m, den, sch, grid, inv.x, companion=inv.companion)
            assert _rel(back.x, x0) < 1e-10, (sch, m)


def test_bdia_matches_official_update_and_sample(x64):
    """BDIA's generation = the official form z_{i-1} = z_{i+1} - (1 - g)(z_{i+1} - z_i)
    - g Delta(t_i -> t_{i+1}) + Delta(t_i -> t_{i-1}) with DDIM Deltas (NumPy, from abar),
    the first step DDIM; `sample(BDIA())` is the same; on one step BDIA is DDIM."""
    sch, model, grid = _setup(6)
    g = 0.6
    ref_mix = Mixture(WEIGHTS, MEANS, VARS)
    ts = np.asarray(grid)
    a = np.asarray(sch.alpha(grid))
    s = np.asarray(sch.sigma(grid))
    x_T = np.array([0.3, 1.1])

    def eps(k, z):
        return np.asarray(ref_mix.eps(jnp.asarray(z), a[k], s[k]))

    def ddim(k, j, z):
        e = eps(k, z)
        return a[j] * (z - s[k] * e) / a[k] + s[j] * e

    zs = [x_T, ddim(0, 1, x_T)]
    for k in range(1, len(ts) - 1):
        zk, zp = zs[k], zs[k - 1]
        delta_f = ddim(k, k + 1, zk) - zk
        delta_b = ddim(k, k - 1, zk) - zk
        zs.append(zp - (1 - g) * (zp - zk) - g * delta_b + delta_f)
    res = jd.generate(jd.BDIA(gamma=g), model, sch, grid, jnp.asarray(x_T))
    np.testing.assert_allclose(np.asarray(res.x), zs[-1], rtol=1e-12)
    np.testing.assert_allclose(np.asarray(res.companion), zs[-2], rtol=1e-12)
    out = jd.sample(jd.BDIA(gamma=g), model, sch, grid, jnp.asarray(x_T)).x
    np.testing.assert_allclose(np.asarray(out), zs[-1], rtol=1e-12)
    one = jnp.asarray(ts[:2])
    np.testing.assert_allclose(
        jd.sample(jd.BDIA(), model, sch, one, x_T).x,
        jd.sample(jd.DDIM(), model, sch, one, x_T).x,
        rtol=1e-14,
    )


def test_edict_matches_paper_equations(x64):
    """EDICT generation against eq. 14 of Wallace et al. with a_t = sqrt(abar_{t-1}/abar_t),
    b_t = sqrt(1 - abar_{t-1}) - sqrt(abar_{t-1} (1 - abar_t)/abar_t) (NumPy)."""
    sch, model, grid = _setup(5)
    p = 0.93
    mix = Mixture(WEIGHTS, MEANS, VARS)
    ab = np.asarray(sch.alpha(grid)) ** 2
    x = y = np.array([0.3, 1.1])
    for k in range(len(ab) - 1):
        at = np.sqrt(ab[k + 1] / ab[k])
        bt = np.sqrt(1 - ab[k + 1]) - np.sqrt(ab[k + 1] * (1 - ab[k]) / ab[k])

        def e(z, k=k):
            return np.asarray(mix.eps(jnp.asarray(z), np.sqrt(ab[k]), np.sqrt(1 - ab[k])))

        xi = at * x + bt * e(y)
        yi = at * y + bt * e(xi)
        x = p * xi + (1 - p) * yi
        y = p * yi + (1 - p) * x
    res = jd.generate(jd.EDICT(), model, sch, grid, jnp.array([0.3, 1.1]))
    np.testing.assert_allclose(np.asarray(res.x), x, rtol=1e-12)
    np.testing.assert_allclose(np.asarray(res.companion), y, rtol=1e-12)


def _ddpm_model(t, x):
    abar = jnp.asarray(np.cumprod(1.0 - jd.linear_betas()), x.dtype)[t.astype(jnp.int32)]
    return Mixture(WEIGHTS, MEANS, VARS).eps(x, jnp.sqrt(abar), jnp.sqrt(1.0 - abar))


@pytest.mark.parametrize("spacing", ["leading", "trailing"])
@pytest.mark.parametrize("n", [10, pytest.param(50, marks=pytest.mark.slow)])
def test_ddim_inversion_matches_diffusers(spacing, n, x64):
    """`DDIMInversion(eps_at_target=True)` on `ddpm_grid` = DDIMInverseScheduler
    (set_alpha_to_one=False) state by state in float64. "leading": diffusers' first step
    (from abar_0 to abar_0) is the identity, which `ddpm_grid` leaves out. The default
    convention (eps at the current time) differs from it by O(step)."""
    sch = jd.DiscreteDDPM()
    sp = jd.Leading() if spacing == "leading" else jd.Trailing()
    grid = jd.ddpm_grid(sch, n, sp)
    ref = DATA[f"traj_{spacing}_{n}"]
    np.testing.assert_array_equal(
        np.asarray(grid)[::-1][1:], DATA[f"timesteps_{spacing}_{n}"][-len(grid) + 1 :]
    )
    if spacing == "leading":
        np.testing.assert_allclose(ref[1], ref[0], rtol=1e-14)
        ref = ref[1:]
    x0 = jnp.asarray(DATA["x_0"])
    m = jd.DDIMInversion(eps_at_target=True)
    for k in range(1, len(grid)):  # each prefix of the inversion, from the data end
        sub = grid[len(grid) - 1 - k :]
        got = jd.invert(m, _ddpm_model, sch, sub, x0).x
        np.testing.assert_allclose(np.asarray(got), ref[k], rtol=1e-11, atol=1e-13)
        if k > 2:
            break
    got = jd.invert(m, _ddpm_model, sch, grid, x0).x
    np.testing.assert_allclose(np.asarray(got), ref[-1], rtol=1e-11, atol=1e-13)
    other = jd.invert(jd.DDIMInversion(), _ddpm_model, sch, grid, x0).x
    assert _rel(other, jnp.asarray(ref[-1])) > 1e-4


@pytest.mark.slow
def test_ddim_inversion_round_trip_is_first_order(x64):
    """Round-trip error of DDIM inversion + DDIM over 20..160 logSNR-uniform steps: fitted
    log-log slope within 0.15 of 1 for both eps conventions (the target-time one is still
    pre-asymptotic at 10 steps: pairwise slopes 0.69, 0.82, 0.91 from 10 to 80 steps)."""
    sch = jd.VPLinear()
    model = jd.GaussianMixture(WEIGHTS, MEANS, VARS).eps_model(sch)
    x0 = jnp.array([[0.7, -0.2], [-1.1, 0.6], [0.9, -0.8]])
    steps = (20, 40, 80, 160)
    for tgt in (False, True):
        errs = []
        for n in steps:
            grid = jd.time_grid(sch, n, jd.LogSNRUniform())

            def trip(x, grid=grid, tgt=tgt):
                xt = jd.invert(jd.DDIMInversion(eps_at_target=tgt), model, sch, grid, x).x
                return jd.generate(jd.DDIMInversion(), model, sch, grid, xt).x

            out = jax.vmap(trip)(x0)
            errs.append(float(jnp.sqrt(jnp.mean((out - x0) ** 2))))
        slope = -np.polyfit(np.log(steps), np.log(errs), 1)[0]
        assert abs(slope - 1) < 0.15, (tgt, slope, errs)


@pytest.mark.slow
def test_bdia_sampling_order(x64):
    """BDIA as a sampler against a tight PF-ODE solve (logSNR-uniform grids, 20..160
    steps): order 2 at gamma = 1, 1 at gamma = 0.5 (within 0.3), its `convergence_order`."""
    from ._exact import reference_pf_ode, vp_alpha, vp_eps_model, vp_sigma

    mix = Mixture(WEIGHTS, MEANS, VARS)
    sch = jd.VPLinear(t_min=1e-3, t_max=1.0)
    x_T = mix.sample(jax.random.key(0), 8, vp_alpha(1.0), vp_sigma(1.0))
    ref = jax.jit(jax.vmap(lambda x: reference_pf_ode(mix, x, 1.0, 1e-3, rtol=1e-12)))(x_T)
    steps = (20, 40, 80, 160)
    for sampler in (jd.BDIA(), jd.BDIA(gamma=0.5)):
        errs = []
        for n in steps:
            grid = jd.time_grid(sch, n, jd.LogSNRUniform())
            out = jax.vmap(
                lambda x, g=grid, sampler=sampler: (
                    jd.sample(sampler, vp_eps_model(mix), sch, g, x).x
                )
            )(x_T)
            errs.append(float(jnp.sqrt(jnp.mean((out - ref) ** 2))))
        slope = -np.polyfit(np.log(steps), np.log(errs), 1)[0]
        assert abs(slope - sampler.convergence_order) < 0.3, (sampler, slope, errs)


def test_bad_inputs():
    sch, model, grid = _setup(4)
    x = jnp.ones(2)
    with pytest.raises(ValueError, match="`gamma`"):
        jd.BDIA(gamma=0.0)
    with pytest.raises(ValueError, match="`gamma`"):
        jd.BDIA(gamma=1.5)
    with pytest.raises(ValueError, match="`mix`"):
        jd.EDICT(mix=0.0)
    with pytest.raises(ValueError, match="`mix`"):
        jd.EDICT(mix=float("nan"))
    with pytest.raises(TypeError, match="eps_at_target"):
        jd.DDIMInversion(eps_at_target=1)  # pyright: ignore[reportArgumentType]
    with pytest.raises(TypeError, match="method"):  # (the test-time type check, or ours)
        jd.invert(jd.DDIM(), model, sch, grid, x)  # pyright: ignore[reportArgumentType]
    with pytest.raises((TypeError, ValueError), match="companion"):
        jd.invert(jd.BDIA(), model, sch, grid, x, companion=jnp.ones(3))
    with pytest.raises(ValueError, match="`companion`"):
        jd.invert(jd.DDIMInversion(), model, sch, grid, x, companion=x)
    with pytest.raises(ValueError, match="at least 2 steps"):
        jd.generate(jd.BDIA(), model, sch, grid[-2:], x, companion=x)
    with pytest.raises(TypeError, match="`x_0`"):
        jd.invert(jd.EDICT(), model, sch, grid, jnp.ones(2, jnp.int32))
    with pytest.raises(ValueError, match="`x_T`"):
        jd.generate(jd.EDICT(), model, sch, grid, jnp.ones(3))
    with pytest.raises(ValueError, match="strictly decreasing"):
        jd.invert(jd.BDIA(), model, sch, grid[::-1], x)


def test_dtype_of_x_is_kept_with_a_float64_model(x64):
    """float32 x with a float64 model: the scan carries x's dtype (float32 results)."""
    sch, model, grid = _setup(3)
    x = jnp.array([0.7, -0.2], jnp.float32)
    for m in (jd.BDIA(), jd.EDICT(), jd.DDIMInversion()):
        inv = jd.invert(m, model, sch, grid, x)
        assert inv.x.dtype == jnp.float32
        assert jd.generate(m, model, sch, grid, inv.x).x.dtype == jnp.float32
