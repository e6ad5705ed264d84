"""Conformance of every ensemble filter in the registry: the analysis contract, jit == no-jit,
vmap == loop, finite gradients, and no recompilation for new values of the same shapes."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ._registry import DIM, ENSEMBLE_FILTERS, N_MEMBERS, PARTICLE_FILTERS, obs_op

NAMES = list(ENSEMBLE_FILTERS)


def _inputs(seed=0):
    k1, k2 = jax.random.split(jax.random.key(seed))
    ens = 1.0 + jax.random.normal(k1, (N_MEMBERS, DIM))
    y = jax.random.normal(k2, (DIM,))
    return ens, y


@pytest.mark.parametrize("name", NAMES)
def test_contract_jit_vmap(name):
    o = obs_op()
    filt = ENSEMBLE_FILTERS[name](o)
    ens, y = _inputs()
    key = jax.random.key(7)
    out, info = filt.analysis(key, ens, y, o)
    assert out.shape == ens.shape and out.dtype == ens.dtype
    assert isinstance(info, dict)
    assert bool(jnp.all(jnp.isfinite(out)))
    # the analysis mean moves towards the observation (every variable is observed)
    assert float(jnp.sum((out.mean(0) - y) ** 2)) < float(jnp.sum((ens.mean(0) - y) ** 2))

    jitted, _ = eqx.filter_jit(filt.analysis)(key, ens, y, o)
    np.testing.assert_allclose(jitted, out, rtol=1e-5, atol=1e-5)

    ens_b = jnp.stack([_inputs(s)[0] for s in range(3)])
    y_b = jnp.stack([_inputs(s)[1] for s in range(3)])
    keys = jax.random.split(key, 3)
    batched, _ = jax.vmap(lambda k, e, yy: filt.analysis(k, e, yy, o))(keys, ens_b, y_b)
    for i in range(3):
        single, _ = filt.analysis(keys[i], ens_b[i], y_b[i], o)
        np.testing.assert_allclose(batched[i], single, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", NAMES)
def test_finite_gradients(name):
    o = obs_op()
    filt = ENSEMBLE_FILTERS[name](o)
    ens, y = _inputs()

    def loss(e, yy):
        out, _ = filt.analysis(jax.random.key(1), e, yy, o)
        return jnp.sum(out**2)

    g_e, g_y = jax.grad(loss, argnums=(0, 1))(ens, y)
    assert bool(jnp.all(jnp.isfinite(g_e))) and bool(jnp.all(jnp.isfinite(g_y)))
    assert float(jnp.max(jnp.abs(g_y))) > 0


def _new_values(tree, s):
    """The same pytree with every inexact array leaf scaled: new values, same shapes."""
    return jax.tree_util.tree_map(
        lambda x: x * (1.0 + 0.01 * s) if eqx.is_inexact_array(x) else x, tree
    )


@pytest.mark.parametrize("name", NAMES)
def test_no_recompilation(name):
    """The filter and the observation operator are jit arguments, rebuilt with new values of
    their array fields (inflation factors, LETKF tapers, R) on every call: one trace."""
    traces = []

    @eqx.filter_jit
    def step(filt, o, key, e, yy):
        traces.append(None)
        return filt.analysis(key, e, yy, o)[0]

    for s in range(3):
        o = _new_values(obs_op(), s)
        filt = _new_values(ENSEMBLE_FILTERS[name](obs_op()), s)
        ens, y = _inputs(s)
        step(filt, o, jax.random.key(s), ens, y)
    assert len(traces) == 1


@pytest.mark.parametrize("name", list(PARTICLE_FILTERS))
def test_particle_filter_no_recompilation(name):
    """As above for particle filters: new `ess_threshold`/`reg` values, one trace."""
    traces = []

    @eqx.filter_jit
    def step(pf, o, key, e, lw, yy):
        traces.append(None)
        return pf.analysis(key, e, lw, yy, o)[0]

    log_w = jnp.full((N_MEMBERS,), -jnp.log(N_MEMBERS))
    for s in range(3):
        ens, y = _inputs(s)
        pf = _new_values(PARTICLE_FILTERS[name], s)
        step(pf, _new_values(obs_op(), s), jax.random.key(s), ens, log_w, y)
    assert len(traces) == 1


@pytest.mark.parametrize("name", list(PARTICLE_FILTERS))
def test_particle_filter_contract(name):
    o = obs_op()
    pf = PARTICLE_FILTERS[name]
    ens, y = _inputs()
    log_w = jnp.full((N_MEMBERS,), -jnp.log(N_MEMBERS))
    key = jax.random.key(3)
    parts, lw, info = pf.analysis(key, ens, log_w, y, o)
    assert parts.shape == ens.shape and lw.shape == log_w.shape
    np.testing.assert_allclose(jax.nn.logsumexp(lw), 0.0, atol=1e-5)
    assert set(info) >= {"ess", "log_evidence", "resampled"}
    assert 1.0 - 1e-4 <= float(info["ess"]) <= N_MEMBERS + 1e-4
    j_parts, j_lw, _ = eqx.filter_jit(pf.analysis)(key, ens, log_w, y, o)
    np.testing.assert_allclose(j_parts, parts, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(j_lw, lw, rtol=1e-5, atol=1e-5)
    keys = jax.random.split(key, 2)
    ens_b = jnp.stack([ens, ens + 1.0])
    b_parts, _, b_info = jax.vmap(lambda k, e: pf.analysis(k, e, log_w, y, o))(keys, ens_b)
    for i in range(2):
        s_parts, _, s_info = pf.analysis(keys[i], ens_b[i], log_w, y, o)
        np.testing.assert_allclose(b_parts[i], s_parts, rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(b_info["log_evidence"][i], s_info["log_evidence"], rtol=1e-5)

    def loss(e, yy):
        _, _, inf = pf.analysis(key, e, log_w, yy, o)
        return inf["log_evidence"]

    g_e, g_y = jax.grad(loss, argnums=(0, 1))(ens, y)
    assert bool(jnp.all(jnp.isfinite(g_e))) and bool(jnp.all(jnp.isfinite(g_y)))
