"""Model-error and equation discovery: term libraries, sparse Bayesian regression, MEDIDA.

Spectral term libraries on periodic grids (`SpectralLibrary`), a semilinear model plus
library terms (`CorrectedModel`), model-error samples and their designs
(`model_error_samples`, `instantaneous_design`, `integrated_design`), sparse regression
(`RVM`, `STLSQ`, `HorseshoeRegression`), the whole regression step (`fit_model_error`), the
MEDIDA loop from noisy observations through the EnKF (`discover_model_error`, `EnKFPasses`,
the sample kinds `InstrumentalPairs`, `ObservationPairs`, `AnalysisPairs`), closures learned
from observations through a differentiable filter (`learn_closure`) or fitted to filter
increments (`fit_closure_to_increments`), the true model
error of a twin experiment (`true_coefficients`) and forecast skill (`normalised_error`,
`valid_time`, from `jaxsci.metrics`). `LayeredLibrary` is the term library of layered 2-D
PV models (two-layer quasi-geostrophic turbulence); their error is found from sparse
increments (`discover_from_increments`) or with the coefficients inside the LETKF
(`discover_in_filter`).
"""

# forecast skill lives in `jaxsci.metrics`; re-exported for the discovery examples
from ..metrics import normalised_error as normalised_error, valid_time as valid_time
from ._base import (
    AbstractSparseRegression as AbstractSparseRegression,
    NormalEquations as NormalEquations,
    SparseRegressionResult as SparseRegressionResult,
    normal_equations as normal_equations,
)
from ._closure import (
    ClosureTraining as ClosureTraining,
    IncrementFit as IncrementFit,
    fit_closure_to_increments as fit_closure_to_increments,
    learn_closure as learn_closure,
)
from ._corrected import CorrectedModel as CorrectedModel
from ._driver import (
    DiscoveryInfo as DiscoveryInfo,
    EnKFPasses as EnKFPasses,
    ModelErrorDiscovery as ModelErrorDiscovery,
    discover_model_error as discover_model_error,
)
from ._fit import (
    DESIGNS as DESIGNS,
    ModelErrorFit as ModelErrorFit,
    fit_model_error as fit_model_error,
)
from ._horseshoe import HorseshoeRegression as HorseshoeRegression
from ._in_filter import (
    InFilterDiscovery as InFilterDiscovery,
    InFilterInfo as InFilterInfo,
    coefficient_scales as coefficient_scales,
    discover_in_filter as discover_in_filter,
)
from ._increments import (
    INCREMENT_DESIGNS as INCREMENT_DESIGNS,
    STATES as STATES,
    IncrementDiscovery as IncrementDiscovery,
    IncrementInfo as IncrementInfo,
    IncrementRegression as IncrementRegression,
    discover_from_increments as discover_from_increments,
    interpolate_layers as interpolate_layers,
    lowpass_relative_error as lowpass_relative_error,
    regress_increments as regress_increments,
)
from ._layered_library import (
    QG_TERMS as QG_TERMS,
    LayeredLibrary as LayeredLibrary,
    layer_term_name as layer_term_name,
    parse_layer_term as parse_layer_term,
)
from ._library import (
    DEFAULT_TERMS as DEFAULT_TERMS,
    SpectralLibrary as SpectralLibrary,
    parse_term as parse_term,
    term_name as term_name,
)
from ._pairs import (
    AbstractSamplePairs as AbstractSamplePairs,
    AnalysisPairs as AnalysisPairs,
    InstrumentalPairs as InstrumentalPairs,
    ObservationPairs as ObservationPairs,
)
from ._rvm import RVM as RVM
from ._samples import (
    instantaneous_design as instantaneous_design,
    integrated_design as integrated_design,
    model_error_samples as model_error_samples,
)
from ._stlsq import STLSQ as STLSQ
from ._truth import TrueCoefficients as TrueCoefficients, true_coefficients as true_coefficients
