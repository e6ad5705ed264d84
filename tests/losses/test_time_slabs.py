"""time_slab_points (stratified in time, uniform in space) and PINNLoss.slab_losses."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxsci import losses


def test_points_lie_in_their_slabs():
    pts = losses.time_slab_points(jax.random.key(0), 500, 4, [-1.0, 0.0], [1.0, 2.0])
    assert pts.shape == (500, 4, 2)
    t = np.asarray(pts[..., 1])
    for i in range(4):
        assert t[:, i].min() >= 0.5 * i and t[:, i].max() < 0.5 * (i + 1)
    x = np.asarray(pts[..., 0])
    assert x.min() >= -1 and x.max() < 1
    # uniform: mean within 4 standard errors (sd of U(-1, 1) is 1/sqrt(3))
    assert abs(x.mean()) < 4 / np.sqrt(3) / np.sqrt(x.size)
    # the box may be traced (a jitted sampler over domains): same points as eager
    jitted = jax.jit(lambda lo, hi: losses.time_slab_points(jax.random.key(0), 500, 4, lo, hi))
    np.testing.assert_array_equal(
        np.asarray(jitted(jnp.asarray([-1.0, 0.0]), jnp.asarray([1.0, 2.0]))), np.asarray(pts)
    )


def test_slab_losses_are_the_slab_means():
    loss = losses.PINNLoss(lambda u, p: u(p) - p[1], causal_epsilon=1.0)
    pts = losses.time_slab_points(jax.random.key(1), 10, 3, [0.0, 0.0], [1.0, 1.0])
    got = loss.slab_losses(lambda p: jnp.zeros(()), pts)
    np.testing.assert_allclose(np.asarray(got), np.mean(np.asarray(pts[..., 1]) ** 2, 0), rtol=1e-6)


@pytest.mark.parametrize(
    "args, match",
    [
        ((0, 2, [0.0, 0.0], [1.0, 1.0]), "num_points"),
        ((3, 0, [0.0, 0.0], [1.0, 1.0]), "num_slabs"),
        ((3, 2, [0.0, 0.0], [1.0]), "upper"),
        ((3, 2, [0.0, 1.0], [1.0, 1.0]), "upper"),
        ((3, 2, 0.0, 1.0), "lower"),
    ],
)
def test_bad_arguments_are_named(args, match):
    with pytest.raises(ValueError, match=match):
        losses.time_slab_points(jax.random.key(0), *args)
