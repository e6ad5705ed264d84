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


def write_netcdf(path: Path, dataset: Any) -> None:
    """Write an `xarray.Dataset` to the netCDF-4 file `path` (h5netcdf engine, gzip level 4
    on the arrays), atomically (`write_atomically`)."""
    encoding = {
        name: {"zlib": True, "complevel": 4}
        for name, var in dataset.data_vars.items()
        if var.ndim > 0
    }
    write_atomically(path, lambda tmp: dataset.to_netcdf(tmp, engine="h5netcdf", encoding=encoding))


class PartialRun(KeyboardInterrupt):
    """Raised by a pipeline that was interrupted (Ctrl-C) after it had saved what it had:
    `metrics` are over the part that ran and say so (`partial: True`). The runner writes
    them to `metrics.json` but no `COMPLETE` marker, and the run exits as interrupted."""

    def __init__(self, metrics: Mapping[str, Any]):
        super().__init__("interrupted; partial metrics saved")
        self.metrics = {**metrics, "partial": True}
