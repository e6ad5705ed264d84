"""Samplers: NUTS and HMC with Stan's windowed warmup, as pure init/step pairs on one chain.

A sampler's `build(logdensity_fn, dim, num_warmup)` returns a `Kernel`: `init(key, u)` makes one
chain's state at the unconstrained position `u`, and `step(key, state, stage)` makes one
transition and, while `stage.adapting`, one warmup-adaptation update. Chains are `vmap`ped
outside (`posterior`). The warmup follows Stan (Stan Reference Manual, "HMC algorithm
parameters"; Hoffman and Gelman 2014, JMLR 15, for NUTS and dual averaging): an initial fast
window (step size only, from 1), doubling slow windows that estimate the (diagonal or dense) inverse
mass matrix from the draws, each ending with a new mass matrix and a restarted dual
averaging, and a final fast window; after warmup the step size is the dual-averaging average.

Backends:
- `NUTS`, `HMC`: blackjax's transition kernels (multinomial NUTS of Betancourt 2017,
  static-length HMC) with this module's warmup built from blackjax's dual averaging,
  Welford mass-matrix estimator and Stan window schedule.
- `NumpyroNUTS`: numpyro's NUTS kernel and its own Stan-style warmup (`numpyro.infer.hmc.hmc`,
  the functional interface under `numpyro.infer.NUTS`).
"""

import abc
from collections.abc import Callable
from typing import Any, ClassVar, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._checks import as_float_array, check_int, check_range
from .._custom_types import Array, ArrayLike, Bool, Float, Int, Key

# Stan's default divergence threshold: a transition whose energy error exceeds 1000 is divergent.
DIVERGENCE_THRESHOLD = 1000.0


class WarmupStage(NamedTuple):
    """What one step does besides the transition (scalars shared by all chains).

    adapting: a warmup step (adapt step size, and the mass matrix in slow windows).
    slow: inside a slow (mass-matrix) window.
    window_end: last step of a slow window: recompute the mass matrix, restart dual averaging.
    last: the last warmup step: fix the step size at the dual-averaging average.
    """

    adapting: Bool[ArrayLike, "*steps"]
    slow: Bool[ArrayLike, "*steps"]
    window_end: Bool[ArrayLike, "*steps"]
    last: Bool[ArrayLike, "*steps"]


class StepInfo(NamedTuple):
    """Per-transition statistics, named as ArviZ's `sample_stats` group names them.

    lp: log-density at the new state (unconstrained, Jacobian included).
    diverging: the trajectory's energy error exceeded the divergence threshold (a failed
        log-density evaluation, -inf, counts as divergent).
    tree_depth: NUTS tree depth (number of doublings); 0 for static HMC.
    step_size: the step size used by this transition.
    acceptance_rate: mean Metropolis acceptance probability over the trajectory.
    n_steps: leapfrog steps taken = gradient evaluations of this transition.
    energy: Hamiltonian at the new state (for E-BFMI).
    """

    lp: Float[Array, ""]
    diverging: Bool[Array, ""]
    tree_depth: Int[Array, ""]
    step_size: Float[Array, ""]
    acceptance_rate: Float[Array, ""]
    n_steps: Int[Array, ""]
    energy: Float[Array, ""]


class Kernel(NamedTuple):
    """One chain's `init(key, u, logdensity, grad) -> state` (log-density and gradient at u
    precomputed), `step(key, state, stage) -> (state, StepInfo)`, `position(state) -> u` and
    `adapted(state) -> (step_size, inverse_mass_matrix)` (the warmup's current choices)."""

    init: Callable[[Key, Array, Array, Array], Any]
    step: Callable[[Key, Any, WarmupStage], tuple[Any, StepInfo]]
    position: Callable[[Any], Array]
    adapted: Callable[[Any], tuple[Array, Array]]


