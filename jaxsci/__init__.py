"""jaxsci: differentiable simulation and probabilistic inference for science, in JAX.

The subpackages and the names re-exported here are imported on first use (PEP 562
`__getattr__`), so `import jaxsci` alone, and the `jaxsci` command's argument parsing
(`jaxsci --help`), does not import JAX; `jaxsci.filters`, `jaxsci.simulate` and
`from jaxsci import simulate` work as usual.
"""

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # what the lazy imports below provide, for type checkers and editors
    from . import (
        data as data,
        diffusion as diffusion,
        discovery as discovery,
        distributed as distributed,
        dynamics as dynamics,
        filters as filters,
        inference as inference,
        integrate as integrate,
        losses as losses,
        metrics as metrics,
        nn as nn,
        observations as observations,
        smc as smc,
        spectral as spectral,
        train as train,
    )
    from ._interrupts import deferred_interrupts as deferred_interrupts
    from .filters import assimilate as assimilate, run_filter as run_filter
    from .integrate import (
        Flow as Flow,
        Trajectory as Trajectory,
        ensemble as ensemble,
        lyapunov_exponents as lyapunov_exponents,
        simulate as simulate,
    )

__version__ = "0.1.0"

# `from jaxsci import *` imports these, as before the imports were lazy
__all__ = [
    "data",
    "diffusion",
    "discovery",
    "distributed",
    "dynamics",
    "filters",
    "inference",
    "integrate",
    "losses",
    "metrics",
    "nn",
    "observations",
    "smc",
    "spectral",
    "train",
    "deferred_interrupts",
    "assimilate",
    "run_filter",
    "Flow",
    "Trajectory",
    "ensemble",
    "lyapunov_exponents",
    "simulate",
]
# re-exported name -> the module that defines it; the other names of __all__ are subpackages
_NAMES = {
    "deferred_interrupts": "._interrupts",
    "assimilate": ".filters",
    "run_filter": ".filters",
    "Flow": ".integrate",
    "Trajectory": ".integrate",
    "ensemble": ".integrate",
    "lyapunov_exponents": ".integrate",
    "simulate": ".integrate",
}


def __getattr__(name: str) -> Any:
    """Import a subpackage or a re-exported name on first access (PEP 562)."""
    if name in _NAMES:
        value = getattr(importlib.import_module(_NAMES[name], __name__), name)
    elif name in __all__:
        value = importlib.import_module(f".{name}", __name__)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value  # later accesses skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
