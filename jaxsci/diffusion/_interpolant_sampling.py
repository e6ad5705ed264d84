r"""Sampling a stochastic interpolant: the probability-flow ODE and the SDEs with tunable
diffusion, through diffrax (Albergo, Boffi & Vanden-Eijnden 2023, "SI", thm. 2.8, cor. 2.10).

* ODE: dX_t = b(t, X_t) dt from X_0 ~ rho0 gives X_1 ~ rho1 (and, integrated backwards from
  t = 1, X_0 ~ rho0 from data).
* SDE: dX_t = (b + eps(t) s)(t, X_t) dt + sqrt(2 eps(t)) dW_t, eps(t) >= 0 any function of
  t (the Fokker-Planck equation of every member has the marginals rho_t of the interpolant;
  eps = 0 is the ODE). Solved forwards with a fixed-step diffrax solver (Euler-Maruyama by
  default) and an explicit key.

**Endpoint singularity.** s = -eta / sigma is singular where sigma(t) = 0: at t = 1 (and at
t = 0 two-sided) for a learned denoiser eta. The Ito Euler-Maruyama step evaluates the drift
at the left end of each step only, so t = 1 is never evaluated; at a two-sided start t = 0
the score enters only as eps(t) s and is dropped wherever eps(t) = 0, so a diffusion
coefficient vanishing at t = 0 (e.g. eps(t) = e0 t, or eps proportional to gamma(t)^2)
starts the SDE on the probability flow, as the paper's choice of eps(t) tuned per time
allows (SI sec. 2.3, "eps(t) can be any non-negative function"); alternatively start at a
small t0 > 0 (the official code's Heun steps never evaluate t = 0 either). Exact
closed-form scores (`ExactMixtureInterpolant.score`) are finite everywhere when rho0 and rho1
have densities.

Both drivers act on one sample; batching is a `vmap` outside (over x and the keys).
"""

from collections.abc import Callable
from typing import NamedTuple

import diffrax
import jax.numpy as jnp
import lineax as lx

from .._checks import check_callable, check_int, check_key, check_range, concrete
from .._custom_types import Array, ArrayLike, Float, Int, Key
from ._base import RealLike


class InterpolantSolution(NamedTuple):
    """Output of `interpolant_ode` / `interpolant_sde`: `x` at t1 and the number of solver
    steps taken (a step of an s-stage solver costs s evaluations of b)."""

    x: Float[Array, "*shape"]
    num_steps: Int[Array, ""]


def _check_span(t0, t1, *, forward_only: bool):
    check_range("t0", t0, 0.0, 1.0)
    check_range("t1", t1, 0.0, 1.0)
    a, b = concrete(t0), concrete(t1)
    if a is not None and b is not None:
        if forward_only and not float(a) < float(b):
            raise ValueError(f"need `t0` < `t1` (the SDE runs forwards), got t0={t0}, t1={t1}.")
        if float(a) == float(b):
            raise ValueError(f"need `t0` != `t1`, got t0 = t1 = {t0}.")


def _as_float(x, name):
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise TypeError(f"`{name}` must be a floating array, got dtype {x.dtype}.")
    return x


def interpolant_ode(
    drift: Callable,
    x: Float[ArrayLike, "*shape"],
    *,
    n_steps: int | None = None,
    solver: diffrax.AbstractSolver | None = None,
    t0: RealLike = 0.0,
    t1: RealLike = 1.0,
    rtol: RealLike = 1e-6,
    atol: RealLike = 1e-8,
    max_steps: int = 4096,
) -> InterpolantSolution:
    """Solve the probability-flow ODE dX = b(t, X) dt from X(t0) = x to t1.

    Arguments:
        drift: b, a callable (t, x) -> array shaped like x.
        x: the initial state, one sample.
        n_steps: fixed uniform steps (default: adaptive, a PID controller with rtol/atol).
        solver: a diffrax ODE solver (default `diffrax.Heun()` with `n_steps`, else
            `diffrax.Tsit5()`).
        t0, t1: the time span in [0, 1]; t1 < t0 integrates backwards (data to base).
        rtol, atol, max_steps: the adaptive controller's tolerances and step budget.

    Returns:
        An `InterpolantSolution`.
    """
    check_callable("drift", drift, "a callable (t, x) -> velocity shaped like x")
    x = _as_float(x, "x")
    _check_span(t0, t1, forward_only=False)
    term = diffrax.ODETerm(lambda t, y, args: drift(t, y))
    if n_steps is not None:
        n = check_int("n_steps", n_steps, 1)
        solver = diffrax.Heun() if solver is None else solver
        controller = diffrax.ConstantStepSize()
        dt0 = (jnp.asarray(t1, x.dtype) - jnp.asarray(t0, x.dtype)) / n
        max_steps = n + 1  # a last step shortened by round-off may add one
    else:
        solver = diffrax.Tsit5() if solver is None else solver
        controller = diffrax.PIDController(rtol=rtol, atol=atol)
        dt0 = None
    sol = diffrax.diffeqsolve(
        term,
        solver,
        t0,
        t1,
        dt0,
        x,
        stepsize_controller=controller,
        saveat=diffrax.SaveAt(t1=True),
        max_steps=max_steps,
    )
    ys = sol.ys
    assert ys is not None
    return InterpolantSolution(ys[-1], sol.stats["num_steps"])


