"""The loss classes: values against numpy/closed forms, PINN derivatives and causal weights,
rollouts of a linear model, and errors that name the offending argument."""

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from jaxsci import losses

from .test_scores import _energy_numpy


class Linear(eqx.Module):
    """u -> a * u (a learnable scalar): a one-step model with a closed-form rollout."""

    a: jax.Array

    def __call__(self, u):
        return self.a * u


class GaussianSampler(eqx.Module):
    """x -> x + sigma * N(0, 1): a generative model whose distribution is known exactly."""

    sigma: jax.Array

    def __call__(self, x, *, key):
        return x + self.sigma * jax.random.normal(key, x.shape, x.dtype)


class MeanLogVar(eqx.Module):
    log_var: jax.Array

    def __call__(self, x):
        return 2.0 * x, jnp.full_like(x, self.log_var)


def _data(seed=0, shape=(5, 2, 16)):
    rng = np.random.default_rng(seed)
    return jnp.asarray(rng.normal(size=shape)), jnp.asarray(rng.normal(size=shape))


def test_mse_and_relative_l2_match_numpy(x64):
    x, y = _data()
    model = Linear(jnp.asarray(1.5))
    p = 1.5 * np.asarray(x)
    t = np.asarray(y)
    mse, _ = losses.MSELoss()(model, (x, y))
    assert float(mse) == pytest.approx(np.mean((p - t) ** 2), rel=1e-12)
    rel, aux = losses.RelativeL2Loss()(model, (x, y))
    per = [np.linalg.norm(p[b] - t[b]) / np.linalg.norm(t[b]) for b in range(len(t))]
    assert float(rel) == pytest.approx(np.mean(per), rel=1e-12)
    assert float(aux["loss"]) == float(rel)


def test_sobolev_loss_zero_is_mse_and_h_minus_one_is_analytic(x64):
    x, y = _data(1)
    model = Linear(jnp.asarray(0.7))
    mse, _ = losses.MSELoss()(model, (x, y))
    h0, _ = losses.SobolevLoss(0.0, length=2.0)(model, (x, y))
    assert float(h0) == pytest.approx(float(mse), rel=1e-12)
    # Error e = sin(2 pi 3 x) on [0, 1): ||e||^2_{H^-1, seminorm} = (1/2) kappa^-2,
    # averaged over the grid measure and one channel.
    n = 32
    grid = np.arange(n) / n
    target = jnp.asarray(np.sin(2 * np.pi * 3 * grid))[None, None]  # (batch 1, channel 1, n)
    zero = Linear(jnp.asarray(0.0))
    val, _ = losses.SobolevLoss(-1.0, seminorm=True)(zero, (jnp.zeros_like(target), target))
    assert float(val) == pytest.approx(0.5 / (2 * np.pi * 3) ** 2, rel=1e-10)
    rel, _ = losses.SobolevLoss(-1.0, seminorm=True, relative=True)(
        Linear(jnp.asarray(0.9)), (target, target)
    )
    assert float(rel) == pytest.approx(0.1, rel=1e-10)


@pytest.mark.slow
def test_crps_loss_expectation_is_the_gaussian_crps(x64):
    # model(x) ~ N(x, sigma^2): E[fair CRPS loss] = mean over components of
    # crps_gaussian(x, sigma, y). 4000 examples x 64 components, checked within 4.5 MCSE
    # (the MCSE from the spread of per-example losses).
    rng = np.random.default_rng(2)
    x = jnp.asarray(rng.normal(size=(4000, 64)))
    y = jnp.asarray(rng.normal(size=(4000, 64)))
    model = GaussianSampler(jnp.asarray(0.8))
    loss = losses.CRPSLoss(ensemble_size=4)
    per_example = jax.jit(jax.vmap(lambda xi, yi, k: loss(model, (xi[None], yi[None]), key=k)[0]))(
        x, y, jax.random.split(jax.random.key(0), 4000)
    )
    per_example = np.asarray(per_example)
    exact = float(jnp.mean(losses.crps_gaussian(x, 0.8, y)))
    z = (per_example.mean() - exact) / (per_example.std(ddof=1) / math.sqrt(len(per_example)))
    assert abs(z) < 4.5
    value, aux = loss(model, (x[:8], y[:8]), key=jax.random.key(1))
    assert np.isfinite(float(value)) and 0.3 < float(aux["spread"]) < 1.5


