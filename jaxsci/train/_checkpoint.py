"""Training checkpoints: one `.npz` file holding arrays, history and metadata, written so that
a crash, a full disk or a damaged file never costs more than the latest checkpoint.

The array state (the `TrainState`'s arrays and the best weights) is written with
`equinox.tree_serialise_leaves` into a byte blob; the history (per-step and per-evaluation
arrays) and a JSON metadata record go next to it in the same `.npz`. The metadata holds the
run's counters, a SHA-256 digest of the blob and a *structure record* of the state (the path,
dtype and shape of every array and a summary of its container types), which a load compares
with the structure it is asked for.

Writing (`save_checkpoint`): the new file goes to a temporary name in the same folder, is
flushed and fsynced, then read back and compared array by array with what was meant to be
written. Only a verified file replaces the current one: the current one is first kept as
`checkpoint.prev.npz` (a hard link, or a copy where links are not supported), then the new
one is moved onto `checkpoint.npz` with `os.replace` (atomic on POSIX and Windows) and the
folder is fsynced. A run killed at any moment leaves the latest verified checkpoint in
place, and the one before it beside it.

Reading (`load_checkpoint`): an unreadable `checkpoint.npz` (empty, truncated, a failed
digest) is logged as an error naming it, and the previous checkpoint is used instead (with a
warning naming both); if neither can be read the error names both files.
"""

import hashlib
import io
import itertools
import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any, NamedTuple

import equinox as eqx
import jax
import numpy as np

logger = logging.getLogger("jaxsci.train")

CHECKPOINT_NAME = "checkpoint.npz"
PREVIOUS_NAME = "checkpoint.prev.npz"
UNREADABLE_NAME = "checkpoint.npz.unreadable"  # where `fit` moves an unreadable one aside
# 3: the metadata holds the state's structure record and the SHA-256 of its bytes.
# 2: the state is (TrainState, best parameters) without PRNG keys (1: a tuple of params,
# optimizer state, EMA and best parameters). Version 2 files are still read (without the
# structure and digest checks).
FORMAT_VERSION = 3
_READABLE_VERSIONS = (2, 3)


class UnreadableCheckpointError(ValueError):
    """A checkpoint file that cannot be read back: empty, truncated or corrupt."""


class Checkpoint(NamedTuple):
    """A checkpoint file read back: its path, metadata, history and the state's bytes."""

    path: Path
    meta: dict[str, Any]
    history: dict[str, np.ndarray]
    state_bytes: bytes


def checkpoint_path(directory: str | Path) -> Path:
    """The current checkpoint file in `directory`."""
    return Path(directory) / CHECKPOINT_NAME


def previous_checkpoint_path(directory: str | Path) -> Path:
    """The previous checkpoint file in `directory`, the fallback for an unreadable current one."""
    return Path(directory) / PREVIOUS_NAME


def has_checkpoint(directory: str | Path) -> bool:
    """Whether `directory` holds a checkpoint file (current or previous, readable or not)."""
    return checkpoint_path(directory).is_file() or previous_checkpoint_path(directory).is_file()


# ------------------------------------------------------------------ structure records


def _summary(x: Any) -> str:
    """A one-line description of the container types of a pytree: named tuples and dicts
    with their fields, tuples and lists element by element, arrays as dtype[shape], an
    equinox module by its class name only (its arrays are in the record's paths)."""
    if x is None:
        return "None"
    if isinstance(x, jax.Array | np.ndarray | np.generic):
        return f"{x.dtype}{list(x.shape)}"
    if isinstance(x, eqx.Module):
        return type(x).__name__
    names = getattr(x, "_fields", None)  # a NamedTuple's
    if isinstance(x, tuple) and names is not None:
        fields = ", ".join(f"{f}={_summary(getattr(x, f))}" for f in names)
        return f"{type(x).__name__}({fields})"
    if isinstance(x, tuple | list):
        inner = ", ".join(_summary(v) for v in x)
        if isinstance(x, list):
            return f"[{inner}]"
        return f"({inner},)" if len(x) == 1 else f"({inner})"
    if isinstance(x, dict):
        items = sorted(x.items(), key=lambda kv: str(kv[0]))
        return "{" + ", ".join(f"{k!r}: {_summary(v)}" for k, v in items) + "}"
    return type(x).__name__


