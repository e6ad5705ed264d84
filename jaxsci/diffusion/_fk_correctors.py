r"""Feynman-Kac correctors: weighted reverse SDEs for annealed, product and guided targets.

Skreta, Akhound-Sadegh, Ohanesian, Bondesan, Aspuru-Guzik, Doucet, Brekelmans, Tong &
Neklyudov (ICML 2025), "Feynman-Kac correctors in diffusion: annealing, guidance, and product
of experts". Given K diffusion models with noised marginals p_{k,t} (one forward process
dx = f x dt + g dW, see `AbstractSchedule`), the targets are geometric products

    q_t(x) proportional to prod_k p_{k,t}(x)^{beta_k} * exp(l(x)),

with an optional time-independent log-potential l (`EnsemblePosterior` uses l = log p(y | x)):

* annealing (`AnnealedTarget(beta)`): one model, p_t^beta;
* product of experts (`ProductTarget()`): two (or more) models, p_1 p_2;
* classifier-free guidance (`GuidedTarget(w)`): p(x | c)^w p(x)^{1 - w}, the target that the
  usual guided score w s_c + (1 - w) s_u points at but does not sample.

**The weighted SDE.** In reverse time s (t decreasing from t_max to t_min) the particles follow

    dx = [-f x + g^2 (sum_k beta_k S_k + grad l)] ds + g dW,     S_k = grad log p_{k,t},

the reverse SDE with the combined score (the "naive" sampler when run without weights), and
carry log-weights with rate

    G = (B - 1) d f - f x . grad l + g^2 / 2 [ |sum_k beta_k S_k + grad l|^2
                                              - sum_k beta_k |S_k|^2 + lap l ],

B = sum_k beta_k, d the dimension. G follows from asking that the unnormalised density
q_t satisfy d_s q = -div(v q) + g^2/2 lap q + G q for the drift v above, using the
Fokker-Planck equation of each p_{k,t}: the divergence terms of the scores cancel, so G
needs scores only (the paper's propositions for annealing, G = (beta - 1) [d f +
beta g^2 |S|^2 / 2], product, G = g^2 S_1 . S_2 + d f, and guidance,
G = -w (1 - w) g^2 |S_c - S_u|^2 / 2, are the special cases). By the Feynman-Kac formula the
weighted particles represent q_t at every t: weights exp(int G ds), normalised and
resampled by the shared SMC layer (`jaxsci.smc.smc_step` when the ESS falls below
`ess_threshold` N, then `jaxsci.smc.reweight`).

**Discretisation.** With eps_k = -sigma_t S_k (the models' noise predictions) and
eps~ = sum_k beta_k eps_k - sigma_t grad l, the drift is frozen in eps~ over a step and the
linear part is integrated exactly (the first-order SDE-DPM-Solver step of Lu et al. 2022,
"DPM-Solver++", in noise-prediction form), h = lambda_{i+1} - lambda_i:

    x_{i+1} = (alpha_{i+1} / alpha_i) x_i - 2 sigma_{i+1} (e^h - 1) eps~
              + sigma_{i+1} sqrt(e^{2h} - 1) z.

Since g^2 / (2 sigma^2) = -d lambda / dt, the weight increment integrates the rate by the
trapezoid rule in lambda (and in log alpha), with the rates evaluated at the particles' values
at both ends of the step (R carries the factor sigma^2 implicitly, through eps = -sigma S):

    log w += h (R_i + R_{i+1}) / 2 + (log alpha_i - log alpha_{i+1}) (P_i + P_{i+1}) / 2,
    R = |eps~|^2 - sum_k beta_k |eps_k|^2 + sigma^2 lap l,   P = (B - 1) d - x . grad l,

with R_{i+1}, P_{i+1} from the model evaluations at the new particles (which the next step
reuses: K model evaluations per particle and step). Both are first-order schemes; the
weights correct the drift's *target*, not the discretisation error, which the tests keep
below the Monte-Carlo error with fine grids.

**Start.** Each p_{k, t_max} is close to N(0, s^2 I), s = `schedule.prior_std()`, so q_{t_max}
is close to N(0, s^2 / B I) (B > 0 required), from which the particles start with equal
weights (or pass `x_T`).

**Log-normaliser: a rough diagnostic.** `log_normalizer` sums the SMC increments (Del Moral
2004), the estimator of log Z_{t_min} / Z_{t_max}, Z_t = int q_t dx, but the trapezoidal
weight increments make an error that is small across particles (it largely cancels in the
normalised weights) yet adds up in the normaliser, largest near t_max: at 100 steps it is
off by about a nat on the product of two N(0, 1) in 1-D (exact 0) and converges only as the
steps grow (a few tenths at 1600 steps). Read it as a diagnostic, not an evidence estimate.
"""

