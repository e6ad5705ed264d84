"""`.npz` caching of generated datasets, keyed by everything that determines them."""

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

_META = "__meta__"


def cached(
    path: str | Path | None, meta: dict[str, Any], generate: Callable[[], dict[str, np.ndarray]]
) -> dict[str, np.ndarray]:
    """Load the arrays cached at `path` if they were generated with `meta`, else generate.

    `meta` (JSON-serialisable: the generator's name, its parameters and the PRNG key data)
    is stored next to the arrays. A file at `path` generated with other settings is not
    overwritten: a ValueError names the settings that differ. Writes go to a temporary
    file that is renamed over `path` (atomic), so an interrupted run leaves no torn cache.
    With `path=None` the arrays are generated and returned without caching.
    """
    if path is None:
        return generate()
    path = Path(path)
    want = json.loads(json.dumps(meta))  # normalise (tuples -> lists, ...)
    if path.is_file():
        with np.load(path) as data:
            if _META not in data.files:
                raise ValueError(f"`path` {str(path)!r} exists but is not a jaxsci dataset cache.")
            have = json.loads(str(data[_META]))
            if have != want:
                diff = sorted(k for k in set(have) | set(want) if have.get(k) != want.get(k))
                shown = ", ".join(
                    f"{k}: cached {have.get(k)!r}, asked {want.get(k)!r}" for k in diff
                )
                raise ValueError(
                    f"`path` {str(path)!r} caches a dataset generated with other settings "
                    f"({shown}); remove it or choose another path."
                )
            return {k: data[k] for k in data.files if k != _META}
    arrays: dict[str, Any] = {k: np.asarray(v) for k, v in generate().items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as f:
        payload: dict[str, Any] = {**arrays, _META: np.asarray(json.dumps(want))}
        np.savez(f, **payload)
    os.replace(tmp, path)
    return arrays
