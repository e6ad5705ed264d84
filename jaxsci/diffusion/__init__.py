"""Diffusion and flow models: schedules, parameterisations, time grids, training losses,
samplers and posterior sampling. Every choice is an object (a schedule, a parameterisation,
a grid spacing, a weighting, a law of training times, a twist); the string names of the
configs live in `jaxsci.pipelines`."""

from ._base import (
    AbstractSchedule as AbstractSchedule,
    newton_t_from_lambda as newton_t_from_lambda,
)
from ._sample import SampleResult as SampleResult, sample as sample
from ._sampler import (
    LOWER_ORDER_FINAL_RATIO as LOWER_ORDER_FINAL_RATIO,
    LOWER_ORDER_FINAL_STEPS as LOWER_ORDER_FINAL_STEPS,
    AbstractSampler as AbstractSampler,
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