import abc
import math
import warnings
from collections.abc import Callable, Sequence
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Real, Shaped

from .._checks import (
    check_finite,
    check_int,
    check_key,
    check_maps_to_own_shape,
    check_positive,
    check_probability,
    check_range,
    hyperparameter,
    is_concrete,
)
from .._custom_types import Array, ArrayLike, Bool, Float, Int, Key
from ..smc import (
    AbstractResampler,
    Resampler,
    ResamplingScheme,
    effective_sample_size,
    reweight,
    smc_step,
    systematic,
)
from ._base import AbstractSchedule, RealLike
from ._grids import check_grid
from ._parameterization import AbstractParameterization, Denoiser, EpsPrediction, as_denoiser
from ._sampler import GridArrays, grid_arrays

# ---------------------------------------------------------------------------------------
# Targets


class AbstractFKTarget(eqx.Module):
    """A geometric target prod_k p_k^{beta_k} of `num_models` diffusion models: the
    exponents beta_k (their sum B must be positive)."""

    @property
    @abc.abstractmethod
    def num_models(self) -> int:
        """How many models (denoisers) the target combines."""

    @abc.abstractmethod
    def exponents(self) -> Float[Array, " K"]:
        """The exponents beta_k, one per model, in the order the models are passed."""


class AnnealedTarget(AbstractFKTarget):
    """p_t^beta of one model (beta > 0; beta > 1 sharpens, beta < 1 flattens).

    Arguments:
        beta: the inverse temperature (an array field: vmap over it to sweep).
    """

    beta: RealLike = eqx.field(default=2.0, converter=hyperparameter)

    def __check_init__(self):
        check_positive("beta", self.beta)

    @property
    def num_models(self) -> int:
        return 1

    def exponents(self) -> Float[Array, " K"]:
        return jnp.reshape(jnp.asarray(self.beta), (1,))


class ProductTarget(AbstractFKTarget):
    """The product of experts p_1 p_2 ... p_K (every exponent one).

    Arguments:
        num_experts: K >= 2.
    """

    num_experts: int = eqx.field(default=2, static=True)

    def __check_init__(self):
        check_int("num_experts", self.num_experts, 2)

    @property
    def num_models(self) -> int:
        return self.num_experts

    def exponents(self) -> Float[Array, " K"]:
        return jnp.ones((self.num_experts,))


class GuidedTarget(AbstractFKTarget):
    """The classifier-free-guidance target p(x | c)^w p(x)^{1 - w}: the models are passed as
    (conditional, unconditional); w = 1 is the conditional model itself, w > 1 guides.

    Arguments:
        guidance: the guidance weight w (an array field).
    """

    guidance: RealLike = eqx.field(default=2.0, converter=hyperparameter)

    def __check_init__(self):
        check_range("guidance", self.guidance)

    @property
    def num_models(self) -> int:
        return 2

    def exponents(self) -> Float[Array, " K"]:
        w = jnp.asarray(self.guidance)
        return jnp.stack([w, 1.0 - w])


# ---------------------------------------------------------------------------------------
# The weighted SDE: one engine for the correctors and the ensemble posterior sampler

#: `potential(x) -> (grad l(x), lap l(x))` for one particle x (d,): the log-potential's
#: gradient and Laplacian.
PotentialFn = Callable[[Float[Array, " d"]], tuple[Float[Array, " d"], Float[Array, ""]]]


class FKCInfo(NamedTuple):
    """Per-step information of the weighted samplers: `ess` (before resampling), `resampled`,
    `nonfinite` (NaN log-weights set to -inf) and `nfe` (model evaluations per particle)."""

    ess: Float[Array, ""]
    resampled: Bool[Array, ""]
    nonfinite: Int[Array, ""]
    nfe: Int[Array, ""]


