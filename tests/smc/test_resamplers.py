"""Resamplers: the weights they give the resampled population, unbiasedness of the weighted
offspring, and the gradient each carries through the draw (against known values)."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxsci import smc

N = 6
# f_i and the logits c_i of weights W(theta) = softmax(theta c): the estimand is
# F(theta) = sum_i W_i(theta) f_i, with dF/dtheta = sum_i W_i (c_i - W.c) f_i
F_VALUES = jnp.array([1.0, -2.0, 0.5, 3.0, 0.0, 1.5])
LOGITS = jnp.array([0.3, -1.0, 0.8, 0.1, -0.4, 1.2])
THETA = 0.7


def _weighted_estimate(resampler, key, theta):
    """sum_j exp(lw'_j + log_mass) f(a_j): the resampled population's estimate of F."""
    log_w = jax.nn.log_softmax(theta * LOGITS)
    ancestors, new_lw, log_mass = resampler(key, log_w)
    return jnp.sum(jnp.exp(new_lw + log_mass) * F_VALUES[ancestors])


RESAMPLERS = {
    "plain": smc.Resampler(smc.systematic),
    "stop-gradient": smc.StopGradientResampler(smc.multinomial),
    "soft-0": smc.SoftResampler(smc.multinomial, 0.0),
    "soft-0.5": smc.SoftResampler(smc.stratified, 0.5),
    "soft-1": smc.SoftResampler(smc.residual, 1.0),
}


@pytest.mark.parametrize("name", list(RESAMPLERS))
def test_contract(name):
    r = RESAMPLERS[name]
    assert isinstance(r, smc.AbstractResampler)
    log_w = jax.nn.log_softmax(LOGITS)
    ancestors, new_lw, log_mass = r(jax.random.key(0), log_w)
    assert ancestors.shape == (N,) and ancestors.dtype == jnp.int32
    assert new_lw.shape == (N,) and new_lw.dtype == log_w.dtype and log_mass.shape == ()
    np.testing.assert_allclose(jax.nn.logsumexp(new_lw), 0.0, atol=1e-6)
    jitted = eqx.filter_jit(r)(jax.random.key(0), log_w)
    for a, b in zip(jitted, (ancestors, new_lw, log_mass), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)
    keys = jax.random.split(jax.random.key(1), 3)
    batched = jax.vmap(r, in_axes=(0, None))(keys, log_w)
    for i in range(3):
        for a, b in zip(batched, r(keys[i], log_w), strict=True):
            np.testing.assert_allclose(a[i], b, rtol=1e-6, atol=1e-6)


def test_new_weights():
    """Plain and stop-gradient: 1/N in value; soft: W_a / q_a normalised, log_mass the log of
    their mean; alpha = 1 is plain resampling, alpha = 0 keeps the ancestors' weights."""
    log_w = jax.nn.log_softmax(LOGITS)
    w = np.asarray(jnp.exp(log_w), dtype=np.float64)
    key = jax.random.key(3)
    for r in (smc.Resampler(), smc.StopGradientResampler(), smc.SoftResampler(alpha=1.0)):
        _, new_lw, log_mass = r(key, log_w)
        np.testing.assert_allclose(new_lw, np.full(N, -np.log(N)), rtol=1e-6)
        np.testing.assert_allclose(log_mass, 0.0, atol=1e-6)
    for alpha in (0.0, 0.3):
        a, new_lw, log_mass = smc.SoftResampler(smc.multinomial, alpha)(key, log_w)
        q = alpha * w + (1 - alpha) / N
        ratio = w[np.asarray(a)] / q[np.asarray(a)]
        np.testing.assert_allclose(new_lw, np.log(ratio / ratio.sum()), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(log_mass, np.log(ratio.mean()), rtol=1e-5, atol=1e-6)
    # the plain draw with the same scheme and key is the soft draw at alpha = 1
    a_plain, _, _ = smc.Resampler(smc.stratified)(key, log_w)
    a_soft, _, _ = smc.SoftResampler(smc.stratified, 1.0)(key, log_w)
    np.testing.assert_array_equal(a_plain, a_soft)


@pytest.mark.parametrize("name", list(RESAMPLERS))
def test_weighted_offspring_are_unbiased(name):
    """E[sum_j exp(lw'_j + log_mass) 1{a_j = i}] = W_i for every resampler (the resampled
    population represents the same distribution): 4000 draws, z-scores with the Monte-Carlo
    standard error per particle."""
    r = RESAMPLERS[name]
    log_w = jax.nn.log_softmax(LOGITS)

    def mass(key):
        a, new_lw, log_mass = r(key, log_w)
        return jnp.zeros(N).at[a].add(jnp.exp(new_lw + log_mass))

    m = np.asarray(
        jax.jit(jax.vmap(mass))(jax.random.split(jax.random.key(4), 4000)), dtype=np.float64
    )
    mcse = m.std(axis=0, ddof=1) / np.sqrt(m.shape[0])
    err = np.abs(m.mean(axis=0) - np.asarray(jnp.exp(log_w)))
    assert np.all(err <= 4.5 * mcse + 1e-6), (name, err, mcse)


@pytest.mark.slow
def test_gradients_through_resampling(x64):
    """E[d/dtheta of the resampled estimate of F] against the exact dF/dtheta: unbiased for
    stop-gradient resampling (the score of the drawn ancestors, Ścibior & Wood 2021) and for
    soft resampling at alpha = 0 (uniform draws, weights W_a carried); plain resampling has
    no gradient through the draw (zero), and soft resampling at alpha = 1/2 is biased (the
    draw's dependence on theta is ignored) - the test can tell them apart. 4000 draws each."""
    exact = float(jax.grad(lambda t: jax.nn.softmax(t * LOGITS) @ F_VALUES)(THETA))
    keys = jax.random.split(jax.random.key(5), 4000)
    grads = {}
    for name, r in RESAMPLERS.items():
        grad = jax.grad(lambda t, k, r=r: _weighted_estimate(r, k, t), argnums=0)
        g = jax.jit(jax.vmap(grad, (None, 0)))  # one compiled program, not op by op
        grads[name] = np.asarray(g(jnp.float64(THETA), keys))
    for name in ("stop-gradient", "soft-0"):
        mcse = grads[name].std(ddof=1) / np.sqrt(keys.shape[0])
        assert abs(grads[name].mean() - exact) < 4.0 * mcse, (name, grads[name].mean(), exact)
        assert 4.0 * mcse < 0.25 * abs(exact)  # informative
    np.testing.assert_array_equal(grads["plain"], 0.0)
    mcse = grads["soft-0.5"].std(ddof=1) / np.sqrt(keys.shape[0])
    assert abs(grads["soft-0.5"].mean() - exact) > 4.0 * mcse


def test_bad_arguments_are_named():
    with pytest.raises(TypeError, match="scheme"):
        smc.Resampler("systematic")
    with pytest.raises(ValueError, match="alpha"):
        smc.SoftResampler(smc.systematic, 1.5)
    with pytest.raises(ValueError, match="alpha"):
        smc.SoftResampler(alpha=float("nan"))


def test_alpha_is_an_array_field():
    """vmap over alpha (a sweep) equals the resamplers built one by one."""
    alphas = jnp.array([0.0, 0.5, 1.0])
    log_w = jax.nn.log_softmax(LOGITS)
    key = jax.random.key(6)
    batched = jax.vmap(lambda a: smc.SoftResampler(smc.systematic, a)(key, log_w)[1])(alphas)
    for i, a in enumerate(alphas):
        single = smc.SoftResampler(smc.systematic, float(a))(key, log_w)[1]
        np.testing.assert_allclose(batched[i], single, rtol=1e-6, atol=1e-6)
