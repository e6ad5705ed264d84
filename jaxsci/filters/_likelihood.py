"""Filter-based log-likelihoods of observations, differentiable in the model's parameters."""

from .._custom_types import Array, Float, Key
from ..observations import AbstractObservation
from ._assimilate import FlowFn, run_filter
from ._base import AbstractFilter


def log_likelihood(
    key: Key,
    flow: FlowFn,
    obs_op: AbstractObservation,
    filter: AbstractFilter,
    initial_ensemble: Float[Array, "ens dim"],
    observations: Float[Array, "time obs"],
    *,
    dt: float,
    t0: float = 0.0,
    process_noise_chol: Float[Array, "dim dim"] | None = None,
) -> Float[Array, ""]:
    """log p(y_{1:K}) estimated by running `filter`: sum_k log p(y_k | y_{1:k-1}).

    For ensemble Kalman filters each term is the Gaussian approximation
    log N(y_k; mean h(E_f), Y_f Y_f^T/(N-1) + R) of the forecast ensemble (the "EnKF
    likelihood", e.g. Katzfuss et al. 2020); for a particle filter it is the log of the
    unbiased evidence estimate. Differentiate with `eqx.filter_grad` with respect to the
    parameters inside `flow` (an `eqx.Module`, e.g. `jaxsci.integrate.Flow`), with the key
    fixed (common random numbers). Use a filter whose analysis is smooth (EnKF, DEnKF; ETKF
    and LETKF through their inverse square root) or a particle filter with
    differentiable resampling (`BootstrapPF(differentiable=True)`, or a
    `jaxsci.smc.SoftResampler`).
    """
    res = run_filter(
        key,
        flow,
        obs_op,
        filter,
        initial_ensemble,
        observations,
        t0=t0,
        dt=dt,
        process_noise_chol=process_noise_chol,
    )
    return res.log_likelihood.sum()