def interpolant_sde(
    drift: Callable,
    score: Callable,
    x: Float[ArrayLike, "*shape"],
    key: Key,
    *,
    eps: RealLike | Callable,
    n_steps: int,
    solver: diffrax.AbstractSolver | None = None,
    t0: RealLike = 0.0,
    t1: RealLike = 1.0,
) -> InterpolantSolution:
    """Solve dX = (b + eps(t) s) dt + sqrt(2 eps(t)) dW forwards from X(t0) = x to t1.

    Arguments:
        drift: b, a callable (t, x) -> array shaped like x.
        score: s, a callable (t, x) -> array shaped like x (e.g.
            `StochasticInterpolant.score_from_denoiser(eta)`); not evaluated where
            eps(t) = 0 (see the module docstring on the endpoint singularity).
        x: the initial state, one sample.
        key: the PRNG key of the Brownian path.
        eps: the diffusion coefficient, a non-negative number or a callable t -> eps(t).
        n_steps: fixed uniform steps.
        solver: a fixed-step diffrax SDE solver (default `diffrax.Euler()`,
            Euler-Maruyama; the noise is additive, so Ito and Stratonovich solvers agree).
        t0, t1: the time span, 0 <= t0 < t1 <= 1.

    Returns:
        An `InterpolantSolution`.
    """
    check_callable("drift", drift, "a callable (t, x) -> velocity shaped like x")
    check_callable("score", score, "a callable (t, x) -> score shaped like x")
    key = check_key("key", key)
    x = _as_float(x, "x")
    n = check_int("n_steps", n_steps, 1)
    _check_span(t0, t1, forward_only=True)
    if callable(eps):
        eps_fn = eps
    else:
        check_range("eps", eps, 0.0)
        eps_value = jnp.asarray(eps, x.dtype)

        def eps_fn(t):
            return eps_value

    shape = x.shape

    def drift_flat(t, y, args):
        xt = y.reshape(shape)
        e = jnp.asarray(eps_fn(t), y.dtype)
        st = jnp.where(e > 0, e * score(t, xt), 0.0)
        return (drift(t, xt) + st).reshape(-1)

    def diffusion_flat(t, y, args):
        e = jnp.maximum(jnp.asarray(eps_fn(t), y.dtype), 0.0)
        return lx.DiagonalLinearOperator(jnp.sqrt(2 * e) * jnp.ones_like(y))

    y0 = x.reshape(-1)
    # The steps are fixed, so an unsafe (non-interpolating) Brownian path gives exact
    # N(0, dt) increments (a virtual Brownian tree interpolates below its tolerance); it
    # needs forward-mode autodiff only.
    bm = diffrax.UnsafeBrownianPath(shape=y0.shape, key=key, levy_area=diffrax.BrownianIncrement)
    terms = diffrax.MultiTerm(diffrax.ODETerm(drift_flat), diffrax.ControlTerm(diffusion_flat, bm))
    dt0 = (jnp.asarray(t1, x.dtype) - jnp.asarray(t0, x.dtype)) / n
    sol = diffrax.diffeqsolve(
        terms,
        diffrax.Euler() if solver is None else solver,
        t0,
        t1,
        dt0,
        y0,
        stepsize_controller=diffrax.ConstantStepSize(),
        saveat=diffrax.SaveAt(t1=True),
        adjoint=diffrax.ForwardMode(),
        max_steps=n + 1,  # a last step shortened by round-off may add one
    )
    ys = sol.ys
    assert ys is not None
    return InterpolantSolution(ys[-1].reshape(shape), sol.stats["num_steps"])