class FKCState(NamedTuple):
    """The weighted population between steps, N particles of dimension d.

    x: particles (N, d); eps: the combined noise prediction eps~ at them (N, d);
    rate_lam, rate_alpha: the weight rates R and P at them (N,) (see the module notes);
    log_weights: normalised (N,); log_normalizer: the estimate of log Z_t / Z_{t_max} so
    far; i: grid index.
    """

    x: Float[Array, "N d"]
    eps: Float[Array, "N d"]
    rate_lam: Float[Array, " N"]
    rate_alpha: Float[Array, " N"]
    log_weights: Float[Array, " N"]
    log_normalizer: Float[Array, ""]
    i: Int[Array, ""]
    grid: GridArrays


def _rates(denoisers, betas, potential, g, i, x):
    """eps~, R and P (module notes) at the particles x (N, d) and grid index i."""
    t, sigma = g.t[i], g.sigma[i]
    dtype = x.dtype
    betas = betas.astype(dtype)
    eps_k = jnp.stack([jax.vmap(lambda x, d=d: d.predict(t, x)[1])(x) for d in denoisers])
    eps = jnp.einsum("k,knd->nd", betas, eps_k)
    sq = jnp.einsum("k,kn->n", betas, jnp.sum(eps_k**2, axis=-1))
    big_b, dim = jnp.sum(betas), x.shape[-1]
    rate_alpha = jnp.broadcast_to((big_b - 1.0) * dim, x.shape[:1]).astype(dtype)
    if potential is None:
        return eps, jnp.sum(eps**2, axis=-1) - sq, rate_alpha
    grad, lap = jax.vmap(potential)(x)
    eps = eps - sigma * grad
    rate_lam = jnp.sum(eps**2, axis=-1) - sq + sigma**2 * lap
    return eps, rate_lam, rate_alpha - jnp.sum(x * grad, axis=-1)


def fk_init(denoisers, betas, potential, ts, x_T, log_weights_T=None):
    """The weighted population at ts[0] (equal weights unless `log_weights_T`)."""
    g = grid_arrays(denoisers[0].schedule, ts)
    eps, r_lam, r_alpha = _rates(denoisers, betas, potential, g, 0, x_T)
    n = x_T.shape[0]
    if log_weights_T is None:
        log_weights_T = jnp.full((n,), -math.log(n), x_T.dtype)
    lw, _, _ = reweight(log_weights_T, jnp.zeros((n,), x_T.dtype))
    return FKCState(x_T, eps, r_lam, r_alpha, lw, jnp.zeros((), x_T.dtype), jnp.asarray(0), g)


def fk_step(key, state, denoisers, betas, potential, resampler, ess_threshold, stiff=None):
    """Resample when the ESS is low, move by the exponential SDE step, reweight.

    `stiff`: an optional symmetric positive semi-definite (d, d) matrix M, the curvature
    -hess l of a (near-)quadratic log-potential, whose part of the drift is taken
    semi-implicitly: with c = sigma_i sigma_{i+1} (e^h - 1) (half the explicit coefficient),
    the step's term 2 c grad l(x_i) becomes c (2 grad l(x_i) + M x_i - M x_{i+1})
    (trapezoidal, Crank-Nicolson, in grad l for a quadratic l: the linear solve
    (I + c M) x_{i+1} = ...). Its amplification of a mode of M with eigenvalue m is
    (1 - c m) / (1 + c m): bounded by 1 (A-stable) but tending to -1 when c m >> 1, so stiff
    modes oscillate undamped instead of relaxing (not L-stable); resolve the stiffness with
    the grid (c m small) for accurate spreads.
    """
    g, i = state.grid, state.i
    key_res, key_prop = jax.random.split(key)
    population = (state.x, state.eps, state.rate_lam, state.rate_alpha)
    (x, eps, r_lam, r_alpha), lw, res = smc_step(
        key_res, population, state.log_weights, None, resampler=resampler,
        ess_threshold=ess_threshold,
    )  # fmt: skip
    h = g.lam[i + 1] - g.lam[i]
    sigma_next = g.sigma[i + 1]
    z = jax.random.normal(key_prop, x.shape, x.dtype)
    x_new = (
        (g.alpha[i + 1] / g.alpha[i]) * x
        - 2.0 * sigma_next * jnp.expm1(h) * eps
        + sigma_next * jnp.sqrt(jnp.expm1(2.0 * h)) * z
    )
    if stiff is not None:
        c = g.sigma[i] * sigma_next * jnp.expm1(h)  # half the coefficient: trapezoidal
        m = stiff.astype(x.dtype)
        lhs = jnp.eye(m.shape[0], dtype=x.dtype) + c * m
        x_new = jnp.linalg.solve(lhs, (x_new + c * x @ m).T).T
    eps_new, r_lam_new, r_alpha_new = _rates(denoisers, betas, potential, g, i + 1, x_new)
    d_log_alpha = jnp.log(g.alpha[i]) - jnp.log(g.alpha[i + 1])
    log_g = 0.5 * h * (r_lam + r_lam_new) + 0.5 * d_log_alpha * (r_alpha + r_alpha_new)
    lw, log_increment, n_bad = reweight(lw, log_g)
    new = FKCState(
        x_new, eps_new, r_lam_new, r_alpha_new, lw,
        state.log_normalizer + res.log_increment + log_increment, i + 1, g,
    )  # fmt: skip
    info = FKCInfo(res.ess, res.resampled, n_bad, jnp.asarray(len(denoisers)))
    return new, info


