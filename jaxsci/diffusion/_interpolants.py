r"""Stochastic interpolants: the interpolant family and its exact Gaussian-mixture fields.

Albergo, Boffi & Vanden-Eijnden, "Stochastic Interpolants: A Unifying Framework for Flows
and Diffusions" (arXiv 2303.08797, JMLR 2025; "SI" below), after Albergo & Vanden-Eijnden,
"Building Normalizing Flows with Stochastic Interpolants" (ICLR 2023).

**The interpolant.** With x0 ~ rho0 (the base), x1 ~ rho1 (the target), independent, and a
latent z ~ N(0, I) independent of both,

    x_t = I(t, x0, x1) + gamma(t) z,     t in [0, 1],

I(0, x0, x1) = x0, I(1, x0, x1) = x1 and gamma(0) = gamma(1) = 0 (SI, def. 1). The paths here
are spatially linear, I = alpha(t) x0 + beta(t) x1 (SI, sec. 4.1):

* `LinearInterpolant`: alpha = 1 - t, beta = t;
* `TrigonometricInterpolant`: alpha = cos(pi t / 2), beta = sin(pi t / 2).

The latent noise is an `AbstractLatentNoise`: `NoLatentNoise` (gamma = 0) or
`BrownianBridgeNoise(a)` (gamma^2 = a t (1 - t), SI eq. 4.4). Each declares gamma^2(t) and
its derivative, so gamma gamma' = (gamma^2)' / 2 stays finite where gamma' does not.

**One-sided and two-sided.** `StochasticInterpolant(path, noise)` is the two-sided
interpolant between any two densities. With `one_sided=True` the base is x0 ~ N(0, I)
(SI, sec. 3.4: x_t = alpha(t) z + beta(t) x1); latent noise may be added to it, in which
case the whole Gaussian part alpha x0 + gamma z = sigma(t) zeta with
sigma = sqrt(alpha^2 + gamma^2), zeta ~ N(0, I). In both cases x_t = (the non-Gaussian
part) + sigma(t) zeta with the *noise scale* sigma(t) = `noise_scale(t)` (gamma two-sided),
and

    b(t, x)     = E[dI/dt + gamma' z | x_t = x]   (velocity, SI eq. 2.10)
    eta(t, x)   = E[zeta | x_t = x]               (denoiser, SI eq. 2.13 / 3.18)
    s(t, x)     = grad log rho_t(x) = -eta(t, x) / sigma(t)    (score, SI eq. 2.12)

(zeta = z two-sided: eta is SI's eta_z and s = -eta_z / gamma; one-sided with gamma = 0,
zeta = x0 and s = -eta / alpha). The probability-flow ODE dX = b dt and the SDEs
dX = (b + eps(t) s) dt + sqrt(2 eps(t)) dW, any eps >= 0, transport rho0 to rho1
(SI, thm. 2.8 and cor. 2.10); see `interpolant_ode` and `interpolant_sde`.

**Relation to the diffusion schedules.** A one-sided interpolant is a diffusion schedule
run backwards: with s = 1 - t, x_t = beta(t) x1 + sigma(t) zeta is x_s = alpha_s x0 +
sigma_s eps of `AbstractSchedule` with data x1. `LinearInterpolant` one-sided with
`NoLatentNoise` is exactly `RectifiedFlow` (alpha_s = 1 - s, sigma_s = s) and its velocity
is b(t, x) = -u(1 - t, x), u the flow-matching velocity (`FlowMatching`); the velocity loss
of this interpolant is the flow-matching loss.

**Exact fields for Gaussian mixtures.** `ExactMixtureInterpolant` gives b, eta, s and
log rho_t in closed form when rho0 and rho1 are Gaussian mixtures with diagonal covariances
(the base N(0, I) one-sided): given the components (i, j) of x0 and x1, x_t and the velocity
target R = alpha' x0 + beta' x1 + gamma' z are jointly Gaussian, so with

    mu_ij = alpha m0_i + beta m1_j,    V_ij = alpha^2 v0_i + beta^2 v1_j + gamma^2,
    C_ij  = alpha alpha' v0_i + beta beta' v1_j + gamma gamma'   (= V'_ij / 2),

(elementwise per coordinate) E[R | x_t = x, i, j] = alpha' m0_i + beta' m1_j +
C_ij / V_ij (x - mu_ij), E[zeta | x_t = x, i, j] = sigma (x - mu_ij) / V_ij, and the
fields are these averaged with the posterior component weights
w_ij(x) ∝ pi0_i pi1_j N(x; mu_ij, diag V_ij):

    b(t, x) = sum_ij w_ij (alpha' m0_i + beta' m1_j + C_ij (x - mu_ij) / V_ij),
    s(t, x) = -sum_ij w_ij (x - mu_ij) / V_ij,     eta = -sigma s.

The official code's `interflow/gmm.py` does the same for full covariances.
"""

