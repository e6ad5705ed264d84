"""Training losses against closed forms for Gaussian data.

For x0 ~ N(m, diag(v)) and x_t = a x0 + s eps the posterior means are linear in x:
eps*(t, x) = s (x - a m) / (a^2 v + s^2), x0*(t, x) = m + a v (x - a m) / (a^2 v + s^2), and
the minimal eps-space error per coordinate is Var(eps | x_t) = a^2 v / (a^2 v + s^2). The
minimum of the DSM objective is therefore the 1-D integral over t of the weight times that
variance (times the target factor), computed here by adaptive quadrature (scipy) from the
VP/VE coefficients written out independently of jaxsci. The flow-matching minimum is the
integral of Var(u | x_t) = v (a + s)^2 / (a^2 v + s^2) for the rectified flow (a = 1 - t,
s = t). Monte-Carlo estimates use fixed keys and are compared within 4 standard errors.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from scipy import integrate

import jaxsci.diffusion as jd
from jaxsci.nn import ScoreMLP
from jaxsci.train import fit

from ._exact import BETA_MAX, BETA_MIN

M = np.array([0.5, -1.0])
V = np.array([0.3, 2.0])
SIG_MIN, SIG_MAX = 0.01, 50.0  # VE defaults
T_MIN, T_MAX = 1e-3, 1.0


def named(arg: str) -> str:
    """A message naming `arg`: ours (`arg`), or the jaxtyping import hook's type-check error
    ("parameter 'arg'", a TypeError) when the test run enables it."""
    return rf"`{arg}`|parameter '{arg}'"


# --- independent closed forms (numpy, float64) --------------------------------------------


def coeffs(kind, t):
    """(a, s, da, ds, lambda') for VP-linear (beta in [0.1, 20]) and VE (sigma in [0.01, 50])."""
    t = np.asarray(t, float)
    if kind == "vp":
        beta = BETA_MIN + t * (BETA_MAX - BETA_MIN)
        a = np.exp(-0.25 * t**2 * (BETA_MAX - BETA_MIN) - 0.5 * t * BETA_MIN)
        s = np.sqrt(1.0 - a**2)
        return a, s, -0.5 * beta * a, 0.5 * beta * a**2 / s, -0.5 * beta / s**2
    rate = np.log(SIG_MAX / SIG_MIN)
    s = SIG_MIN * np.exp(rate * t)
    return np.ones_like(t), s, np.zeros_like(t), rate * s, -rate * np.ones_like(t)


def target_factor(kind, target, t):
    a, s, *_ = coeffs(kind, t)
    return {"eps": 1.0, "x0": (s / a) ** 2, "v": ((a**2 + s**2) / a) ** 2}[target]


def weight(kind, target, weighting, t, gamma=5.0):
    a, s, _, _, dlam = coeffs(kind, t)
    snr = (a / s) ** 2
    if weighting == "uniform":
        return 1.0
    if weighting == "snr":
        return snr
    if weighting == "min_snr":  # Hang et al. 2023: x0-space weight min(SNR, gamma)
        return np.minimum(snr, gamma) * (s / a) ** 2 / target_factor(kind, target, t)
    return -2.0 * dlam / target_factor(kind, target, t)  # g^2 / sigma^2 in eps space


def dsm_minimum(kind, target, weighting, t0=T_MIN, t1=T_MAX):
    def integrand(t):
        a, s, *_ = coeffs(kind, t)
        var_eps = np.mean(a**2 * V / (a**2 * V + s**2))
        return weight(kind, target, weighting, t) * target_factor(kind, target, t) * var_eps

    val, _ = integrate.quad(integrand, t0, t1, limit=400, epsabs=1e-12, epsrel=1e-10)
    return val / (t1 - t0)


def exact_model(kind, parameterization):
    """The Bayes-optimal prediction for Gaussian data, in `parameterization`."""
    m, v = jnp.asarray(M, jnp.float32), jnp.asarray(V, jnp.float32)
    beta_rate = BETA_MAX - BETA_MIN
    rate = float(np.log(SIG_MAX / SIG_MIN))

    def model(t, x):
        if kind == "vp":
            beta = BETA_MIN + t * beta_rate
            a = jnp.exp(-0.25 * t**2 * beta_rate - 0.5 * t * BETA_MIN)
            s = jnp.sqrt(1.0 - a**2)
            da, ds = -0.5 * beta * a, 0.5 * beta * a**2 / s
        else:
            a, s = 1.0, SIG_MIN * jnp.exp(rate * t)
            da, ds = 0.0, rate * s
        r = (x - a * m) / (a**2 * v + s**2)
        eps, x0 = s * r, m + a * v * r
        return {
            "eps": eps,
            "x0": x0,
            "v": a * eps - s * x0,
            "score": -eps / s,
            "flow": da * x0 + ds * eps,
        }[parameterization]

    return model


def data(key, n):
    z = jax.random.normal(key, (n, 2))
    return jnp.asarray(M, jnp.float32) + jnp.sqrt(jnp.asarray(V, jnp.float32)) * z


def mc(loss, model, n_batches=48, batch=4096, seed=0):
    """Mean and standard error of the loss over independent batches (fixed keys)."""
    keys = jax.random.split(jax.random.key(seed), n_batches)
    vals = np.asarray(_mc_values(loss, model, keys, batch), np.float64)
    return vals.mean(), vals.std(ddof=1) / np.sqrt(n_batches)


@eqx.filter_jit
def _mc_values(loss, model, keys, batch):
    def one(k):
        kd, kl = jax.random.split(k)
        return loss(model, data(kd, batch), key=kl)[0]

    return jax.lax.map(one, keys)


SCHEDULES = {"vp": jd.VPLinear(t_min=T_MIN, t_max=T_MAX), "ve": jd.VE()}
# the config names of the cases -> library objects
PARAM = {
    "eps": jd.EpsPrediction(),
    "x0": jd.X0Prediction(),
    "v": jd.VPrediction(),
    "score": jd.ScorePrediction(),
    "flow": jd.FlowPrediction(),
}
WEIGHT = {
    "uniform": jd.UniformWeighting(),
    "snr": jd.SNRWeighting(),
    "min_snr": jd.MinSNRWeighting(5.0),
    "likelihood": jd.LikelihoodWeighting(),
}
TIMES = {
    "uniform": jd.UniformTimes(),
    "logsnr": jd.LogSNRTimes(),
    "stratified": jd.StratifiedTimes(),
}


def dsm(sch, param, target, weighting, times="uniform"):
    """The DSM loss of a case given by names."""
    return jd.DenoisingScoreMatching(
        sch, PARAM[param], PARAM[target], WEIGHT[weighting], time_sampling=TIMES[times]
    )


# (schedule, model parameterisation, target, weighting, time sampling)
MIN_CASES = [
    ("vp", "eps", "eps", "uniform", "stratified"),
    ("vp", "x0", "v", "min_snr", "logsnr"),
    ("vp", "score", "x0", "snr", "uniform"),
    ("vp", "flow", "eps", "likelihood", "logsnr"),
    ("ve", "x0", "x0", "min_snr", "logsnr"),
]


@pytest.mark.parametrize("kind, param, target, weighting, times", MIN_CASES)
@pytest.mark.slow  # 12-16 s under xdist; CI's slow tier runs it
def test_dsm_at_exact_model_equals_analytic_minimum(kind, param, target, weighting, times):
    sch = SCHEDULES[kind]
    t0, t1 = float(sch.t_min), float(sch.t_max)
    loss = dsm(sch, param, target, weighting, times)
    mean, se = mc(loss, exact_model(kind, param))
    ref = dsm_minimum(kind, target, weighting, t0, t1)
    print(
        f"{kind} {param}->{target} {weighting} {times}: MC {mean:.5g} +- {se:.2g}, exact {ref:.5g}"
    )
    assert abs(mean - ref) < 4 * se + 1e-4 * abs(ref), (mean, se, ref)


@pytest.mark.parametrize(
    "target, weighting",
    [
        # 5 s: CI runs the slow tier (fast-tier budget)
        pytest.param("eps", "uniform", marks=pytest.mark.slow),
        ("v", "likelihood"),
    ],
)
def test_dsm_excess_of_offset_model(target, weighting):
    """An offset delta on the eps prediction adds exactly mean(delta^2) times the time
    average of w c_F (common random numbers: the cross term has mean zero)."""
    sch = SCHEDULES["vp"]
    exact = exact_model("vp", "eps")
    delta = jnp.asarray([0.1, -0.2])

    def shifted(t, x):
        return exact(t, x) + delta

    loss = dsm(sch, "eps", target, weighting, "logsnr")

    def diff(model_a, model_b):
        return lambda m, b, *, key: (loss(model_a, b, key=key)[0] - loss(model_b, b, key=key)[0],)

    mean, se = mc(diff(shifted, exact), None)

    def integrand(t):
        return weight("vp", target, weighting, t) * target_factor("vp", target, t)

    avg = integrate.quad(integrand, T_MIN, T_MAX, limit=400)[0] / (T_MAX - T_MIN)
    ref = float(jnp.mean(delta**2)) * avg
    print(f"{target} {weighting}: excess MC {mean:.5g} +- {se:.2g}, exact {ref:.5g}")
    assert mean > 0 and abs(mean - ref) < 4 * se + 1e-3 * ref, (mean, se, ref)


class LinearEps(eqx.Module):
    """eps(t, x) = s (x - a mean) / (a^2 var + s^2): the Gaussian family, linear in x."""

    mean: jax.Array
    log_var: jax.Array

    def __call__(self, t, x):
        beta_rate = BETA_MAX - BETA_MIN
        a = jnp.exp(-0.25 * t**2 * beta_rate - 0.5 * t * BETA_MIN)
        s = jnp.sqrt(1.0 - a**2)
        return s * (x - a * self.mean) / (a**2 * jnp.exp(self.log_var) + s**2)


def test_dsm_gradient_vanishes_at_exact_linear_denoiser():
    """v target with min-SNR weighting (a non-trivial weight and target conversion)."""
    sch = SCHEDULES["vp"]
    loss = dsm(sch, "eps", "v", "min_snr")

    @jax.jit
    def all_grads(model, keys):
        def one(k):
            kd, kl = jax.random.split(k)
            g = eqx.filter_grad(lambda m: loss(m, data(kd, 4096), key=kl)[0])(model)
            return jnp.concatenate([g.mean, g.log_var])

        return jax.lax.map(one, keys)

    def grads(model, n=32):
        g = np.asarray(all_grads(model, jax.random.split(jax.random.key(1), n)), np.float64)
        return g.mean(0), g.std(0, ddof=1) / np.sqrt(n)

    exact = LinearEps(jnp.asarray(M, jnp.float32), jnp.log(jnp.asarray(V, jnp.float32)))
    g, se = grads(exact)
    print("gradient at the exact denoiser", g, "+-", se)
    assert np.all(np.abs(g) < 4 * se), (g, se)
    # The test can fail: a shifted mean and variance give clearly non-zero gradients.
    off = LinearEps(exact.mean + 0.3, exact.log_var - 0.3)
    g_off, se_off = grads(off)
    assert np.all(np.abs(g_off) > 8 * se_off), (g_off, se_off)


def exact_velocity(t, x):
    """E[eps - x0 | x_t = x] for the rectified flow: -m + (s - a v)(x - a m)/(a^2 v + s^2)."""
    m, v = jnp.asarray(M, jnp.float32), jnp.asarray(V, jnp.float32)
    a, s = 1.0 - t, t
    return -m + (s - a * v) * (x - a * m) / (a**2 * v + s**2)


@pytest.mark.slow
def test_flow_matching_exact_velocity_attains_analytic_minimum():
    loss = jd.FlowMatching()
    mean, se = mc(loss, exact_velocity)

    def integrand(t):
        a, s = 1.0 - t, t
        return np.mean(V * (a + s) ** 2 / (a**2 * V + s**2))

    ref = integrate.quad(integrand, 0.0, 1.0, limit=200)[0]
    print(f"flow matching: MC {mean:.5g} +- {se:.2g}, exact {ref:.5g}")
    assert abs(mean - ref) < 4 * se, (mean, se, ref)

    # Scaling the velocity by 0.9 adds exactly 0.01 E|u*|^2 / d (common random numbers:
    # the cross term 2 (0.1 u*) . (u - u*) has mean zero), with
    # E[u*^2] = m^2 + (s - a v)^2 / (a^2 v + s^2) per coordinate.
    def diff(m, b, *, key):
        slow = loss(lambda t, x: 0.9 * exact_velocity(t, x), b, key=key)[0]
        return (slow - loss(exact_velocity, b, key=key)[0],)

    excess, se_x = mc(diff, None)

    def u2(t):
        a, s = 1.0 - t, t
        return np.mean(M**2 + (s - a * V) ** 2 / (a**2 * V + s**2))

    ref_x = 0.01 * integrate.quad(u2, 0.0, 1.0, limit=200)[0]
    print(f"excess of 0.9 u*: MC {excess:.5g} +- {se_x:.2g}, exact {ref_x:.5g}")
    assert excess > 0 and abs(excess - ref_x) < 4 * se_x, (excess, se_x, ref_x)


def test_flow_matching_general_schedule_matches_rectified_flow_velocity_target():
    """With a VP interpolant the conditional velocity is a' x0 + s' eps; at the exact flow
    prediction the loss is the integral of Var(u | x_t) = v (a' s - a s')^2 ... written as
    Var(u) - Cov(u, x)^2 / Var(x) per coordinate."""
    sch = SCHEDULES["vp"]
    loss = jd.FlowMatching(sch)
    mean, se = mc(loss, exact_model("vp", "flow"))

    def integrand(t):
        a, s, da, ds, _ = coeffs("vp", t)
        var_u = da**2 * V + ds**2
        cov = da * a * V + ds * s
        return np.mean(var_u - cov**2 / (a**2 * V + s**2))

    ref = integrate.quad(integrand, T_MIN, T_MAX, limit=400)[0] / (T_MAX - T_MIN)
    print(f"VP flow matching: MC {mean:.5g} +- {se:.2g}, exact {ref:.5g}")
    assert abs(mean - ref) < 4 * se + 1e-4 * ref, (mean, se, ref)


@pytest.mark.slow
def test_training_decreases_loss():
    """A small ScoreMLP trained with `fit` (EMA on) moves most of the way from its initial
    loss to the analytic minimum on Gaussian data (measured: 1.03 -> 0.268, minimum 0.259).
    Flow matching trains through the same interface (the 2-D pipeline test covers DSM
    sampling quality)."""
    sch = SCHEDULES["vp"]
    loss = dsm(sch, "eps", "eps", "uniform")
    ref = dsm_minimum("vp", "eps", "uniform")
    net = ScoreMLP(2, 32, 2, 16, key=jax.random.key(0), time_scale=100.0)
    train = data(jax.random.key(5), 4096)
    trained, hist = fit(
        net,
        loss,
        train,
        optimizer=optax.adam(3e-3),
        key=jax.random.key(6),
        batch_size=128,
        num_steps=200,
        ema=0.99,
        progress=False,
    )
    before, _ = mc(loss, net, n_batches=8, seed=9)
    after, se = mc(loss, trained, n_batches=8, seed=9)
    print(f"dsm: loss {before:.4g} -> {after:.4g} (+- {se:.2g}), minimum {ref:.4g}")
    assert np.mean(hist["loss"][-40:]) < np.mean(hist["loss"][:40])
    assert after - ref < 0.25 * (before - ref), (before, after, ref)


def test_bad_input_errors():
    sch = SCHEDULES["vp"]
    with pytest.raises(TypeError, match=named("target")):
        jd.DenoisingScoreMatching(sch, target="score")
    with pytest.raises(TypeError, match=named("weighting")):
        jd.DenoisingScoreMatching(sch, weighting="p2")
    with pytest.raises(TypeError, match=named("time_sampling")):
        jd.DenoisingScoreMatching(sch, time_sampling="lognormal")
    with pytest.raises(TypeError, match=named("parameterization")):
        jd.DenoisingScoreMatching(sch, "noise")
    with pytest.raises(ValueError, match="`gamma` must be finite and positive, got 0.0"):
        jd.MinSNRWeighting(gamma=0.0)
    with pytest.raises(ValueError, match="`t_min` < `t_max`"):
        jd.DenoisingScoreMatching(sch, t_min=0.5, t_max=0.5)
    with pytest.raises(TypeError, match=named("schedule")):
        jd.DenoisingScoreMatching("vp_linear")
    # the rectified flow's [0, 1] has infinite log-SNR at both ends
    with pytest.raises(ValueError, match="`time_sampling` LogSNRTimes needs a finite log-SNR"):
        jd.FlowMatching(time_sampling=jd.LogSNRTimes())
    loss = jd.DenoisingScoreMatching(sch)
    model = exact_model("vp", "eps")
    x = data(jax.random.key(0), 8)
    with pytest.raises(TypeError, match="needs `key`"):
        loss(model, x)
    with pytest.raises(TypeError, match="`batch` must be an array"):
        loss(model, [x, x], key=jax.random.key(0))
    with pytest.raises(ValueError, match=r"model returned shape \(8, 1\)"):
        loss(lambda t, x: x[:1], x, key=jax.random.key(0))
    with pytest.raises(ValueError, match=r"model returned shape"):
        jd.FlowMatching()(lambda t, x: x.sum(), x, key=jax.random.key(0))
