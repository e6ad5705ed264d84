"""Bootstrap particle filter on log-weights, with DAPPER's regularisation jitter."""

import equinox as eqx
import jax
import jax.numpy as jnp

from .._custom_types import Array, Float
from ._base import AbstractParticleFilter, check_analysis_inputs
from ._observations import AbstractObservation
from ._resampling import RESAMPLING_SCHEMES, effective_sample_size


class BootstrapPF(AbstractParticleFilter):
    """Bootstrap particle filter (Gordon et al. 1993) as DAPPER's `PartFilt`.

    Reweight: log w_i += log N(y; h(x_i), R). The incremental evidence estimate is
    log sum_i w_i^- p(y | x_i) (w^- the normalised prior weights); its product over cycles is
    an unbiased estimate of p(y_{1:K}) (Del Moral 2004) when `reg` = 0. Resample with
    `resampling` when ESS <= `ess_threshold` * N (DAPPER's `NER`), then, if `reg` > 0, add
    the regularisation jitter of DAPPER: Gaussian noise with covariance
    h^2 * (unbiased weighted ensemble covariance, or the unweighted one when the weights are
    degenerate), bandwidth h = reg * N^(-1/(dim+4)) (Silverman's rule shape), applied to the
    duplicated particles only (DAPPER's `nuj`); it keeps deterministic models from
    collapsing onto copies.

    `differentiable=True` uses stop-gradient resampling (Scibior & Wood 2021): after
    resampling the log-weights are w_sel - stop_gradient(w_sel) - log N, equal in value to the
    uniform weights but carrying the score of the selected particles, so gradients of the
    log-evidence estimate are consistent without changing the forward pass.

    Arguments:
        resampling: "systematic" (default), "stratified", "multinomial" or "residual".
        ess_threshold: resample when ESS <= threshold * N (1 resamples every cycle).
        reg: jitter scale (0 disables; DAPPER's `reg`, e.g. 2.4 for Lorenz-63).
        differentiable: stop-gradient resampling.
        jitter_duplicates_only: jitter only the second and later copies of a resampled
            particle, keeping one copy of each in place (DAPPER's `nuj=True`, its default).
    """

    ess_threshold: Float[Array, ""]
    reg: Float[Array, ""]
    resampling: str = eqx.field(static=True)
    differentiable: bool = eqx.field(static=True)
    jitter_duplicates_only: bool = eqx.field(static=True)

    def __init__(
        self,
        resampling: str = "systematic",
        ess_threshold=0.5,
        reg=0.0,
        differentiable: bool = False,
        jitter_duplicates_only: bool = True,
    ):
        if resampling not in RESAMPLING_SCHEMES:
            raise ValueError(
                f"`resampling` must be one of {sorted(RESAMPLING_SCHEMES)}, got {resampling!r}."
            )
        self.resampling = resampling
        self.ess_threshold = jnp.asarray(ess_threshold, dtype=jnp.result_type(float))
        self.reg = jnp.asarray(reg, dtype=jnp.result_type(float))
        self.differentiable = bool(differentiable)
        self.jitter_duplicates_only = bool(jitter_duplicates_only)

    def analysis(self, key, particles, log_weights, y_obs, obs_op: AbstractObservation):
        check_analysis_inputs(particles, y_obs, obs_op)
        n = particles.shape[0]
        dtype = particles.dtype
        loglik = jax.vmap(obs_op.log_likelihood, in_axes=(None, 0))(y_obs, particles)
        joint = log_weights + loglik
        log_evidence = jax.nn.logsumexp(joint) - jax.nn.logsumexp(log_weights)
        log_w = joint - jax.nn.logsumexp(joint)
        ess = effective_sample_size(log_w)
        do = ess <= self.ess_threshold.astype(dtype) * n
        # Resampling and jitter run only in cycles that resample (`lax.cond`; under `vmap` both
        # branches run and are selected, the same cost as computing them unconditionally).
        particles, log_w = jax.lax.cond(
            do,
            lambda k, p, lw: self._resample(k, p, lw),
            lambda k, p, lw: (p, lw),
            key,
            particles,
            log_w,
        )
        info = {"ess": ess, "log_evidence": log_evidence, "resampled": do}
        return particles, log_w, info

    def _resample(self, key, particles, log_w):
        """Resample (scheme `resampling`), add the regularisation jitter, reset the weights."""
        n, dim = particles.shape
        dtype = particles.dtype
        key_res, key_jit = jax.random.split(key)
        w = jax.nn.softmax(jax.lax.stop_gradient(log_w))
        idx = RESAMPLING_SCHEMES[self.resampling](key_res, w, n)
        resampled = particles[idx]
        # Regularisation jitter (DAPPER's PartFilt): Gaussian with covariance
        # h^2 * ub * sum_i w_i (x_i - m)(x_i - m)^T, where ub = 1 / (1 - sum w_i^2) unbiases
        # the weighted covariance. When the weights are degenerate (one particle holds them
        # all, 1 - sum w^2 ~ 0) the weighted covariance is zero and the cloud could never
        # recover on a deterministic model, so the unweighted covariance is used instead.
        h = self.reg.astype(dtype) * n ** (-1.0 / (dim + 4))
        cw, ub = unbiased_weighting(w)
        mean = cw @ particles
        # the jitter is treated as noise: no gradient flows through its covariance
        c12 = jax.lax.stop_gradient(jnp.sqrt(ub * cw)[:, None] * (particles - mean))
        if n > dim:  # a dim x dim square root of the covariance is cheaper than z @ c12
            lam, v = jnp.linalg.eigh(c12.T @ c12)
            root = (v * jnp.sqrt(jnp.maximum(lam, 0.0))) @ v.T
            z = jax.random.normal(key_jit, (n, dim), dtype=dtype)
            jitter = z @ root
        else:
            jitter = jax.random.normal(key_jit, (n, n), dtype=dtype) @ c12
        if self.jitter_duplicates_only:
            jitter = jnp.where(_is_duplicate(idx)[:, None], jitter, 0.0)
        resampled = resampled + h * jitter
        uniform = jnp.full((n,), -jnp.log(n), dtype=dtype)
        if self.differentiable:
            sel = log_w[idx]
            new_log_w = sel - jax.lax.stop_gradient(sel) + uniform
        else:
            new_log_w = uniform
        return resampled, new_log_w


