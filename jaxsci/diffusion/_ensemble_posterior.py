r"""Approximation-free ensemble sampling of the posterior of a linear inverse problem with a
diffusion prior.

Chen, Ren, Min, Ying & Izzo (2025), "Solving inverse problems via diffusion-based priors: an
approximation-free ensemble sampling approach" (arXiv 2506.03979). For y = A x + e,
e ~ N(0, R), and a diffusion model of the prior with noised marginals p_t, the ensemble
follows the path

    q_t(x) proportional to p_t(x) p(y | x),

the likelihood evaluated at the *current* state x (not at a denoised estimate x0_hat(x_t) as
in DPS or the twists of TDS): at t_min it is the posterior (up to p_{t_min} ~ p_0), and at
t_max it is approximated by N(x; 0, s^2 I) p(y | x), a Gaussian drawn exactly
(s = `schedule.prior_std()`): p_{t_max} is only close to N(0, s^2 I) (the data's signal
remaining at t_max has coefficient alpha_{t_max}, about 0.0066 on `VPLinear`), an
approximation error of that size in the start that the path does not correct.
In between, q_t solves a PDE with transport, diffusion and a birth-death (reaction) term;
its particle form is the weighted reverse SDE

    dx = [-f x + g^2 (S + grad l)] ds + g dW,      l = log p(y | x),  S = grad log p_t,

with log-weight rate G = -f x . grad l + g^2 / 2 [ |S + grad l|^2 - |S|^2 + lap l ]
(the Feynman-Kac engine of `FKCorrector` with one model of exponent 1 and the log-potential
l; its module notes give the derivation and the exponential discretisation). For the linear
Gaussian likelihood grad l = A^T R^{-1} (y - A x) and lap l = -tr(A^T R^{-1} A), so the
weights need no approximation of p(y | x_t): what remains is the score model's error, the
discretisation error of the grid and the Monte-Carlo error of the weighted ensemble
(resampled by the shared `jaxsci.smc` layer when its ESS is low). The log-normaliser,
log Z_{t_max} (a Gaussian evidence, in closed form) plus the sum of the SMC increments, is
only a rough diagnostic of log p(y): it inherits the discretisation bias of the increments
(`FKCorrector`'s module notes), which grows with the likelihood's stiffness: it can be
several nats off when the grid does not resolve the likelihood.
"""

import warnings
from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Real, Shaped

from .._checks import (
    check_int,
    check_key,
    check_maps_to_own_shape,
    hyperparameter,
    is_concrete,
)
from .._custom_types import Array, ArrayLike, Float, Key
from ..observations import AbstractLinearObservation, gaussian_log_density
from ..smc import AbstractResampler, Resampler
from ._base import AbstractSchedule, RealLike
from ._fk_correctors import (
    FKCInfo,
    FKCResult,
    FKCState,
    check_initial_particles,
    check_smc_options,
    fk_init,
    fk_step,
    run_weighted_sde,
    warn_if_collapsed,
)
from ._grids import check_grid
from ._parameterization import AbstractParameterization, Denoiser, EpsPrediction, as_denoiser
from ._posterior import _check_observation, _y_field
from ._sampler import grid_arrays

_STIFFNESS_LIMIT = 0.25  # see EnsemblePosterior.stiffness


def _one() -> Float[Array, " 1"]:
    """The one guidance weight (built on call: an array made at import would start JAX's
    backend before `jaxsci.distributed.initialize` can run)."""
    return jnp.ones((1,))


