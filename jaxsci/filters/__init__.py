"""Data assimilation: observation models, the EnKF family, LETKF, particle filters, Kalman."""

from ._assimilate import (
    AssimilationResult as AssimilationResult,
    FilterResult as FilterResult,
    assimilate as assimilate,
    run_filter as run_filter,
)
from ._base import (
    AbstractEnsembleFilter as AbstractEnsembleFilter,
    AbstractParticleFilter as AbstractParticleFilter,
    ensemble_log_likelihood as ensemble_log_likelihood,
)
from ._ensemble_filters import (
    ETKF as ETKF,
    DEnKF as DEnKF,
    EnKF as EnKF,
    SerialEnSRF as SerialEnSRF,
    random_mean_preserving_rotation as random_mean_preserving_rotation,
)
from ._inflation import RTPP as RTPP, RTPS as RTPS, Inflation as Inflation
from ._kalman import (
    KalmanResult as KalmanResult,
    kalman_filter as kalman_filter,
    rts_smoother as rts_smoother,
)
from ._letkf import LETKF as LETKF
from ._likelihood import log_likelihood as log_likelihood
from ._localization import gaspari_cohn as gaspari_cohn
from ._observations import (
    AbstractObservation as AbstractObservation,
    IndexObservation as IndexObservation,
    LinearObservation as LinearObservation,
    NonlinearObservation as NonlinearObservation,
    every_kth as every_kth,
    synthetic_observations as synthetic_observations,
)
from ._particle import BootstrapPF as BootstrapPF, particle_mean as particle_mean
from ._resampling import (
    RESAMPLING_SCHEMES as RESAMPLING_SCHEMES,
    effective_sample_size as effective_sample_size,
    multinomial as multinomial,
    residual as residual,
    stratified as stratified,
    systematic as systematic,
)