import abc
from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._checks import check_range, check_shape, hyperparameter
from .._custom_types import Array, ArrayLike, Float
from ._base import RealLike
from ._mixture import GaussianMixture


def check_time(t, name: str = "t") -> None:
    """A concrete interpolant time must lie in [0, 1] (traced times pass)."""
    check_range(name, t, 0.0, 1.0)


class AbstractInterpolant(eqx.Module):
    r"""A spatially linear interpolant path I(t, x0, x1) = alpha(t) x0 + beta(t) x1 with
    alpha(0) = beta(1) = 1, alpha(1) = beta(0) = 0 (SI, sec. 4.1), and its time derivative."""

    @abc.abstractmethod
    def alpha(self, t: Float[ArrayLike, "*t"]) -> Float[Array, "*t"]:
        """The coefficient of x0."""

    @abc.abstractmethod
    def beta(self, t: Float[ArrayLike, "*t"]) -> Float[Array, "*t"]:
        """The coefficient of x1."""

    @abc.abstractmethod
    def d_alpha(self, t: Float[ArrayLike, "*t"]) -> Float[Array, "*t"]:
        """d alpha / dt."""

    @abc.abstractmethod
    def d_beta(self, t: Float[ArrayLike, "*t"]) -> Float[Array, "*t"]:
        """d beta / dt."""

    def interpolate(
        self, t: Float[ArrayLike, ""], x0: Float[Array, "*shape"], x1: Float[Array, "*shape"]
    ) -> Float[Array, "*shape"]:
        """I(t, x0, x1) = alpha(t) x0 + beta(t) x1."""
        check_time(t)
        return self.alpha(t) * x0 + self.beta(t) * x1

    def d_interpolate(
        self, t: Float[ArrayLike, ""], x0: Float[Array, "*shape"], x1: Float[Array, "*shape"]
    ) -> Float[Array, "*shape"]:
        """dI/dt = alpha'(t) x0 + beta'(t) x1."""
        check_time(t)
        return self.d_alpha(t) * x0 + self.d_beta(t) * x1


class LinearInterpolant(AbstractInterpolant):
    """I = (1 - t) x0 + t x1 (SI eq. 4.1 with the linear path)."""

    def alpha(self, t):
        return 1 - jnp.asarray(t)

    def beta(self, t):
        return jnp.asarray(t)

    def d_alpha(self, t):
        return -jnp.ones_like(jnp.asarray(t, dtype=jnp.result_type(t, float)))

    def d_beta(self, t):
        return jnp.ones_like(jnp.asarray(t, dtype=jnp.result_type(t, float)))


class TrigonometricInterpolant(AbstractInterpolant):
    """I = cos(pi t / 2) x0 + sin(pi t / 2) x1 (SI eq. 4.2): alpha^2 + beta^2 = 1."""

    def alpha(self, t):
        return jnp.cos(0.5 * jnp.pi * jnp.asarray(t))

    def beta(self, t):
        return jnp.sin(0.5 * jnp.pi * jnp.asarray(t))

    def d_alpha(self, t):
        return -0.5 * jnp.pi * jnp.sin(0.5 * jnp.pi * jnp.asarray(t))

    def d_beta(self, t):
        return 0.5 * jnp.pi * jnp.cos(0.5 * jnp.pi * jnp.asarray(t))


