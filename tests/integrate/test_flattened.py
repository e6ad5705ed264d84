"""`integrate.FlattenedFlow`: a field model's flow on state vectors, for the filters."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxsci import dynamics, integrate


def _flows():
    flow = integrate.Flow(dynamics.TwoLayerQG(8), 7200.0)
    return flow, integrate.FlattenedFlow(flow)


@pytest.mark.slow  # two compiled QG windows (8^2): ~5-10 s on the shared 2-core VM
def test_flattened_flow_is_the_flow_on_reshaped_states():
    """The vector flow's fixed window (the filters' and rollout's path) equals the field
    flow's on the C-order reshape of the state; flatten / unflatten are inverse."""
    flow, flat = _flows()
    assert flat.state_shape == (2, 8, 8) and flat.dim == 128
    q = 1e-6 * jax.random.normal(jax.random.key(0), (2, 8, 8))
    np.testing.assert_array_equal(flat.unflatten(flat.flatten(q)), q)
    want = flow.window(4 * 7200.0)(q, 0.0)
    np.testing.assert_allclose(flat.window(4 * 7200.0)(q.ravel(), 0.0), want.ravel(), rtol=1e-5)


def test_flattened_flow_bad_input_is_named():
    flow, flat = _flows()
    with pytest.raises(ValueError, match="`y` has shape"):
        flat(jnp.zeros((2, 8, 8)), 0.0, 1.0)
    with pytest.raises(TypeError, match="flow"):
        integrate.FlattenedFlow(flow.dynamics)  # type: ignore[arg-type]