class FKCResult(NamedTuple):
    """Output of `fk_sample` and `ensemble_posterior_sample`.

    particles: (N, d) at the data end; log_weights: (N,) normalised; log_normalizer: a
    rough diagnostic of the log-normaliser that converges only as the steps grow (see the
    sampler; not an accurate evidence estimate at practical grids); ess: the final ESS;
    min_ess: the smallest ESS over all steps and the end; num_resampled: how many steps
    resampled; collapsed: the weights collapsed (ESS below `collapse_ess`, or NaN weights)
    at some step; info: the per-step `FKCInfo` (leading steps axis); nfe: model
    evaluations per particle.
    """

    particles: Float[Array, "N d"]
    log_weights: Float[Array, " N"]
    log_normalizer: Float[Array, ""]
    ess: Float[Array, ""]
    min_ess: Float[Array, ""]
    num_resampled: Int[Array, ""]
    collapsed: Bool[Array, ""]
    info: FKCInfo
    nfe: Int[Array, ""]

    def weights(self) -> Float[Array, " N"]:
        """Normalised weights."""
        return jnp.exp(self.log_weights)

    def mean(self) -> Float[Array, " d"]:
        """The weighted particle mean."""
        return self.weights() @ self.particles

    def resample(
        self, key: Key, num_samples: int | None = None, scheme: ResamplingScheme = systematic
    ) -> Float[Array, "M d"]:
        """Unweighted draws (indices from a `jaxsci.smc` resampling scheme)."""
        n = self.particles.shape[0] if num_samples is None else num_samples
        return self.particles[scheme(key, self.weights(), n)]


def run_weighted_sde(
    name, step, init_state, keys, collapse_ess, throw, log_normalizer0
) -> FKCResult:
    """Scan `step` over the keys from `init_state` and summarise (collapse reported)."""
    state, info = jax.lax.scan(step, init_state, keys)
    n = state.x.shape[0]
    lw = state.log_weights
    final_ess = effective_sample_size(lw)
    min_ess = jnp.minimum(jnp.min(info.ess), final_ess)
    bad = ~jnp.isfinite(min_ess) | (jnp.sum(info.nonfinite) > 0)
    # capped at N / 2 so that populations of one or two particles are not flagged by definition
    collapsed = bad | (min_ess < jnp.minimum(jnp.asarray(collapse_ess, lw.dtype), n / 2))
    lw_norm = lw - jax.nn.logsumexp(lw)
    if throw:
        lw_norm = eqx.error_if(
            lw_norm,
            collapsed,
            f"{name}: the particle weights collapsed (ESS below `collapse_ess`, or NaN "
            "log-weights); see FKCResult.info.ess.",
        )
    nfe = info.nfe[0] + jnp.sum(info.nfe)  # the start's evaluations and every step's
    return FKCResult(
        state.x,
        lw_norm,
        log_normalizer0 + state.log_normalizer,
        final_ess,
        min_ess,
        jnp.sum(info.resampled.astype(jnp.int32)),
        collapsed,
        info,
        nfe,
    )


def warn_if_collapsed(name: str, result: FKCResult, num_particles: int, collapse_ess) -> None:
    """A RuntimeWarning when a concrete result's weights collapsed."""
    collapsed = result.collapsed
    if is_concrete(collapsed) and bool(collapsed):
        warnings.warn(
            f"{name}: the particle weights collapsed (min ESS {float(result.min_ess):.3g} of "
            f"{num_particles} particles, collapse_ess = {collapse_ess}); the estimate rests "
            "on very few particles.",
            RuntimeWarning,
            stacklevel=3,
        )


