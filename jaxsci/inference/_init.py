"""Chain starting points: multi-start MAP + Laplace, prior-based, uniform, or user values.

`init='map'` (the default of `posterior`) follows the idea of Stan's optimisation/Pathfinder
initialisation: L-BFGS runs from max(num_chains, 8) dispersed starts (prior draws, or U(-2, 2)
in unconstrained space, Stan's default, for a log-density without a prior), the best optimum
is kept, and the
chains start at draws from the Laplace approximation there, i.e. dispersed on the posterior's
own scale. A posterior with several local modes (Lotka-Volterra on the lynx-hare data has one at
log p = -172 next to the main mode at -133, and the prior median lies in its basin) then does
not trap chains in a negligible mode; starts that ended in a lower mode are logged as a warning.

Being only a start, it is made cheap. Every model evaluation here (validity of random starts,
the optimiser, the Hessian, the sampler's initial log-density and gradient) goes through one
compiled, vmapped value-and-gradient on a fixed batch of rows (`Evaluator`): compiling an ODE
model's gradient costs seconds, running it a fraction of a millisecond. The optimiser is a
NumPy L-BFGS driven from Python (optax's, with its line search inside `jit`, compiles the model
several times over) and the Hessian is central differences of that gradient; `map_estimate`
and `laplace` give the accurate mode and the exact Hessian.
"""

import logging
from collections.abc import Mapping
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._custom_types import Key
from ._target import AbstractTarget, safe_logdensity

logger = logging.getLogger("jaxsci.inference")

#: Initialisation strategies by name (besides a dict of values or a MAP/Laplace result).
INIT_STRATEGIES = ("map", "prior_median", "prior_draw", "uniform")
# Tries per chain to find a start with a finite log-density (numpyro also makes 100).
_INIT_ATTEMPTS = 100
# `init='map'`: at least this many optimisation starts (a Lotka-Volterra start drawn from the
# prior reaches the main mode ~60% of the time, so 8 starts all miss it with probability
# ~1e-3);
# L-BFGS memory, iteration cap, gradient tolerance and backtracking halvings per iteration;
# the relative central-difference step of the Hessian.
_MIN_STARTS = 8
_LBFGS_MEMORY = 10
_LBFGS_STEPS = 300
_GTOL = 1e-3
_BACKTRACKS = 30
_FD_STEP = 1e-2
# Two optima count as different modes when their log-densities differ by more than this.
_MODE_GAP = 1.0


def _fold(key: Key, n: int) -> Key:
    return jax.vmap(lambda i: jax.random.fold_in(key, i))(jnp.arange(n))


@eqx.filter_jit
def _value_and_grad(target: AbstractTarget, u):
    return jax.vmap(jax.value_and_grad(lambda v: safe_logdensity(target, v)))(u)


