r"""The probability-flow ODE with diffrax, and exact log-likelihoods through it.

dx/dt = v(t, x) = f(t) x - sigma_t lambda_t' eps(t, x) (Song et al. 2021, eq. 13).
Along it, d log p_t(x_t)/dt = -div v (the instantaneous change of variables, Chen et al.
2018), so for data x at t_min

    log p_{t_min}(x) = log p_{t_max}(x(t_max)) + int_{t_min}^{t_max} div v(t, x(t)) dt,

integrated forward from x together with the divergence: exactly (trace of the Jacobian,
d forward-mode products) or by Hutchinson's estimator z^T (dv/dx) z with one Rademacher
probe z per solve (Grathwohl et al. 2019, FFJORD), which is unbiased.
"""

from collections.abc import Callable
from typing import ClassVar, Literal, NamedTuple

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp

from .._checks import check_choice, check_key
from .._custom_types import Array, Bool, Float, Int, Key, PyTree
from ._base import RealLike
from ._parameterization import Denoiser
from ._sampler import AbstractSampler, SamplerState, initial_state


class ODEStepInfo(NamedTuple):
    """Per-step information of `ProbabilityFlowODE`: `nfe` (vector-field evaluations),
    `num_steps` (solver steps) and `failed` (the solve did not succeed)."""

    nfe: Int[Array, ""]
    num_steps: Int[Array, ""]
    failed: Bool[Array, ""]


class ProbabilityFlowODE(AbstractSampler):
    """The probability-flow ODE solved with any diffrax solver between grid points.

    One `step` is a `diffrax.diffeqsolve` from ts[i] to ts[i+1]: with `rtol`/`atol`
    given, adaptive steps under a `PIDController` (use an embedded solver such as Tsit5 or
    Dopri8); without, one solver step per grid interval. `info.nfe` counts vector-field
    evaluations (solver stages times steps, approximately for FSAL methods), and
    `info.failed` is true when the solve did not succeed (`throw=False`).

    Arguments:
        solver: a diffrax ODE solver (default Tsit5).
        rtol, atol: tolerances of the adaptive controller (None: fixed steps).
        max_steps: the per-interval step cap of an adaptive solve.
        throw: raise on solver failure (diffrax's `throw`); otherwise report it in info.
    """

    solver: diffrax.AbstractSolver = diffrax.Tsit5()
    rtol: RealLike | None = None
    atol: RealLike | None = None
    max_steps: int = eqx.field(default=4096, static=True)
    throw: bool = eqx.field(default=True, static=True)

    # `order` is nominal: the accuracy is the diffrax solver's (adaptive: the tolerances).
    order: ClassVar[int] = 1
    convergence_order: ClassVar[int] = 1
    multistep: ClassVar[bool] = False
    stochastic: ClassVar[bool] = False
    nfe_per_step: ClassVar[int] = 1

    def __check_init__(self):
        if (self.rtol is None) != (self.atol is None):
            raise ValueError("ProbabilityFlowODE: give both `rtol` and `atol`, or neither.")

    def init(
        self, denoiser: Denoiser, ts: Float[Array, " n1"], x_T: Float[Array, "*shape"]
    ) -> SamplerState:
        return initial_state(denoiser.schedule, ts, x_T)

    def _controller(self):
        if self.rtol is None or self.atol is None:  # both or neither (__check_init__)
            return diffrax.ConstantStepSize()
        return diffrax.PIDController(rtol=self.rtol, atol=self.atol)

    def step(
        self, key: Key | None, state: SamplerState, denoiser: Denoiser
    ) -> tuple[SamplerState, ODEStepInfo]:
        del key
        g, i, x = state.grid, state.i, state.x
        t0, t1 = g.t[i], g.t[i + 1]
        sol = diffrax.diffeqsolve(
            diffrax.ODETerm(lambda t, y, args: denoiser.velocity(t, y)),
            self.solver,
            t0,
            t1,
            t1 - t0,
            x,
            stepsize_controller=self._controller(),
            max_steps=self.max_steps,
            throw=self.throw,
        )
        x_new = _last(sol.ys)
        steps = sol.stats["num_steps"]
        info = ODEStepInfo(
            nfe=steps * _stages(self.solver),
            num_steps=steps,
            failed=sol.result != diffrax.RESULTS.successful,
        )
        return state._replace(x=x_new, i=i + 1), info


