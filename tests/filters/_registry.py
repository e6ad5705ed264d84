"""Registry of every filter implementation, for the conformance suite."""

import numpy as np

from jaxsci import filters as F

DIM = 8
OBS_INDICES = np.arange(DIM)  # P = 8 >= N = 5: eigenvalues of the transforms are distinct
N_MEMBERS = 5


def obs_op():
    return F.IndexObservation(DIM, OBS_INDICES, noise_cov=np.linspace(0.5, 1.5, DIM))


ENSEMBLE_FILTERS = {
    "EnKF": lambda o: F.EnKF(),
    "ETKF": lambda o: F.ETKF(),
    "ETKF-rot": lambda o: F.ETKF(rotate=True),
    "DEnKF": lambda o: F.DEnKF(),
    "SerialEnSRF": lambda o: F.SerialEnSRF(),
    "LETKF": lambda o: F.LETKF(2.0, o),
    # 3 of the 8 observations per domain: the gathered-local-observations path
    "LETKF-local": lambda o: F.LETKF(0.5, o),
    "Inflation(ETKF)": lambda o: F.Inflation(F.ETKF(), 1.05),
    "RTPS(EnKF)": lambda o: F.RTPS(F.EnKF(), 0.5),
    "RTPP(DEnKF)": lambda o: F.RTPP(F.DEnKF(), 0.5),
}

PARTICLE_FILTERS = {
    "PF-systematic": F.BootstrapPF("systematic", 0.5, reg=1.0),
    "PF-multinomial-always": F.BootstrapPF("multinomial", 1.0),
    "PF-residual-diff": F.BootstrapPF("residual", 1.0, reg=0.5, differentiable=True),
    "PF-stratified": F.BootstrapPF("stratified", 0.9),
}
