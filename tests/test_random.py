"""`jaxsci._random`: the unrolled Threefry draws are bit for bit `jax.random`'s (the
reference), for typed and legacy keys, several shapes and bounds, and under jit/vmap."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxsci import _random

SHAPES = [(), (1,), (7,), (40, 40), (3, 5, 2)]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("make_key", [jax.random.key, jax.random.PRNGKey], ids=["typed", "raw"])
def test_bitwise_equal_to_jax_random(shape, make_key):
    for seed in (0, 1, 12345, 2**31 + 7):
        key = make_key(seed)
        np.testing.assert_array_equal(
            _random.normal(key, shape, jnp.float32), jax.random.normal(key, shape, jnp.float32)
        )
        np.testing.assert_array_equal(
            _random.uniform(key, shape, jnp.float32), jax.random.uniform(key, shape, jnp.float32)
        )
        np.testing.assert_array_equal(
            _random.uniform(key, shape, jnp.float32, -2.5, 0.5),
            jax.random.uniform(key, shape, jnp.float32, -2.5, 0.5),
        )


def test_threefry_hash_known_answer():
    # Random123's known-answer vectors for Threefry-2x32 with 20 rounds (kat_vectors):
    # counter (0, 0), key (0, 0) -> (0x6b200159, 0x99ba4efe); all ones -> (0x1cb996fc,
    # 0xbb002be7); the pi-digits vector -> (0xc4923a9c, 0x483df7a0).
    u = np.uint32
    cases = [
        ((0, 0), (0, 0), (0x6B200159, 0x99BA4EFE)),
        ((0xFFFFFFFF, 0xFFFFFFFF), (0xFFFFFFFF, 0xFFFFFFFF), (0x1CB996FC, 0xBB002BE7)),
        ((0x243F6A88, 0x85A308D3), (0x13198A2E, 0x03707344), (0xC4923A9C, 0x483DF7A0)),
    ]
    for (c0, c1), (k0, k1), expected in cases:
        out = _random.threefry2x32(
            jnp.asarray(u(k0)), jnp.asarray(u(k1)), jnp.asarray(u(c0)), jnp.asarray(u(c1))
        )
        assert tuple(int(x) for x in out) == expected


def test_jit_vmap_and_split_keys():
    keys = jax.random.split(jax.random.key(3), 6)
    ours = jax.jit(jax.vmap(lambda k: _random.normal(k, (4, 3), jnp.float32)))(keys)
    ref = jax.vmap(lambda k: jax.random.normal(k, (4, 3), jnp.float32))(keys)
    np.testing.assert_array_equal(ours, ref)


def test_other_dtypes_and_keys_fall_back_to_jax(x64):
    key = jax.random.key(5)
    np.testing.assert_array_equal(
        _random.normal(key, (9,), jnp.float64), jax.random.normal(key, (9,), jnp.float64)
    )
    rbg = jax.random.key(5, impl="rbg")
    np.testing.assert_array_equal(
        _random.normal(rbg, (9,), jnp.float32), jax.random.normal(rbg, (9,), jnp.float32)
    )
