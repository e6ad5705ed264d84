"""The learned forecasters: `Stepper` (residual and plain), `LocalStochastic` (against a
hand-written site update, its stencil, its buffers) and `sample_ensemble`; the conformance
cases of `_registry_forecasters` run through the shared suite (merged in `_registry`)."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxsci.nn as nn
from jaxsci.integrate import rollout

from ._registry import FORECASTER_CASES  # (imported through _registry, which merges them)


def _fno(key, n_modes=3):
    return nn.FNO1d(1, 1, 4, n_modes, 1, key=key, grid=False, projection_width=4)


def test_stepper_residual_and_plain():
    net = _fno(jax.random.key(0))
    u = jax.random.normal(jax.random.key(1), (1, 16))
    np.testing.assert_allclose(nn.Stepper(net)(u), u + net(u), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(nn.Stepper(net, residual=False)(u), net(u), rtol=1e-6, atol=1e-6)
    assert nn.count_params(nn.Stepper(net)) == nn.count_params(net)
    with pytest.raises(TypeError, match="`net`"):
        nn.Stepper(lambda u: u)  # pyright: ignore[reportArgumentType]


def test_stepper_rollout_is_the_loop():
    stepper = nn.Stepper(_fno(jax.random.key(2)))
    u = jax.random.normal(jax.random.key(3), (1, 16))
    states = eqx.filter_jit(rollout)(stepper, u, 3)
    expected = []
    for _ in range(3):
        u = stepper(u)
        expected.append(u)
    np.testing.assert_allclose(states, jnp.stack(expected), rtol=1e-5, atol=1e-5)


def _by_hand(model, x, key):
    """Site by site, the docstring's formula with the draws of `__call__`."""
    n, r = x.shape[0], model.radius
    z = jax.random.normal(key, (n, model.noise_dim), x.dtype)
    out = []
    for i in range(n):
        stencil = jnp.stack([x[(i + j) % n] for j in range(-r, r + 1)])
        inputs = jnp.concatenate([(stencil - model.mean) / model.scale, z[i]])
        out.append(x[i] + model.scale * model.mlp(inputs)[0])
    return jnp.stack(out)


def test_local_stochastic_is_the_site_formula():
    model = nn.LocalStochastic(2, 3, 8, 2, mean=0.5, scale=2.0, key=jax.random.key(4))
    x = jax.random.normal(jax.random.key(5), (9,))
    key = jax.random.key(6)
    np.testing.assert_allclose(model(x, key=key), _by_hand(model, x, key), rtol=1e-5, atol=1e-5)
    # one draw per key: other keys, other members
    assert not np.allclose(model(x, key=key), model(x, key=jax.random.key(7)))


def test_local_stochastic_sees_only_its_stencil():
    model = nn.LocalStochastic(1, 2, 8, 1, key=jax.random.key(8))
    x = jax.random.normal(jax.random.key(9), (7,))
    jac = np.asarray(jax.jacfwd(lambda v: model(v, key=jax.random.key(10)))(x))
    n = x.shape[0]
    distance = np.abs((np.arange(n)[:, None] - np.arange(n)[None, :] + n // 2) % n - n // 2)
    assert np.all(jac[distance > 1] == 0.0)
    assert np.all(jac[distance <= 1] != 0.0)


def test_local_stochastic_buffers_vmap_and_get_no_gradient():
    model = nn.LocalStochastic(1, 2, 8, 1, mean=0.0, scale=1.0, key=jax.random.key(11))
    x = jax.random.normal(jax.random.key(12), (6,))
    key = jax.random.key(13)
    scales = jnp.array([0.5, 1.0, 2.0])
    swept = jax.vmap(lambda s: eqx.tree_at(lambda m: m.scale, model, s)(x, key=key))(scales)
    for i, s in enumerate(scales):
        one = eqx.tree_at(lambda m: m.scale, model, s)(x, key=key)
        np.testing.assert_allclose(swept[i], one, rtol=1e-6, atol=1e-6)
    grads = eqx.filter_grad(lambda m: jnp.sum(m(x, key=key) ** 2))(model)
    assert float(grads.mean) == 0.0 and float(grads.scale) == 0.0
    with pytest.raises(ValueError, match="`scale`"):
        nn.LocalStochastic(1, 2, 8, 1, scale=0.0, key=key)
    # one example in (a ValueError naming `x`; jaxtyping's TypeError when annotations are checked)
    with pytest.raises((ValueError, TypeError), match="`x` has shape|parameter 'x'"):
        model(jnp.stack([x, x]), key=key)


def test_sample_ensemble_is_one_member_per_split_key():
    model = FORECASTER_CASES["LocalStochastic"].make(jax.random.key(14))
    x = jax.random.normal(jax.random.key(15), (10,))
    key = jax.random.key(16)
    members = nn.sample_ensemble(model, x, 4, key=key)
    assert members.shape == (4, 10)
    for j, k in enumerate(jax.random.split(key, 4)):
        np.testing.assert_allclose(members[j], model(x, key=k), rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match="`size`"):
        nn.sample_ensemble(model, x, 0, key=key)


@pytest.mark.parametrize("name", list(FORECASTER_CASES))
def test_cases_build_and_match_their_counts(name):
    case = FORECASTER_CASES[name]
    model = case.make(jax.random.key(0))
    args = case.inputs(jax.random.key(1), 0)
    assert case.call(model, *args).shape == case.out_shape(*args)
    assert nn.count_params(model) == case.params
