"""`ensemble`: vmap a function over a batch and shard the batch over devices."""

from collections.abc import Callable, Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec


def _batch_size(args, in_axes):
    sizes = set()
    for a, ax in zip(args, in_axes, strict=True):
        if ax is None:
            continue
        for leaf in jax.tree_util.tree_leaves(eqx.filter(a, eqx.is_array)):
            sizes.add(leaf.shape[0])
    if len(sizes) != 1:
        raise ValueError(
            f"ensemble: the batched arguments (in_axes=0) must share one leading batch size, "
            f"got sizes {sorted(sizes)}."
        )
    return sizes.pop()


def ensemble(
    fn: Callable,
    *,
    in_axes: Sequence[int | None] | int = 0,
    devices: Sequence[jax.Device] | None = None,
) -> Callable:
    """Batch `fn` over the leading axis of its batched arguments, sharded over devices.

    `ensemble(fn, in_axes=(0, None))(models, y0)` runs `fn(model_i, y0)` for every member
    of a batched model (build one with `eqx.filter_vmap` over the constructor), and
    `ensemble(fn)(y0s)` over a batch of initial states. Arguments with axis 0 are split
    along their leading axis across `devices` (default `jax.devices()`) with a 1-D
    `jax.sharding.Mesh`, the same code path as multi-host JAX; a batch that does not
    divide evenly is padded by repeating its last member, and the padding is dropped from
    the result. Outputs are stacked along axis 0. The call is jitted.

    Arguments:
        fn: a function of one member.
        in_axes: per positional argument, 0 (batched) or None (shared); an int applies to all.
        devices: the devices to shard over.
    """
    jitted = {}

    def wrapped(*args):
        axes = (
            (in_axes,) * len(args)
            if isinstance(in_axes, int) or in_axes is None
            else tuple(in_axes)
        )
        if len(axes) != len(args):
            raise ValueError(f"ensemble: `in_axes` has {len(axes)} entries for {len(args)} args.")
        for ax in axes:
            if ax not in (0, None):
                raise ValueError(f"ensemble: `in_axes` entries must be 0 or None, got {ax}.")
        batch = _batch_size(args, axes)
        devs = list(jax.devices() if devices is None else devices)
        ndev = len(devs)
        pad = (-batch) % ndev

        def prep(a):
            if pad:
                a = jnp.concatenate([a, jnp.repeat(a[-1:], pad, axis=0)], axis=0)
            if ndev > 1:
                mesh = Mesh(np.asarray(devs), ("batch",))
                a = jax.device_put(a, NamedSharding(mesh, PartitionSpec("batch")))
            return a

        args = tuple(
            a
            if ax is None
            else jax.tree_util.tree_map(lambda x: prep(x) if eqx.is_array(x) else x, a)
            for a, ax in zip(args, axes, strict=True)
        )
        if axes not in jitted:
            jitted[axes] = eqx.filter_jit(eqx.filter_vmap(fn, in_axes=axes))
        out = jitted[axes](*args)
        if pad:
            out = jax.tree_util.tree_map(lambda x: x[:batch] if eqx.is_array(x) else x, out)
        return out

    return wrapped
