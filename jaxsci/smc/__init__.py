"""Weighted particles: resampling schemes and resamplers, the effective sample size, one
generic sequential Monte Carlo step, and the jitter rules (which resampled copies a
regularisation jitter moves), shared by the particle filters (`jaxsci.filters`) and the SMC
samplers of `jaxsci.diffusion`.

A low-level package: it imports nothing of jaxsci but the shared types and checks.
"""

from ._base import AbstractResampler as AbstractResampler
from ._ess import effective_sample_size as effective_sample_size
from ._jitter import (
    AbstractJitterRule as AbstractJitterRule,
    JitterAll as JitterAll,
    KeepFirstCopyJitter as KeepFirstCopyJitter,
    NoUniqueJitter as NoUniqueJitter,
)
from ._resamplers import (
    Resampler as Resampler,
    SoftResampler as SoftResampler,
    StopGradientResampler as StopGradientResampler,
)
from ._schemes import (
    ResamplingScheme as ResamplingScheme,
    multinomial as multinomial,
    residual as residual,
    stratified as stratified,
    systematic as systematic,
)
from ._step import (
    MoveFn as MoveFn,
    SMCInfo as SMCInfo,
    reweight as reweight,
    smc_step as smc_step,
)
