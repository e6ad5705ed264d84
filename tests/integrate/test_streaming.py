"""`streamed_ensemble`: chunked members equal the one-vmap run (outputs exactly, statistics to
rounding), a user reduction equals brute force, in-place output, one compile per `fn`, and
bad arguments named."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxsci import dynamics, integrate
from jaxsci.integrate import _streaming


def _l96_member(length=0.2):
    step = integrate.Flow(dynamics.Lorenz96(40, 8.0), 0.05, integrate.RK4()).window(length)
    return lambda y: step(y, 0.0)


def _members(n, seed=0):
    rng = np.random.default_rng(seed)
    return (8.0 + rng.standard_normal((n, 40))).astype(np.float32)


def test_chunks_equal_one_vmap_and_stream_the_moments():
    fn, y0 = _l96_member(), _members(203)
    ref = np.asarray(jax.jit(jax.vmap(fn))(y0))
    res = integrate.streamed_ensemble(fn, y0, chunk_size=50)  # 203 = 4 x 50 + 3: padding
    assert res.num_chunks == 5 and res.final.shape == (203, 40)
    np.testing.assert_array_equal(res.final, ref)
    np.testing.assert_allclose(res.mean, ref.mean(0), atol=1e-5)
    np.testing.assert_allclose(res.variance, ref.var(0, ddof=1), rtol=1e-4)
    np.testing.assert_array_equal(res.minimum, ref.min(0))
    np.testing.assert_array_equal(res.maximum, ref.max(0))
    assert res.chunk_bytes > 50 * 2 * 40 * 4 and res.run_seconds > 0


def test_user_reduction_in_place_and_no_recompile():
    y0 = _members(37, seed=1)
    ref = y0 * 2.0 + 1.0
    edges = jnp.linspace(0.0, 40.0, 9)

    def histogram(acc, x, valid):  # counts of x_0 per bin: a streamed quantile sketch
        hits = (x[:, :1] >= edges[None, :-1]) & (x[:, :1] < edges[None, 1:])
        return acc + jnp.sum(hits & valid[:, None], axis=0)

    def fn(y, a):
        return y * a + 1.0

    res = integrate.streamed_ensemble(
        fn,
        y0,
        chunk_size=10,
        args=jnp.float32(2.0),
        out=y0,
        reduce=histogram,
        reduce_init=jnp.zeros(8, jnp.int32),
    )
    assert res.final is y0
    np.testing.assert_allclose(y0, ref, rtol=1e-6)  # written in place
    np.testing.assert_array_equal(res.reduced, np.histogram(ref[:, 0], np.asarray(edges))[0])
    programs = {id(p) for p in _streaming._COMPILED.values()}
    init = jnp.zeros(8, jnp.int32)
    again = integrate.streamed_ensemble(
        fn,
        y0,
        chunk_size=10,
        args=jnp.float32(0.5),
        keep=False,
        reduce=histogram,
        reduce_init=init,
    )
    # same program reused: no new one in the cache (a count would not see an eviction)
    assert {id(p) for p in _streaming._COMPILED.values()} == programs
    assert again.final is None
    np.testing.assert_allclose(again.mean, (ref * 0.5 + 1.0).mean(0), rtol=1e-5)


def test_bad_arguments_are_named():
    y0 = _members(5)
    with pytest.raises(ValueError, match="chunk_size"):
        integrate.streamed_ensemble(lambda y: y, y0, chunk_size=0)
    with pytest.raises(ValueError, match="`out`"):
        integrate.streamed_ensemble(lambda y: y, y0, chunk_size=2, out=np.zeros((4, 40)))
    with pytest.raises(ValueError, match="reduce_init"):
        integrate.streamed_ensemble(lambda y: y, y0, chunk_size=2, reduce=lambda a, x, v: a)
    with pytest.raises(ValueError, match="members"):
        integrate.streamed_ensemble(lambda y: y, np.zeros((0, 40), np.float32), chunk_size=2)
    with pytest.raises(ValueError, match="one array"):
        integrate.streamed_ensemble(lambda y: (y, y), y0, chunk_size=2)


def test_reduce_init_is_not_donated():
    # the chunk program donates its accumulator: the caller's init must survive and be reusable
    y0 = _members(6)
    init = jnp.zeros((40,), jnp.float32)

    def total(acc, x, valid):
        return acc + jnp.sum(jnp.where(valid[:, None], x, 0.0), axis=0)

    for _ in range(2):
        res = integrate.streamed_ensemble(
            lambda y: y, y0, chunk_size=4, keep=False, reduce=total, reduce_init=init
        )
        np.testing.assert_allclose(res.reduced, y0.sum(0), rtol=1e-6)
    assert not init.is_deleted()
    np.testing.assert_array_equal(np.asarray(init), 0.0)


def test_out_must_be_a_writable_numpy_array():
    y0 = _members(5)
    with pytest.raises(ValueError, match="`out`.*writable"):
        integrate.streamed_ensemble(lambda y: y, y0, chunk_size=2, out=jnp.zeros((5, 40)))
    frozen = np.zeros((5, 40), np.float32)
    frozen.flags.writeable = False
    with pytest.raises(ValueError, match="`out`.*read-only"):
        integrate.streamed_ensemble(lambda y: y, y0, chunk_size=2, out=frozen)
