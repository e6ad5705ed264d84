"""PFGM++ (Xu et al. 2023): the perturbation kernel against SciPy's multivariate Student-t
and Beta laws, the D -> infinity limit (kernel moments and the sampler against the EDM ODE
of an independent Gaussian-mixture denoiser), the D-dependence of the exact empirical
sampler on a 2-D mixture, the loss against its closed-form expectation, training, and the
argument checks."""

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from scipy import stats

import jaxsci.diffusion as jd
from jaxsci.metrics import mmd2
from jaxsci.nn import ScoreMLP
from jaxsci.train import fit

EDM = jd.EDM()


@eqx.filter_jit
def _perturb_jit(kernel, y, sigma, keys):
    return jax.vmap(lambda k: kernel.perturb(k, y, sigma))(keys)


def _perturb_many(kernel, y, sigma, n, seed):
    """n draws of the kernel (one compilation per data dimension and n: D, y and sigma are
    traced)."""
    keys = jax.random.split(jax.random.key(seed), n)
    return np.asarray(_perturb_jit(kernel, jnp.asarray(y), jnp.asarray(sigma), keys))


@pytest.mark.slow
def test_kernel_log_prob_is_the_multivariate_t_and_the_gaussian_limit(x64):
    """p_sigma(x | y) = multivariate t with D degrees of freedom and scale sigma (SciPy);
    D = inf is N(y, sigma^2 I)."""
    x, y, s = np.array([0.3, -1.0, 2.0]), np.array([0.1, 0.2, -0.5]), 1.7
    for d in (1.0, 4.0, 130.0):
        k = jd.PFGMPPKernel(D=d, N=3)
        ref = stats.multivariate_t(loc=y, shape=s**2 * np.eye(3), df=d).logpdf(x)
        np.testing.assert_allclose(k.log_prob(jnp.asarray(x), jnp.asarray(y), s), ref, rtol=1e-12)
    k = jd.PFGMPPKernel(D=math.inf, N=3)
    ref = stats.multivariate_normal(y, s**2 * np.eye(3)).logpdf(x)
    np.testing.assert_allclose(k.log_prob(jnp.asarray(x), jnp.asarray(y), s), ref, rtol=1e-12)


@pytest.mark.parametrize("d", [1.0, 5.0, 128.0, math.inf])
def test_kernel_sampler_radial_law_moments_and_uniform_direction(x64, d):
    """8000 draws at sigma = 0.7 in N = 2. The radial law: R^2/(R^2 + r^2) ~ Beta(N/2, D/2)
    with r = sigma sqrt(D), and R^2/sigma^2 ~ chi^2_N for D = inf (KS against SciPy, 0.1%-level
    critical value 1.95/sqrt(8000) = 0.022). The second moment E||x - y||^2/(N sigma^2) =
    D/(D - 2) = 1 + 2/D + O(1/D^2) (D > 2), the Gaussian value 1 approached at the rate 1/D,
    within 4 standard errors. The direction is uniform (its mean is 0 within 4 standard
    errors 1/sqrt(N n))."""
    n_dim, sigma, n = 2, 0.7, 8000
    k = jd.PFGMPPKernel(D=d, N=n_dim)
    y = jnp.array([1.0, -2.0])
    x = _perturb_many(k, y, sigma, n, 0) - np.asarray(y)
    r2 = np.sum(x**2, axis=1)
    if math.isinf(d):
        ks = stats.kstest(r2 / sigma**2, stats.chi2(n_dim).cdf)
    else:
        ks = stats.kstest(r2 / (r2 + sigma**2 * d), stats.beta(n_dim / 2, d / 2).cdf)
    assert ks.statistic < 1.95 / np.sqrt(n), ks
    if d > 2:
        m2 = r2 / (n_dim * sigma**2)
        exact = 1.0 if math.isinf(d) else d / (d - 2)
        assert abs(m2.mean() - exact) < 4 * m2.std() / np.sqrt(n), (d, m2.mean(), exact)
    u = x / np.sqrt(r2)[:, None]
    assert np.all(np.abs(u.mean(0)) < 4 / np.sqrt(n_dim * n)), u.mean(0)


def _empirical_data(n, seed):
    return jax.random.normal(jax.random.key(seed), (n, 2), jnp.float64)


def test_empirical_denoiser_weights_are_normalised_kernel_densities(x64):
    """w_k = p_sigma(x | y_k) / sum_j p_sigma(x | y_j) with SciPy's multivariate t."""
    data = _empirical_data(6, 2)
    x, s, d = jnp.array([0.4, -0.2]), 0.8, 3.0
    den = jd.EmpiricalPFGMPPDenoiser(jd.PFGMPPKernel(D=d, N=2), data)
    p = np.array([stats.multivariate_t(loc=yk, shape=s**2 * np.eye(2), df=d).pdf(x) for yk in data])
    np.testing.assert_allclose(den.weights(s, x), p / p.sum(), rtol=1e-10)
    np.testing.assert_allclose(den(s, x), (p / p.sum()) @ np.asarray(data), rtol=1e-10)


