"""Bootstrap particle filter on the weighted-particle layer `jaxsci.smc`, with DAPPER's
regularisation jitter under a choice of jitter rule."""

import functools

import jax
import jax.numpy as jnp

from .._checks import check_positive, check_probability
from .._custom_types import Array, ArrayLike, Float, Int, Key
from ..observations import AbstractObservation
from ..smc import (
    AbstractJitterRule,
    AbstractResampler,
    NoUniqueJitter,
    Resampler,
    ResamplingScheme,
    StopGradientResampler,
    smc_step,
    systematic,
)
from ._base import AbstractParticleFilter, FilterInfo, FilterState, ObsVector
from ._statistics import check_analysis_inputs, unbiased_weighting

#: The default rule (a stateless module: one shared instance is safe): DAPPER's `nuj`. At
#: DAPPER's Lorenz-63 and 10-variable Lorenz-96 PF settings KeepFirstCopyJitter was better on
#: one and not on the other, and lost the truth more often (benchmarks/RESULTS.md, section
#: "Particle filter jitter rules").
_DEFAULT_JITTER_RULE = NoUniqueJitter()


class BootstrapPF(AbstractParticleFilter):
    """Bootstrap particle filter (Gordon et al. 1993) after DAPPER's `PartFilt`.

    One `jaxsci.smc.smc_step` per observation with the log-potentials log N(y; h(x_i), R):
    reweight, and resample when ESS <= `ess_threshold` * N (DAPPER's `NER`). The incremental
    evidence estimate is log sum_i w_i^- p(y | x_i) (w^- the normalised prior weights); its
    product over cycles is an unbiased estimate of p(y_{1:K}) (Del Moral 2004) when `reg` = 0.

    After resampling, if `reg` > 0, DAPPER's regularisation jitter moves the particles that
    `jitter_rule` selects: each gets independent Gaussian noise with covariance h^2 C, where
    C = ub * sum_i w_i (x_i - m)(x_i - m)^T, m = sum_i w_i x_i, is the unbiased weighted
    covariance (ub = 1 / (1 - sum_i w_i^2)) of the cloud *before* resampling with its weights
    after reweighting (the uniform weights instead when they are degenerate: here when
    1 - sum_i w_i^2 < 100 eps, in DAPPER when 1 - max_i w_i < 1e-10), and
    h = reg * N^(-1/(dim+4)) (DAPPER's `auto_bandw`, the shape of Silverman's rule). The
    jitter keeps a deterministic model's particles from collapsing onto copies. Rules
    (`jaxsci.smc`): `NoUniqueJitter()`, the default, jitters every copy of a particle drawn
    twice or more and leaves only the particles drawn once (DAPPER's `nuj=True`, its
    default); `KeepFirstCopyJitter()` jitters the second and later copies of such a particle,
    so one copy of every drawn particle stays in place (not DAPPER's rule); `JitterAll()`
    jitters every particle (DAPPER's `nuj=False`).

    The resampler decides the gradient through resampling: `jaxsci.smc.Resampler` (none),
    `StopGradientResampler` (Ścibior & Wood 2021: the forward pass is unchanged and gradients
    of the log-evidence estimate are consistent), or `SoftResampler` (Karkus et al. 2018).
    The jitter is treated as noise: no gradient flows through its covariance.

    Arguments:
        resampling: a resampling scheme (`jaxsci.smc.systematic`, the default, `stratified`,
            `multinomial` or `residual`) or an `AbstractResampler`.
        ess_threshold: resample when ESS <= threshold * N, in [0, 1] (1 resamples every cycle).
        reg: jitter scale >= 0 (0 disables; DAPPER's `reg`, e.g. 2.4 for Lorenz-63).
        differentiable: with a scheme, use `StopGradientResampler(resampling)`.
        jitter_rule: which resampled particles the jitter moves, a
            `jaxsci.smc.AbstractJitterRule`: `NoUniqueJitter()` (the default, DAPPER's
            `nuj=True`), `KeepFirstCopyJitter()` (not DAPPER's) or `JitterAll()` (`nuj=False`).
    """

    resampler: AbstractResampler
    ess_threshold: Float[Array, ""]
    reg: Float[Array, ""]
    jitter_rule: AbstractJitterRule

    def __init__(
        self,
        resampling: ResamplingScheme | AbstractResampler = systematic,
        ess_threshold: Float[ArrayLike, ""] = 0.5,
        reg: Float[ArrayLike, ""] = 0.0,
        differentiable: bool = False,
        jitter_rule: AbstractJitterRule = _DEFAULT_JITTER_RULE,
    ):
        if isinstance(resampling, AbstractResampler):
            if differentiable:
                raise ValueError(
                    "`differentiable=True` chooses StopGradientResampler for a scheme; with a "
                    f"resampler ({type(resampling).__name__}) leave it False."
                )
            self.resampler = resampling
        elif callable(resampling):
            self.resampler = (StopGradientResampler if differentiable else Resampler)(resampling)
        else:
            raise TypeError(
                "`resampling` must be a resampling function (e.g. jaxsci.smc.systematic) or an "
                f"AbstractResampler, got {resampling!r}."
            )
        check_probability("ess_threshold", ess_threshold)
        check_positive("reg", reg, allow_zero=True)
        self.ess_threshold = jnp.asarray(ess_threshold, dtype=jnp.result_type(float))
        self.reg = jnp.asarray(reg, dtype=jnp.result_type(float))
        if not isinstance(jitter_rule, AbstractJitterRule):
            raise TypeError(
                "`jitter_rule` must be a jaxsci.smc.AbstractJitterRule such as "
                f"NoUniqueJitter(), KeepFirstCopyJitter() or JitterAll(); got {jitter_rule!r}."
            )
        self.jitter_rule = jitter_rule

    def analysis(
        self, key: Key, state: FilterState, y_obs: ObsVector, obs_op: AbstractObservation
    ) -> tuple[FilterState, FilterInfo]:
        particles, log_weights = state
        check_analysis_inputs(particles, y_obs, obs_op)
        loglik = jax.vmap(obs_op.log_likelihood, in_axes=(None, 0))(y_obs, particles)
        new, log_w, info = smc_step(
            key,
            particles,
            log_weights,
            loglik,
            resampler=self.resampler,
            ess_threshold=self.ess_threshold,
            move=functools.partial(self._jitter, particles),
        )
        return FilterState(new, log_w), FilterInfo(
            info.log_increment, info.ess, info.resampled, info.num_nonfinite
        )

    def _jitter(
        self,
        particles: Float[Array, "ens dim"],
        key: Key,
        resampled: Float[Array, "ens dim"],
        ancestors: Int[Array, " ens"],
        log_w: Float[Array, " ens"],
    ) -> Float[Array, "ens dim"]:
        """DAPPER's regularisation of the particles `jitter_rule` selects: Gaussian jitter
        with covariance h^2 * ub * sum_i w_i (x_i - m)(x_i - m)^T of the cloud before
        resampling (`particles`, weights `log_w`), where ub = 1 / (1 - sum w_i^2) unbiases the
        weighted covariance. When the weights are degenerate (one particle holds them all,
        1 - sum w^2 ~ 0) the weighted covariance is zero and the cloud could never recover on
        a deterministic model, so the unweighted covariance is used instead."""
        n, dim = particles.shape
        dtype = particles.dtype
        w = jax.nn.softmax(jax.lax.stop_gradient(log_w))
        h = self.reg.astype(dtype) * n ** (-1.0 / (dim + 4))
        cw, ub = unbiased_weighting(w)
        mean = cw @ particles
        # the jitter is treated as noise: no gradient flows through its covariance
        c12 = jax.lax.stop_gradient(jnp.sqrt(ub * cw)[:, None] * (particles - mean))
        if n > dim:  # a dim x dim square root of the covariance is cheaper than z @ c12
            lam, v = jnp.linalg.eigh(c12.T @ c12)
            root = (v * jnp.sqrt(jnp.maximum(lam, 0.0))) @ v.T
            jitter = jax.random.normal(key, (n, dim), dtype=dtype) @ root
        else:
            jitter = jax.random.normal(key, (n, n), dtype=dtype) @ c12
        jitter = jnp.where(self.jitter_rule(ancestors)[:, None], jitter, 0.0)
        return resampled + h * jitter
