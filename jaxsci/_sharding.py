"""Sharding a leading batch axis over devices: the one helper behind `integrate.ensemble` and
the chains of `inference.posterior`.

Ensembles, chains and particles are a leading batch axis. To run them on several devices the
batch is split over a one-dimensional `jax.sharding.Mesh` of *all* the devices asked for, the
code path multi-host JAX uses (GSPMD partitions the vmapped computation along that axis). A
batch whose size is not a multiple of the device count is padded by repeating its last member,
so that every device is used and holds an equal share; the padded members compute a copy of
the last one and are dropped from the results (`unpad_batch`). No device is ever left out, and
a member's result does not depend on the device count, up to floating-point rounding (a
different per-device batch shape can change XLA's rounding).
"""

from collections.abc import Sequence
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from ._custom_types import PyTree

__all__ = ["batch_sharding", "batch_size", "pad_batch", "shard_batch", "unpad_batch"]

#: The name of the mesh axis the batch is split over.
BATCH_AXIS = "batch"


def batch_sharding(devices: Sequence[Any] | None = None) -> NamedSharding | None:
    """The sharding of a leading batch axis over `devices` (default `jax.devices()`).

    A 1-D mesh with one entry per device, the batch axis split along it and every other axis
    replicated. None when the only device is the default one: there is nothing to place, and
    arrays stay where JAX puts them.

    Raises:
        ValueError: naming `devices` when it is empty.
    """
    devs = list(jax.devices() if devices is None else devices)
    if not devs:
        raise ValueError("`devices` is empty: give at least one device (default: all).")
    if len(devs) == 1 and devs[0] == jax.devices()[0]:
        return None
    return NamedSharding(Mesh(np.asarray(devs), (BATCH_AXIS,)), PartitionSpec(BATCH_AXIS))


def _batched_leaves(tree: PyTree) -> list[Any]:
    return [leaf for leaf in jax.tree_util.tree_leaves(tree) if eqx.is_array(leaf)]


def batch_size(tree: PyTree, what: str = "`batch`") -> int:
    """The common leading size of the array leaves of `tree`.

    Raises:
        ValueError: naming `what` (e.g. "`data`") when a leaf is a scalar or the leading
            sizes differ.
    """
    leaves = _batched_leaves(tree)
    if not leaves:
        raise ValueError(f"{what} has no arrays.")
    sizes = set()
    for leaf in leaves:
        if leaf.ndim == 0:
            raise ValueError(f"{what} has a scalar array; every array needs a batch axis.")
        sizes.add(leaf.shape[0])
    if len(sizes) != 1:
        raise ValueError(f"{what} must share one leading batch size, got sizes {sorted(sizes)}.")
    return sizes.pop()


def pad_batch(tree: PyTree, multiple: int) -> tuple[PyTree, int]:
    """Pad the leading axis of every array of `tree` to a multiple of `multiple` by repeating
    the last member; return the padded tree and the original batch size."""
    size = batch_size(tree)
    pad = (-size) % multiple
    if not pad:
        return tree, size

    def grow(a):
        if not eqx.is_array(a):
            return a
        return jnp.concatenate([a, jnp.repeat(a[-1:], pad, axis=0)], axis=0)

    return jax.tree_util.tree_map(grow, tree), size


def shard_batch(tree: PyTree, devices: Sequence[Any] | None = None) -> tuple[PyTree, int]:
    """Pad the leading (batch) axis of `tree` to a multiple of the device count and place it
    on the 1-D mesh of `batch_sharding(devices)`; return the placed tree and the original
    batch size (give it to `unpad_batch` to drop the padding from results).

    Every device is used: 3 members over 4 devices are padded to 4, 6 to 8. With a single
    default device the tree is returned unchanged.
    """
    sharding = batch_sharding(devices)
    if sharding is None:
        return tree, batch_size(tree)
    tree, size = pad_batch(tree, sharding.mesh.size)

    def place(a):
        return jax.device_put(a, sharding) if eqx.is_array(a) else a

    return jax.tree_util.tree_map(place, tree), size


def unpad_batch(tree: PyTree, size: int, axis: int = 0) -> PyTree:
    """The first `size` members along `axis` of every array of `tree` (drops the padding)."""

    def cut(a):
        if not (eqx.is_array(a) or isinstance(a, np.ndarray)) or a.shape[axis] == size:
            return a
        return a[(slice(None),) * axis + (slice(0, size),)]

    return jax.tree_util.tree_map(cut, tree)