class AbstractLatentNoise(eqx.Module):
    r"""The latent noise scale gamma(t) >= 0 with gamma(0) = gamma(1) = 0, declared through
    gamma^2 and its derivative (gamma' itself is infinite at the ends for
    gamma = sqrt(a t (1 - t)); gamma gamma' = (gamma^2)'/2 is not)."""

    @abc.abstractmethod
    def gamma2(self, t: Float[ArrayLike, "*t"]) -> Float[Array, "*t"]:
        """gamma(t)^2."""

    @abc.abstractmethod
    def d_gamma2(self, t: Float[ArrayLike, "*t"]) -> Float[Array, "*t"]:
        """d gamma^2 / dt = 2 gamma gamma'."""

    def gamma(self, t: Float[ArrayLike, "*t"]) -> Float[Array, "*t"]:
        """gamma(t)."""
        return jnp.sqrt(self.gamma2(t))

    def d_gamma(self, t: Float[ArrayLike, "*t"]) -> Float[Array, "*t"]:
        """gamma'(t) = (gamma^2)' / (2 gamma), taken as 0 where gamma = 0 (at the ends, where
        it is infinite for the Brownian bridge; it only ever multiplies z there, whose
        conditional mean vanishes, so the fields stay finite -- see `ExactMixtureInterpolant`)."""
        g = self.gamma(t)
        safe = jnp.where(g > 0, g, 1.0)
        return jnp.where(g > 0, self.d_gamma2(t) / (2 * safe), 0.0)


class NoLatentNoise(AbstractLatentNoise):
    """gamma = 0: a deterministic interpolant (ICLR 2023 / rectified flow when linear)."""

    def gamma2(self, t):
        return jnp.zeros_like(jnp.asarray(t, dtype=jnp.result_type(t, float)))

    def d_gamma2(self, t):
        return jnp.zeros_like(jnp.asarray(t, dtype=jnp.result_type(t, float)))


class BrownianBridgeNoise(AbstractLatentNoise):
    r"""gamma(t) = sqrt(a t (1 - t)) (SI eq. 4.4; a = 1 is the Brownian bridge's variance).

    Arguments:
        a: the noise level a >= 0 (an array field, so a vmap over it sweeps it).
    """

    a: Float[Array, ""] = eqx.field(converter=hyperparameter, default=1.0)

    def __check_init__(self):
        check_range("a", self.a, 0.0)

    def gamma2(self, t):
        t = jnp.asarray(t)
        return self.a * t * (1 - t)

    def d_gamma2(self, t):
        return self.a * (1 - 2 * jnp.asarray(t))


