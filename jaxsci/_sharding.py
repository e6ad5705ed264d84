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

Several processes (`jaxsci.distributed.initialize`): `jax.devices()` is then every device of
every process, and the batch is split over all of them. Each process runs the same script
and holds the same full batch (the same keys give the same draws everywhere); `shard_batch`
gives each process's devices their rows of it (`jax.make_array_from_callback`: no data
crosses processes; the equal-value contract is checked by a 16-byte digest of each array,
all-gathered: a mismatch is a ValueError on every process, not a silently wrong result).
Results of a computation over such a global array span devices that another process owns
and cannot be read there: `unpad_batch` (and `gather`) bring them back to every process
first, as one all-gather, so that the drivers return the same fully addressable arrays on
every process as a single-process run.

What `devices=None` means differs between the drivers (on purpose: ensembles and chains are
independent members, cheap to spread; a filter's members or a batch's examples are coupled
by a reduction, so spreading them is a choice the caller makes):

- `integrate.ensemble` and `inference.posterior`: `None` is *all devices*, `jax.devices()`
  (every device of every process in a multi-process run; `shard_batch` and
  `batch_sharding` use that default).
- `filters.run_filter`, `filters.assimilate` and `train.fit`: `None` is *no placement*: the
  arrays stay where JAX puts them (one device) and no sharding is made; give
  `devices=jax.devices()` to shard the members (filters) or the batch's examples (`fit`).

Everywhere a single `devices` entry that is the default device (`jax.devices()[0]`) is the
same as no placement (`batch_sharding` returns None).
"""

import hashlib
from collections.abc import Sequence
from typing import Any

import equinox as eqx
import jax
import jax.core
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from ._custom_types import PyTree

__all__ = [
    "batch_sharding",
    "batch_size",
    "gather",
    "pad_batch",
    "place",
    "place_tree",
    "shard_batch",
    "unpad_batch",
]

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

    return place_tree(tree, sharding), size


def place_tree(tree: PyTree, sharding: Any) -> PyTree:
    """`place` every array of `tree` with `sharding`, checking the arrays built from host
    copies across processes with one digest and one all-gather for the whole tree (not one
    per array: a model, its optimiser state and a dataset are many arrays)."""
    leaves, treedef = jax.tree_util.tree_flatten(tree)
    if not sharding.is_fully_addressable:
        _check_same_on_every_process([_host_copy(a) for a in leaves if _built_from_host(a)])
    return jax.tree_util.tree_unflatten(treedef, [place(a, sharding, check=False) for a in leaves])


def _built_from_host(a: Any) -> bool:
    """Whether `place` builds `a` across processes from this process's copy."""
    return eqx.is_array(a) and not (isinstance(a, jax.Array) and not a.is_fully_addressable)


def _host_copy(a: Any) -> np.ndarray:
    return np.asarray(jax.random.key_data(a) if _is_key(a) else a)


def _is_key(a: Any) -> bool:
    """Whether `a` is a JAX array of PRNG keys (new-style typed keys)."""
    return isinstance(a, jax.Array) and jnp.issubdtype(a.dtype, jax.dtypes.prng_key)


def place(a: Any, sharding: Any, *, check: bool = True) -> Any:
    """`a` (an array; anything else is returned as is) laid out with `sharding`.

    Within one process this is `jax.device_put`. A sharding over devices of several
    processes is built from this process's full copy of `a`: every process must hold the
    same value (the caller's contract, kept by running the same script with the same keys;
    `jax.device_put` would check it with an all-gather of the whole array, here a BLAKE2b
    digest of this process's copy is all-gathered and a mismatch is a ValueError on every
    process), and each keeps the rows its own devices hold. An array already laid out over
    the same devices is resharded by `jax.device_put`. PRNG key arrays travel as their key
    data.
    """
    if not eqx.is_array(a):
        return a
    if sharding.is_fully_addressable or (isinstance(a, jax.Array) and not a.is_fully_addressable):
        return jax.device_put(a, sharding)
    if _is_key(a):
        impl = jax.random.key_impl(a)
        data = place(jax.random.key_data(a), sharding, check=check)
        return jax.random.wrap_key_data(data, impl=impl)
    host = np.asarray(a)
    if check:
        _check_same_on_every_process([host])
    return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])


def _check_same_on_every_process(hosts: list[np.ndarray]) -> None:
    """Raise a ValueError on every process unless all processes hold the same `hosts`, bit
    for bit (values equal only up to rounding, NaN payloads or -0.0 vs 0.0 differ). A
    collective: every process calls it for the same arrays in the same order, as `place`
    and `place_tree` are called."""
    from jax.experimental import multihost_utils

    digest = hashlib.blake2b(digest_size=16)
    for host in hosts:
        digest.update(repr((host.shape, host.dtype.str)).encode())
        digest.update(np.ascontiguousarray(host).tobytes())
    mine = np.frombuffer(digest.digest(), dtype=np.int32)
    every = np.asarray(multihost_utils.process_allgather(mine))  # (processes, 4)
    differ = [i for i in range(every.shape[0]) if not np.array_equal(every[i], every[0])]
    if differ:
        shapes = ", ".join(f"{h.shape} {h.dtype}" for h in hosts[:4])
        more = f" and {len(hosts) - 4} more" if len(hosts) > 4 else ""
        raise ValueError(
            f"inputs ({shapes}{more}) differ between processes (process(es) {differ} "
            "against process 0): a multi-process run needs the same inputs on every process, "
            "bit for bit (the same script, data and keys)."
        )


def _identity(a):
    return a


def _gather_leaf(a: Any) -> Any:
    # a traced value (the caller's jit, vmap, grad) is gathered, if at all, where its
    # computation returns
    if not isinstance(a, jax.Array) or isinstance(a, jax.core.Tracer) or a.is_fully_addressable:
        return a
    sharding = a.sharding
    if isinstance(sharding, NamedSharding):
        replicated = NamedSharding(sharding.mesh, PartitionSpec())
    else:  # any other layout: replicated over the same devices
        # the same mesh on every process: the devices in id order (a replicated result
        # does not depend on their order)
        devices = sorted(sharding.device_set, key=lambda d: d.id)
        replicated = NamedSharding(Mesh(np.asarray(devices), ("all",)), PartitionSpec())
    # An all-gather on the devices (no trip through host memory), then this process's copy:
    # a single-device array on one of its own devices.
    return jax.jit(_identity, out_shardings=replicated)(a).addressable_data(0)


def gather(tree: PyTree) -> PyTree:
    """Every array of `tree` that spans devices of other processes, brought whole to this one.

    A jitted computation over arrays sharded across processes returns arrays that this
    process holds only part of; reading one (`numpy.asarray`, `float`, printing) fails. This
    all-gathers each such array onto the devices (a collective: every process must call it,
    on the same arrays, as the drivers do) and returns this process's copy, a single-device
    array holding the whole value, the same on every process. Fully addressable arrays (all of
    a single-process run's), traced values (inside `jit`, `vmap`, `grad`) and non-arrays are
    returned as they are.
    """
    return jax.tree_util.tree_map(_gather_leaf, tree)


def unpad_batch(tree: PyTree, size: int, axis: int = 0) -> PyTree:
    """The first `size` members along `axis` of every array of `tree` (drops the padding),
    each brought whole to every process first (`gather`) when it spans several."""
    tree = gather(tree)

    def cut(a):
        if not (eqx.is_array(a) or isinstance(a, np.ndarray)) or a.shape[axis] == size:
            return a
        return a[(slice(None),) * axis + (slice(0, size),)]

    return jax.tree_util.tree_map(cut, tree)
