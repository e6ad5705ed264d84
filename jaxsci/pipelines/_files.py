"""File helpers of the run folders, and `PartialRun` (an interrupted run's partial metrics)."""

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any


def write_atomically(path: Path, write: Callable[[Path], Any]) -> None:
    """`write(tmp)` a temporary file beside `path`, then rename it onto `path`: readers see
    the old file or the whole new one, never half a file."""
    tmp = path.with_name(f".{path.name}.tmp")
    write(tmp)
    tmp.replace(path)


class PartialRun(KeyboardInterrupt):
    """Raised by a pipeline that was interrupted (Ctrl-C) after it had saved what it had:
    `metrics` are over the part that ran and say so (`partial: True`). The runner writes
    them to `metrics.json` but no `COMPLETE` marker, and the run exits as interrupted."""

    def __init__(self, metrics: Mapping[str, Any]):
        super().__init__("interrupted; partial metrics saved")
        self.metrics = {**metrics, "partial": True}
