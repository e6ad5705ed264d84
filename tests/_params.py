"""Parametrisation helpers shared by test modules."""

from collections.abc import Iterable
from pathlib import Path

import pytest


def stem_params(paths: Iterable[Path], slow: Iterable[str] = ()) -> list:
    """One `pytest.param` per file, with the file's stem as id; the stems in `slow` are
    marked `slow` (whole runs that `make test` leaves to `make test-slow`; CI runs both)."""
    slow = set(slow)
    params = [
        pytest.param(p, id=p.stem, marks=pytest.mark.slow if p.stem in slow else ()) for p in paths
    ]
    missing = slow - {p.stem for p in paths}
    assert not missing, f"slow cases that no longer exist: {sorted(missing)}"
    return params


def marked_params(values: Iterable, slow: Iterable = ()) -> list:
    """One `pytest.param` per value (id: the value), the values in `slow` marked `slow`:
    the cases of a suite that take 6.5 s or more on the 2-core CI machine."""
    values, slow = list(values), set(slow)
    missing = slow - set(values)
    assert not missing, f"slow cases that are not in the suite: {sorted(missing)}"
    return [pytest.param(v, id=str(v), marks=pytest.mark.slow if v in slow else ()) for v in values]
