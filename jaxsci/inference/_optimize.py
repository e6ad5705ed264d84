"""MAP and Laplace: the fast baseline, and a starting point for MCMC.

Both work in the sampler's unconstrained space u (Jacobian included), where the posterior is
closest to Gaussian. `map_estimate` maximises log p(u) with L-BFGS (`minimize_lbfgs`: optax's
direction, Armijo backtracking; the program that evaluates the start runs it);
`laplace` adds the Gaussian approximation N(u*, (-H)^{-1}) with H the Hessian of log p at the
mode (Laplace's method; e.g. Gelman et al., Bayesian Data Analysis, 3rd ed., sec. 4.1; Stan's
`laplace` method uses the same unconstrained-space construction). The Hessian is
`jax.jacfwd(jax.grad(.))` (forward over reverse): through an ODE solve this needs forward-mode
support, i.e. `solve_ode(..., sensitivity='forward')` or `diffrax.DirectAdjoint()`;
reverse-over-reverse through diffrax's default adjoint is not supported.
"""

from collections.abc import Callable, Mapping
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp

from .._checks import check_int, check_positive
from .._custom_types import Array, Bool, Float, Int, Key
from ._init import Evaluator, _maximize, initial_positions
from ._target import AbstractTarget, make_target, safe_logdensity


class MAPResult(eqx.Module):
    """A posterior mode in unconstrained space.

    Attributes:
        params: name -> constrained parameter values at the mode.
        unconstrained: (dim,) the mode u*.
        logdensity: log p(u*) (unconstrained, Jacobian included).
        grad_norm: |grad log p(u*)|; num_steps: L-BFGS iterations; converged: grad_norm <= tol.
    """

    params: dict[str, Array]
    unconstrained: Float[Array, " dim"]
    logdensity: Float[Array, ""]
    grad_norm: Float[Array, ""]
    num_steps: Int[Array, ""]
    converged: Bool[Array, ""]
    target: AbstractTarget


class LaplaceResult(eqx.Module):
    """The Laplace approximation N(mean, cov) in unconstrained space.

    Attributes:
        map: the `MAPResult` at whose mode it is built.
        mean: (dim,) = map.unconstrained; cov: (dim, dim) = (-H)^{-1}.
        ok: True when -H is positive definite (the mode is a strict local maximum).
    """

    map: MAPResult
    mean: Float[Array, " dim"]
    cov: Float[Array, "dim dim"]
    ok: Bool[Array, ""]

    def sample_unconstrained(self, key: Key, num: int) -> Float[Array, "num dim"]:
        """`num` draws u ~ N(mean, cov)."""
        chol = jnp.linalg.cholesky(self.cov)
        z = jax.random.normal(key, (num, self.mean.shape[0]), self.mean.dtype)
        return self.mean + z @ chol.T

    def sample(self, key: Key, num: int) -> dict[str, Array]:
        """`num` draws of the constrained parameters (and deterministic sites)."""
        return jax.vmap(self.map.target.constrain)(self.sample_unconstrained(key, num))


def map_estimate(
    model: AbstractTarget | Callable,
    *,
    key: Key | None = None,
    init: str | Mapping[str, Any] = "prior_median",
    max_steps: int = 1000,
    tol: float = 1e-4,
    constraints: Mapping[str, Any] | None = None,
    shapes: Mapping[str, tuple[int, ...]] | None = None,
    prior: Mapping[str, Any] | None = None,
    model_args: tuple = (),
    model_kwargs: dict | None = None,
) -> MAPResult:
    """The mode of the posterior in unconstrained space (L-BFGS from `init`).

    Arguments:
        model, constraints, shapes, prior, model_args, model_kwargs: as `posterior`.
        key: PRNG key for a random `init` (default key 0).
        init: as `posterior` ('prior_median', 'prior_draw', 'uniform' or values).
        max_steps: L-BFGS iteration cap; tol: stop when |grad log p| <= tol (or when an
            iteration no longer changes log p beyond float resolution).
    """
    max_steps = check_int("max_steps", max_steps, 1)
    check_positive("tol", tol)
    target = make_target(model, constraints, shapes, prior, model_args, model_kwargs)
    if isinstance(init, str) and init == "map":
        raise ValueError("`init='map'` is not a start for map_estimate; use 'uniform', ...")
    # One compiled program (a batch of one row) evaluates the start and optimises from it.
    evaluate = Evaluator(target, 1, optimize=True)
    key = jax.random.key(0) if key is None else key
    u0 = jnp.asarray(initial_positions(target, key, 1, init, evaluate)[0])
    res = jax.tree_util.tree_map(
        lambda a: a[0],
        _maximize(target, u0, jnp.asarray(max_steps, jnp.int32), jnp.asarray(tol, u0.dtype)),
    )
    return MAPResult(
        params=target.constrain(res.x),
        unconstrained=res.x,
        logdensity=-res.value,
        grad_norm=jnp.linalg.norm(res.grad),
        num_steps=res.num_steps,
        converged=res.converged,
        target=target,
    )


@eqx.filter_jit
def _hessian(target: AbstractTarget, u):
    return jax.jacfwd(jax.grad(lambda v: safe_logdensity(target, v)))(u)


def laplace(
    model: AbstractTarget | Callable | MAPResult,
    **kwargs: Any,
) -> LaplaceResult:
    """Laplace approximation at the posterior mode: N(u*, (-H)^{-1}) in unconstrained space.

    Arguments:
        model: a `MAPResult` (its mode is used), or anything `map_estimate` accepts together
            with its keyword arguments `kwargs`.

    Returns:
        A `LaplaceResult`; `ok` is False (and `cov` NaN) when -H is not positive definite.
    """
    mode = model if isinstance(model, MAPResult) else map_estimate(model, **kwargs)
    if isinstance(model, MAPResult) and kwargs:
        raise ValueError(f"{sorted(kwargs)} are not used when `model` is a MAPResult.")
    cov, ok = laplace_covariance(_hessian(mode.target, mode.unconstrained))
    return LaplaceResult(map=mode, mean=mode.unconstrained, cov=cov, ok=ok)


def laplace_covariance(hessian: Float[Array, "dim dim"]) -> tuple[Array, Array]:
    """(-H)^{-1} via Cholesky of -H (symmetrised), and whether -H is positive definite;
    the covariance is NaN when it is not."""
    precision = -0.5 * (hessian + hessian.T)
    chol = jnp.linalg.cholesky(precision)
    ok = jnp.all(jnp.isfinite(chol))
    eye = jnp.eye(precision.shape[0], dtype=precision.dtype)
    inv_chol = jax.scipy.linalg.solve_triangular(chol, eye, lower=True)
    cov = jnp.where(ok, inv_chol.T @ inv_chol, jnp.nan)
    return cov, ok