def structure_record(tree: Any) -> dict[str, Any]:
    """The structure of a pytree as a JSON-able record: `types`, a summary of its container
    types, and `arrays`, the [path, dtype, shape] of each array leaf in flattening order
    (other leaves are not part of a checkpoint and are left out)."""
    leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
    arrays = [
        [jax.tree_util.keystr(path), str(leaf.dtype), list(leaf.shape)]
        for path, leaf in leaves
        if isinstance(leaf, jax.Array | np.ndarray | np.generic)
    ]
    return {"types": _summary(tree), "arrays": arrays}


def _entry(entry: list | None) -> str:
    if entry is None:
        return "no array"
    path, dtype, shape = entry
    return f"{path} {dtype}{list(shape)}"


def structure_difference(saved: dict[str, Any], wanted: dict[str, Any]) -> str | None:
    """None if the two structure records agree, else their first difference in words."""
    for a, b in itertools.zip_longest(saved["arrays"], wanted["arrays"]):
        if a != b:
            return f"saved {_entry(a)}, this run's {_entry(b)}"
    if saved["types"] != wanted["types"]:
        return f"saved types {saved['types']}, this run's {wanted['types']}"
    return None


def shorten(text: str, limit: int = 400) -> str:
    """`text`, cut to `limit` characters with an ellipsis (for error messages)."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


# ------------------------------------------------------------------ reading


def _read_arrays(path: Path) -> dict[str, np.ndarray]:
    """Every array of the `.npz` at `path`, read in full (so that a truncated member or a
    failed CRC shows here)."""
    try:
        with np.load(path) as data:
            return {name: data[name] for name in data.files}
    except FileNotFoundError:
        raise
    except Exception as e:  # zipfile, zlib, EOF and format errors all mean "unreadable"
        size = path.stat().st_size if path.is_file() else 0
        raise UnreadableCheckpointError(
            f"checkpoint file {path} is unreadable (empty, truncated or corrupt; "
            f"{size} bytes): {type(e).__name__}: {e}"
        ) from e


def _parse(path: Path, arrays: dict[str, np.ndarray]) -> Checkpoint:
    try:
        meta = json.loads(str(arrays["meta"]))
        state_bytes = arrays["state"].tobytes()
    except (KeyError, ValueError) as e:
        raise UnreadableCheckpointError(
            f"checkpoint file {path} is unreadable (no valid `meta` or `state` entry): {e}"
        ) from e
    version = meta.get("version")
    if version not in _READABLE_VERSIONS:
        raise ValueError(
            f"{path} has checkpoint format {version}, expected one of {_READABLE_VERSIONS}."
        )
    digest = meta.get("state_sha256")
    if digest is not None and hashlib.sha256(state_bytes).hexdigest() != digest:
        raise UnreadableCheckpointError(
            f"checkpoint file {path} is corrupt: its state bytes fail their SHA-256 check."
        )
    history = {k.removeprefix("history/"): v for k, v in arrays.items() if k.startswith("history/")}
    return Checkpoint(path, meta, history, state_bytes)


def read_checkpoint(directory: str | Path) -> Checkpoint:
    """The newest readable checkpoint in `directory`: the current file, or, when that one is
    missing or unreadable, the previous one (an error is logged naming the unreadable file
    and a warning naming both).

    Raises:
        FileNotFoundError: naming both files when neither exists.
        ValueError: naming both files and what is wrong with each when neither can be read,
            and naming the file for a checkpoint format this version cannot read.
    """
    current, previous = checkpoint_path(directory), previous_checkpoint_path(directory)
    if not current.is_file() and not previous.is_file():
        raise FileNotFoundError(f"no checkpoint in {directory}: neither {current} nor {previous}.")
    problems = []
    for path in (current, previous):
        if not path.is_file():
            problems.append(f"{path} does not exist")
            continue
        try:
            ckpt = _parse(path, _read_arrays(path))
        except UnreadableCheckpointError as e:
            logger.error("%s", e)
            problems.append(str(e))
            continue
        if path == previous:
            logger.warning(
                "resuming from the previous checkpoint %s instead of %s, which %s",
                previous,
                current,
                "does not exist" if not current.is_file() else "is unreadable",
            )
        return ckpt
    raise ValueError(
        f"no readable checkpoint in {directory}: {problems[0].rstrip('.')}; and the "
        f"fallback: {problems[1].rstrip('.')}."
    )


def restore_state(ckpt: Checkpoint, like: Any) -> Any:
    """The state held by `ckpt`, with the structure of `like`; a ValueError naming the file
    and the first difference when the checkpoint was written for another structure."""
    saved = ckpt.meta.get("structure")
    if saved is not None:
        difference = structure_difference(saved, structure_record(like))
        if difference is not None:
            raise ValueError(
                f"{ckpt.path} holds a state of another structure than the one asked for "
                f"({shorten(difference)})."
            )
    return eqx.tree_deserialise_leaves(io.BytesIO(ckpt.state_bytes), like)


# ------------------------------------------------------------------ writing


def _fsync_directory(directory: Path) -> None:
    # Makes the renames durable; folders cannot be opened for this on some platforms.
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _verify(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Read the file at `path` back and compare it with `arrays`, byte for byte."""
    back = _read_arrays(path)
    _parse(path, back)
    if sorted(back) != sorted(arrays):
        raise UnreadableCheckpointError(f"entries {sorted(back)}, expected {sorted(arrays)}")
    for name, want in arrays.items():
        got = back[name]
        if got.dtype != want.dtype or got.shape != want.shape or got.tobytes() != want.tobytes():
            raise UnreadableCheckpointError(f"entry {name!r} differs from what was written")


