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
compiled program, the L-BFGS of `minimize_lbfgs` vmapped over a fixed batch of rows
(`Evaluator`; with `max_steps=0` it returns log p and its gradient at the rows): compiling
an ODE model's gradient costs seconds, running it a fraction of a millisecond. The Hessian
is central differences of that gradient; `map_estimate` and `laplace` give the accurate mode
and the exact Hessian.
"""

import logging
from collections.abc import Mapping
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Key as Keys

from .._custom_types import Array, Key
from .._sharding import pad_batch, unpad_batch
from ._lbfgs import LBFGSResult, minimize_lbfgs
from ._target import AbstractTarget, safe_logdensity

logger = logging.getLogger("jaxsci.inference")

#: Initialisation strategies by name (besides a dict of values or a MAP/Laplace result).
INIT_STRATEGIES = ("map", "prior_median", "prior_draw", "uniform")
# Tries per chain to find a start with a finite log-density (numpyro also makes 100).
_INIT_ATTEMPTS = 100
# `init='map'`: at least this many optimisation starts (a Lotka-Volterra start drawn from the
# prior reaches the main mode ~60% of the time, so 8 starts all miss it with probability
# ~1e-3); the L-BFGS iteration cap and gradient tolerance; the relative central-difference
# step of the Hessian.
_MIN_STARTS = 8
_LBFGS_STEPS = 300
_GTOL = 1e-3
_FD_STEP = 1e-2
# Two optima count as different modes when their log-densities differ by more than this.
_MODE_GAP = 1.0


def _fold(key: Key, n: int) -> Keys[Array, " n"]:
    """n keys fold_in(key, i), i < n."""
    return jax.vmap(lambda i: jax.random.fold_in(key, i))(jnp.arange(n))


@eqx.filter_jit
def _maximize(target: AbstractTarget, u0, max_steps, gtol) -> LBFGSResult:
    """`minimize_lbfgs` of -log p from every row of u0 (rows, dim); `max_steps` and `gtol`
    are arrays, so one compiled program serves evaluation (max_steps = 0) and optimisation."""

    def one(u):
        return minimize_lbfgs(
            lambda v: -safe_logdensity(target, v), u, max_steps=max_steps, gtol=gtol
        )

    return jax.vmap(one)(u0)


@eqx.filter_jit
def _value_and_grad(target: AbstractTarget, u):
    return jax.vmap(jax.value_and_grad(lambda v: safe_logdensity(target, v)))(u)


class Evaluator:
    """log p and its gradient, or L-BFGS maxima, from any number of points, on batches of
    `batch` rows (the last batch padded by repeating a row), through one compiled program:
    `_maximize` when `optimize` (evaluation is its `max_steps=0`), else a vmapped
    value-and-gradient (which compiles faster)."""

    def __init__(self, target: AbstractTarget, batch: int, optimize: bool = False):
        self.target = target
        self.batch = batch
        self.optimize = optimize

    def _batches(self, fn, u: np.ndarray) -> tuple[np.ndarray, ...]:
        """`fn(rows)` over padded batches of the rows of `u`, concatenated (padding dropped)."""
        u = np.asarray(u)
        parts = []
        for i in range(0, u.shape[0], self.batch):
            rows, real = pad_batch(u[i : i + self.batch], self.batch)
            parts.append(unpad_batch(jax.device_get(fn(jnp.asarray(rows))), real))
        return tuple(np.concatenate(a) for a in zip(*parts, strict=True))

    def maximize(
        self, u: np.ndarray, max_steps: int = 0, gtol: float = _GTOL
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The L-BFGS maxima of log p from the rows of `u` (after at most `max_steps`
        iterations; 0: `u` itself), and log p and its gradient there."""
        if not self.optimize:
            raise ValueError("this Evaluator was built without `optimize`.")

        def fn(rows):
            res = _maximize(
                self.target,
                rows,
                jnp.asarray(max_steps, jnp.int32),
                jnp.asarray(gtol, rows.dtype),
            )
            return res.x, -res.value, -res.grad

        x, lp, grad = self._batches(fn, u)
        return x, lp, grad

    def __call__(self, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """log p and its gradient at the rows of `u`."""
        if self.optimize:
            return self.maximize(u)[1:]
        lp, grad = self._batches(lambda rows: _value_and_grad(self.target, rows), u)
        return lp, grad


@eqx.filter_jit
def _prior_positions(target: AbstractTarget, keys: Keys[Array, " n"], strategy: str):
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
    u_opt, lp_opt, g_opt = evaluate.maximize(starts, _LBFGS_STEPS)
    if not np.any(np.isfinite(lp_opt)):
        raise ValueError("`init='map'`: every optimisation ended at a non-finite log-density.")
    lp_opt = np.where(np.isfinite(lp_opt), lp_opt, -np.inf)
    # Optima whose log-densities agree to float resolution (the optimiser's own stopping
    # tolerance) are the same mode as far as log p can tell: the best estimate of it is the
    # one with the smallest gradient.
    top = float(np.max(lp_opt))
    tied = lp_opt >= top - 10 * np.finfo(lp_opt.dtype).eps * (1 + abs(top))
    best = int(np.argmin(np.where(tied, np.linalg.norm(g_opt, axis=1), np.inf)))
    lower = np.flatnonzero(lp_opt < lp_opt[best] - _MODE_GAP)
    if lower.size:
        logger.warning(
            "init='map': %d of %d optimisation starts ended in lower modes (log p %s vs %.2f); "
            "the chains start around the best one",
            lower.size,
            n_opt,
            np.round(np.sort(lp_opt[lower]).astype(np.float64), 2).tolist(),
            float(lp_opt[best]),
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


def _is_map(init: Any) -> bool:
    return isinstance(init, str) and init == "map"


def initial_positions(
    target: AbstractTarget,
    key: Key,
    num_chains: int,
    init: Any,
    evaluate: Evaluator | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(num_chains, dim) unconstrained starting points with finite log-density, and the
    log-density (num_chains,) and its gradient (num_chains, dim) there.

    Arguments:
        init: 'map', 'prior_median', 'prior_draw', 'uniform', a dict of constrained
            parameter values (every chain), a `MAPResult` (its mode) / `LaplaceResult`
            (draws from it), or an array (num_chains, dim) of unconstrained starts.
        evaluate: the `Evaluator` to use (default: one of its own; 'map' needs one built
            with `optimize=True`).
    """
    from ._optimize import LaplaceResult, MAPResult

    if evaluate is None:
        # One batch size per call, so that everything below runs one compiled program.
        if _is_map(init):
            evaluate = Evaluator(target, max(num_chains, _MIN_STARTS), optimize=True)
        else:
            evaluate = Evaluator(target, num_chains)
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