def warmup_schedule(num_warmup: int, num_samples: int) -> WarmupStage:
    """The per-step stages of a run: Stan's windows over `num_warmup`, then plain sampling.

    Stan's default windows (initial buffer 75, first slow window 25, final buffer 50; all
    scaled down to 15% / 75% / 10% when num_warmup < 150; step size only below 20 steps), as
    `blackjax.adaptation.window_adaptation.build_schedule` lays them out.
    """
    from blackjax.adaptation.window_adaptation import build_schedule

    total = num_warmup + num_samples
    slow = np.zeros(total, dtype=bool)
    end = np.zeros(total, dtype=bool)
    if num_warmup > 0:
        sched = np.asarray(build_schedule(num_warmup), dtype=int).reshape(num_warmup, 2)
        slow[:num_warmup] = sched[:, 0] == 1
        end[:num_warmup] = sched[:, 1] == 1
    adapting = np.arange(total) < num_warmup
    last = np.arange(total) == num_warmup - 1
    return WarmupStage(adapting, slow, end, last)


class AbstractSampler(eqx.Module):
    """A gradient-based MCMC transition with warmup, on one chain in R^dim."""

    #: The `StepInfo` fields this sampler fills (others are placeholders).
    stat_names: ClassVar[tuple[str, ...]] = StepInfo._fields

    #: Whether `build` needs the number of warmup steps (numpyro's kernel counts them itself;
    #: blackjax kernels here follow the per-step `WarmupStage` instead).
    needs_num_warmup: ClassVar[bool] = False

    #: Adapt a dense (not diagonal) inverse mass matrix; the dual-averaging target acceptance.
    #: Every sampler has both: `PosteriorResult.diagnose` says how to change them.
    dense_mass: eqx.AbstractVar[bool]
    target_accept: eqx.AbstractVar[Float[Array, ""]]

    @abc.abstractmethod
    def build(self, logdensity_fn: Callable, dim: int, num_warmup: int) -> Kernel:
        """The kernel for `logdensity_fn` on R^dim with `num_warmup` warmup steps."""


def _check_bool(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"`{name}` must be a bool, got {value!r}.")
    return value


def _target_accept(value: ArrayLike) -> Float[Array, ""]:
    """The dual-averaging target acceptance as a float array in (0, 1) (an array field, so
    a batch of samplers can be built with `eqx.filter_vmap` over it)."""
    check_range("target_accept", value, 0.0, 1.0, lower_open=True, upper_open=True)
    return as_float_array("target_accept", value)


def _check_nuts(dense_mass: Any, max_tree_depth: Any) -> None:
    _check_bool("dense_mass", dense_mass)
    check_int("max_tree_depth", max_tree_depth, 1, 20)


class _BlackjaxState(NamedTuple):
    hmc: Any
    da: Any
    mm: Any
    step_size: Float[Array, ""]
    inverse_mass_matrix: Array


def _blackjax_kernel(transition: Callable, dense_mass: bool, target_accept: Array) -> Kernel:
    """The kernel of a blackjax transition `transition(key, hmc_state, step_size, imm)`, with
    the Stan warmup."""
    import blackjax
    from blackjax.adaptation.mass_matrix import mass_matrix_adaptation
    from blackjax.adaptation.step_size import dual_averaging_adaptation

    da_init, da_update, da_final = dual_averaging_adaptation(
        target_accept  # pyright: ignore[reportArgumentType]  (annotated float; any scalar works)
    )
    mm_init, mm_update, mm_final = mass_matrix_adaptation(not dense_mass)

    def init(key, u, lp, grad):
        del key
        hmc = blackjax.mcmc.hmc.HMCState(u, lp, grad)
        mm = mm_init(u.shape[0])
        # Dual averaging starts from step size 1 (blackjax's and numpyro's default); the first
        # fast window adapts it.
        eps = jnp.ones((), u.dtype)
        return _BlackjaxState(hmc, da_init(eps), mm, eps, mm.inverse_mass_matrix)

    def adapt(state: _BlackjaxState, hmc, acceptance_rate, stage: WarmupStage):
        da = da_update(state.da, acceptance_rate)
        mm = jax.lax.cond(stage.slow, lambda m: mm_update(m, hmc.position), lambda m: m, state.mm)

        def close_window(da_mm):
            da, mm = da_mm
            return da_init(da_final(da)), mm_final(mm)

        da, mm = jax.lax.cond(stage.window_end, close_window, lambda x: x, (da, mm))
        step_size = jnp.where(stage.last, da_final(da), jnp.exp(da.log_step_size))
        return _BlackjaxState(
            hmc, da, mm, step_size.astype(state.step_size.dtype), mm.inverse_mass_matrix
        )

    def step(key, state: _BlackjaxState, stage: WarmupStage):
        hmc, info, tree_depth = transition(
            key, state.hmc, state.step_size, state.inverse_mass_matrix
        )
        acceptance = jnp.nan_to_num(info.acceptance_rate, nan=0.0)
        new = jax.lax.cond(
            stage.adapting,
            lambda: adapt(state, hmc, acceptance, stage),
            lambda: state._replace(hmc=hmc),
        )
        stats = StepInfo(
            lp=hmc.logdensity,
            diverging=info.is_divergent,
            tree_depth=jnp.asarray(tree_depth, jnp.int32),
            step_size=state.step_size,
            acceptance_rate=acceptance,
            n_steps=jnp.asarray(info.num_integration_steps, jnp.int32),
            energy=info.energy,
        )
        return new, stats

    return Kernel(
        init,
        step,
        lambda s: s.hmc.position,
        lambda s: (s.step_size, s.inverse_mass_matrix),
    )


