"""Conformance of every filter in the registry (ensemble Kalman and particle filters under one
`AbstractFilter`): the analysis contract on `FilterState`/`FilterInfo`, jit == no-jit,
vmap == loop, finite gradients, and no recompilation for new values of the same shapes."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _params import marked_params

from jaxsci import filters as F

from ._registry import DIM, FILTERS, N_MEMBERS, obs_op

NAMES = list(FILTERS)


# Rows whose whole contract runs in the slow tier (CI runs both tiers): the fast tier keeps
# one row per filter family (EnKF, DEnKF, ETKF, LETKF, SerialEnSRF, PF, the wrappers), the
# variants (rotations, batches, other resamplers, RTPS) cost 12-19 s each under xdist.
SLOW_ROWS = {
    "ETKF-rot",
    "LETKF-batch3-rot",
    "LETKF-local-ens",
    "PF-multinomial-always",
    "PF-residual-diff-jitter-all",
    "PF-soft",
    "PF-stratified",
    "RTPS(EnKF)",
}


def _inputs(seed=0):
    k1, k2 = jax.random.split(jax.random.key(seed))
    ens = 1.0 + jax.random.normal(k1, (N_MEMBERS, DIM))
    y = jax.random.normal(k2, (DIM,))
    return ens, y


def _state(filt, ens, seed=None):
    """Equal weights, or (seed given) random normalised log-weights for weighted filters."""
    state = filt.init(ens)
    if seed is None or isinstance(filt, F.AbstractEnsembleFilter):
        return state
    lw = 0.5 * jax.random.normal(jax.random.key(seed), (N_MEMBERS,))
    return F.FilterState(ens, lw - jax.nn.logsumexp(lw))


@pytest.mark.parametrize("name", marked_params(NAMES, slow=SLOW_ROWS | {"LETKF-local-batch2"}))
def test_contract_jit_vmap(name):
    o = obs_op()
    filt = FILTERS[name](o)
    assert isinstance(filt, F.AbstractFilter)
    ens, y = _inputs()
    key = jax.random.key(7)
    state = _state(filt, ens, seed=11)
    out, info = filt.analysis(key, state, y, o)
    assert isinstance(out, F.FilterState) and isinstance(info, F.FilterInfo)
    assert out.ensemble.shape == ens.shape and out.ensemble.dtype == ens.dtype
    assert out.log_weights.shape == (N_MEMBERS,) and out.log_weights.dtype == ens.dtype
    np.testing.assert_allclose(jax.nn.logsumexp(out.log_weights), 0.0, atol=1e-5)
    assert bool(jnp.all(jnp.isfinite(out.ensemble)))
    assert np.isfinite(float(info.log_likelihood))
    assert 1.0 - 1e-4 <= float(info.ess) <= N_MEMBERS + 1e-4
    assert info.resampled.dtype == jnp.bool_ and int(info.num_nonfinite) == 0
    if isinstance(filt, F.AbstractEnsembleFilter):
        np.testing.assert_array_equal(out.log_weights, state.log_weights)
        assert float(info.ess) == N_MEMBERS and not bool(info.resampled)
        # the analysis mean moves towards the observation (every variable is observed)
        mean_f, _ = filt.statistics(state)
        mean_a, _ = filt.statistics(out)
        assert float(jnp.sum((mean_a - y) ** 2)) < float(jnp.sum((mean_f - y) ** 2))

    j_analysis = eqx.filter_jit(filt.analysis)
    j_out, j_info = j_analysis(key, state, y, o)
    np.testing.assert_allclose(j_out.ensemble, out.ensemble, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(j_out.log_weights, out.log_weights, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(j_info.log_likelihood, info.log_likelihood, rtol=1e-5)

    states = [_state(filt, _inputs(s)[0], seed=s) for s in range(3)]
    batch = jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *states)
    y_b = jnp.stack([_inputs(s)[1] for s in range(3)])
    keys = jax.random.split(key, 3)
    # vmap under one jit (not op by op: jit == no-jit is checked above); singles by the
    # jitted analysis
    b_out, b_info = eqx.filter_jit(jax.vmap(lambda k, s, yy: filt.analysis(k, s, yy, o)))(
        keys, batch, y_b
    )
    for i in range(3):
        single, s_info = j_analysis(keys[i], states[i], y_b[i], o)
        np.testing.assert_allclose(b_out.ensemble[i], single.ensemble, rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(b_out.log_weights[i], single.log_weights, atol=1e-5)
        np.testing.assert_allclose(b_info.log_likelihood[i], s_info.log_likelihood, rtol=1e-5)


@pytest.mark.parametrize("name", marked_params(NAMES, slow=SLOW_ROWS))
def test_finite_gradients(name):
    o = obs_op()
    filt = FILTERS[name](o)
    ens, y = _inputs()

    def members(e, yy):
        out, _ = filt.analysis(jax.random.key(1), filt.init(e), yy, o)
        return jnp.sum(out.ensemble**2)

    def log_likelihood(e, yy):
        return filt.analysis(jax.random.key(1), filt.init(e), yy, o)[1].log_likelihood

    grads = {}  # each gradient one compiled program
    for loss in (members, log_likelihood):
        grads[loss] = g_e, g_y = eqx.filter_jit(jax.grad(loss, argnums=(0, 1)))(ens, y)
        assert bool(jnp.all(jnp.isfinite(g_e))) and bool(jnp.all(jnp.isfinite(g_y)))
    assert float(jnp.max(jnp.abs(grads[log_likelihood][1]))) > 0
    if isinstance(filt, F.AbstractEnsembleFilter):  # the members move smoothly with y
        assert float(jnp.max(jnp.abs(grads[members][1]))) > 0


def _new_values(tree, s):
    """The same pytree with every inexact array leaf scaled: new values, same shapes."""
    return jax.tree_util.tree_map(
        lambda x: x * (1.0 + 0.01 * s) if eqx.is_inexact_array(x) else x, tree
    )


@pytest.mark.parametrize("name", marked_params(NAMES, slow=SLOW_ROWS))
def test_no_recompilation(name):
    """The filter and the observation operator are jit arguments, rebuilt with new values of
    their array fields (inflation factors, LETKF tapers, ESS thresholds, jitter scales, R) on
    every call: one trace."""
    traces = []

    @eqx.filter_jit
    def step(filt, o, key, state, yy):
        traces.append(None)
        return filt.analysis(key, state, yy, o)[0]

    for s in range(3):
        o = _new_values(obs_op(), s)
        filt = _new_values(FILTERS[name](obs_op()), s)
        ens, y = _inputs(s)
        step(filt, o, jax.random.key(s), _state(filt, ens, seed=s), y)
    assert len(traces) == 1
