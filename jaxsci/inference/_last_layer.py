r"""Bayesian last layer of a network: the Gaussian linear model on the network's features.

A network u(x) = phi(x)^T w whose last layer is affine (e.g. `nn.FNO`: `projection[1]` of
`FNO.features`) is linear in the last layer's weights w (bias included as a constant
feature). With a Gaussian prior w ~ N(0, alpha^{-1} I) and a Gaussian likelihood
y_i ~ N(phi_i^T w, sigma^2) on the training rows (every grid point of every training pair),
the posterior over w is Gaussian (Bayesian linear regression; Bishop 2006, sec. 3.3):

    A = alpha I + sigma^{-2} Phi^T Phi,   m = sigma^{-2} A^{-1} Phi^T y,   w | y ~ N(m, A^{-1}).

The Laplace approximation of this posterior is exact: the generalised Gauss-Newton matrix
J^T J / sigma^2 + alpha I, with J = d(Phi w)/dw = Phi, is the Hessian of the negative log
posterior, and one Newton step from any w lands on the mode m (Daxberger et al. 2021,
"Laplace Redux", whose last-layer GGN Laplace this is). `last_layer_laplace` computes it
from the eigendecomposition Phi^T Phi = V diag(lambda) V^T, and chooses alpha and sigma, when
not given, by maximising the marginal likelihood (the evidence) with MacKay's fixed-point
updates (Bishop 2006, sec. 3.5.2):

    gamma = sum_i beta lambda_i / (alpha + beta lambda_i),   alpha = gamma / |m|^2,
    1 / beta = sigma^2 = |y - Phi m|^2 / (N - gamma).

`last_layer_logdensity` is the same model as a log-density for `posterior` (NUTS/HMC), in
sufficient statistics Phi^T Phi, Phi^T y, y^T y, so one evaluation costs O(p^2) whatever N;
with alpha and/or sigma left None it samples them too under weak Gamma hyperpriors (the
fully Bayesian last layer, whose w marginal is a scale mixture of the Gaussians above).
"""

import math
from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp

from .._checks import check_int, check_key, check_positive
from .._custom_types import Array, ArrayLike, Float, Int, Key


class LastLayerPosterior(eqx.Module):
    """The Gaussian posterior N(mean, cov) over last-layer weights, with a square root
    `scale` of the covariance (cov = scale scale^T, from its eigendecomposition), the noise
    std and prior precision it was computed with, the log marginal likelihood
    log p(y | alpha, sigma) of the data under them, and the evidence fit's `iterations` run
    and the `relative_change` of (alpha, beta) in its last one (0 when both were given)."""

    mean: Float[Array, " p"]
    cov: Float[Array, "p p"]
    scale: Float[Array, "p p"]
    noise_std: Float[Array, ""]
    prior_precision: Float[Array, ""]
    log_evidence: Float[Array, ""]
    iterations: Int[Array, ""]
    relative_change: Float[Array, ""]

    def sample(self, key: Key, num_samples: int) -> Float[Array, "sample p"]:
        """`num_samples` draws of the weights."""
        key = check_key("key", key)
        num_samples = check_int("num_samples", num_samples)
        z = jax.random.normal(key, (num_samples, self.mean.shape[0]), self.mean.dtype)
        return self.unwhiten(z)

    def unwhiten(self, z: Float[ArrayLike, "*batch p"]) -> Float[Array, "*batch p"]:
        """w = mean + scale z: standard normal z to posterior draws (the map that
        `last_layer_logdensity(..., precondition=self)` samples through)."""
        return self.mean + jnp.asarray(z) @ self.scale.T

    def predictive(
        self,
        features: Float[ArrayLike, "row p"],
        *,
        key: Key,
        num_samples: int,
        noise: bool = True,
    ) -> Float[Array, "sample row"]:
        """Draws of the outputs Phi w (+ N(0, sigma^2) noise per row when `noise`: the
        posterior predictive of a new observation; without it, the epistemic part only)."""
        key_w, key_noise = jax.random.split(check_key("key", key))
        weights = self.sample(key_w, num_samples)
        return predictive_samples(
            features, weights, self.noise_std if noise else None, key=key_noise
        )