def check_smc_options(resampler, ess_threshold, collapse_ess) -> None:
    """The shared SMC options of the weighted samplers."""
    if not isinstance(resampler, AbstractResampler):
        raise TypeError(
            "`resampler` must be a jaxsci.smc.AbstractResampler such as "
            f"Resampler(systematic), got {resampler!r}."
        )
    check_probability("ess_threshold", ess_threshold)
    check_range("collapse_ess", collapse_ess, 1.0)


def check_initial_particles(x_T, num_particles: int, dim: int, where: str) -> Array:
    """`x_T` (num_particles, dim), floating and finite."""
    x_T = jnp.asarray(x_T)
    if x_T.shape != (num_particles, dim):
        raise ValueError(
            f"`x_T` must have shape (num_particles, d) = ({num_particles}, {dim}), got "
            f"{x_T.shape} ({where})."
        )
    if not jnp.issubdtype(x_T.dtype, jnp.floating):
        raise TypeError(f"`x_T` must be a floating array, got dtype {x_T.dtype}.")
    check_finite("x_T", x_T)
    return x_T


# ---------------------------------------------------------------------------------------
# The corrector and its driver


class FKCorrector(eqx.Module):
    r"""Feynman-Kac corrector (Skreta et al. 2025): SMC over the weighted reverse SDE of an
    `AbstractFKTarget` (see the module notes for the SDE, the weights and the scheme).

    With `ess_threshold = 0` the population is never resampled and the particles, read
    without their weights, are the output of the naive sampler (the SDE with the combined
    score, e.g. "score times beta"), which does not sample the target: the weights are what
    corrects it. Weight collapse is reported, not silent: the result carries the ESS of
    every step, `min_ess`, the number of resampling steps, and `collapsed` (ESS below
    `collapse_ess` particles, or a NaN log-weight); `fk_sample(..., throw=True)` raises then.

    The weighted population is a consistent, not unbiased, estimate: its moments carry an
    O(1/N) bias, proportional to the weight variance accumulated over the path (through
    every resampling), which more steps do not shrink; size N for it (the product of two
    Gaussians in 2-D, with the ESS falling to 30-45% between resamplings, needs N of a few
    thousand for a variance within a few percent).

    Not an `AbstractSampler`: its state is the whole weighted population; it runs through
    `fk_sample`.

    Arguments:
        target: the `AbstractFKTarget` (`AnnealedTarget`, `ProductTarget`, `GuidedTarget`).
        resampler: a `jaxsci.smc.AbstractResampler` (default `Resampler(systematic)`).
        ess_threshold: resample when ESS <= ess_threshold * N, in [0, 1] (0: never).
        collapse_ess: the ESS (in particles) below which weights count as collapsed
            (capped at N / 2).
    """

    target: AbstractFKTarget
    resampler: AbstractResampler = Resampler()
    ess_threshold: RealLike = eqx.field(default=0.5, converter=hyperparameter)
    collapse_ess: RealLike = eqx.field(default=2.0, converter=hyperparameter)

    def __check_init__(self):
        if not isinstance(self.target, AbstractFKTarget):
            raise TypeError(
                "`target` must be an AbstractFKTarget (AnnealedTarget, ProductTarget, "
                f"GuidedTarget), got {self.target!r}."
            )
        betas = self.target.exponents()
        if is_concrete(betas) and not float(jnp.sum(betas)) > 0:
            raise ValueError(
                f"`target` exponents must sum to a positive number, got {betas.tolist()}."
            )
        check_smc_options(self.resampler, self.ess_threshold, self.collapse_ess)

    def init(
        self, denoisers: Sequence[Denoiser], ts: Float[Array, " n1"], x_T: Float[Array, "N d"]
    ) -> FKCState:
        """Equally weighted particles `x_T` at ts[0]."""
        return fk_init(tuple(denoisers), self.target.exponents(), None, ts, x_T)

    def step(
        self, key: Key, state: FKCState, denoisers: Sequence[Denoiser]
    ) -> tuple[FKCState, FKCInfo]:
        """Resample when the ESS is low, move, reweight."""
        return fk_step(
            key, state, tuple(denoisers), self.target.exponents(), None, self.resampler,
            self.ess_threshold,
        )  # fmt: skip