class EnsemblePosterior(eqx.Module):
    r"""Approximation-free ensemble posterior sampler (Chen et al. 2025), see the module notes.

    The particles start from N(0, s^2 I) p(y | x) (exact draws, equal weights;
    `initial_draw`), an approximation of q_{t_max} = p_{t_max} p(y | x) (alpha_{t_max} is
    about 0.0066 on `VPLinear`), and follow the weighted reverse SDE; the ESS of every step,
    the number of resampling steps and weight collapse (ESS below `collapse_ess`, or NaN
    log-weights) are reported in the `FKCResult` (`ensemble_posterior_sample(...,
    throw=True)` raises on collapse). Runs through `ensemble_posterior_sample`.

    Arguments:
        observation: a linear observation model (`LinearObservation`, `IndexObservation`).
        y: the observed values (m,).
        resampler: a `jaxsci.smc.AbstractResampler` (default `Resampler(systematic)`).
        ess_threshold: resample when ESS <= ess_threshold * N, in [0, 1] (0: never). The
            default 1 resamples at every step, which keeps the weights of each step's
            increments from accumulating (the weights of this path are heavy-tailed where the
            likelihood is informative). It is not what fixes the spread: the weighted
            ensemble's finite-N (O(1/N)) bias does, with enough particles, and a stiff
            likelihood needs a grid that resolves it.
        collapse_ess: the ESS (in particles) below which weights count as collapsed
            (capped at N / 2).
    """

    observation: AbstractLinearObservation
    y: Float[Array, " m"] = eqx.field(converter=_y_field)
    resampler: AbstractResampler = Resampler()
    ess_threshold: RealLike = eqx.field(default=1.0, converter=hyperparameter)
    collapse_ess: RealLike = eqx.field(default=2.0, converter=hyperparameter)

    def __check_init__(self):
        _check_observation(self.observation, self.y, linear=True)
        check_smc_options(self.resampler, self.ess_threshold, self.collapse_ess)

    def _potential(self, dtype):
        obs = self.observation
        y = self.y.astype(dtype)
        # lap l = -tr(A^T R^{-1} A) = -||R^{-1/2} A||_F^2, the same for every particle.
        lap = -jnp.sum(obs.whiten(obs.matrix().astype(dtype).T) ** 2)

        def potential(x):
            return jax.grad(lambda x: obs.log_likelihood(y, x))(x), lap

        return potential

    def _curvature(self, dtype):
        """A^T R^{-1} A = -hess l (d, d)."""
        obs = self.observation
        wa = obs.whiten(obs.matrix().astype(dtype).T).T  # R^{-1/2} A
        return wa.T @ wa

    def stiffness(
        self, schedule: AbstractSchedule, grid: Real[ArrayLike, " n1"]
    ) -> Float[Array, ""]:
        r"""How far `grid` is from resolving the likelihood: the largest c_i m over the steps,
        c_i = sigma_i sigma_{i+1} (e^{h_i} - 1) ~ sigma^2 h_i (h_i the step in lambda) and
        m = lambda_max(A^T R^{-1} A) the likelihood's largest curvature.

        The likelihood relaxes the stiffest mode at the rate g^2 m per unit time; the step's
        semi-implicit (trapezoidal) treatment of that mode amplifies it by (1 - c m) /
        (1 + c m), which stops damping at c m = 1 and oscillates beyond, and the weights'
        trapezoidal increments lose accuracy well before: with c m near 1 the posterior
        spread comes out visibly too low. `ensemble_posterior_sample` warns
        (RuntimeWarning) when it exceeds 1/4; refine the grid (more steps: it scales as
        1 / steps) until it does not.
        """
        ts = check_grid(schedule, grid)
        dtype = jnp.result_type(float)
        g = grid_arrays(schedule, ts.astype(dtype))
        c = g.sigma[:-1] * g.sigma[1:] * jnp.expm1(jnp.diff(g.lam))
        m = jnp.linalg.eigvalsh(self._curvature(dtype))[-1]
        return jnp.max(c) * m

    def initial_draw(
        self, key: Key, prior_std: Float[ArrayLike, ""], num_particles: int, dtype=None
    ) -> tuple[Float[Array, "N d"], Float[Array, ""]]:
        r"""`num_particles` exact draws from N(0, s^2 I) p(y | x) (s = `prior_std`) and the log
        of its normaliser Z = N(y; 0, s^2 A A^T + R).

        The Gaussian has precision P = I / s^2 + A^T R^{-1} A and mean P^{-1} A^T R^{-1} y.
        """
        dtype = jnp.result_type(float) if dtype is None else dtype
        obs = self.observation
        a = obs.matrix().astype(dtype)
        r = obs.noise_cov.astype(dtype)
        y = self.y.astype(dtype)
        s2 = jnp.asarray(prior_std, dtype) ** 2
        wa = obs.whiten(a.T).T  # R^{-1/2} A
        prec = jnp.eye(a.shape[1], dtype=dtype) / s2 + wa.T @ wa
        chol = jnp.linalg.cholesky(prec)
        rhs = wa.T @ obs.whiten(y)
        mean = jax.scipy.linalg.cho_solve((chol, True), rhs)
        z = jax.random.normal(key, (num_particles, a.shape[1]), dtype)
        x = mean + jax.scipy.linalg.solve_triangular(chol.T, z.T, lower=False).T
        log_z = gaussian_log_density(y, jnp.linalg.cholesky(s2 * a @ a.T + r))
        return x, log_z

    def init(
        self, denoiser: Denoiser, ts: Float[Array, " n1"], x_T: Float[Array, "N d"]
    ) -> FKCState:
        """Equally weighted particles `x_T` (draws from q_{t_max}) at ts[0]."""
        return fk_init((denoiser,), _one(), self._potential(x_T.dtype), ts, x_T)

    def step(self, key: Key, state: FKCState, denoiser: Denoiser) -> tuple[FKCState, FKCInfo]:
        """Resample when the ESS is low, move, reweight."""
        return fk_step(
            key, state, (denoiser,), _one(), self._potential(state.x.dtype), self.resampler,
            self.ess_threshold, self._curvature(state.x.dtype),
        )  # fmt: skip