class Evaluator:
    """log p and its gradient at any number of points, through one compiled function on
    batches of `batch` rows (the last batch padded by repeating a row)."""

    def __init__(self, target: AbstractTarget, batch: int):
        self.target = target
        self.batch = batch

    def __call__(self, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        u = np.asarray(u)
        n = u.shape[0]
        lps, grads = [], []
        for i in range(0, n, self.batch):
            rows = u[i : i + self.batch]
            pad = self.batch - rows.shape[0]
            if pad:
                rows = np.concatenate([rows, np.repeat(rows[-1:], pad, axis=0)])
            lp, g = _value_and_grad(self.target, jnp.asarray(rows))
            lps.append(np.asarray(lp)[: self.batch - pad])
            grads.append(np.asarray(g)[: self.batch - pad])
        return np.concatenate(lps), np.concatenate(grads)


@eqx.filter_jit
def _prior_positions(target: AbstractTarget, keys: Key, strategy: str):
    return jax.vmap(lambda k: target.init_position(k, strategy))(keys)


class _NoPrior(ValueError):
    """The target has no prior to draw starting points from."""


def _random_starts(evaluate: Evaluator, key: Key, num: int, strategy: str) -> np.ndarray:
    target = evaluate.target
    if strategy in ("prior_draw", "prior_median") and not target.has_prior:
        raise _NoPrior(
            f"`init={strategy!r}` needs a prior: pass `prior=` (numpyro distributions) to "
            "LogDensity, or use init='map', 'uniform' or a dict of starting values."
        )
    u = np.array(_prior_positions(target, _fold(key, num), strategy))
    lp = evaluate(u)[0]
    for attempt in range(1, _INIT_ATTEMPTS):
        bad = ~np.isfinite(lp)
        if not bad.any():
            break
        keys = _fold(jax.random.fold_in(key, attempt), num)
        u_new = np.array(_prior_positions(target, keys, strategy))
        lp_new = evaluate(u_new)[0]
        u[bad], lp[bad] = u_new[bad], lp_new[bad]
    if not np.all(np.isfinite(lp)):
        raise ValueError(
            f"`init={strategy!r}`: no starting point with a finite log-density in "
            f"{_INIT_ATTEMPTS} tries for chain(s) {np.flatnonzero(~np.isfinite(lp)).tolist()}."
        )
    return u


def _lbfgs(evaluate: Evaluator, u0: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Maximise log p from every row of u0 at once: L-BFGS (Nocedal and Wright 2006, Alg. 7.4,
    memory `_LBFGS_MEMORY`) with Armijo backtracking, every trial point of every start
    evaluated in one batched call. A start stops when |grad| <= `_GTOL` or log p changes by
    less than float resolution. Returns the final points and log-densities."""
    x = np.array(u0, dtype=np.float64)
    n, d = x.shape
    lp, g = evaluate(x.astype(u0.dtype))
    f, g = -lp.astype(np.float64), -g.astype(np.float64)
    mem_s = np.zeros((n, _LBFGS_MEMORY, d))
    mem_y = np.zeros((n, _LBFGS_MEMORY, d))
    count = np.zeros(n, dtype=int)
    done = ~np.isfinite(f)
    ftol = 10 * np.finfo(u0.dtype).eps
    for _ in range(_LBFGS_STEPS):
        if done.all():
            break
        p = np.zeros_like(x)
        for i in np.flatnonzero(~done):
            p[i] = -_two_loop(g[i], mem_s[i, : count[i]], mem_y[i, : count[i]])
            if not g[i] @ p[i] < 0:  # not a descent direction: restart from steepest descent
                p[i], count[i] = -g[i], 0
        first = count == 0
        alpha = np.where(
            first, np.minimum(1.0, 1.0 / np.maximum(np.linalg.norm(g, axis=1), 1e-12)), 1.0
        )
        accepted = done.copy()
        x_new, f_new, g_new = x.copy(), f.copy(), g.copy()
        for _ in range(_BACKTRACKS):
            trial = ~accepted
            if not trial.any():
                break
            xt = x + alpha[:, None] * p
            lp_t, g_t = evaluate(xt.astype(u0.dtype))
            ft = -lp_t.astype(np.float64)
            ok = trial & np.isfinite(ft) & (ft <= f + 1e-4 * alpha * np.sum(g * p, axis=1))
            x_new[ok], f_new[ok], g_new[ok] = xt[ok], ft[ok], -g_t[ok].astype(np.float64)
            accepted |= ok
            alpha = np.where(accepted, alpha, 0.5 * alpha)
        stalled = ~accepted
        step_s, step_y = x_new - x, g_new - g
        curv = np.sum(step_s * step_y, axis=1)
        for i in np.flatnonzero(accepted & ~done & (curv > 1e-12)):
            if count[i] == _LBFGS_MEMORY:
                mem_s[i, :-1], mem_y[i, :-1] = mem_s[i, 1:].copy(), mem_y[i, 1:].copy()
                count[i] -= 1
            mem_s[i, count[i]], mem_y[i, count[i]] = step_s[i], step_y[i]
            count[i] += 1
        change = np.abs(f - f_new)
        x, f, g = x_new, f_new, g_new
        small = np.linalg.norm(g, axis=1) <= _GTOL
        done |= stalled | small | (change <= ftol * (1 + np.abs(f)))
    return x.astype(u0.dtype), -f


def _two_loop(g: np.ndarray, s: np.ndarray, y: np.ndarray) -> np.ndarray:
    """H g for the L-BFGS inverse-Hessian approximation from pairs (s, y), oldest first."""
    q = g.copy()
    k = s.shape[0]
    rho = 1.0 / np.sum(s * y, axis=1) if k else np.zeros(0)
    a = np.zeros(k)
    for i in range(k - 1, -1, -1):
        a[i] = rho[i] * (s[i] @ q)
        q -= a[i] * y[i]
    gamma = (s[-1] @ y[-1]) / (y[-1] @ y[-1]) if k else 1.0
    r = gamma * q
    for i in range(k):
        b = rho[i] * (y[i] @ r)
        r += (a[i] - b) * s[i]
    return r


def _fd_hessian(evaluate: Evaluator, u: np.ndarray) -> np.ndarray:
    """Hessian of log p at u by central differences of the gradient (symmetrised)."""
    h = _FD_STEP * np.maximum(1.0, np.abs(u))
    eye = np.diag(h)
    _, g = evaluate(np.concatenate([u + eye, u - eye]).astype(u.dtype))
    d = u.shape[0]
    hess = (g[:d] - g[d:]).astype(np.float64) / (2 * h[:, None])
    return 0.5 * (hess + hess.T)


def _map_starts(evaluate: Evaluator, key: Key, num: int) -> np.ndarray:
    key_starts, key_draws = jax.random.split(key)
    n_opt = max(num, _MIN_STARTS)
    try:  # prior draws where the target has a prior, else Stan's U(-2, 2)
        starts = _random_starts(evaluate, key_starts, n_opt, "prior_draw")
    except _NoPrior:
        starts = _random_starts(evaluate, key_starts, n_opt, "uniform")
    u_opt, lp_opt = _lbfgs(evaluate, starts)
    if not np.any(np.isfinite(lp_opt)):
        raise ValueError("`init='map'`: every optimisation ended at a non-finite log-density.")
    best = int(np.argmax(lp_opt))
    lower = np.flatnonzero(lp_opt < lp_opt[best] - _MODE_GAP)
    if lower.size:
        logger.warning(
            "init='map': %d of %d optimisation starts ended in lower modes (log p %s vs %.2f); "
            "the chains start around the best one",
            lower.size,
            n_opt,
            np.round(np.sort(lp_opt[lower]), 2).tolist(),
            lp_opt[best],
        )
    mode = u_opt[best]
    precision = -_fd_hessian(evaluate, mode)
    try:
        chol = np.linalg.cholesky(precision)
    except np.linalg.LinAlgError:
        logger.warning(
            "init='map': the Hessian at the mode is not negative definite; all chains start at "
            "the mode"
        )
        return np.broadcast_to(mode, (num, mode.shape[0])).copy()
    z = np.asarray(jax.random.normal(key_draws, (num, mode.shape[0])), dtype=np.float64)
    # u = mode + L^{-T} z has covariance (L L^T)^{-1} = (-H)^{-1}.
    u = (mode + np.linalg.solve(chol.T, z.T).T).astype(mode.dtype)
    lp = evaluate(u)[0]
    u[~np.isfinite(lp)] = mode
    return u


def initial_positions(
    target: AbstractTarget, key: Key, num_chains: int, init: Any
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(num_chains, dim) unconstrained starting points with finite log-density, and the
    log-density (num_chains,) and its gradient (num_chains, dim) there.

    Arguments:
        init: 'map', 'prior_median', 'prior_draw', 'uniform', a dict of constrained
            parameter values (every chain), a `MAPResult` (its mode) / `LaplaceResult`
            (draws from it), or an array (num_chains, dim) of unconstrained starts.
    """
    from ._optimize import LaplaceResult, MAPResult

    evaluate = Evaluator(target, max(num_chains, _MIN_STARTS))
    if isinstance(init, str):
        if init not in INIT_STRATEGIES:
            raise ValueError(
                f"`init` must be one of {list(INIT_STRATEGIES)}, a dict of parameter values, "
                f"or a MAP/Laplace result, got {init!r}."
            )
        if init == "map":
            u = _map_starts(evaluate, key, num_chains)
        else:
            u = _random_starts(evaluate, key, num_chains, init)
    elif isinstance(init, LaplaceResult):
        u = np.asarray(init.sample_unconstrained(key, num_chains))
    elif isinstance(init, MAPResult):
        u = np.broadcast_to(np.asarray(init.unconstrained), (num_chains, target.dim)).copy()
    elif isinstance(init, np.ndarray | jax.Array):
        u = np.array(init, dtype=np.result_type(float))
        if u.shape != (num_chains, target.dim):
            raise ValueError(
                f"`init` as an array gives unconstrained starts per chain and must have shape "
                f"(num_chains, dim) = {(num_chains, target.dim)}, got {u.shape}."
            )
    elif isinstance(init, Mapping):
        values = target.check_params(init, "init")
        u1 = np.asarray(target.unconstrain(values))
        if not np.all(np.isfinite(u1)):
            raise ValueError(f"`init` = {init} lies outside the parameters' supports.")
        u = np.broadcast_to(u1, (num_chains, target.dim)).copy()
    else:
        raise TypeError(
            f"`init` must be one of {list(INIT_STRATEGIES)}, a dict of parameter values, or a "
            f"MAP/Laplace result, got {type(init).__name__}."
        )
    if u.shape != (num_chains, target.dim):
        raise ValueError(
            f"`init` gives starts of shape {u.shape}, expected {(num_chains, target.dim)}."
        )
    lp, grad = evaluate(u)
    if not np.all(np.isfinite(lp)):
        raise ValueError(
            "`init`: the log-density is not finite at the given start (chains "
            f"{np.flatnonzero(~np.isfinite(lp)).tolist()}); pick values inside the support "
            "where the model can be evaluated."
        )
    return u, lp, grad