class StochasticInterpolant(eqx.Module):
    r"""x_t = alpha(t) x0 + beta(t) x1 + gamma(t) z (see the module docstring).

    Arguments:
        path: the `AbstractInterpolant` I (default `LinearInterpolant()`).
        noise: the `AbstractLatentNoise` gamma (default `NoLatentNoise()`).
        one_sided: the base is N(0, I) (SI sec. 3.4); the denoiser then predicts the whole
            standardised Gaussian part zeta = (alpha x0 + gamma z) / sigma.
    """

    path: AbstractInterpolant
    noise: AbstractLatentNoise
    one_sided: bool = eqx.field(static=True)

    def __init__(
        self,
        path: AbstractInterpolant | None = None,
        noise: AbstractLatentNoise | None = None,
        *,
        one_sided: bool = False,
    ):
        path = LinearInterpolant() if path is None else path
        noise = NoLatentNoise() if noise is None else noise
        if not isinstance(path, AbstractInterpolant):
            raise TypeError(
                "`path` must be an AbstractInterpolant (LinearInterpolant() or "
                f"TrigonometricInterpolant()), got {path!r}."
            )
        if not isinstance(noise, AbstractLatentNoise):
            raise TypeError(
                "`noise` must be an AbstractLatentNoise (NoLatentNoise() or "
                f"BrownianBridgeNoise(a)), got {noise!r}."
            )
        if not isinstance(one_sided, bool):
            raise TypeError(f"`one_sided` must be a bool, got {one_sided!r}.")
        self.path = path
        self.noise = noise
        self.one_sided = one_sided

    def coefficients(self, t: Float[ArrayLike, "*t"]):
        """(alpha, beta, gamma^2) at t."""
        return self.path.alpha(t), self.path.beta(t), self.noise.gamma2(t)

    def noise_scale(self, t: Float[ArrayLike, "*t"]) -> Float[Array, "*t"]:
        """sigma(t): gamma two-sided, sqrt(alpha^2 + gamma^2) one-sided (the standard
        deviation of the Gaussian part of x_t, the divisor of the score)."""
        check_time(t)
        g2 = self.noise.gamma2(t)
        if self.one_sided:
            g2 = g2 + self.path.alpha(t) ** 2
        return jnp.sqrt(g2)

    def interpolate(
        self,
        t: Float[ArrayLike, ""],
        x0: Float[Array, "*shape"],
        x1: Float[Array, "*shape"],
        z: Float[Array, "*shape"],
    ) -> Float[Array, "*shape"]:
        """x_t = I(t, x0, x1) + gamma(t) z (x0 ~ N(0, I) one-sided)."""
        check_time(t)
        return self.path.interpolate(t, x0, x1) + self.noise.gamma(t) * z

    def velocity_target(
        self,
        t: Float[ArrayLike, ""],
        x0: Float[Array, "*shape"],
        x1: Float[Array, "*shape"],
        z: Float[Array, "*shape"],
    ) -> Float[Array, "*shape"]:
        """dx_t/dt = dI/dt + gamma'(t) z, whose conditional mean given x_t is b (SI eq. 2.10)."""
        check_time(t)
        return self.path.d_interpolate(t, x0, x1) + self.noise.d_gamma(t) * z

    def latent(
        self, t: Float[ArrayLike, ""], x0: Float[Array, "*shape"], z: Float[Array, "*shape"]
    ) -> Float[Array, "*shape"]:
        """zeta, the standardised Gaussian part of x_t, whose conditional mean is the
        denoiser: z two-sided, (alpha x0 + gamma z) / sigma one-sided (x0 where sigma = 0)."""
        check_time(t)
        if not self.one_sided:
            return z
        a, g = self.path.alpha(t), self.noise.gamma(t)
        sig = jnp.sqrt(a**2 + g**2)
        safe = jnp.where(sig > 0, sig, 1.0)
        return jnp.where(sig > 0, (a * x0 + g * z) / safe, x0)

    def score_from_denoiser(self, denoiser: Callable) -> Callable:
        """s(t, x) = -eta(t, x) / sigma(t) (SI eq. 2.12; official code's `SFromEta`).

        Singular where sigma(t) = 0: at t = 0 and t = 1 two-sided, at t = 1 one-sided; the
        SDE drivers evaluate it only where eps(t) > 0 (see `interpolant_sde`)."""

        def score(t, x):
            return -denoiser(t, x) / self.noise_scale(t)

        return score


def _as_mixture(name: str, mix) -> GaussianMixture:
    if not isinstance(mix, GaussianMixture):
        raise TypeError(f"`{name}` must be a GaussianMixture, got {type(mix).__name__}.")
    return mix


