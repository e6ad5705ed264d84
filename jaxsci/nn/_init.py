"""Parameter initialisation that is cheap to run eagerly.

`jax.random.uniform(key, shape)` compiles one program per distinct shape, which made
building a small U-Net slow when run eagerly. Here every draw
comes from a pool whose length is the next power of two (>= 64), so one compiled program
serves every shape of similar size, and a concrete pool is cut to shape on the host
(under `jit`/`vmap`, e.g. building an ensemble of models, it is sliced with jax ops).
Subkeys come from `jax.random.fold_in(key, i)`, which compiles once for all i.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np

from .._custom_types import Array, Key


def default_float():
    """The default floating dtype (float64 under `jax.enable_x64`)."""
    return jnp.zeros(()).dtype


def subkey(key: Key, i: int) -> Key:
    """The i-th subkey of `key` (independent streams for distinct i)."""
    return jax.random.fold_in(key, i)


def _bucket(size: int) -> int:
    return max(64, 1 << max(size - 1, 0).bit_length())


def _cut(pool: Array, shape: tuple[int, ...]) -> Array:
    size = math.prod(shape)
    try:
        host = np.asarray(pool)
    except (jax.errors.TracerArrayConversionError, jax.errors.ConcretizationTypeError):
        return pool[:size].reshape(shape)  # traced (a constructor under jit or vmap)
    return jnp.asarray(host[:size].reshape(shape))


def uniform(key: Key, shape: tuple[int, ...], low: float, high: float) -> Array:
    """Independent U(low, high) entries of the default float dtype."""
    pool = jax.random.uniform(key, (_bucket(math.prod(shape)),), default_float(), low, high)
    return _cut(pool, tuple(shape))


def normal(key: Key, shape: tuple[int, ...], std: float) -> Array:
    """Independent N(0, std^2) entries of the default float dtype."""
    pool = std * jax.random.normal(key, (_bucket(math.prod(shape)),), default_float())
    return _cut(pool, tuple(shape))


def fan_in_uniform(key: Key, shape: tuple[int, ...], fan_in: int) -> Array:
    """U(-1/sqrt(fan_in), 1/sqrt(fan_in)): the default of PyTorch/equinox layers."""
    bound = 1.0 / math.sqrt(fan_in)
    return uniform(key, shape, -bound, bound)
