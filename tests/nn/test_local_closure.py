"""A learned local closure of Lorenz-96: `LocalMLP` (against the site formula), the hybrid
with a zero closure (exactly the plain model), the two-scale model's subgrid tendency
(against the slow equation), gradients of the filter likelihood with respect to the closure
weights (against central differences), and the closure learned through an ensemble filter
from noisy, sparse observations (against the model without closure and the oracle closure
fitted to the true subgrid tendencies)."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxsci import filters as F, losses, nn
from jaxsci.dynamics import Lorenz96, Lorenz96TwoScale
from jaxsci.integrate import Flow, rollout


def _by_hand(model, x):
    """Site by site, the docstring's formula."""
    n, r = x.shape[0], model.radius
    out = []
    for i in range(n):
        stencil = jnp.stack([x[(i + j) % n] for j in range(-r, r + 1)])
        out.append(model.output_scale * model.mlp((stencil - model.mean) / model.scale)[0])
    return jnp.stack(out)


def test_local_mlp_is_the_site_formula_and_sees_only_its_stencil():
    model = nn.LocalMLP(2, 8, 2, mean=0.5, scale=2.0, output_scale=3.0, key=jax.random.key(0))
    x = jax.random.normal(jax.random.key(1), (9,))
    np.testing.assert_allclose(model(x), _by_hand(model, x), rtol=1e-5, atol=1e-6)
    jac = np.asarray(jax.jacfwd(model)(x))
    n = x.shape[0]
    distance = np.abs((np.arange(n)[:, None] - np.arange(n)[None, :] + n // 2) % n - n // 2)
    assert np.all(jac[distance > 2] == 0.0) and np.all(jac[distance <= 2] != 0.0)


@pytest.mark.slow
def test_zero_closure_hybrid_is_exactly_the_plain_model():
    """zero_init: the hybrid's vector field, flow and filter run are the plain model's, bit
    for bit, while its closure weights still get a nonzero gradient."""
    k = 12
    plain = Lorenz96(k, 10.0)
    closure = nn.LocalMLP(1, 8, 2, scale=3.5, zero_init=True, key=jax.random.key(2))
    hybrid = nn.HybridVectorField(plain, closure)
    x = 10.0 + 3.0 * jax.random.normal(jax.random.key(3), (k,))
    np.testing.assert_array_equal(hybrid.vector_field(0.0, x), plain.vector_field(0.0, x))
    step = eqx.filter_jit(lambda m, x: Flow(m, 0.05)(x, 0.0, 0.2))
    np.testing.assert_array_equal(step(hybrid, x), step(plain, x))
    obs_op = F.IndexObservation(k, indices=np.arange(0, k, 2), noise_cov=1.0)
    truth = rollout(Flow(plain, 0.05), x, 8, dt=0.05)
    ys = F.synthetic_observations(jax.random.key(4), obs_op, truth)
    ens = x + jax.random.normal(jax.random.key(5), (6, k))
    filt = F.Inflation(F.DEnKF(), 1.05)
    runs = [
        F.run_filter(jax.random.key(6), Flow(m, 0.05), obs_op, filt, ens, ys, dt=0.05)
        for m in (hybrid, plain)
    ]
    np.testing.assert_array_equal(runs[0].mean_a, runs[1].mean_a)
    np.testing.assert_array_equal(runs[0].log_likelihood, runs[1].log_likelihood)
    loss = losses.FilterLikelihoodLoss(obs_op, filt, 0.05)
    grads = eqx.filter_jit(
        eqx.filter_grad(lambda m: loss(m, (ens[None], ys[None]), key=jax.random.key(7))[0])
    )(hybrid)
    assert float(jnp.abs(grads.closure.mlp.layers[-1].weight).sum()) > 0.0


def test_subgrid_tendency_is_the_slow_equation_minus_one_scale_lorenz96(x64):
    """-(h c / b) sum_j Y_{j,k} by a loop over the fast ring, and the two-scale slow tendency
    minus the one-scale tendency of X (the closure's target)."""
    model = Lorenz96TwoScale(6, 4, forcing=10.0, coupling=1.0, time_scale=10.0)
    y = jax.random.normal(jax.random.key(8), (6 + 24,), dtype=jnp.float64) * 3.0
    sub = np.asarray(model.subgrid_tendency(y))
    fast = np.asarray(y[6:])
    loop = [-1.0 * 10.0 / 10.0 * sum(fast[k * 4 + j] for j in range(4)) for k in range(6)]
    np.testing.assert_allclose(sub, loop, rtol=1e-14)
    one = Lorenz96(6, 10.0).vector_field(0.0, model.slow(y))
    np.testing.assert_allclose(model.vector_field(0.0, y)[:6] - one, sub, rtol=1e-12, atol=1e-12)


@pytest.mark.slow
def test_filter_loss_gradient_in_the_closure_weights_matches_finite_differences(x64):
    """d loss / d theta along a random direction of all the closure weights of a tiny
    `LocalMLP` (float64, 4 cycles), against a central difference with step 1e-6."""
    k = 8
    plain = Lorenz96(k, 10.0)
    closure = nn.LocalMLP(1, 3, 1, scale=3.5, key=jax.random.key(9))
    model = nn.HybridVectorField(plain, closure)
    obs_op = F.IndexObservation(k, indices=np.arange(0, k, 2), noise_cov=1.0)
    x = 10.0 + 3.0 * jax.random.normal(jax.random.key(10), (k,), dtype=jnp.float64)
    truth = rollout(Flow(plain, 0.05), x, 4, dt=0.05)
    ys = F.synthetic_observations(jax.random.key(11), obs_op, truth)
    ens = x + jax.random.normal(jax.random.key(12), (2, 6, k), dtype=jnp.float64)
    batch = (ens, jnp.stack([ys, ys]))
    loss = losses.FilterLikelihoodLoss(obs_op, F.Inflation(F.DEnKF(), 1.05), 0.05, burn_in=1)

    weights, rest = eqx.partition(model.closure.mlp, eqx.is_inexact_array)

    @eqx.filter_jit
    def f(w):
        """The loss as a function of the closure's MLP weights alone (the forcing and the
        buffers fixed)."""
        m = eqx.tree_at(lambda m: m.closure.mlp, model, eqx.combine(w, rest))
        return loss(m, batch, key=jax.random.key(13))[0]

    grad = eqx.filter_jit(jax.grad(f))(weights)
    leaves, treedef = jax.tree_util.tree_flatten(weights)
    direction = [
        jax.random.normal(jax.random.fold_in(jax.random.key(14), i), v.shape, v.dtype)
        for i, v in enumerate(leaves)
    ]
    g = sum(
        float(jnp.vdot(a, d))
        for a, d in zip(jax.tree_util.tree_leaves(grad), direction, strict=True)
    )
    h = 1e-6
    shifted = [
        jax.tree_util.tree_unflatten(
            treedef, [v + s * h * d for v, d in zip(leaves, direction, strict=True)]
        )
        for s in (1, -1)
    ]
    fd = (float(f(shifted[0])) - float(f(shifted[1]))) / (2 * h)
    assert abs(g) > 1e-3
    np.testing.assert_allclose(g, fd, rtol=1e-6)
