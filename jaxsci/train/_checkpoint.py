"""Atomic training checkpoints: one `.npz` file holding arrays, history and metadata.

The array state (the `TrainState`'s arrays and the best weights) is written with
`equinox.tree_serialise_leaves` into a byte blob; the history (per-step and per-evaluation
arrays) and a JSON metadata record (step, PRNG key data, early-stopping counters) go next
to it in the same `.npz`. The file is first written to a temporary name in the same
folder, flushed to disk, then moved over the old checkpoint with `os.replace`, which is
atomic on POSIX and Windows: a run killed at any moment leaves either the previous
checkpoint or the new one, never a torn file.
"""

import io
import json
import os
from pathlib import Path
from typing import Any

import equinox as eqx
import numpy as np

CHECKPOINT_NAME = "checkpoint.npz"
# 2: the state is (TrainState, best parameters) without PRNG keys (1: a tuple of params,
# optimizer state, EMA and best parameters).
FORMAT_VERSION = 2


def checkpoint_path(directory: str | Path) -> Path:
    return Path(directory) / CHECKPOINT_NAME


def save_checkpoint(
    directory: str | Path, state: Any, history: dict[str, Any], meta: dict[str, Any]
) -> Path:
    """Write `state` (a pytree of arrays), `history` and `meta` atomically; return the path."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    blob = io.BytesIO()
    eqx.tree_serialise_leaves(blob, state)
    arrays: dict[str, Any] = {f"history/{k}": np.asarray(v) for k, v in history.items()}
    arrays["state"] = np.frombuffer(blob.getvalue(), dtype=np.uint8)
    arrays["meta"] = np.asarray(json.dumps({"version": FORMAT_VERSION, **meta}))
    final = checkpoint_path(directory)
    tmp = directory / f".{CHECKPOINT_NAME}.tmp-{os.getpid()}"
    with open(tmp, "wb") as f:
        np.savez(f, **arrays)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, final)
    return final


def load_checkpoint(directory: str | Path, like: Any) -> tuple[Any, dict[str, np.ndarray], dict]:
    """Read a checkpoint written by `save_checkpoint`; `like` gives the state's structure."""
    path = checkpoint_path(directory)
    with np.load(path) as data:
        meta = json.loads(str(data["meta"]))
        if meta.get("version") != FORMAT_VERSION:
            raise ValueError(
                f"{path} has checkpoint format {meta.get('version')}, expected {FORMAT_VERSION}."
            )
        history = {
            k.removeprefix("history/"): data[k] for k in data.files if k.startswith("history/")
        }
        blob = io.BytesIO(data["state"].tobytes())
    state = eqx.tree_deserialise_leaves(blob, like)
    return state, history, meta