@eqx.filter_jit
def _run(ens, denoiser, ts, x_T, log_z_T, keys, throw):
    state = ens.init(denoiser, ts, x_T)
    return run_weighted_sde(
        "EnsemblePosterior",
        lambda s, k: ens.step(k, s, denoiser),
        state,
        keys,
        ens.collapse_ess,
        throw,
        log_z_T,
    )


_EPS = EpsPrediction()


def ensemble_posterior_sample(
    ens: EnsemblePosterior,
    model: Callable | Denoiser,
    schedule: AbstractSchedule,
    grid: Real[ArrayLike, " n1"],
    num_particles: int,
    *,
    key: Key,
    x_T: Shaped[ArrayLike, "N d"] | None = None,
    parameterization: AbstractParameterization = _EPS,
    throw: bool = False,
) -> FKCResult:
    """Run the ensemble posterior sampler `ens` over `grid` with `num_particles` particles.

    A jitted `lax.scan`; one observation per call, vmap outside over keys or observations.
    Warns (RuntimeWarning) when the weights collapsed and the result is concrete;
    `throw=True` raises instead.

    Arguments:
        ens: an `EnsemblePosterior`.
        model: a callable (t, x) -> output of kind `parameterization` for one example x (d,),
            or a `Denoiser`.
        schedule: the noise schedule.
        grid: strictly decreasing times from the noise end to the data end.
        num_particles: N >= 1.
        key: PRNG key (split into the initial draw and one key per step).
        x_T: optional initial particles (N, d) drawn from N(0, s^2 I) p(y | x) (default:
            `ens.initial_draw`).
        parameterization: what the model outputs (default `EpsPrediction()`).
        throw: raise (via `eqx.error_if`) when the weights collapsed.

    Returns:
        An `FKCResult`; `log_normalizer` is a rough diagnostic of log p(y), biased by the
        discretisation (module notes).
    """
    if not isinstance(ens, EnsemblePosterior):
        raise TypeError(f"`ens` must be an EnsemblePosterior, got {type(ens).__name__}.")
    key = check_key("key", key)
    num_particles = check_int("num_particles", num_particles, 1)
    denoiser = as_denoiser(model, schedule, parameterization)
    ts = check_grid(denoiser.schedule, grid)
    dim = ens.observation.state_dim
    key_init, key_steps = jax.random.split(key)
    draw, log_z_T = ens.initial_draw(
        key_init, denoiser.schedule.prior_std(), num_particles, ens.y.dtype
    )
    if x_T is None:
        x_T = draw
    where = f"d = {dim} is the state dimension of `ens.observation`"
    x_T = check_initial_particles(x_T, num_particles, dim, where)
    check_maps_to_own_shape(
        "x_T[i]", denoiser.model, ts[0].astype(x_T.dtype), x_T[0], hint=f"one particle; {where}"
    )
    ts = ts.astype(x_T.dtype)
    keys = jax.random.split(key_steps, ts.shape[0] - 1)
    result = _run(ens, denoiser, ts, x_T, log_z_T.astype(x_T.dtype), keys, throw)
    warn_if_collapsed("EnsemblePosterior", result, num_particles, ens.collapse_ess)
    stiff = ens.stiffness(denoiser.schedule, ts)
    if is_concrete(stiff) and float(stiff) > _STIFFNESS_LIMIT:
        warnings.warn(
            "EnsemblePosterior: the grid does not resolve the likelihood's stiffness "
            f"(stiffness {float(stiff):.3g} > {_STIFFNESS_LIMIT}, see "
            "`EnsemblePosterior.stiffness`): the posterior spread is biased low; use more "
            "steps.",
            RuntimeWarning,
            stacklevel=2,
        )
    return result