class ExactMixtureInterpolant(eqx.Module):
    r"""Closed-form b, eta, s and log rho_t of a stochastic interpolant between Gaussian
    mixtures (the maths is in the module docstring; SI sec. 2 with Gaussian conditionals).

    Arguments:
        interpolant: the `StochasticInterpolant`.
        target: rho1, a `GaussianMixture` (a single Gaussian is a one-component mixture).
        base: rho0, a `GaussianMixture` of the same dimension (two-sided); must be None
            for a one-sided interpolant, whose base is N(0, I).
    """

    interpolant: StochasticInterpolant
    target: GaussianMixture
    base: GaussianMixture

    def __init__(
        self,
        interpolant: StochasticInterpolant,
        target: GaussianMixture,
        base: GaussianMixture | None = None,
    ):
        if not isinstance(interpolant, StochasticInterpolant):
            raise TypeError(
                f"`interpolant` must be a StochasticInterpolant, got {type(interpolant).__name__}."
            )
        target = _as_mixture("target", target)
        d = target.dim
        if interpolant.one_sided:
            if base is not None:
                raise ValueError(
                    "`base` must be None for a one-sided interpolant (its base is N(0, I))."
                )
            base = GaussianMixture(np.ones(1), np.zeros((1, d)), np.ones((1, d)))
        else:
            if base is None:
                raise ValueError("a two-sided interpolant needs `base` (a GaussianMixture).")
            base = _as_mixture("base", base)
            if base.dim != d:
                raise ValueError(
                    f"`base` and `target` must have the same dimension, got {base.dim} and {d}."
                )
        self.interpolant = interpolant
        self.target = target
        self.base = base

    @property
    def dim(self) -> int:
        return self.target.dim

    def _parts(self, t, x):
        """Per component pair (i, j) flattened to (K0 K1, ...): the log weights
        log(pi0_i pi1_j N(x; mu_ij, V_ij)), (x - mu_ij) / V_ij, mu_ij and C_ij."""
        check_time(t)
        check_shape("x", x, (self.dim,))
        si = self.interpolant
        a, b, g2 = si.coefficients(t)
        da, db = si.path.d_alpha(t), si.path.d_beta(t)
        dg2 = si.noise.d_gamma2(t)
        m0, v0 = self.base.means[:, None, :], self.base.variances[:, None, :]
        m1, v1 = self.target.means[None, :, :], self.target.variances[None, :, :]
        mu = a * m0 + b * m1
        var = a**2 * v0 + b**2 * v1 + g2
        cov = a * da * v0 + b * db * v1 + 0.5 * dg2
        mean_r = da * m0 + db * m1
        diff = x - mu
        logw = (
            jnp.log(self.base.weights)[:, None]
            + jnp.log(self.target.weights)[None, :]
            - 0.5 * jnp.sum(diff**2 / var + jnp.log(2 * jnp.pi * var), axis=-1)
        )
        k = logw.size
        return (
            logw.reshape(k),
            (diff / var).reshape(k, -1),
            (mean_r + cov * diff / var).reshape(k, -1),
        )

    def logpdf(self, t: Float[ArrayLike, ""], x: Float[Array, " d"]) -> Float[Array, ""]:
        """log rho_t(x), the density of x_t."""
        return jax.scipy.special.logsumexp(self._parts(t, x)[0])

    def score(self, t: Float[ArrayLike, ""], x: Float[Array, " d"]) -> Float[Array, " d"]:
        """s(t, x) = grad log rho_t(x) = -sum_ij w_ij (x - mu_ij) / V_ij."""
        logw, sol, _ = self._parts(t, x)
        return -jnp.sum(jax.nn.softmax(logw)[:, None] * sol, axis=0)

    def denoiser(self, t: Float[ArrayLike, ""], x: Float[Array, " d"]) -> Float[Array, " d"]:
        """eta(t, x) = E[zeta | x_t = x] = -sigma(t) s(t, x)."""
        return -self.interpolant.noise_scale(t) * self.score(t, x)

    def drift(self, t: Float[ArrayLike, ""], x: Float[Array, " d"]) -> Float[Array, " d"]:
        """b(t, x) = E[dI/dt + gamma' z | x_t = x], the probability-flow velocity."""
        logw, _, cond = self._parts(t, x)
        return jnp.sum(jax.nn.softmax(logw)[:, None] * cond, axis=0)

    def sample_marginal(self, key, n: int, t: RealLike = 1.0) -> Float[Array, "n d"]:
        """`n` exact draws of x_t (t = 1: the target; t = 0: the base)."""
        check_time(t)
        k0, k1, kz = jax.random.split(key, 3)
        x0 = self.base.sample(k0, n)
        x1 = self.target.sample(k1, n)
        z = jax.random.normal(kz, x0.shape, x0.dtype)
        return jax.vmap(lambda a, b, c: self.interpolant.interpolate(t, a, b, c))(x0, x1, z)
