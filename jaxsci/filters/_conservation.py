"""ProbConserv: the exact conservation update of a Gaussian prediction (Hansen et al. 2023)."""

import jax.numpy as jnp

from .._checks import check_positive
from .._custom_types import ArrayLike, Float
from ._kalman import KalmanUpdate, _update


def conservation_update(
    mean: Float[ArrayLike, " dim"],
    cov: Float[ArrayLike, "dim dim"] | Float[ArrayLike, " dim"],
    constraint: Float[ArrayLike, "con dim"] | Float[ArrayLike, " dim"],
    total: Float[ArrayLike, " con"] | Float[ArrayLike, ""],
    *,
    noise_std: Float[ArrayLike, ""] | float = 0.0,
) -> KalmanUpdate:
    r"""Impose a linear conservation law G u = b on a Gaussian prediction N(mu, Sigma) of a
    discretised field u: step 2 of ProbConserv (Hansen, Maddix, Alizadeh, Gupta & Mahoney
    2023, "Learning physical models that can respect conservation laws", ICML, eq. 5).

    The conservation law in integral form, d/dt int_Omega u dx = -(boundary flux), says that
    int_Omega u(x, t) dx = b(t), the initial total plus the time-integrated boundary fluxes
    (b constant for periodic or no-flux boundaries). On a grid it is G u = b with G the row of
    quadrature weights (spacing * ones on a periodic uniform grid, the trapezoid rule's
    weights otherwise). Treated as an observation b = G u + e, e ~ N(0, sigma_G^2 I), of the
    surrogate's prediction u ~ N(mu, Sigma), the posterior is

        mu~    = mu - Sigma G^T (G Sigma G^T + sigma_G^2 I)^{-1} (G mu - b),
        Sigma~ = Sigma - Sigma G^T (G Sigma G^T + sigma_G^2 I)^{-1} G Sigma.

    sigma_G = 0 (the default) is the hard constraint: G mu~ = b to round-off and Sigma~ has
    zero variance along G; mu~ is then the Sigma^{-1}-weighted least-squares projection of mu
    onto {u : G u = b}, so the correction goes where the surrogate is uncertain (with a
    diagonal Sigma, in proportion to the pointwise variance). The variance of any linear
    functional w^T u uncorrelated with G u under Sigma (w^T Sigma G^T = 0) is unchanged.

    This is the Gaussian linear update `kalman_update` with H = G, R = sigma_G^2 I (one home
    for the conditioning; it factors G Sigma G^T + sigma_G^2 I by Cholesky, and forms Sigma~
    in Joseph form, positive semi-definite in floating point). The `observations` models are
    not used: their noise covariance must be positive definite, and the hard constraint is
    R = 0. G Sigma G^T must be positive definite when sigma_G = 0 (the prediction must be
    uncertain along every constraint), else the result is NaN.

    Arguments:
        mean: mu (dim,), the surrogate's mean.
        cov: Sigma (dim, dim), or a (dim,) vector of variances for a diagonal Sigma (a
            pointwise-Gaussian surrogate, the ANP of the paper, or an ensemble's variances).
        constraint: G, one row (dim,) or several (con, dim).
        total: b, a scalar for one row or (con,).
        noise_std: sigma_G >= 0, the standard deviation of the constraint's slack.

    Returns:
        A `KalmanUpdate`: mean mu~ (dim,), cov Sigma~ (dim, dim) and log_likelihood,
        log N(b; G mu, G Sigma G^T + sigma_G^2 I), how plausible the conserved total was under
        the surrogate.
    """
    mu = jnp.asarray(mean)
    if mu.ndim != 1:
        raise ValueError(f"`mean` has shape {mu.shape}, wanted (dim,).")
    n = mu.shape[0]
    sigma = jnp.asarray(cov)
    if sigma.shape == (n,):
        sigma = jnp.diag(sigma)
    elif sigma.shape != (n, n):
        raise ValueError(f"`cov` has shape {sigma.shape}, wanted ({n}, {n}) or ({n},) (diagonal).")
    g = jnp.asarray(constraint)
    if g.ndim == 1:
        g = g[None]
    if g.ndim != 2 or g.shape[1] != n or g.shape[0] == 0:
        raise ValueError(
            f"`constraint` has shape {jnp.shape(constraint)}, wanted ({n},) or (con, {n})."
        )
    b = jnp.atleast_1d(jnp.asarray(total))
    if b.shape != (g.shape[0],):
        raise ValueError(
            f"`total` has shape {jnp.shape(total)}, wanted "
            + ("() or (1,)" if g.shape[0] == 1 else f"({g.shape[0]},)")
            + " (one total per constraint row)."
        )
    if jnp.ndim(noise_std) != 0:
        raise ValueError(f"`noise_std` has shape {jnp.shape(noise_std)}, wanted () (a scalar).")
    check_positive("noise_std", noise_std, allow_zero=True)
    dtype = jnp.result_type(mu, sigma, g, b, jnp.asarray(noise_std))
    r = jnp.asarray(noise_std, dtype) ** 2 * jnp.eye(g.shape[0], dtype=dtype)
    return _update(*(a.astype(dtype) for a in (mu, sigma, g)), r, b.astype(dtype))