def _check_design(features, targets):
    features, targets = jnp.asarray(features), jnp.asarray(targets)
    if features.ndim != 2:
        raise ValueError(f"`features` has shape {features.shape}; expected (rows, p).")
    if targets.shape != features.shape[:1]:
        raise ValueError(
            f"`targets` has shape {targets.shape}; expected (rows,) = ({features.shape[0]},) "
            "like `features`."
        )
    return features, targets


def last_layer_laplace(
    features: Float[ArrayLike, "row p"],
    targets: Float[ArrayLike, " row"],
    *,
    noise_std: float | None = None,
    prior_precision: float | None = None,
    iterations: int = 100,
    tol: float = 1e-10,
    mean: Float[ArrayLike, " p"] | None = None,
) -> LastLayerPosterior:
    r"""Last-layer Laplace (GGN) posterior of a Gaussian linear model, exact for it.

    Arguments:
        features: Phi, one row per training output (append a ones column for a bias).
        targets: y, the training outputs.
        noise_std: sigma of the Gaussian likelihood; None: maximise the evidence over it.
        prior_precision: alpha of the prior N(0, alpha^{-1} I); None: maximise the evidence.
        iterations: the most MacKay fixed-point iterations when either is None (they
            converge linearly; 100 reach the fixed point to round-off on well-determined
            problems).
        tol: stop when the largest relative change of alpha and beta in an iteration is
            below it (float32 round-off never gets there: all `iterations` run).
        mean: the centre of the Gaussian: None, the posterior mode m (the Bayesian linear
            regression refit of the last layer); or the trained last-layer weights, the
            Laplace approximation at the trained network (Daxberger et al. 2021: the
            GGN precision beta Phi^T Phi + alpha I at the network's own weights).

    Returns:
        A `LastLayerPosterior` (mean, covariance A^{-1}, the sigma and alpha used, the
        iterations run and the last relative change).

    Raises (at run time, `eqx.error_if`) when the fitted alpha or sigma is not finite and
    positive (e.g. all-zero targets: |m|^2 = 0).

    A trained network's features are strongly correlated: the eigenvalues of Phi^T Phi span
    many decades, and in float32 the small ones (which set the widest posterior directions)
    are round-off. Compute in float64 (`with jax.enable_x64(True):` and float64 arrays), as
    the `burgers_uq` pipeline does.
    """
    features, targets = _check_design(features, targets)
    iterations = check_int("iterations", iterations)
    if noise_std is not None:
        check_positive("noise_std", noise_std)
    if prior_precision is not None:
        check_positive("prior_precision", prior_precision)
    check_positive("tol", tol)
    n, p = features.shape
    if mean is not None:
        mean = jnp.asarray(mean, features.dtype)
        if mean.shape != (p,):
            raise ValueError(f"`mean` has shape {mean.shape}; expected (p,) = ({p},).")
    dtype = features.dtype
    lam, vecs = jnp.linalg.eigh(features.T @ features)
    lam = jnp.maximum(lam, 0.0)
    c = vecs.T @ (features.T @ targets)

    def mode(alpha, beta):
        u = beta * c / (alpha + beta * lam)  # V^T m
        return u, targets - features @ (vecs @ u)

    def update(state):
        i, alpha, beta, _ = state
        u, r = mode(alpha, beta)
        gamma = jnp.sum(beta * lam / (alpha + beta * lam))
        new_alpha = alpha if prior_precision is not None else gamma / jnp.sum(u**2)
        new_beta = beta if noise_std is not None else (n - gamma) / jnp.sum(r**2)
        change = jnp.maximum(
            jnp.abs(new_alpha / alpha - 1.0), jnp.abs(new_beta / beta - 1.0)
        ).astype(dtype)
        return i + 1, new_alpha, new_beta, change

    def running(state):
        i, alpha, beta, change = state
        finite = jnp.isfinite(alpha) & jnp.isfinite(beta)
        return (i < iterations) & (change >= tol) & finite

    # Start from alpha = 1 / Var(y)-ish scales that are safe for any data: beta from the
    # targets' variance, alpha = 1 (MacKay's iteration is insensitive to the start).
    alpha0 = jnp.asarray(1.0 if prior_precision is None else prior_precision, dtype)
    beta0 = (
        1.0 / jnp.maximum(jnp.var(targets), jnp.finfo(dtype).tiny)
        if noise_std is None
        else jnp.asarray(noise_std, dtype) ** -2
    )
    state = (jnp.zeros((), jnp.int32), alpha0, beta0.astype(dtype), jnp.asarray(0.0, dtype))
    if prior_precision is None or noise_std is None:
        state = (state[0], state[1], state[2], jnp.asarray(jnp.inf, dtype))
        state = jax.lax.while_loop(running, update, state)
    count, alpha, beta, change = state
    bad = ~(jnp.isfinite(alpha) & jnp.isfinite(beta) & (alpha > 0) & (beta > 0))
    alpha = eqx.error_if(
        alpha,
        bad,
        "last_layer_laplace: the evidence fit gave a non-finite or non-positive prior "
        "precision or noise precision (all-zero targets, or features that fit the targets "
        "exactly?); give `prior_precision` and `noise_std`.",
    )
    u, r = mode(alpha, beta)
    d = alpha + beta * lam
    log_evidence = 0.5 * (
        p * jnp.log(alpha)
        + n * jnp.log(beta)
        - beta * jnp.sum(r**2)
        - alpha * jnp.sum(u**2)
        - jnp.sum(jnp.log(d))
        - n * math.log(2 * math.pi)
    )
    return LastLayerPosterior(
        mean=vecs @ u if mean is None else mean,
        cov=(vecs / d) @ vecs.T,
        scale=vecs / jnp.sqrt(d),
        noise_std=beta**-0.5,
        prior_precision=alpha,
        log_evidence=log_evidence,
        iterations=count,
        relative_change=change,
    )