def _last(ys: PyTree) -> PyTree:
    """The last saved value of a diffrax solution's `ys` (saved at t1 only here)."""
    return jax.tree_util.tree_map(lambda y: y[-1], ys)


def _stages(solver: diffrax.AbstractSolver) -> int:
    """Vector-field evaluations per step: the stages of a Runge-Kutta solver, else one."""
    if isinstance(solver, diffrax.AbstractRungeKutta) and isinstance(
        solver.tableau, diffrax.ButcherTableau
    ):
        return len(solver.tableau.c) + 1
    return 1


class LogLikelihood(eqx.Module):
    """Result of `log_likelihood`: log p(x), the prior part, the divergence integral,
    the noise-end point x(t_max), and solver statistics."""

    log_prob: Float[Array, ""]
    prior_log_prob: Float[Array, ""]
    divergence_integral: Float[Array, ""]
    x_T: Float[Array, "*shape"]
    num_steps: Array
    failed: Array


def _standard_normal_logpdf(std):
    def logpdf(x):
        d = x.size
        return -0.5 * jnp.sum((x / std) ** 2) - d * jnp.log(std) - 0.5 * d * jnp.log(2 * jnp.pi)

    return logpdf


def log_likelihood(
    denoiser: Denoiser,
    x: Float[Array, "*shape"],
    *,
    method: Literal["exact", "hutchinson"] = "exact",
    key: Key | None = None,
    solver: diffrax.AbstractSolver | None = None,
    rtol: RealLike = 1e-6,
    atol: RealLike = 1e-6,
    prior_logpdf: Callable | None = None,
    t_min: RealLike | None = None,
    t_max: RealLike | None = None,
    max_steps: int = 16384,
    throw: bool = True,
) -> LogLikelihood:
    """log p_{t_min}(x) under the probability-flow ODE of `denoiser` (module docstring).

    Arguments:
        denoiser: the model (`Denoiser`).
        x: one example (any shape) at the data end.
        method: "exact" (Jacobian trace, d JVPs per evaluation) or "hutchinson" (one
            Rademacher probe drawn from `key`, unbiased).
        solver: diffrax solver (default Tsit5), adaptive with `rtol`/`atol`.
        prior_logpdf: log-density of x(t_max); default N(0, prior_std^2 I) with the
            schedule's `prior_std()` (exact only when the data match its assumption).
        t_min, t_max: the interval (default the schedule's).
        throw: raise on solver failure, else report `failed`.
    """
    check_choice("method", method, ("exact", "hutchinson"))
    if method == "hutchinson" and key is None:
        raise ValueError("`method='hutchinson'` needs a `key` for the probe vector.")
    sch = denoiser.schedule
    t0 = sch.t_min if t_min is None else t_min
    t1 = sch.t_max if t_max is None else t_max
    solver = diffrax.Tsit5() if solver is None else solver
    if prior_logpdf is None:
        prior_logpdf = _standard_normal_logpdf(sch.prior_std())
    shape = jnp.shape(x)
    flat = jnp.ravel(x)

    def v_flat(t, y):
        return jnp.ravel(denoiser.velocity(t, y.reshape(shape)))

    if method == "exact":
        basis = jnp.eye(flat.size, dtype=flat.dtype)

        def divergence(t, y):
            jvp = lambda e: jax.jvp(lambda z: v_flat(t, z), (y,), (e,))  # noqa: E731
            vs, cols = jax.vmap(jvp)(basis)
            return vs[0], jnp.trace(cols)

    else:
        probe = jax.random.rademacher(check_key("key", key), flat.shape, dtype=flat.dtype)

        def divergence(t, y):
            v, jz = jax.jvp(lambda z: v_flat(t, z), (y,), (probe,))
            return v, jnp.vdot(probe, jz)

    def vf(t, state, args):
        y, _ = state
        v, div = divergence(t, y)
        return v, div

    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(vf),
        solver,
        t0,
        t1,
        None,
        (flat, jnp.zeros((), flat.dtype)),
        stepsize_controller=diffrax.PIDController(rtol=rtol, atol=atol),
        max_steps=max_steps,
        throw=throw,
    )
    y_T, div_int = _last(sol.ys)
    x_T = y_T.reshape(shape)
    prior = prior_logpdf(x_T)
    return LogLikelihood(
        log_prob=prior + div_int,
        prior_log_prob=prior,
        divergence_integral=div_int,
        x_T=x_T,
        num_steps=sol.stats["num_steps"],
        failed=sol.result != diffrax.RESULTS.successful,
    )