def test_ensemble_losses_need_a_key(own_checks):
    x, y = _data(3, (4, 6))
    model = GaussianSampler(jnp.asarray(1.0))
    with pytest.raises(TypeError, match="CRPSLoss draws random members and needs `key`"):
        losses.CRPSLoss(4)(model, (x, y))
    with pytest.raises(TypeError, match="EnergyScoreLoss"):
        losses.EnergyScoreLoss(4)(model, (x, y))
    with pytest.raises(TypeError, match="`score` must be an elementwise ensemble score"):
        losses.CRPSLoss(4, score="unfair")  # pyright: ignore[reportArgumentType]
    with pytest.raises(ValueError, match="`ensemble_size` must be an integer >= 1"):
        losses.CRPSLoss(0)
    with pytest.raises(ValueError, match="1 member.*needs at least 2"):  # the fair CRPS
        losses.CRPSLoss(1)(model, (x, y), key=jax.random.key(0))
    losses.CRPSLoss(1, losses.crps_ensemble)(model, (x, y), key=jax.random.key(0))
    with pytest.raises(ValueError, match="`alpha` must be finite and in \\[0, 1\\]"):
        losses.AlmostFairCRPS(1.5)


def test_crps_scores_are_objects_and_alpha_is_sweepable(x64):
    """The score is a function or a module; AlmostFairCRPS's alpha is an array field: a vmap
    over alpha equals the loop, alpha = 1 is the fair CRPS and alpha = 0 the standard one."""
    x, y = _data(6, (5, 4))
    model = GaussianSampler(jnp.asarray(0.7))
    key = jax.random.key(3)

    def value(score):
        return losses.CRPSLoss(6, score)(model, (x, y), key=key)[0]

    alphas = jnp.asarray([0.0, 0.5, 0.95, 1.0])
    swept = jax.vmap(lambda a: value(losses.AlmostFairCRPS(a)))(alphas)
    looped = [float(value(losses.AlmostFairCRPS(float(a)))) for a in alphas]
    np.testing.assert_allclose(swept, looped, rtol=1e-12)
    assert float(swept[0]) == pytest.approx(float(value(losses.crps_ensemble)), rel=1e-12)
    assert float(swept[-1]) == pytest.approx(float(value(losses.crps_fair)), rel=1e-12)
    assert float(swept[0]) > float(swept[-1])  # the standard CRPS carries the 1/M bias


def test_energy_score_loss_matches_function(x64):
    x, y = _data(4, (3, 5))
    model = GaussianSampler(jnp.asarray(0.5))
    key = jax.random.key(7)
    value, _ = losses.EnergyScoreLoss(6, fair=True)(model, (x, y), key=key)
    # Rebuild the members from the same keys (one key per example, split per member) and
    # score them with the numpy double loop of tests/losses/test_scores.py.
    members = jax.jit(
        jax.vmap(lambda xb, kb: jax.vmap(lambda k: model(xb, key=k))(jax.random.split(kb, 6)))
    )(x, jax.random.split(key, 3))
    pairs = zip(np.asarray(members), np.asarray(y), strict=True)
    ref = np.mean([_energy_numpy(e, yb, True) for e, yb in pairs])
    assert float(value) == pytest.approx(ref, rel=1e-12)


def test_gaussian_nll_loss_matches_scipy(x64, own_checks):
    x, y = _data(5, (6, 3))
    value, aux = losses.GaussianNLLLoss()(MeanLogVar(jnp.asarray(math.log(0.3))), (x, y))
    ref = -stats.norm.logpdf(np.asarray(y), 2 * np.asarray(x), math.sqrt(0.3)).mean()
    assert float(value) == pytest.approx(ref, rel=1e-12)
    assert float(aux["mean_std"]) == pytest.approx(math.sqrt(0.3), rel=1e-12)
    with pytest.raises(TypeError, match="returns a pair"):
        losses.GaussianNLLLoss()(Linear(jnp.asarray(1.0)), (x, y))
    # A model of the variance itself: the identity as `to_variance`, the same NLL.
    var_model = MeanLogVar(jnp.asarray(0.3))
    value_var, _ = losses.GaussianNLLLoss(lambda v: v)(var_model, (x, y))
    assert float(value_var) == pytest.approx(ref, rel=1e-12)
    with pytest.raises(TypeError, match="`to_variance` must be a function"):
        losses.GaussianNLLLoss("variance")  # pyright: ignore[reportArgumentType]
    with pytest.raises(ValueError, match="`min_variance`"):
        losses.GaussianNLLLoss(min_variance=-1.0)


