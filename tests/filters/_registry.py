"""Registry of every filter implementation (all `AbstractFilter`s), for the conformance suite."""

import numpy as np

from jaxsci import filters as F, smc

DIM = 8
OBS_INDICES = np.arange(DIM)  # P = 8 >= N = 5: eigenvalues of the transforms are distinct
N_MEMBERS = 5


def obs_op():
    return F.IndexObservation(DIM, OBS_INDICES, noise_cov=np.linspace(0.5, 1.5, DIM))


# name -> builder taking the observation operator (LETKF precomputes its tapers from it)
FILTERS = {
    "EnKF": lambda o: F.EnKF(),
    "ETKF": lambda o: F.ETKF(),
    "ETKF-rot": lambda o: F.ETKF(rotate=True),
    "DEnKF": lambda o: F.DEnKF(),
    "SerialEnSRF": lambda o: F.SerialEnSRF(),
    "LETKF": lambda o: F.LETKF(2.0, o),
    # 3 of the 8 observations per domain: the gathered-local-observations path
    "LETKF-local": lambda o: F.LETKF(0.5, o),
    # the same in ensemble space (N = 5 > k = 3 local observations: the default above is
    # observation space), so both of the LETKF's local forms keep the contract
    "LETKF-local-ens": lambda o: F.LETKF(0.5, o, space="ensemble"),
    # batches of 3, 3, 2 variables (DAPPER's split of 8) and the random rotation
    "LETKF-batch3-rot": lambda o: F.LETKF(2.0, o, batch_size=3, rotate=True),
    # batches of 2 seeing 4 of the 8 observations: the gathered path with batches
    "LETKF-local-batch2": lambda o: F.LETKF(0.5, o, batch_size=2),
    "Inflation(ETKF)": lambda o: F.Inflation(F.ETKF(), 1.05),
    "RTPS(EnKF)": lambda o: F.RTPS(F.EnKF(), 0.5),
    "RTPP(DEnKF)": lambda o: F.RTPP(F.DEnKF(), 0.5),
    "PF-systematic": lambda o: F.BootstrapPF(smc.systematic, 0.5, reg=1.0),
    "PF-multinomial-always": lambda o: F.BootstrapPF(smc.multinomial, 1.0),
    "PF-residual-diff-jitter-all": lambda o: F.BootstrapPF(
        smc.residual, 1.0, reg=0.5, differentiable=True, jitter_rule=smc.JitterAll()
    ),
    "PF-stratified": lambda o: F.BootstrapPF(smc.stratified, 0.9),
    "PF-soft": lambda o: F.BootstrapPF(smc.SoftResampler(smc.systematic, 0.5), 1.0),
}
