"""Low-level numerics on periodic domains: the spectral grid shared by the semilinear PDE
models, the discovery term library, Sobolev norms and Gaussian random fields."""

from ._grid import MAX_GRID_POINTS as MAX_GRID_POINTS, PeriodicGrid as PeriodicGrid
