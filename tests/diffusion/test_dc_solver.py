"""DC-Solver (Zhao et al. 2024): UniPC with dynamic compensation, and its ratio search.

References: with every ratio 1 it is UniPC (to round-off); the compensation weights are the
Lagrange basis in t (against NumPy's polynomial fit, exact on quadratics); on the
exact-score mixture, the calibrated solver beats UniPC-3 on held-out noises against an
independent Dopri8 solve of the probability-flow ODE (`_exact.reference_pf_ode`); the
`gmm_samplers` pipeline shows it on its shipped config.
"""

import math
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _params import marked_params

import jaxsci.diffusion as jd
from jaxsci.diffusion._sampler import grid_arrays
from jaxsci.pipelines import run_config

from ._exact import Mixture, reference_pf_ode, vp_eps_model

ROOT = Path(__file__).resolve().parents[2]
W, MU, VAR = [0.3, 0.7], [[-1.0, 0.5], [1.0, -0.5]], [[0.25, 0.25], [0.3, 0.2]]
SCH = jd.VPLinear()


def named(arg: str) -> str:
    """Our message naming `arg`, or the jaxtyping import hook's ("parameter 'arg'")."""
    return rf"`{arg}`|parameter '{arg}'"


def _setup():
    mix = Mixture(W, MU, VAR)
    den = jd.Denoiser(vp_eps_model(mix), SCH)
    a_T, s_T = float(SCH.alpha(SCH.t_max)), float(SCH.sigma(SCH.t_max))
    return mix, den, a_T, s_T


def _final(sampler, den, grid, x_T):
    return jax.vmap(lambda x: jd.sample(sampler, den, SCH, grid, x).x)(x_T)


UNIT_CASES = {
    "unipc3": (jd.UniPC(order=3), np.ones(7)),
    # a history buffer longer than the order (dc_order + 1 = 3 outputs), ratios=None
    "unipc2_no_lof": (jd.UniPC(order=2, lower_order_final=False), None),
}


@pytest.mark.parametrize("case", marked_params(UNIT_CASES, slow=set(UNIT_CASES)))
def test_unit_ratios_are_unipc(case, x64):
    """rho_i = 1 on every step (or ratios=None) reproduce the wrapped UniPC to round-off,
    the whole trajectory (warm-up, corrector, capped final steps included)."""
    unipc, ratios = UNIT_CASES[case]
    mix, den, a_T, s_T = _setup()
    x_T = mix.sample(jax.random.key(1), 4, a_T, s_T)
    grid = jd.time_grid(SCH, 7)
    want = _final(unipc, den, grid, x_T)
    got = _final(jd.DCSolver(unipc, ratios), den, grid, x_T)
    np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-14)


def test_compensation_weights_are_the_lagrange_basis_in_t(x64):
    """Weights of m_i, m_{i-1}, m_{i-2} at t_{i-1} + r (t_i - t_{i-1}) against NumPy: the
    interpolant of any quadratic in t is that quadratic (np.polyval), for r in and outside
    [0, 1]; r = 1 gives exactly (1, 0, 0); steps before K outputs exist stay (1, 0, 0)."""
    grid = grid_arrays(SCH, jd.time_grid(SCH, 6, jd.Karras()))
    weights = jax.jit(jd.dc_lagrange_weights, static_argnums=3)
    t = np.asarray(grid.t)
    coef = np.asarray([0.7, -1.3, 0.4])  # an arbitrary quadratic in t
    for i in (2, 4, 5):
        nodes = t[[i, i - 1, i - 2]]
        for r in (0.3, 0.9, 1.25):
            w = np.asarray(weights(grid, jnp.asarray(i), jnp.asarray(r), 2))
            t_eval = t[i - 1] + r * (t[i] - t[i - 1])
            np.testing.assert_allclose(
                w @ np.polyval(coef, nodes), np.polyval(coef, t_eval), rtol=1e-12
            )
        w1 = weights(grid, jnp.asarray(i), jnp.asarray(1.0), 2)
        np.testing.assert_array_equal(np.asarray(w1), [1.0, 0.0, 0.0])
    for i in (0, 1):
        w = weights(grid, jnp.asarray(i), jnp.asarray(1.0), 2)
        np.testing.assert_array_equal(np.asarray(w), [1.0, 0.0, 0.0])


