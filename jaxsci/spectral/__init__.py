"""Low-level numerics on periodic domains: the spectral grid shared by the semilinear PDE
models, the discovery term library, Sobolev norms and Gaussian random fields; isotropic
(shell-summed) spectra of fields on it."""

from ._grid import MAX_GRID_POINTS as MAX_GRID_POINTS, PeriodicGrid as PeriodicGrid
from ._spectrum import (
    isotropic_spectrum as isotropic_spectrum,
    kinetic_energy_spectrum as kinetic_energy_spectrum,
)