def last_layer_logdensity(
    features: Float[ArrayLike, "row p"],
    targets: Float[ArrayLike, " row"],
    *,
    noise_std: float | None,
    prior_precision: float | None,
    name: str = "w",
    precondition: LastLayerPosterior | None = None,
    hyperprior: tuple[float, float] = (1e-3, 1e-3),
    noise_hyperprior: tuple[float, float] = (0.0, 0.0),
) -> Callable[[dict[str, Array]], Array]:
    r"""The log posterior density of the last layer, `params -> log p(params | y)` up to a
    constant, for `posterior(logdensity, constraints=..., shapes=...)`, through the
    sufficient statistics G = Phi^T Phi, Phi^T y, y^T y and n (O(p^2) per evaluation).

    With `noise_std` and `prior_precision` given, `params = {name: w}` (constraint 'real',
    shape (p,)) and the density is log N(w; 0, alpha^{-1} I) + sum_i log N(y_i; phi_i^T w,
    sigma^2): Gaussian, the `last_layer_laplace` posterior exactly. Either one None makes it a
    parameter too, fully Bayesian: `params["prior_precision"]` (alpha) and/or
    `params["noise_precision"]` (beta = sigma^{-2}), both constraint 'positive', shape (),
    with Gamma(shape, rate) hyperpriors: alpha ~ Gamma(`hyperprior`) (default (1e-3, 1e-3),
    weak; the rate must be > 0: the evidence stays finite as alpha -> infinity), beta ~
    Gamma(`noise_hyperprior`) (default (0, 0): the scale-free Jeffreys prior p(beta) ~ 1/beta,
    log-uniform, proper in the posterior whenever the residuals are not all zero; a Gamma
    rate b > 0 is weak only if b << |y - Phi w|^2 / 2, which a well-fitted network's tiny
    sigma breaks). With (a, b) for alpha and (c, d) for beta (Bishop 2006, sec. 3.3):

        n/2 log beta - beta/2 (y^T y - 2 w^T Phi^T y + w^T G w) + p/2 log alpha
        - alpha/2 |w|^2 + (a - 1) log alpha - b alpha + (c - 1) log beta - d beta.

    With `precondition` (a `LastLayerPosterior`, e.g. this model's Laplace approximation)
    the `name` block is z, w = precondition.unwhiten(z) = mean + scale z (a linear map, so
    the Jacobian is a constant): NUTS/HMC on z is NUTS/HMC on w with the mass matrix
    cov^{-1}, which a warmup adapts only slowly when the features' Gram matrix is
    ill-conditioned. Only w is preconditioned. Map the draws back with
    `precondition.unwhiten`.
    """
    features, targets = _check_design(features, targets)
    if noise_std is not None:
        check_positive("noise_std", noise_std)
    if prior_precision is not None:
        check_positive("prior_precision", prior_precision)
    if len(hyperprior) != 2 or len(noise_hyperprior) != 2:
        raise ValueError(
            f"`hyperprior` and `noise_hyperprior` must be (shape, rate), got {hyperprior!r} "
            f"and {noise_hyperprior!r}."
        )
    check_positive("hyperprior[0] (shape)", hyperprior[0], allow_zero=True)
    check_positive("hyperprior[1] (rate)", hyperprior[1])
    check_positive("noise_hyperprior[0] (shape)", noise_hyperprior[0], allow_zero=True)
    check_positive("noise_hyperprior[1] (rate)", noise_hyperprior[1], allow_zero=True)
    a0, b0 = float(hyperprior[0]), float(hyperprior[1])
    c0, d0 = float(noise_hyperprior[0]), float(noise_hyperprior[1])
    gram, proj, yty = features.T @ features, features.T @ targets, targets @ targets
    n, p = features.shape

    def logdensity(params: dict[str, Array]) -> Array:
        w = params[name] if precondition is None else precondition.unwhiten(params[name])
        sq = yty - 2.0 * w @ proj + w @ gram @ w
        out = jnp.zeros((), w.dtype)
        if noise_std is None:
            beta = params["noise_precision"]
            out = out + 0.5 * n * jnp.log(beta) + (c0 - 1.0) * jnp.log(beta) - d0 * beta
        else:
            beta = 1.0 / noise_std**2
        if prior_precision is None:
            alpha = params["prior_precision"]
            out = out + 0.5 * p * jnp.log(alpha) + (a0 - 1.0) * jnp.log(alpha) - b0 * alpha
        else:
            alpha = prior_precision
        return out - 0.5 * (beta * sq + alpha * (w @ w))

    return logdensity


def predictive_samples(
    features: Float[ArrayLike, "row p"],
    weights: Float[ArrayLike, "sample p"],
    noise_std: Float[ArrayLike, ""] | Float[ArrayLike, " sample"] | None = None,
    *,
    key: Key | None = None,
) -> Float[Array, "sample row"]:
    """Outputs Phi w_s for weight draws w_s, plus N(0, sigma^2) per row when `noise_std` is
    given (a scalar, or one sigma per draw; then `key` draws the noise): (samples, rows)."""
    features, weights = jnp.asarray(features), jnp.asarray(weights)
    if weights.ndim != 2 or weights.shape[1] != features.shape[-1]:
        raise ValueError(
            f"`weights` has shape {weights.shape}; expected (samples, p) with p = "
            f"{features.shape[-1]} like `features`."
        )
    out = weights @ features.T
    if noise_std is None:
        return out
    key = check_key("key", key)
    sigma = jnp.asarray(noise_std)
    if sigma.ndim == 1:
        sigma = sigma[:, None]
    return out + sigma * jax.random.normal(key, out.shape, out.dtype)