# The official implementation (github.com/wl-zhao/DC-Solver,
# diffusers/src/diffusers/schedulers/scheduling_dcsolver_multistep.py, run in diffusers 0.42.1
# with torch float32 samples): DCSolverMultistepScheduler(solver_order=3, dc_order=2,
# lower_order_final=True, disable_corrector=[], timestep_spacing="linspace") and its default
# 1000 linear betas, NFE 5 (training steps 999, 799, 599, 400, 200, then 0), `dc_ratios` set
# by hand, the exact eps of the mixture W, MU, VAR at abar_n (torch float64, cast to
# float32), from the noises OFFICIAL_X_T. Generated as in
# benchmarks/bench_dc_solver_official.py (`run_official`).
OFFICIAL_X_T = [[0.3, -1.2], [1.5, 0.4], [-0.7, 0.9], [0.1, 2.0]]
OFFICIAL_RATIOS = [1.0, 1.0, 1.3, 0.7, 1.2]
OFFICIAL_X0 = {
    "ratios_1": [
        [0.99733996, -0.74618995],
        [1.41940105, -0.38095838],
        [-0.71666586, 0.49453551],
        [-0.29282168, 0.68456322],
    ],  # fmt: skip
    "dc": [
        [1.03322351, -0.80554485],
        [1.49442136, -0.37485012],
        [-0.80128974, 0.55660689],
        [-0.31794184, 0.77462643],
    ],  # fmt: skip
}


@pytest.mark.slow  # 16-24 s under xdist; CI's slow tier runs it
def test_matches_the_official_implementation(x64):
    """On the official scheduler's own discrete schedule (`DiscreteDDPM`, whose time is the
    training step, the variable the official code interpolates in) and grid, with UniPC-3
    capping the final steps on every grid as diffusers does: all ratios 1 and the ratios
    OFFICIAL_RATIOS reproduce the official samples to its float32 rounding (the compensation
    moves them by up to 0.09, 1e4 times the tolerance); all ratios 1 are jaxsci's UniPC to
    round-off."""
    mix = jd.GaussianMixture(W, MU, VAR)
    sch = jd.DiscreteDDPM()
    den = jd.Denoiser(mix.eps_model(sch), sch)
    grid = jnp.asarray([999.0, 799.0, 599.0, 400.0, 200.0, 0.0])
    x_T = jnp.asarray(OFFICIAL_X_T, jnp.float64)
    unipc = jd.UniPC(order=3, lower_order_final_below=math.inf)
    run = jax.vmap(
        lambda r, x: jd.sample(jd.DCSolver(unipc, r), den, sch, grid, x).x, in_axes=(None, 0)
    )
    ones = run(jnp.ones(5), x_T)
    np.testing.assert_allclose(ones, OFFICIAL_X0["ratios_1"], atol=2e-5)
    dc = run(jnp.asarray(OFFICIAL_RATIOS), x_T)
    np.testing.assert_allclose(dc, OFFICIAL_X0["dc"], atol=2e-5)
    # rho = 1 is the wrapped UniPC to round-off (more cases: test_unit_ratios_are_unipc).
    want = jax.vmap(lambda x: jd.sample(unipc, den, sch, grid, x).x)(x_T)
    np.testing.assert_allclose(ones, want, rtol=1e-13, atol=1e-14)


