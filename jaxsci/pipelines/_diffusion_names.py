"""The config names of `jaxsci.diffusion` objects: string -> object lookups for the
`gmm_samplers`, `train_diffusion` and `inverse_gmm` pipelines.

Sampler names follow diffusers' `solver_order` (see `jaxsci.diffusion.AbstractSampler`):
`deis_k` is the k-th order DEIS (`DEIS(order=k)`, tAB(k-1)), `dpm_solver_k` DPM-Solver-k,
`dpmpp_2m` / `dpmpp_3m` DPM-Solver++(2M/3M), and `unipc_k` UniPC-k (`UniPC(order=k)`), which
converges at order k + 1 thanks to its corrector.
"""

from collections.abc import Callable
from typing import Any

from .. import diffusion as jd

SCHEDULES: dict[str, Callable[[], jd.AbstractSchedule]] = {
    "vp_linear": jd.VPLinear,
    "vp_cosine": jd.VPCosine,
    "sub_vp": jd.SubVP,
    "ve": jd.VE,
    "edm": jd.EDM,
    "rectified_flow": jd.RectifiedFlow,
}

# name -> (class, keyword arguments); `make_sampler` lets a config override options.
SAMPLERS: dict[str, tuple[Callable[..., jd.AbstractSampler], dict[str, Any]]] = {
    "ddim": (jd.DDIM, {}),
    "dpm_solver_1": (jd.DPMSolver, {"order": 1}),
    "dpm_solver_2": (jd.DPMSolver, {"order": 2}),
    "dpm_solver_3": (jd.DPMSolver, {"order": 3}),
    "dpmpp_2s": (jd.DPMSolverPP2S, {}),
    "dpmpp_2m": (jd.DPMSolverPPMultistep, {"order": 2}),
    "dpmpp_3m": (jd.DPMSolverPPMultistep, {"order": 3}),
    "sde_dpmpp_2m": (jd.SDEDPMSolverPP2M, {}),
    "deis_1": (jd.DEIS, {"order": 1}),
    "deis_2": (jd.DEIS, {"order": 2}),
    "deis_3": (jd.DEIS, {"order": 3}),
    "unipc_1": (jd.UniPC, {"order": 1}),
    "unipc_2": (jd.UniPC, {"order": 2}),
    "unipc_3": (jd.UniPC, {"order": 3}),
    "dc_solver": (jd.DCSolver, {}),  # UniPC-3 + compensation ratios searched per grid
    "dpm_solver_v3": (jd.DPMSolverV3, {}),
    "euler": (jd.Euler, {}),
    "heun": (jd.Heun, {}),
    "euler_maruyama": (jd.EulerMaruyama, {}),
    "predictor_corrector": (jd.PredictorCorrector, {}),
    "probability_flow": (jd.ProbabilityFlowODE, {}),
    "bdia": (jd.BDIA, {}),
}

PARAMETERIZATIONS: dict[str, Callable[[], jd.AbstractParameterization]] = {
    "eps": jd.EpsPrediction,
    "x0": jd.X0Prediction,
    "v": jd.VPrediction,
    "score": jd.ScorePrediction,
    "flow": jd.FlowPrediction,
}
# The regression targets the train_diffusion config offers.
DSM_TARGETS = ("eps", "x0", "v")

SPACINGS: dict[str, Callable[[], jd.AbstractSpacing]] = {
    "time_uniform": jd.TimeUniform,
    "logsnr_uniform": jd.LogSNRUniform,
    "time_quadratic": jd.TimeQuadratic,
    "karras": jd.Karras,
}

WEIGHTINGS: dict[str, Callable[[], jd.AbstractWeighting]] = {
    "uniform": jd.UniformWeighting,
    "snr": jd.SNRWeighting,
    "min_snr": jd.MinSNRWeighting,
    "likelihood": jd.LikelihoodWeighting,
}

TIME_SAMPLINGS: dict[str, Callable[[], jd.AbstractTimeSampler]] = {
    "uniform": jd.UniformTimes,
    "logsnr": jd.LogSNRTimes,
    "stratified": jd.StratifiedTimes,
}

TWISTS = ("pigdm", "none")

# How multistep samplers take their first steps (the `warmup` key of gmm_samplers).
WARMUPS: dict[str, Callable[[], jd.AbstractWarmup]] = {
    "lower_order": jd.LowerOrderWarmup,
    "singlestep": jd.SinglestepWarmup,
}


def make_sampler(name: str, **overrides: Any) -> jd.AbstractSampler:
    """The sampler registered under `name`, with `overrides` replacing its defaults (e.g.
    `make_sampler("unipc_2", variant=jd.unipc_bh1, lower_order_final=False)`)."""
    if name not in SAMPLERS:
        raise ValueError(f"Unknown sampler {name!r}; expected one of {sorted(SAMPLERS)}.")
    cls, defaults = SAMPLERS[name]
    return cls(**{**defaults, **overrides})


def make_twist(name: str, data_std: float) -> jd.AbstractTwist:
    """The TDS twist of a config: "pigdm" (with the prior scale `data_std`) or "none"."""
    return jd.PiGDMTwist(data_std) if name == "pigdm" else jd.PlainTwist()