def save_checkpoint(
    directory: str | Path, state: Any, history: dict[str, Any], meta: dict[str, Any]
) -> Path:
    """Write `state` (a pytree of arrays), `history` (a dict of arrays) and `meta` (a
    JSON-able dict) as the checkpoint of `directory`; return its path.

    The file is written to a temporary name, fsynced and verified by reading it back; only
    then does the current checkpoint become `checkpoint.prev.npz` and the new one
    `checkpoint.npz` (see the module's docstring). `meta` gains `version`, `structure` (the
    state's `structure_record`, which `load_checkpoint` checks) and `state_sha256`.

    Raises:
        OSError: if the write fails or the file does not read back intact; the existing
            checkpoints are then unchanged and the temporary file is removed.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    blob = io.BytesIO()
    eqx.tree_serialise_leaves(blob, state)
    state_bytes = blob.getvalue()
    record = {
        "version": FORMAT_VERSION,
        **meta,
        "structure": structure_record(state),
        "state_sha256": hashlib.sha256(state_bytes).hexdigest(),
    }
    arrays: dict[str, Any] = {f"history/{k}": np.asarray(v) for k, v in history.items()}
    arrays["state"] = np.frombuffer(state_bytes, dtype=np.uint8)
    arrays["meta"] = np.asarray(json.dumps(record))
    final, previous = checkpoint_path(directory), previous_checkpoint_path(directory)
    tmp = directory / f".{CHECKPOINT_NAME}.tmp-{os.getpid()}"
    keep = directory / f".{PREVIOUS_NAME}.tmp-{os.getpid()}"
    try:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        try:
            _verify(tmp, arrays)
        except UnreadableCheckpointError as e:
            raise OSError(
                f"the checkpoint written to {tmp} did not read back intact ({e}); "
                f"{final} and {previous} are unchanged."
            ) from e
        if final.is_file():
            keep.unlink(missing_ok=True)
            try:
                os.link(final, keep)
            except OSError:  # a file system without hard links
                shutil.copyfile(final, keep)
            os.replace(keep, previous)
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)
        keep.unlink(missing_ok=True)
    _fsync_directory(directory)
    return final


def load_checkpoint(directory: str | Path, like: Any) -> tuple[Any, dict[str, np.ndarray], dict]:
    """Read the checkpoint of `directory` written by `save_checkpoint`; return
    (state, history, meta).

    Arguments:
        directory: the folder given to `save_checkpoint`.
        like: a pytree with the state's structure (arrays of the right shapes and dtypes).

    The current checkpoint is read, or the previous one when the current one is missing or
    unreadable (see `read_checkpoint`).

    Raises:
        ValueError: naming the file(s) when no checkpoint can be read, and naming the file
            and the first difference when `like` has another structure than the state saved.
    """
    ckpt = read_checkpoint(directory)
    return restore_state(ckpt, like), ckpt.history, ckpt.meta
