"""Metrics of experiments: forecast skill, ensemble calibration (interval coverage, spread-skill
ratio), sample quality and convergence orders.

Plain functions of arrays (NumPy or JAX), shared by the pipelines, the examples and the
benchmarks; each says which paper or peer it follows.
"""

from ._convergence import fit_convergence_order as fit_convergence_order
from ._correlation import (
    high_correlation_time as high_correlation_time,
    pearson_correlation as pearson_correlation,
)
from ._ensemble import (
    EnsembleScores as EnsembleScores,
    ensemble_scores as ensemble_scores,
    interval_coverage as interval_coverage,
)
from ._forecast import normalised_error as normalised_error, valid_time as valid_time
from ._sample_quality import mmd2 as mmd2
