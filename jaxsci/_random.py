"""Random draws identical to `jax.random.uniform`/`normal`, with the Threefry hash unrolled.

On CPU, JAX lowers its Threefry-2x32 hash (Salmon et al. 2011, "Parallel random numbers: as
easy as 1, 2, 3", the 20-round variant) as a rolled five-iteration loop to keep compile times
down; every iteration is a separate small XLA kernel. For the few thousand numbers a filter
draws per assimilation cycle (perturbed observations, rotations, jitter), that loop costs more
than the arithmetic: about 16 us for 1600 32-bit words against about 3.5 us when the twenty
rounds are written out and XLA fuses them into one kernel.

The functions here compute the same counter-based hash unrolled, on the same counters JAX's
"partitionable" Threefry uses (the flat index of each element as a 64-bit counter), and apply
the same float transforms, so they return **bit for bit** what `jax.random.uniform` and
`jax.random.normal` return for the same key (checked in `tests/test_random.py`). Where that
equivalence is not established (non-Threefry keys, the non-partitionable bit layout, dtypes
other than float32, more than 2^32 elements) they call `jax.random` itself.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np

from ._custom_types import Array, Key

# Threefry-2x32 rotation constants (Salmon et al. 2011, table 4) and the key-schedule parity.
_ROTATIONS = (13, 15, 26, 6, 17, 29, 16, 24)
_PARITY = np.uint32(0x1BD11BDA)


def _rotl(x, r: int):
    return (x << np.uint32(r)) | (x >> np.uint32(32 - r))


def threefry2x32(k0, k1, c0, c1):
    """The Threefry-2x32 hash (20 rounds) of the counter pair (c0, c1) under the key
    (k0, k1), all uint32; returns the two output words. Key injection every four rounds:
    x += (ks[s], ks[s+1] + s) with ks = (k0, k1, k0 ^ k1 ^ parity), indices mod 3."""
    ks = (k0, k1, k0 ^ k1 ^ _PARITY)
    x0, x1 = c0 + ks[0], c1 + ks[1]
    for s in range(1, 6):
        for r in _ROTATIONS[4 * ((s - 1) % 2) : 4 * ((s - 1) % 2) + 4]:
            x0 = x0 + x1
            x1 = _rotl(x1, r) ^ x0
        x0 = x0 + ks[s % 3]
        x1 = x1 + ks[(s + 1) % 3] + np.uint32(s)
    return x0, x1


def _threefry_key_words(key):
    """(k0, k1) of a Threefry key (typed or legacy uint32[2]), or None for other keys."""
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        if "threefry" not in str(jax.random.key_impl(key)).lower():
            return None
        data = jax.random.key_data(key)
    elif key.dtype == jnp.uint32 and key.shape == (2,):
        if "threefry" not in str(jax.config.jax_default_prng_impl).lower():
            return None
        data = key
    else:
        return None
    if data.shape != (2,):
        return None
    return data[0], data[1]


def _fast_path_words(key, shape, dtype):
    if jnp.dtype(dtype) != jnp.float32 or not jax.config.jax_threefry_partitionable:
        return None
    if math.prod(shape) >= 2**32:
        return None
    return _threefry_key_words(key)


def _bits32(words, shape):
    n = math.prod(shape)
    lo = jnp.arange(n, dtype=jnp.uint32).reshape(shape)
    b0, b1 = threefry2x32(words[0], words[1], jnp.zeros(shape, jnp.uint32), lo)
    return b0 ^ b1


def _unit_floats(bits):
    # 23 random mantissa bits under the exponent of 1.0: a float in [1, 2), minus 1
    one = np.array(1.0, np.float32).view(np.uint32)
    return jax.lax.bitcast_convert_type((bits >> np.uint32(9)) | one, jnp.float32) - 1.0


def uniform(key: Key, shape=(), dtype=float, minval=0.0, maxval=1.0) -> Array:
    """Equal to `jax.random.uniform(key, shape, dtype, minval, maxval)` (scalar bounds)."""
    shape = tuple(int(d) for d in shape)
    dtype = jnp.dtype(jax.dtypes.canonicalize_dtype(dtype))
    words = _fast_path_words(key, shape, dtype)
    if words is None or np.ndim(minval) or np.ndim(maxval):
        return jax.random.uniform(key, shape, dtype, minval, maxval)
    return _uniform_fast(words, shape, float(minval), float(maxval))


@jax.jit(static_argnums=(1, 2, 3))
def _uniform_fast(words, shape, minval, maxval):
    # jitted (as `jax.random.uniform` is) so that the multiply-add rounds the same way eagerly
    lo, hi = np.float32(minval), np.float32(maxval)
    return jnp.maximum(lo, _unit_floats(_bits32(words, shape)) * (hi - lo) + lo)


def normal(key: Key, shape=(), dtype=float) -> Array:
    """Equal to `jax.random.normal(key, shape, dtype)`: sqrt(2) erfinv(u), u uniform on
    (-1, 1) (the open lower end at the float just above -1)."""
    shape = tuple(int(d) for d in shape)
    dtype = jnp.dtype(jax.dtypes.canonicalize_dtype(dtype))
    if _fast_path_words(key, shape, dtype) is None:
        return jax.random.normal(key, shape, dtype)
    lo = np.nextafter(np.float32(-1.0), np.float32(0.0))
    u = uniform(key, shape, dtype, lo, 1.0)
    return np.float32(np.sqrt(2.0)) * jax.lax.erf_inv(u)
