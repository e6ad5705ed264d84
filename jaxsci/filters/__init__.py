"""Data assimilation: the EnKF family, LETKF, particle filters, Kalman (and the ProbConserv
conservation update built on its linear-Gaussian analysis), and the drivers.

Every filter is an `AbstractFilter` over one `FilterState` (ensemble, log-weights). The
observation models come from `jaxsci.observations`, the weighted-particle layer (resampling,
ESS, the SMC step, the jitter rules) from `jaxsci.smc`; both are re-exported here.
`assimilation_dataset` turns a twin experiment into an `xarray.Dataset` (netCDF).
"""

from ..observations import (
    AbstractObservation as AbstractObservation,
    IndexObservation as IndexObservation,
    LinearObservation as LinearObservation,
    NonlinearObservation as NonlinearObservation,
    every_kth as every_kth,
    every_kth_grid as every_kth_grid,
    synthetic_observations as synthetic_observations,
)
from ..smc import (
    AbstractJitterRule as AbstractJitterRule,
    JitterAll as JitterAll,
    KeepFirstCopyJitter as KeepFirstCopyJitter,
    NoUniqueJitter as NoUniqueJitter,
    Resampler as Resampler,
    SoftResampler as SoftResampler,
    StopGradientResampler as StopGradientResampler,
    effective_sample_size as effective_sample_size,
    multinomial as multinomial,
    residual as residual,
    stratified as stratified,
    systematic as systematic,
)
from ._assimilate import (
    DIVERGENCE_FRACTION as DIVERGENCE_FRACTION,
    AssimilationResult as AssimilationResult,
    FilterResult as FilterResult,
    assimilate as assimilate,
    climatological_spread as climatological_spread,
    run_filter as run_filter,
)
from ._base import (
    AbstractEnsembleFilter as AbstractEnsembleFilter,
    AbstractFilter as AbstractFilter,
    AbstractParticleFilter as AbstractParticleFilter,
    FilterInfo as FilterInfo,
    FilterState as FilterState,
)
from ._chunked import (
    ChunkedAnalysis as ChunkedAnalysis,
    ChunkedFilterResult as ChunkedFilterResult,
    analysis_memory_terms as analysis_memory_terms,
    chunked_analysis as chunked_analysis,
    run_filter_chunked as run_filter_chunked,
)
from ._conservation import conservation_update as conservation_update
from ._dataset import (
    assimilation_dataset as assimilation_dataset,
    observation_description as observation_description,
)
from ._domains import GridDomains as GridDomains, grid_domains as grid_domains
from ._ensemble_filters import (
    ETKF as ETKF,
    DEnKF as DEnKF,
    EnKF as EnKF,
    SerialEnSRF as SerialEnSRF,
    random_mean_preserving_rotation as random_mean_preserving_rotation,
)
from ._inflation import (
    RTPP as RTPP,
    RTPS as RTPS,
    AbstractRelaxation as AbstractRelaxation,
    Inflation as Inflation,
)
from ._kalman import (
    KalmanResult as KalmanResult,
    KalmanUpdate as KalmanUpdate,
    kalman_filter as kalman_filter,
    kalman_update as kalman_update,
    rts_smoother as rts_smoother,
)
from ._letkf import LETKF as LETKF
from ._likelihood import log_likelihood as log_likelihood
from ._localization import gaspari_cohn as gaspari_cohn
from ._particle import BootstrapPF as BootstrapPF
from ._statistics import (
    ensemble_log_likelihood as ensemble_log_likelihood,
    particle_mean as particle_mean,
)
