"""Data assimilation: observation models, the EnKF family, LETKF, particle filters, Kalman."""

from ._assimilate import (
    AssimilationResult as AssimilationResult,
)
from ._assimilate import (
    FilterResult as FilterResult,
)
from ._assimilate import (
    assimilate as assimilate,
)
from ._assimilate import (
    run_filter as run_filter,
)
from ._base import (
    AbstractEnsembleFilter as AbstractEnsembleFilter,
)
from ._base import (
    AbstractParticleFilter as AbstractParticleFilter,
)
from ._base import (
    ensemble_log_likelihood as ensemble_log_likelihood,
)
from ._ensemble_filters import (
    ETKF as ETKF,
)
from ._ensemble_filters import (
    DEnKF as DEnKF,
)
from ._ensemble_filters import (
    EnKF as EnKF,
)
from ._ensemble_filters import (
    SerialEnSRF as SerialEnSRF,
)
from ._ensemble_filters import (
    random_mean_preserving_rotation as random_mean_preserving_rotation,
)
from ._inflation import RTPP as RTPP
from ._inflation import RTPS as RTPS
from ._inflation import Inflation as Inflation
from ._kalman import KalmanResult as KalmanResult
from ._kalman import kalman_filter as kalman_filter
from ._kalman import rts_smoother as rts_smoother
from ._letkf import LETKF as LETKF
from ._likelihood import log_likelihood as log_likelihood
from ._localization import gaspari_cohn as gaspari_cohn
from ._observations import (
    AbstractObservation as AbstractObservation,
)
from ._observations import (
    IndexObservation as IndexObservation,
)
from ._observations import (
    LinearObservation as LinearObservation,
)
from ._observations import (
    NonlinearObservation as NonlinearObservation,
)
from ._observations import (
    every_kth as every_kth,
)
from ._observations import (
    synthetic_observations as synthetic_observations,
)
from ._particle import BootstrapPF as BootstrapPF
from ._particle import particle_mean as particle_mean
from ._resampling import RESAMPLING_SCHEMES as RESAMPLING_SCHEMES
from ._resampling import effective_sample_size as effective_sample_size
from ._resampling import multinomial as multinomial
from ._resampling import residual as residual
from ._resampling import stratified as stratified
from ._resampling import systematic as systematic