_EPS = EpsPrediction()


@eqx.filter_jit
def _run_fkc(fkc, denoisers, ts, x_T, keys, throw):
    state = fkc.init(denoisers, ts, x_T)
    return run_weighted_sde(
        "FKCorrector",
        lambda s, k: fkc.step(k, s, denoisers),
        state,
        keys,
        fkc.collapse_ess,
        throw,
        jnp.zeros((), x_T.dtype),
    )


def as_denoisers(models, schedule, parameterization, count: int) -> tuple[Denoiser, ...]:
    """One `Denoiser` per model: `models` one model (count 1) or a sequence of `count`."""
    if isinstance(models, Sequence) and not isinstance(models, Denoiser):
        models = tuple(models)
    else:
        models = (models,)
    if len(models) != count:
        raise ValueError(
            f"`models` must be {count} model(s) (callables or Denoisers) for this target, got "
            f"{len(models)}."
        )
    return tuple(as_denoiser(m, schedule, parameterization) for m in models)


def fk_sample(
    fkc: FKCorrector,
    models: Callable | Denoiser | Sequence[Callable | Denoiser],
    schedule: AbstractSchedule,
    grid: Real[ArrayLike, " n1"],
    num_particles: int,
    *,
    key: Key,
    x_T: Shaped[ArrayLike, "N d"] | None = None,
    dim: int | None = None,
    parameterization: AbstractParameterization = _EPS,
    throw: bool = False,
) -> FKCResult:
    """Run the Feynman-Kac corrector `fkc` over `grid` with `num_particles` particles.

    A jitted `lax.scan` over `fkc.step`; vmap outside over keys. Warns (RuntimeWarning) when
    the weights collapsed and the result is concrete; `throw=True` raises instead.

    Arguments:
        fkc: an `FKCorrector`.
        models: the target's models, in its order (one for `AnnealedTarget`; (conditional,
            unconditional) for `GuidedTarget`): callables (t, x) -> output of kind
            `parameterization` for one example x (d,), or `Denoiser`s.
        schedule: the noise schedule (shared by the models).
        grid: strictly decreasing times from the noise end to the data end.
        num_particles: N >= 1.
        key: PRNG key (split into the initial draw and one key per step).
        x_T: optional initial particles (N, d) from q_{t_max} (default:
            N(0, prior_std^2 / B I), B the sum of the target's exponents).
        dim: the dimension d (needed when `x_T` is not given).
        parameterization: what the models output (default `EpsPrediction()`).
        throw: raise (via `eqx.error_if`) when the weights collapsed.

    Returns:
        An `FKCResult`; `log_normalizer` is a rough diagnostic of log Z_{t_min} / Z_{t_max}
        (Z_t the integral of the unnormalised target), biased by the discretisation and
        converging only as the steps grow (module notes).
    """
    if not isinstance(fkc, FKCorrector):
        raise TypeError(f"`fkc` must be an FKCorrector, got {type(fkc).__name__}.")
    key = check_key("key", key)
    num_particles = check_int("num_particles", num_particles, 1)
    denoisers = as_denoisers(models, schedule, parameterization, fkc.target.num_models)
    ts = check_grid(denoisers[0].schedule, grid)
    key_init, key_steps = jax.random.split(key)
    betas = fkc.target.exponents()
    if x_T is None:
        if dim is None:
            raise ValueError("`dim` is required when `x_T` is not given.")
        dim = check_int("dim", dim, 1)
        std = denoisers[0].schedule.prior_std() / jnp.sqrt(jnp.sum(betas))
        x_T = std * jax.random.normal(key_init, (num_particles, dim), jnp.result_type(float))
    x_T = jnp.asarray(x_T)
    d = x_T.shape[-1] if x_T.ndim == 2 else -1
    x_T = check_initial_particles(x_T, num_particles, d if dim is None else dim, "x_T")
    for den in denoisers:
        check_maps_to_own_shape("x_T[i]", den.model, ts[0].astype(x_T.dtype), x_T[0])
    ts = ts.astype(x_T.dtype)
    keys = jax.random.split(key_steps, ts.shape[0] - 1)
    result = _run_fkc(fkc, denoisers, ts, x_T, keys, throw)
    warn_if_collapsed("FKCorrector", result, num_particles, fkc.collapse_ess)
    return result