def test_bad_input_is_refused():
    mix, den, a_T, s_T = _setup()
    x_T = np.zeros((3, 2), np.float32)
    grid = jd.time_grid(SCH, 5)
    with pytest.raises(ValueError, match=r"`ratios` has 4 entries.*grid has 5 steps"):
        jd.sample(jd.DCSolver(ratios=np.ones(4)), den, SCH, grid, x_T[0])
    with pytest.raises(ValueError, match="`ratios` must be a 1-D"):
        jd.DCSolver(ratios=np.ones((5, 1)))
    with pytest.raises(ValueError, match="`ratios` contains non-finite"):
        jd.DCSolver(ratios=np.asarray([1.0, np.nan, 1.0]))
    with pytest.raises(TypeError, match=named("unipc")):
        jd.DCSolver(jd.DDIM())  # pyright: ignore[reportArgumentType]
    with pytest.raises(ValueError, match="`dc_order`"):
        jd.DCSolver(dc_order=4)
    with pytest.raises(TypeError, match=named("sampler")):
        jd.dc_calibrate(jd.DDIM(), den, grid, x_T, x_T)  # pyright: ignore[reportArgumentType]
    # Shape errors: ours (ValueError) or, under the jaxtyping import hook, its TypeError.
    with pytest.raises((ValueError, TypeError), match=named("reference_x0")):
        jd.dc_calibrate(jd.DCSolver(), den, grid, x_T, x_T[:2])
    with pytest.raises((ValueError, TypeError), match=named("x_T")):
        jd.dc_calibrate(jd.DCSolver(), den, grid, x_T[0], x_T[0])
    with pytest.raises(ValueError, match="`iterations`"):
        jd.dc_calibrate(jd.DCSolver(), den, grid, x_T, x_T, iterations=0)
    with pytest.raises(ValueError, match="`learning_rate`"):
        jd.dc_calibrate(jd.DCSolver(), den, grid, x_T, x_T, learning_rate=-1.0)
    with pytest.raises(ValueError, match="`max_deviation`"):
        jd.dc_calibrate(jd.DCSolver(), den, grid, x_T, x_T, max_deviation=0.0)


@pytest.mark.slow
def test_calibrated_dc_solver_beats_unipc3_on_held_out_noises(x64):
    """Ratios searched on 10 trajectories (the paper's count) from one set of noises; errors
    measured on 64 other noises against a Dopri8 (rtol 1e-10) solve of the PF-ODE, at NFE 5
    and 10: below UniPC-3 at its defaults and at the gmm_samplers settings (no lower-order
    final steps). The search lowers the calibration loss and the ratios are finite."""
    mix, den, a_T, s_T = _setup()
    x_cal = mix.sample(jax.random.key(11), 10, a_T, s_T)
    x_test = mix.sample(jax.random.key(12), 64, a_T, s_T)
    ref = jax.jit(jax.vmap(lambda x: reference_pf_ode(mix, x, SCH.t_max, SCH.t_min)))
    ref_cal, ref_test = ref(x_cal), ref(x_test)

    def err(x):
        return float(np.sqrt(np.mean((np.asarray(x) - np.asarray(ref_test)) ** 2)))

    for nfe in (5, 10):
        grid = jd.time_grid(SCH, nfe)
        dc, info = jd.dc_calibrate(jd.DCSolver(), den, grid, x_cal, ref_cal)
        assert dc.ratios is not None and dc.ratios.shape == (nfe,)
        assert np.all(np.abs(np.asarray(dc.ratios) - 1.0) < 0.5)  # max_deviation, finite
        assert int(info.iterations) == 200 and info.loss.shape == (200,)
        assert float(info.final_loss) < 0.9 * float(info.initial_loss)
        e_dc = err(_final(dc, den, grid, x_test))
        for unipc in (jd.UniPC(order=3), jd.UniPC(order=3, lower_order_final=False)):
            e_u = err(_final(unipc, den, grid, x_test))
            print(nfe, unipc.lower_order_final, e_u, e_dc)
            assert e_dc < e_u, (nfe, unipc.lower_order_final, e_dc, e_u)


@pytest.mark.slow
def test_gmm_samplers_dc_solver_at_or_below_unipc3(tmp_path):
    """The shipped gmm_samplers config (its mixture, 256 scored noises, Dopri8 rtol 1e-10),
    restricted to unipc_3 and dc_solver at NFE 5 and 10: dc_solver's error_rms is at or
    below unipc_3's."""
    _, m = run_config(
        ROOT / "configs/gmm_samplers.yaml",
        tmp_path / "run",
        ["samplers=[unipc_3, dc_solver]", "nfe=[5, 10]", "plot.enabled=false"],
        echo=False,
    )
    rms = m["error_rms"]
    print(rms)
    for nfe in ("5", "10"):  # metrics.json's keys
        assert rms["dc_solver"][nfe] <= rms["unipc_3"][nfe], (nfe, rms)