@eqx.filter_jit
def _heun_batch(denoiser, ts, x_t):
    return jax.vmap(lambda x: jd.sample(jd.Heun(), denoiser, EDM, ts, x).x)(x_t)


def test_large_d_ode_recovers_the_edm_ode_at_rate_one_over_d(x64):
    """The PFGM++ ODE with the exact empirical denoiser at D against the EDM ODE with the
    exact denoiser of the same data written as a Gaussian mixture of (near-)zero variances
    (`GaussianMixture.eps_model`, an independent route), same Heun grid and starts: the
    difference falls tenfold per decade of D (measured: mean 2.7e-5, 2.7e-6, 2.7e-7 at
    D = 1e2, 1e3, 1e4) and D = inf agrees to rounding."""
    data = _empirical_data(16, 1)
    mix = jd.GaussianMixture(jnp.ones(16), data, jnp.full((16, 2), 1e-30))
    ref_den = jd.Denoiser(mix.eps_model(EDM), EDM, jd.EpsPrediction())
    ts = jd.time_grid(EDM, 32, jd.Karras())
    x_t = EDM.t_max * jax.random.normal(jax.random.key(3), (32, 2), jnp.float64)
    ref = _heun_batch(ref_den, ts, x_t)
    errs = []
    for d in (1e2, 1e3, 1e4, math.inf):
        k = jd.PFGMPPKernel(D=d, N=2)
        den = jd.Denoiser(jd.EmpiricalPFGMPPDenoiser(k, data), EDM, jd.X0Prediction())
        errs.append(float(jnp.mean(jnp.abs(_heun_batch(den, ts, x_t) - ref))))
    print("mean |x_D - x_EDM|:", errs)
    assert errs[3] < 1e-9, errs
    assert 1e-7 < errs[0] < 1e-3, errs
    for a, b in zip(errs[:2], errs[1:3], strict=True):
        assert 7 < a / b < 13, errs  # the 1/D rate: x10 per decade


def _energy_distance(x, data):
    """Energy distance between the law of the sample x (U-statistic) and the empirical law
    of `data` (exact): 2 E|X - Y| - E|X - X'| - E|Y - Y'| (Szekely & Rizzo 2013)."""
    x, data = np.asarray(x), np.asarray(data)

    def mean_dist(a, b):
        return np.mean(np.linalg.norm(a[:, None] - b[None], axis=-1))

    m = x.shape[0]
    exx = mean_dist(x, x) * m / (m - 1)
    return 2 * mean_dist(x, data) - exx - mean_dist(data, data)


def _ring(n, seed):
    ang = jnp.arange(8) * 2 * jnp.pi / 8
    means = 2.0 * jnp.stack([jnp.cos(ang), jnp.sin(ang)], axis=1)
    mix = jd.GaussianMixture(jnp.ones(8), means, jnp.full((8, 2), 0.05))
    return mix.sample(jax.random.key(seed), n)


@eqx.filter_jit
def _pfgmpp_samples(d, data, ts, key, n):
    k = jd.PFGMPPKernel(D=d, N=2)
    den = jd.Denoiser(jd.EmpiricalPFGMPPDenoiser(k, data), EDM, jd.X0Prediction())
    x_t = jax.vmap(lambda kk: k.prior(kk, EDM.t_max, (2,), jnp.float64))(jax.random.split(key, n))
    return _heun_batch(den, ts, x_t)


@pytest.mark.slow
def test_d_dependence_on_a_2d_mixture(x64):
    """The exact empirical-denoiser sampler (Heun on a Karras grid) on 128 points of an
    8-mode ring, at D in {1, 4, 128, inf}. What we measure: the energy distance between 256
    samples and the empirical law of the data. At 32 steps (NFE 63) every D is converged
    (the distance is the 256-sample Monte-Carlo level, < 0.01); at 4 steps (NFE 7) a
    moderate D = 4 is more robust to the step size than the diffusion limit (the paper's
    finding that smaller D is more robust than diffusion models, here for the step size),
    while D = 1 (PFGM) is hurt by its heavy-tailed prior."""
    data = _ring(128, 0)
    key = jax.random.key(4)
    ed = {}
    for n_steps in (4, 32):
        ts = jd.time_grid(EDM, n_steps, jd.Karras())
        for d in (1.0, 4.0, 128.0, math.inf):
            x = _pfgmpp_samples(jnp.asarray(d), data, ts, key, 256)
            ed[n_steps, d] = _energy_distance(x, data)
    print({k: round(v, 4) for k, v in ed.items()})
    assert all(ed[32, d] < 0.01 for d in (1.0, 4.0, 128.0, math.inf)), ed
    assert ed[4, 4.0] < 0.8 * ed[4, math.inf], ed
    assert ed[4, 1.0] > ed[4, 4.0], ed


