"""Observation models y = h(x) + r, r ~ N(0, R): one type for the filters (`jaxsci.filters`)
and for posterior sampling with a diffusion prior (`jaxsci.diffusion`).

A low-level package: it imports nothing of jaxsci but the shared types and checks.
"""

from ._base import (
    AbstractLinearObservation as AbstractLinearObservation,
    AbstractObservation as AbstractObservation,
    GaussianNoise as GaussianNoise,
)
from ._gaussian import gaussian_log_density as gaussian_log_density
from ._index import (
    IndexObservation as IndexObservation,
    every_kth as every_kth,
    every_kth_grid as every_kth_grid,
)
from ._linear import LinearObservation as LinearObservation
from ._nonlinear import NonlinearObservation as NonlinearObservation
from ._synthetic import synthetic_observations as synthetic_observations
