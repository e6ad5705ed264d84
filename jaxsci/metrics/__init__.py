"""Metrics of experiments: forecast skill, sample quality and convergence orders.

Plain functions of arrays (NumPy or JAX), shared by the pipelines, the examples and the
benchmarks; each says which paper or peer it follows.
"""

from ._forecast import normalised_error as normalised_error, valid_time as valid_time