@pytest.mark.slow
def test_loss_at_the_identity_model_matches_its_closed_form(x64):
    """With D_theta(x, sigma) = x the error is ||n||^2 / N, so the loss has the exact mean
    E[lambda(sigma) sigma^2] D/(D - 2) = (E[sigma^2]/sigma_data^2 + 1) D/(D - 2), E[sigma^2] =
    exp(2 P_mean + 2 P_std^2) (log-normal); Monte Carlo within 4 standard errors."""
    d, p_mean, p_std, sd = 12.0, -0.5, 0.4, 0.5
    loss = jd.PFGMPPLoss(jd.PFGMPPKernel(D=d, N=2), sigma_data=sd, p_mean=p_mean, p_std=p_std)
    batch = _empirical_data(1000, 7)
    fn = jax.jit(lambda k: loss(lambda s, x: x, batch, key=k)[0])
    vals = np.asarray(jax.lax.map(fn, jax.random.split(jax.random.key(8), 10)))
    exact = (math.exp(2 * p_mean + 2 * p_std**2) / sd**2 + 1) * d / (d - 2)
    se = vals.std(ddof=1) / np.sqrt(vals.size)
    assert abs(vals.mean() - exact) < 4 * se, (vals.mean(), exact, se)


class _Precond(eqx.Module):
    """EDM preconditioning D(x, s) = c_skip x + c_out F(c_noise, c_in x) (Karras et al.
    2022, table 1) around a ScoreMLP F."""

    net: ScoreMLP
    sd: float = 0.5

    def __call__(self, s, x):
        c_skip = self.sd**2 / (s**2 + self.sd**2)
        c_out = s * self.sd / jnp.sqrt(s**2 + self.sd**2)
        c_in = 1 / jnp.sqrt(s**2 + self.sd**2)
        return c_skip * x + c_out * self.net(jnp.log(s) / 4, c_in * x)


@pytest.mark.slow
def test_training_a_small_mlp_with_the_pfgmpp_loss():
    """A small preconditioned MLP trained with PFGMPPLoss (D = 128) on a two-mode 2-D
    mixture, sampled with Heun on a Karras grid from the PFGM++ prior: the MMD^2 of its
    samples to fresh data falls well below the untrained network's (the loss falls too)."""
    mix = jd.GaussianMixture(
        jnp.ones(2), jnp.array([[-1.0, 0.0], [1.0, 0.0]]), jnp.full((2, 2), 0.04)
    )
    train = mix.sample(jax.random.key(0), 4096)
    kernel = jd.PFGMPPKernel(D=128.0, N=2)
    model = _Precond(ScoreMLP(2, 64, 3, 16, key=jax.random.key(1), time_scale=1.0))
    trained, hist = fit(
        model,
        jd.PFGMPPLoss(kernel),
        train,
        optimizer=optax.adam(2e-3),
        key=jax.random.key(2),
        batch_size=256,
        num_steps=800,
        ema=0.99,
        progress=False,
    )
    ts = jd.time_grid(EDM, 24, jd.Karras())
    keys = jax.random.split(jax.random.key(3), 512)
    x_t = jax.vmap(lambda k: kernel.prior(k, EDM.t_max, (2,)))(keys)
    fresh = mix.sample(jax.random.key(4), 512)

    def quality(m):
        den = jd.Denoiser(m, EDM, jd.X0Prediction())
        return float(mmd2(_heun_batch(den, ts, x_t), fresh, [0.1, 0.3, 1.0]))

    before, after = quality(model), quality(trained)
    print(f"MMD^2 to data: untrained {before:.4f}, trained {after:.4f}")
    assert np.mean(hist["loss"][-100:]) < 0.8 * np.mean(hist["loss"][:100])
    assert after < 0.02 and after < 0.1 * before, (before, after)


def test_bad_inputs():
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="`D`"):
            jd.PFGMPPKernel(D=bad, N=2)
    with pytest.raises(ValueError, match="`N`"):
        jd.PFGMPPKernel(D=4.0, N=0)
    k = jd.PFGMPPKernel(D=4.0, N=2)
    with pytest.raises(ValueError, match="`y` must have N = 2 entries"):
        k.perturb(jax.random.key(0), jnp.zeros(3), 1.0)
    with pytest.raises(ValueError, match="`data\\[0\\]` must have N = 2 entries"):
        jd.EmpiricalPFGMPPDenoiser(k, jnp.zeros((5, 3)))
    with pytest.raises(ValueError, match="`batch\\[0\\]` must have N = 2 entries"):
        jd.PFGMPPLoss(k)(lambda s, x: x, jnp.zeros((4, 3)), key=jax.random.key(0))
    with pytest.raises(TypeError, match="kernel"):
        jd.PFGMPPLoss("pfgm")
    with pytest.raises(ValueError, match="`sigma_data`"):
        jd.PFGMPPLoss(k, sigma_data=0.0)
    with pytest.raises(TypeError, match="needs `key`"):
        jd.PFGMPPLoss(k)(lambda s, x: x, jnp.zeros((4, 2)))