def test_rollout_loss_of_a_linear_model(x64):
    # u_{k+1} = a u_k against targets b^k u_0: step-k MSE = (a^k - b^k)^2 mean(u_0^2).
    rng = np.random.default_rng(6)
    u0 = jnp.asarray(rng.normal(size=(4, 10)))
    a, b, k = 0.9, 0.8, 3
    targets = jnp.stack([b**j * u0 for j in range(1, 6)], axis=1)  # K = 5 >= num_steps
    ms = float(jnp.mean(u0**2))
    per_step = [(a**j - b**j) ** 2 * ms for j in range(1, k + 1)]
    value, aux = losses.RolloutLoss(k)(Linear(jnp.asarray(a)), (u0, targets))
    assert float(value) == pytest.approx(np.mean(per_step), rel=1e-12)
    assert float(aux["last_step"]) == pytest.approx(per_step[-1], rel=1e-12)
    w = (1.0, 0.0, 3.0)
    weighted, _ = losses.RolloutLoss(k, step_weights=w)(Linear(jnp.asarray(a)), (u0, targets))
    assert float(weighted) == pytest.approx(np.dot(w, per_step) / 4.0, rel=1e-12)
    # d/da of the mean over steps, against the closed form.
    g = jax.grad(lambda m: losses.RolloutLoss(k)(m, (u0, targets))[0])(Linear(jnp.asarray(a)))
    dg = np.mean([2 * (a**j - b**j) * j * a ** (j - 1) * ms for j in range(1, k + 1)])
    assert float(g.a) == pytest.approx(dg, rel=1e-10)


def test_rollout_loss_step_weights_are_an_array_field():
    # a vmap over weightings equals one loss per weighting
    rng = np.random.default_rng(7)
    u0 = jnp.asarray(rng.normal(size=(3, 6)))
    targets = jnp.asarray(rng.normal(size=(3, 2, 6)))
    model = Linear(jnp.asarray(0.7))
    weights = jnp.array([[1.0, 0.0], [1.0, 1.0], [0.5, 2.0]])
    base = losses.RolloutLoss(2, step_weights=(1.0, 1.0))

    def value(w):
        return eqx.tree_at(lambda loss: loss.step_weights, base, w)(model, (u0, targets))[0]

    swept = jax.vmap(value)(weights)
    for i, w in enumerate(weights):
        loop = losses.RolloutLoss(2, step_weights=tuple(np.asarray(w)))(model, (u0, targets))[0]
        np.testing.assert_allclose(swept[i], loop, rtol=1e-6)


def test_rollout_loss_shape_errors(own_checks):
    u0 = jnp.zeros((4, 10))
    with pytest.raises(ValueError, match=r"targets must have shape \(B, K >= 3, \*state\)"):
        losses.RolloutLoss(3)(Linear(jnp.asarray(1.0)), (u0, jnp.zeros((4, 2, 10))))
    with pytest.raises(ValueError, match="`step_weights`"):
        losses.RolloutLoss(3, step_weights=(1.0, 2.0))
    with pytest.raises(TypeError, match="`base` must be an AbstractRegressionLoss"):
        losses.RolloutLoss(2, base=losses.CRPSLoss(4))


def test_regression_shape_mismatch_names_the_arguments():
    x, y = _data(7, (3, 8))

    class Wrong(eqx.Module):
        def __call__(self, u):
            return u[:4]

    with pytest.raises(ValueError, match=r"`model\(inputs\) \(batched\)` has shape \(3, 4\)"):
        losses.MSELoss()(Wrong(), (x, y))
    with pytest.raises(ValueError, match="`batch` inputs and targets must share a leading"):
        losses.MSELoss()(Linear(jnp.asarray(1.0)), (x, y[:2]))
    with pytest.raises(TypeError, match=r"`batch` must be a pair \(inputs, targets\)"):
        losses.MSELoss()(Linear(jnp.asarray(1.0)), x)


# ------------------------------------------------------------------------------------- PINN


class Wave(eqx.Module):
    """u(x, t) = sin(x - c t) + eps t^2: the advection solution for c, perturbed by eps."""

    c: jax.Array
    eps: jax.Array

    def __call__(self, p):
        return jnp.sin(p[0] - self.c * p[1]) + self.eps * p[1] ** 2


def advection(c):
    def residual(u, p):
        return losses.derivative(u, p, (1,)) + c * losses.derivative(u, p, (0,))

    return residual


def test_derivative_against_analytic(x64):
    f = lambda p: jnp.sin(p[0]) * jnp.exp(2 * p[1]) + p[0] ** 3 * p[1]  # noqa: E731
    p = jnp.asarray([0.4, -0.3])
    x, t = 0.4, -0.3
    assert float(losses.derivative(f, p, ())) == pytest.approx(float(f(p)))
    assert float(losses.derivative(f, p, (0,))) == pytest.approx(
        math.cos(x) * math.exp(2 * t) + 3 * x**2 * t, rel=1e-12
    )
    assert float(losses.derivative(f, p, (0, 0))) == pytest.approx(
        -math.sin(x) * math.exp(2 * t) + 6 * x * t, rel=1e-12
    )
    assert float(losses.derivative(f, p, (0, 1, 1))) == pytest.approx(
        4 * math.cos(x) * math.exp(2 * t), rel=1e-12
    )
    with pytest.raises(ValueError, match="`axes` entry 2 is out of range"):
        losses.derivative(f, p, (2,))


