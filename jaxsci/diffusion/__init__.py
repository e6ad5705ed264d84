"""Diffusion and flow models: schedules, parameterisations, time grids, training losses,
samplers and posterior sampling. Every choice is an object (a schedule, a parameterisation,
a grid spacing, a weighting, a law of training times, a twist); the string names of the
configs live in `jaxsci.pipelines`."""

from ._analysis import PosteriorDraws as PosteriorDraws, posterior_draws as posterior_draws
from ._base import (
    AbstractSchedule as AbstractSchedule,
    newton_t_from_lambda as newton_t_from_lambda,
)
from ._dc_solver import (
    DCCalibrationInfo as DCCalibrationInfo,
    DCSolver as DCSolver,
    dc_calibrate as dc_calibrate,
    dc_lagrange_weights as dc_lagrange_weights,
)
from ._discrete import (
    AbstractTimestepSpacing as AbstractTimestepSpacing,
    DiscreteDDPM as DiscreteDDPM,
    Leading as Leading,
    Linspace as Linspace,
    Trailing as Trailing,
    cosine_betas as cosine_betas,
    ddpm_grid as ddpm_grid,
    ddpm_timesteps as ddpm_timesteps,
    linear_betas as linear_betas,
    scaled_linear_betas as scaled_linear_betas,
)
from ._dpm_solver_v3 import (
    DPMSolverV3 as DPMSolverV3,
    ModelStatistics as ModelStatistics,
    model_statistics as model_statistics,
)
from ._ensemble_posterior import (
    EnsemblePosterior as EnsemblePosterior,
    ensemble_posterior_sample as ensemble_posterior_sample,
)
from ._exponential import (
    DDIM as DDIM,
    DEIS as DEIS,
    AbstractWarmup as AbstractWarmup,
    DEISBasis as DEISBasis,
    DPMSolver as DPMSolver,
    DPMSolverPP2S as DPMSolverPP2S,
    DPMSolverPPMultistep as DPMSolverPPMultistep,
    LowerOrderWarmup as LowerOrderWarmup,
    SDEDPMSolverPP2M as SDEDPMSolverPP2M,
    SinglestepWarmup as SinglestepWarmup,
    UniPC as UniPC,
    deis_lambda_basis as deis_lambda_basis,
    deis_t_basis as deis_t_basis,
    unipc_bh1 as unipc_bh1,
    unipc_bh2 as unipc_bh2,
)
from ._fk_correctors import (
    AbstractFKTarget as AbstractFKTarget,
    AnnealedTarget as AnnealedTarget,
    FKCInfo as FKCInfo,
    FKCorrector as FKCorrector,
    FKCResult as FKCResult,
    FKCState as FKCState,
    GuidedTarget as GuidedTarget,
    ProductTarget as ProductTarget,
    fk_sample as fk_sample,
)
from ._grids import (
    AbstractSpacing as AbstractSpacing,
    Karras as Karras,
    LogSNRUniform as LogSNRUniform,
    TimeQuadratic as TimeQuadratic,
    TimeUniform as TimeUniform,
    check_grid as check_grid,
    time_grid as time_grid,
)
from ._interpolant_losses import (
    InterpolantDenoiserLoss as InterpolantDenoiserLoss,
    InterpolantVelocityLoss as InterpolantVelocityLoss,
)
from ._interpolant_sampling import (
    InterpolantSolution as InterpolantSolution,
    interpolant_ode as interpolant_ode,
    interpolant_sde as interpolant_sde,
)
from ._interpolants import (
    AbstractInterpolant as AbstractInterpolant,
    AbstractLatentNoise as AbstractLatentNoise,
    BrownianBridgeNoise as BrownianBridgeNoise,
    ExactMixtureInterpolant as ExactMixtureInterpolant,
    LinearInterpolant as LinearInterpolant,
    NoLatentNoise as NoLatentNoise,
    StochasticInterpolant as StochasticInterpolant,
    TrigonometricInterpolant as TrigonometricInterpolant,
)
from ._inversion import (
    BDIA as BDIA,
    EDICT as EDICT,
    AbstractInversion as AbstractInversion,
    DDIMInversion as DDIMInversion,
    InversionResult as InversionResult,
    generate as generate,
    invert as invert,
)
from ._lightsb import (
    LightSB as LightSB,
    LightSBLoss as LightSBLoss,
    gaussian_eot_plan as gaussian_eot_plan,
)
from ._losses import DenoisingScoreMatching as DenoisingScoreMatching, FlowMatching as FlowMatching
from ._mixture import GaussianMixture as GaussianMixture
from ._parameterization import (
    AbstractParameterization as AbstractParameterization,
    ClassifierFreeGuidance as ClassifierFreeGuidance,
    Denoiser as Denoiser,
    DynamicThreshold as DynamicThreshold,
    EpsPrediction as EpsPrediction,
    FlowPrediction as FlowPrediction,
    ScorePrediction as ScorePrediction,
    VPrediction as VPrediction,
    X0Prediction as X0Prediction,
    convert as convert,
)
from ._pfgmpp import (
    EmpiricalPFGMPPDenoiser as EmpiricalPFGMPPDenoiser,
    PFGMPPKernel as PFGMPPKernel,
    PFGMPPLoss as PFGMPPLoss,
)
from ._posterior import (
    DPS as DPS,
    TDS as TDS,
    AbstractTwist as AbstractTwist,
    DPSInfo as DPSInfo,
    MixturePosterior as MixturePosterior,
    PiGDMTwist as PiGDMTwist,
    PlainTwist as PlainTwist,
    SMCResult as SMCResult,
    SMCState as SMCState,
    TDSInfo as TDSInfo,
    exact_posterior as exact_posterior,
    marginal_wasserstein1 as marginal_wasserstein1,
    smc_sample as smc_sample,
)
from ._probability_flow import (
    LogLikelihood as LogLikelihood,
    ODEStepInfo as ODEStepInfo,
    ProbabilityFlowODE as ProbabilityFlowODE,
    log_likelihood as log_likelihood,
)
from ._sample import SampleResult as SampleResult, sample as sample
from ._sampler import (
    LOWER_ORDER_FINAL_RATIO as LOWER_ORDER_FINAL_RATIO,
    LOWER_ORDER_FINAL_STEPS as LOWER_ORDER_FINAL_STEPS,
    AbstractMultistepSampler as AbstractMultistepSampler,
    AbstractSampler as AbstractSampler,
    AbstractSinglestepSampler as AbstractSinglestepSampler,
    GridArrays as GridArrays,
    SamplerState as SamplerState,
    StepInfo as StepInfo,
    final_step_growth as final_step_growth,
)
from ._schedules import (
    EDM as EDM,
    VE as VE,
    RectifiedFlow as RectifiedFlow,
    SubVP as SubVP,
    VPCosine as VPCosine,
    VPLinear as VPLinear,
)
from ._time_steppers import (
    Euler as Euler,
    EulerMaruyama as EulerMaruyama,
    Heun as Heun,
    PredictorCorrector as PredictorCorrector,
)
from ._training_times import (
    AbstractTimeSampler as AbstractTimeSampler,
    LogSNRTimes as LogSNRTimes,
    StratifiedTimes as StratifiedTimes,
    UniformTimes as UniformTimes,
)
from ._weightings import (
    AbstractWeighting as AbstractWeighting,
    LikelihoodWeighting as LikelihoodWeighting,
    MinSNRWeighting as MinSNRWeighting,
    SNRWeighting as SNRWeighting,
    UniformWeighting as UniformWeighting,
    target_scale as target_scale,
)