class NUTS(AbstractSampler):
    """The No-U-Turn Sampler (blackjax's multinomial NUTS) with Stan's windowed warmup.

    Arguments:
        dense_mass: adapt a dense inverse mass matrix (for correlated posteriors) instead of
            a diagonal one.
        target_accept: dual-averaging target acceptance (Stan's adapt_delta, default 0.8).
        max_tree_depth: at most 2^max_tree_depth - 1 leapfrog steps per transition (Stan: 10).
    """

    dense_mass: bool = eqx.field(default=False, static=True, kw_only=True)
    target_accept: Float[Array, ""] = eqx.field(default=0.8, converter=_target_accept, kw_only=True)
    max_tree_depth: int = eqx.field(default=10, static=True, kw_only=True)

    def __check_init__(self):
        _check_nuts(self.dense_mass, self.max_tree_depth)

    def build(self, logdensity_fn, dim, num_warmup):
        import blackjax

        kernel = blackjax.nuts.build_kernel(divergence_threshold=DIVERGENCE_THRESHOLD)

        def transition(key, hmc, step_size, imm):
            new, info = kernel(
                key, hmc, logdensity_fn, step_size, imm, max_num_doublings=self.max_tree_depth
            )
            return new, info, info.num_trajectory_expansions

        return _blackjax_kernel(transition, self.dense_mass, self.target_accept)


class HMC(AbstractSampler):
    """Static-length Hamiltonian Monte Carlo (blackjax) with Stan's windowed warmup.

    Arguments:
        num_integration_steps: L, leapfrog steps per transition (the step size is adapted, so
            the trajectory length is L x step size).
        jitter: draw the number of steps uniformly from {1, ..., 2L - 1} at every transition
            (mean L). A fixed trajectory length that is near a multiple of a half-period of the
            target's dynamics makes static HMC move almost nowhere (on a 3-d Gaussian, L = 8
            gives ESS ~ 6 per 1000 draws); a random integration time breaks this resonance
            (Neal 2011, "MCMC using Hamiltonian dynamics", Handbook of MCMC ch. 5, on choosing
            the trajectory length at random; Mackenzie 1989 randomised the step size).
        dense_mass, target_accept: as `NUTS` (Stan's static HMC default target is 0.8 too).
    """

    num_integration_steps: int = eqx.field(default=16, static=True, kw_only=True)
    jitter: bool = eqx.field(default=True, static=True, kw_only=True)
    dense_mass: bool = eqx.field(default=False, static=True, kw_only=True)
    target_accept: Float[Array, ""] = eqx.field(default=0.8, converter=_target_accept, kw_only=True)

    def __check_init__(self):
        check_int("num_integration_steps", self.num_integration_steps)
        _check_bool("jitter", self.jitter)
        _check_bool("dense_mass", self.dense_mass)

    stat_names: ClassVar[tuple[str, ...]] = tuple(n for n in StepInfo._fields if n != "tree_depth")

    def build(self, logdensity_fn, dim, num_warmup):
        import blackjax

        kernel = blackjax.hmc.build_kernel(divergence_threshold=DIVERGENCE_THRESHOLD)

        def transition(key, hmc, step_size, imm):
            num = self.num_integration_steps
            if self.jitter:
                key, key_num = jax.random.split(key)
                num = jax.random.randint(key_num, (), 1, 2 * num)
            new, info = kernel(key, hmc, logdensity_fn, step_size, imm, num)
            return new, info, 0

        return _blackjax_kernel(transition, self.dense_mass, self.target_accept)