def test_pinn_residual_of_the_exact_solution_vanishes_and_terms_add(x64):
    rng = np.random.default_rng(8)
    pts = jnp.asarray(rng.uniform(0, 1, size=(50, 2)))
    exact = Wave(jnp.asarray(1.3), jnp.asarray(0.0))
    bpts = jnp.asarray(rng.uniform(0, 1, size=(10, 2)))
    bvals = jax.vmap(exact)(bpts)
    loss = losses.PINNLoss(advection(1.3), boundary_weight=2.0)
    value, aux = loss(exact, {"collocation": pts, "boundary": (bpts, bvals)})
    assert float(value) < 1e-25
    # With eps != 0 the residual is exactly 2 eps t, and the boundary misfit eps t^2.
    pert = Wave(jnp.asarray(1.3), jnp.asarray(0.5))
    value, aux = loss(pert, {"collocation": pts, "boundary": (bpts, bvals)})
    t, tb = np.asarray(pts[:, 1]), np.asarray(bpts[:, 1])
    assert float(aux["residual"]) == pytest.approx(np.mean((2 * 0.5 * t) ** 2), rel=1e-12)
    assert float(aux["boundary"]) == pytest.approx(np.mean((0.5 * tb**2) ** 2), rel=1e-12)
    assert float(value) == pytest.approx(float(aux["residual"] + 2.0 * aux["boundary"]), rel=1e-12)


def test_causal_weights_follow_wang_sankaran_perdikaris(x64):
    # Residual 2 eps t on slab i (all points at time t_i): L_i = 4 eps^2 t_i^2, and
    # w_i = exp(-epsilon sum_{k<i} L_k). The gradient holds the weights fixed.
    times = np.linspace(0.0, 1.0, 6)
    xs = np.linspace(0.0, 1.0, 7)
    pts = jnp.asarray(np.stack(np.meshgrid(xs, times, indexing="ij"), axis=-1))  # (N, N_t, 2)
    eps, epsilon = 0.5, 3.0
    model = Wave(jnp.asarray(1.0), jnp.asarray(eps))
    loss = losses.PINNLoss(advection(1.0), causal_epsilon=epsilon)
    slab = 4 * eps**2 * times**2
    w = np.exp(-epsilon * (np.cumsum(slab) - slab))
    value, aux = loss(model, {"collocation": pts})
    assert float(value) == pytest.approx(np.mean(w * slab), rel=1e-12)
    assert float(aux["causal_min_weight"]) == pytest.approx(w.min(), rel=1e-12)
    # d/d(eps) with w held fixed: mean_i w_i * 8 eps t_i^2.
    g = jax.grad(lambda m: loss(m, {"collocation": pts})[0])(model)
    assert float(g.eps) == pytest.approx(np.mean(w * 8 * eps * times**2), rel=1e-10)
    with pytest.raises(ValueError, match=r"time slabs of shape \(N, N_t, d\)"):
        loss(model, {"collocation": pts[:, 0]})
    with pytest.raises(TypeError, match="must be a dict with key 'collocation'"):
        loss(model, pts)


@pytest.mark.slow  # 4-6 s alone on the 2-core VM (fast-tier budget); CI's slow tier runs it
def test_stochastic_regression_loss_draws_one_key_per_example():
    """The batch mean of the per-example error with the keys of `jax.random.split(key, B)`;
    with a deterministic network it is the plain loss."""
    from jaxsci import nn

    net = nn.FNO1d(1, 1, 4, 3, 1, key=jax.random.key(0), projection_width=4, dropout=0.5)
    x = jax.random.normal(jax.random.key(1), (3, 1, 16))
    y = jax.random.normal(jax.random.key(2), (3, 1, 16))
    key = jax.random.key(3)
    loss = losses.StochasticRegressionLoss(losses.MSELoss())
    value, _ = loss(net, (x, y), key=key)
    keys = jax.random.split(key, 3)
    manual = np.mean([np.mean((net(x[b], key=keys[b]) - y[b]) ** 2) for b in range(3)])
    np.testing.assert_allclose(value, manual, rtol=1e-6)
    assert not np.isclose(value, losses.MSELoss()(net, (x, y))[0])  # dropout was on
    plain = nn.FNO1d(1, 1, 4, 3, 1, key=jax.random.key(0), projection_width=4)
    np.testing.assert_allclose(
        loss(plain, (x, y), key=key)[0], losses.MSELoss()(plain, (x, y))[0], rtol=1e-6
    )
    with pytest.raises(TypeError, match="needs `key`"):
        loss(net, (x, y))
    with pytest.raises(TypeError, match="AbstractRegressionLoss"):
        losses.StochasticRegressionLoss(losses.CRPSLoss(2))  # pyright: ignore[reportArgumentType]
