"""Diffusion and flow models: schedules, parameterisations, time grids and samplers."""

from ._base import (
    AbstractSampler as AbstractSampler,
    AbstractSchedule as AbstractSchedule,
    GridArrays as GridArrays,
    SamplerState as SamplerState,
)
from ._exponential import (
    DDIM as DDIM,
    DEIS as DEIS,
    DPMSolver as DPMSolver,
    DPMSolverPP2S as DPMSolverPP2S,
    DPMSolverPPMultistep as DPMSolverPPMultistep,
    SDEDPMSolverPP2M as SDEDPMSolverPP2M,
    UniPC as UniPC,
)
from ._grids import GRIDS as GRIDS, check_grid as check_grid, time_grid as time_grid
from ._losses import (
    DSM_TARGETS as DSM_TARGETS,
    TIME_SAMPLINGS as TIME_SAMPLINGS,
    WEIGHTINGS as WEIGHTINGS,
    DenoisingScoreMatching as DenoisingScoreMatching,
    FlowMatching as FlowMatching,
)
from ._mixture import GaussianMixture as GaussianMixture
from ._parameterization import (
    PARAMETERIZATIONS as PARAMETERIZATIONS,
    ClassifierFreeGuidance as ClassifierFreeGuidance,
    Denoiser as Denoiser,
    DynamicThreshold as DynamicThreshold,
    convert as convert,
    from_x0_eps as from_x0_eps,
    to_x0_eps as to_x0_eps,
)
from ._posterior import (
    DPS as DPS,
    TDS as TDS,
    TWIST_VARIANCES as TWIST_VARIANCES,
    LinearGaussianObservation as LinearGaussianObservation,
    MixturePosterior as MixturePosterior,
    SMCResult as SMCResult,
    SMCState as SMCState,
    exact_posterior as exact_posterior,
    marginal_wasserstein1 as marginal_wasserstein1,
    smc_sample as smc_sample,
)
from ._probability_flow import (
    LogLikelihood as LogLikelihood,
    ProbabilityFlowODE as ProbabilityFlowODE,
    log_likelihood as log_likelihood,
)
from ._sample import (
    SAMPLERS as SAMPLERS,
    SampleResult as SampleResult,
    get_sampler as get_sampler,
    sample as sample,
)
from ._schedules import (
    EDM as EDM,
    SCHEDULES as SCHEDULES,
    VE as VE,
    RectifiedFlow as RectifiedFlow,
    SubVP as SubVP,
    VPCosine as VPCosine,
    VPLinear as VPLinear,
    get_schedule as get_schedule,
)
from ._time_samplers import (
    Euler as Euler,
    EulerMaruyama as EulerMaruyama,
    Heun as Heun,
    PredictorCorrector as PredictorCorrector,
)
