"""`ensemble`: vmap a function over a batch and shard the batch over devices."""

from collections.abc import Callable, Sequence
from typing import Any

import equinox as eqx

from .._sharding import batch_size, shard_batch, unpad_batch


def ensemble(
    fn: Callable,
    *,
    in_axes: Sequence[int | None] | int = 0,
    devices: Sequence[Any] | None = None,
) -> Callable:
    """Batch `fn` over the leading axis of its batched arguments, sharded over devices.

    `ensemble(fn, in_axes=(0, None))(models, y0)` runs `fn(model_i, y0)` for every member
    of a batched model (build one with `eqx.filter_vmap` over the constructor), and
    `ensemble(fn)(y0s)` over a batch of initial states. Arguments with axis 0 are split
    along their leading axis across `devices` (default `jax.devices()`) with a 1-D
    `jax.sharding.Mesh`, the same code path as multi-host JAX (`jaxsci._sharding`); a batch
    that does not divide evenly is padded by repeating its last member, so that every device
    is used, and the padding is dropped from the result. Outputs are stacked along axis 0.
    The call is jitted.

    Arguments:
        fn: a function of one member.
        in_axes: per positional argument, 0 (batched) or None (shared); an int applies to all.
        devices: the devices (`jax.Device`) to shard over. In a multi-process run
            (`jaxsci.distributed`) the default spans the devices of every process; each
            process passes the same arguments and gets the whole result back.
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
        batched = tuple(a for a, ax in zip(args, axes, strict=True) if ax == 0)
        batch_size(batched, "ensemble: the batched arguments (in_axes=0)")
        placed, size = shard_batch(batched, devices)
        it = iter(placed)
        args = tuple(a if ax is None else next(it) for a, ax in zip(args, axes, strict=True))
        if axes not in jitted:
            jitted[axes] = eqx.filter_jit(eqx.filter_vmap(fn, in_axes=axes))
        return unpad_batch(jitted[axes](*args), size)

    return wrapped
