"""jaxsci: differentiable simulation and probabilistic inference for science, in JAX."""

from . import (
    data as data,
    diffusion as diffusion,
    discovery as discovery,
    dynamics as dynamics,
    filters as filters,
    inference as inference,
    integrate as integrate,
    losses as losses,
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
