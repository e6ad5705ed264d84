"""SDE samplers (moments on Gaussian data), probability-flow log-likelihood, and the
schedule invariance of lambda-space samplers."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxsci.diffusion as jd

from ._exact import Mixture

GAUSS = Mixture([1.0], [[0.8, -0.5]], [[0.5, 0.2]])
MIX = Mixture([0.3, 0.7], [[-1.0, 0.5], [1.0, -0.5]], [[0.25, 0.25], [0.3, 0.2]])
N = 4000


def _model(mix, sch):
    return lambda t, x: mix.eps(x, sch.alpha(t), sch.sigma(t))


@pytest.mark.slow
@pytest.mark.parametrize(
    "sampler,steps",
    [
        (jd.EulerMaruyama(), 500),
        (jd.PredictorCorrector(snr=0.05), 300),
        (jd.DDIM(eta=1.0), 200),
        (jd.SDEDPMSolverPP2M(), 200),
    ],
    ids=["euler_maruyama", "predictor_corrector", "ddim_eta1", "sde_dpmpp_2m"],
)
def test_sde_moments(sampler, steps):
    """Sample mean/variances/covariance within 4 Monte-Carlo standard errors of the exact
    marginal N(a mu, a^2 v + s^2) at t_min (fixed seed)."""
    sch = jd.VPLinear()
    grid = jd.time_grid(sch, steps, jd.TimeUniform())
    k0, k1 = jax.random.split(jax.random.key(3))
    x_T = jax.random.normal(k0, (N, 2))
    keys = jax.random.split(k1, N)
    out = jax.vmap(lambda x, k: jd.sample(sampler, _model(GAUSS, sch), sch, grid, x, key=k).x)(
        x_T, keys
    )
    out = np.asarray(out, np.float64)
    a, s = float(sch.alpha(1e-3)), float(sch.sigma(1e-3))
    mean, var = a * GAUSS.means[0], a**2 * GAUSS.variances[0] + s**2
    se_mean = np.sqrt(var / N)
    assert np.all(np.abs(out.mean(0) - mean) < 4 * se_mean), (out.mean(0), mean)
    se_var = var * np.sqrt(2.0 / N)
    assert np.all(np.abs(out.var(0) - var) < 4 * se_var), (out.var(0), var)
    cov = np.cov(out.T)[0, 1]
    assert abs(cov) < 4 * np.sqrt(var[0] * var[1] / N)


@pytest.mark.slow
def test_log_likelihood_exact_and_hutchinson(x64):
    sch = jd.VPLinear()
    den = jd.Denoiser(_model(MIX, sch), sch)
    a_T, s_T = sch.alpha(sch.t_max), sch.sigma(sch.t_max)
    a0, s0 = sch.alpha(sch.t_min), sch.sigma(sch.t_min)
    prior = lambda x: MIX.logpdf(x, a_T, s_T)  # noqa: E731
    xs = MIX.sample(jax.random.key(4), 4, a0, s0)
    f = jax.jit(
        jax.vmap(
            lambda x: jd.log_likelihood(den, x, rtol=1e-9, atol=1e-9, prior_logpdf=prior).log_prob
        )
    )
    want = jax.vmap(lambda x: MIX.logpdf(x, a0, s0))(xs)
    np.testing.assert_allclose(f(xs), want, atol=1e-4, rtol=0)
    # Hutchinson: unbiased; mean over 64 probes within 4 standard errors of the exact value
    keys = jax.random.split(jax.random.key(5), 64)
    h = jax.jit(
        jax.vmap(
            lambda k: (
                jd.log_likelihood(
                    den, xs[0], method="hutchinson", key=k, rtol=1e-7, atol=1e-7, prior_logpdf=prior
                ).log_prob
            )
        )
    )(keys)
    se = np.std(np.asarray(h)) / np.sqrt(len(keys))
    assert abs(float(jnp.mean(h)) - float(want[0])) < 4 * se + 1e-6


@pytest.mark.slow
@pytest.mark.parametrize(
    "sampler",
    [jd.DPMSolverPPMultistep(3), jd.DEIS(3), jd.UniPC(2), jd.DPMSolver(3), jd.DDIM()],
    ids=["dpmpp_3m", "deis_3", "unipc_2", "dpm_solver_3", "ddim"],
)
def test_schedule_invariance(sampler, x64):
    """VP, VE and EDM run on the same lambda grid give the same x/alpha trajectory."""
    lams = jnp.linspace(-3.0, 4.0, 9)
    y_T = MIX.sample(jax.random.key(6), 3, 1.0, float(jnp.exp(3.0)))
    trajs = []
    for sch in (jd.VPLinear(), jd.VE(), jd.EDM()):
        grid = sch.t_from_lambda(lams)
        a = sch.alpha(grid)
        res = jax.vmap(
            lambda y, sch=sch, grid=grid, a=a: (
                jd.sample(
                    sampler, _model(MIX, sch), sch, grid, a[0] * y, save_trajectory=True
                ).trajectory
            )
        )(y_T)
        trajs.append(res / a[None, :, None])
    np.testing.assert_allclose(trajs[1], trajs[0], rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(trajs[2], trajs[0], rtol=1e-9, atol=1e-9)