def unbiased_weighting(w: Float[Array, " ens"]) -> tuple[Float[Array, " ens"], Float[Array, ""]]:
    """Weights (cw, ub) for the unbiased weighted covariance ub * sum_i cw_i (x_i - m)(x_i - m)^T
    with m = cw @ x and ub = 1 / (1 - sum cw^2) (equal to the ddof=1 covariance for equal
    weights). When the normalised weights `w` are degenerate (one particle holds them all,
    1 - sum w^2 below 100 eps) the weighted covariance is zero or 0/0, so the uniform weights
    are used instead (DAPPER's fallback): the spread of the cloud, not of one particle.
    """
    eps = jnp.finfo(w.dtype).eps
    degenerate = 1.0 - jnp.sum(w**2) < 100 * eps
    cw = jnp.where(degenerate, jnp.full_like(w, 1.0 / w.shape[0]), w)
    return cw, 1.0 / (1.0 - jnp.sum(cw**2))


def _is_duplicate(idx: Array) -> Array:
    """True where idx[i] repeats an index that occurs earlier in `idx` (any order)."""
    order = jnp.argsort(idx, stable=True)
    sorted_idx = idx[order]
    dup_sorted = jnp.concatenate([jnp.zeros((1,), bool), sorted_idx[1:] == sorted_idx[:-1]])
    return jnp.zeros_like(dup_sorted).at[order].set(dup_sorted)


def particle_mean(particles: Float[Array, "ens dim"], log_weights: Float[Array, " ens"]):
    """The weighted mean sum_i w_i x_i."""
    return jax.nn.softmax(log_weights) @ particles