class NumpyroNUTS(AbstractSampler):
    """numpyro's NUTS kernel and warmup (`numpyro.infer.hmc.hmc(algo='NUTS')`), one chain.

    Arguments: as `NUTS` (numpyro's `dense_mass`, `target_accept_prob`, `max_tree_depth`).
    The tree depth reported is floor(log2(n_steps)) + 1, numpyro's own conversion.
    """

    dense_mass: bool = eqx.field(default=False, static=True, kw_only=True)
    target_accept: Float[Array, ""] = eqx.field(default=0.8, converter=_target_accept, kw_only=True)
    max_tree_depth: int = eqx.field(default=10, static=True, kw_only=True)
    needs_num_warmup: ClassVar[bool] = True

    def __check_init__(self):
        _check_nuts(self.dense_mass, self.max_tree_depth)

    def build(self, logdensity_fn, dim, num_warmup):
        from numpyro.infer.hmc import hmc

        init_kernel, sample_kernel = hmc(potential_fn=lambda u: -logdensity_fn(u), algo="NUTS")

        def init(key, u, lp, grad):
            from numpyro.infer.util import ParamInfo

            return init_kernel(
                ParamInfo(u, -lp, -grad),
                num_warmup,
                dense_mass=self.dense_mass,
                # annotated float by numpyro; a scalar array works (arithmetic only)
                target_accept_prob=self.target_accept,  # pyright: ignore[reportArgumentType]
                max_tree_depth=self.max_tree_depth,
                rng_key=key,
            )

        # numpyro's sample_kernel reads settings that init_kernel stores in its closure, so
        # trace init once here (abstractly) before any step is traced.
        zeros = jnp.zeros((dim,))
        jax.eval_shape(init, jax.random.key(0), zeros, jnp.zeros(()), zeros)

        def step(key, state, stage):
            del stage  # numpyro adapts while its own counter is below num_warmup
            new = sample_kernel(state._replace(rng_key=key))
            n = jnp.maximum(new.num_steps, 1)
            stats = StepInfo(
                lp=-new.potential_energy,
                diverging=new.diverging,
                tree_depth=(jnp.floor(jnp.log2(n)) + 1).astype(jnp.int32),
                step_size=state.adapt_state.step_size,
                acceptance_rate=new.accept_prob,
                n_steps=jnp.asarray(new.num_steps, jnp.int32),
                energy=new.energy,
            )
            return new, stats

        def adapted(state):
            return state.adapt_state.step_size, state.adapt_state.inverse_mass_matrix

        return Kernel(init, step, lambda s: s.z, adapted)


#: Sampler names accepted by `posterior(sampler=...)` and the pipeline.
SAMPLERS: dict[str, type[NUTS] | type[HMC] | type[NumpyroNUTS]] = {
    "nuts": NUTS,
    "hmc": HMC,
    "numpyro_nuts": NumpyroNUTS,
}


def as_sampler(sampler: AbstractSampler | str) -> AbstractSampler:
    if isinstance(sampler, AbstractSampler):
        return sampler
    if isinstance(sampler, str) and sampler.lower() in SAMPLERS:
        return SAMPLERS[sampler.lower()]()
    raise ValueError(
        f"`sampler` must be one of {list(SAMPLERS)} or an AbstractSampler instance "
        f"(e.g. NUTS(dense_mass=True)), got {sampler!r}."
    )
