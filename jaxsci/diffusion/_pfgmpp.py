r"""PFGM++: Poisson flow generative models with D augmentation dimensions (Xu, Liu, Tian,
Tegmark & Jaakkola 2023, "PFGM++: Unlocking the potential of physics-inspired generative
models", ICML, arXiv 2302.04265).

Data y in R^N are charges in the augmented space R^{N+D}; the electric field they create
lifts a point (x, r), r = ||z|| the norm of the D extra coordinates, back to the data. The
perturbation kernel at augmentation radius r is (the paper's eq. 3/4)

    p_r(x | y) proportional to (||x - y||^2 + r^2)^{-(N+D)/2},

and with the alignment r = sigma sqrt(D) (section 4) it is the multivariate Student-t law
with D degrees of freedom, centre y and scale sigma:

    p_sigma(x | y) proportional to (1 + ||x - y||^2 / (D sigma^2))^{-(N+D)/2}

(normalised in `PFGMPPKernel.log_prob`). Its second moment is E||x - y||^2 =
N sigma^2 D/(D - 2) (D > 2), and as D -> infinity it tends to N(y, sigma^2 I): the
diffusion (EDM) case, with O(1/D) corrections. D = 1 is the original PFGM (Xu et al.
2022); small D gives heavy tails (infinite variance for D <= 2).

**Sampling the kernel** (the paper's appendix, "the Beta trick"): the radius R = ||x - y||
has density proportional to R^{N-1} (R^2 + r^2)^{-(N+D)/2}, so R^2/(R^2 + r^2) ~
Beta(N/2, D/2); the direction is uniform on the sphere. With B = G_a/(G_a + G_b), G_a ~
Gamma(N/2), G_b ~ Gamma(D/2) (how a Beta variate is drawn), R = r sqrt(B/(1 - B)) =
r sqrt(G_a/G_b), drawn from the two gammas directly: no cancellation in 1 - B (the
official code clips B to [1e-3, 1 - 1e-3] instead, which truncates both tails).

**Training** (the paper's eq. 8, the EDM objective of Karras et al. 2022 under this kernel;
official `EDMLoss` with `pfgmpp=True`): ln sigma ~ N(P_mean, P_std^2), x = y + n with n
from the kernel, and the model's data prediction D_theta(x, sigma) regressed onto y with
the EDM weight lambda(sigma) = (sigma^2 + sigma_data^2)/(sigma sigma_data)^2
(`PFGMPPLoss`). The minimiser is the posterior mean E[y | x] under the kernel, which for an
empirical data set {y_k} is in closed form (`EmpiricalPFGMPPDenoiser`): a weighted mean of
the data points with the kernel's weights p_sigma(x | y_k).

**Sampling** (section 4): the field's ODE dx/dr = E_{p_r(y|x)}[x - y]/r, with r = sigma
sqrt(D), is dx/dsigma = (x - D(x, sigma))/sigma: the EDM probability-flow ODE in the
noise level sigma, with the PFGM++ posterior mean as the denoiser. So a PFGM++ model
samples with this library's EDM machinery unchanged:
`sample(Heun(), Denoiser(model, EDM(), X0Prediction()), EDM(), time_grid(EDM(), n,
Karras()), x_T)` from a prior draw x_T = `kernel.prior(key, sigma_max, shape)` (the kernel
centred at the origin at sigma_max, as in the official code). Only the denoiser (what the
network learns) and the prior change with D.
"""

from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp

from .._checks import check_int, check_key, check_positive, concrete_numbers, hyperparameter
from .._custom_types import Array, Float, Key, PyTree
from ..losses import AbstractLoss
from ._base import RealLike
from ._losses import _data_batch
from ._parameterization import AbstractParameterization, X0Prediction, check_parameterization
from ._schedules import EDM


def _check_aug_dim(value) -> None:
    arr = concrete_numbers("D", value)
    if arr is not None and not (arr.shape == () and arr > 0):  # NaN fails, +inf passes
        raise ValueError(
            f"`D` (the augmentation dimension) must be a positive number or math.inf (the "
            f"diffusion limit), got {value!r}."
        )


class PFGMPPKernel(eqx.Module):
    r"""The PFGM++ perturbation kernel in the EDM noise level sigma (module docstring):
    p_sigma(x | y) proportional to (1 + ||x - y||^2/(D sigma^2))^{-(N+D)/2}, the augmented
    radius being r = sigma sqrt(D).

    Arguments:
        D: the augmentation dimension, > 0 (`math.inf`: the Gaussian kernel of diffusion
            models). An array field, so a vmap over D works. The paper uses D in
            {64, 128, 2048, 3072000} on images and D = 1 is PFGM.
        N: the data dimension (the number of entries of one example); every example the
            kernel sees must have N entries.
    """

    D: Float[Array, ""] = eqx.field(converter=hyperparameter)
    N: int = eqx.field(static=True)

    def __check_init__(self):
        _check_aug_dim(self.D)
        check_int("N", self.N, 1)

    def check_example(self, name: str, x: Float[Array, "*shape"]) -> None:
        """Raise a ValueError naming `name` unless `x` has N entries."""
        if jnp.size(x) != self.N:
            raise ValueError(
                f"`{name}` must have N = {self.N} entries (the kernel's data dimension), got "
                f"shape {tuple(jnp.shape(x))} ({jnp.size(x)} entries)."
            )

    def r(self, sigma: Float[Array, "*t"]) -> Float[Array, "*t"]:
        """The augmented radius r = sigma sqrt(D) aligned with the noise level sigma."""
        return sigma * jnp.sqrt(self.D)

    def sample_radius(self, key: Key, sigma: RealLike, dtype=None) -> Float[Array, ""]:
        r"""One draw of R = ||x - y|| at noise level sigma: R^2/(R^2 + r^2) ~ Beta(N/2, D/2)
        (module docstring), i.e. R = sigma sqrt(D G_a/G_b) = sigma sqrt(2 G_a/(2 G_b/D));
        for D = inf, 2 G_b/D = 1 and R = sigma chi_N."""
        key = check_key("key", key)
        dtype = jnp.result_type(float) if dtype is None else dtype
        k_a, k_b = jax.random.split(key)
        inf = jnp.isinf(self.D)
        half_d = jnp.where(inf, 1.0, self.D / 2).astype(dtype)
        g_a = jax.random.gamma(k_a, jnp.asarray(self.N / 2, dtype), dtype=dtype)
        g_b = jax.random.gamma(k_b, half_d, dtype=dtype)
        scale = jnp.where(inf, 1.0, g_b / half_d)  # chi^2_D / D, exactly 1 in the limit
        return jnp.asarray(sigma, dtype) * jnp.sqrt(2 * g_a / scale)

    def perturb(
        self, key: Key, y: Float[Array, "*shape"], sigma: RealLike
    ) -> Float[Array, "*shape"]:
        """One draw x ~ p_sigma(. | y) for one example y (N entries): y + R u, R from
        `sample_radius` and u uniform on the unit sphere (a normalised Gaussian)."""
        self.check_example("y", y)
        key = check_key("key", key)
        k_r, k_u = jax.random.split(key)
        radius = self.sample_radius(k_r, sigma, y.dtype)
        g = jax.random.normal(k_u, jnp.shape(y), y.dtype)
        return y + radius * g / jnp.linalg.norm(g)

    def prior(
        self, key: Key, sigma_max: RealLike, shape: tuple[int, ...], dtype=None
    ) -> Float[Array, "*shape"]:
        """The sampler's initial draw x_T ~ p_{sigma_max}(. | 0), one example of `shape`
        (N entries): the kernel centred at the origin, as the official sampler draws it."""
        dtype = jnp.result_type(float) if dtype is None else dtype
        return self.perturb(key, jnp.zeros(shape, dtype), sigma_max)

    def _log_weight(self, d2, sigma):
        """log p_sigma(x | y) up to its normaliser, from d2 = ||x - y||^2."""
        inf = jnp.isinf(self.D)
        dd = jnp.where(inf, 1.0, self.D)
        finite = -0.5 * (self.N + dd) * jnp.log1p(d2 / (dd * sigma**2))
        return jnp.where(inf, -0.5 * d2 / sigma**2, finite)

    def log_prob(
        self, x: Float[Array, "*shape"], y: Float[Array, "*shape"], sigma: RealLike
    ) -> Float[Array, ""]:
        r"""log p_sigma(x | y), normalised: the multivariate Student-t log-density
        lgamma((D+N)/2) - lgamma(D/2) - (N/2) log(D pi) - N log sigma
        - ((N+D)/2) log(1 + ||x - y||^2/(D sigma^2)) (the Gaussian one for D = inf)."""
        self.check_example("x", x)
        self.check_example("y", y)
        n = self.N
        d2 = jnp.sum((x - y) ** 2)
        inf = jnp.isinf(self.D)
        dd = jnp.where(inf, 1.0, self.D)
        log_norm_t = (
            jax.scipy.special.gammaln((dd + n) / 2)
            - jax.scipy.special.gammaln(dd / 2)
            - 0.5 * n * jnp.log(dd * jnp.pi)
        )
        log_norm = jnp.where(inf, -0.5 * n * jnp.log(2 * jnp.pi), log_norm_t)
        return log_norm - n * jnp.log(sigma) + self._log_weight(d2, sigma)


class EmpiricalPFGMPPDenoiser(eqx.Module):
    r"""The exact posterior-mean denoiser of an empirical data set under the PFGM++
    kernel: D(x, sigma) = sum_k w_k y_k, w_k = p_sigma(x | y_k) / sum_j p_sigma(x | y_j)
    (softmax of the log-kernel, so no underflow). The minimiser of `PFGMPPLoss` over all
    functions for data uniform on {y_k}; for D = inf the Gaussian posterior mean (the EDM
    ideal denoiser).

    A model `(sigma, x) -> x0` for `Denoiser(..., EDM(), X0Prediction())`.

    Arguments:
        kernel: a `PFGMPPKernel`.
        data: (M, *shape) data points, each with the kernel's N entries.
    """

    kernel: PFGMPPKernel
    data: Float[Array, " M *shape"]

    def __check_init__(self):
        if not isinstance(self.kernel, PFGMPPKernel):
            raise TypeError(f"`kernel` must be a PFGMPPKernel, got {self.kernel!r}.")
        if jnp.ndim(self.data) < 2 or jnp.shape(self.data)[0] < 1:
            raise ValueError(
                f"`data` must be an array (M, *shape) of M >= 1 examples, got shape "
                f"{tuple(jnp.shape(self.data))}."
            )
        self.kernel.check_example("data[0]", self.data[0])

    def weights(self, sigma: RealLike, x: Float[Array, "*shape"]) -> Float[Array, " M"]:
        """The posterior weights w_k of the data points given x at noise level sigma."""
        self.kernel.check_example("x", x)
        d2 = jnp.sum((self.data - x[None]).reshape(self.data.shape[0], -1) ** 2, axis=1)
        return jax.nn.softmax(self.kernel._log_weight(d2, sigma))

    def __call__(self, sigma: RealLike, x: Float[Array, "*shape"]) -> Float[Array, "*shape"]:
        w = self.weights(sigma, x)
        return jnp.tensordot(w, self.data, axes=1).astype(x.dtype)


_X0 = X0Prediction()
_EDM = EDM()  # alpha = 1, sigma = t: the conversions of the model output to x0


class PFGMPPLoss(AbstractLoss):
    r"""The PFGM++ training objective (the paper's eq. 8 with the EDM choices, as the
    official `EDMLoss(pfgmpp=True)`):

        L = E_{ln sigma ~ N(P_mean, P_std^2)} E_y E_{x ~ p_sigma(.|y)}
            [ lambda(sigma) mean_j (D_theta(x, sigma) - y)_j^2 ],
        lambda(sigma) = (sigma^2 + sigma_data^2)/(sigma sigma_data)^2.

    `model(sigma, x)` acts on one example and returns an output of kind `parameterization`
    (default `X0Prediction()`, the denoiser D_theta; others are converted to it exactly on
    the EDM schedule alpha = 1, sigma = t). Wrap the network in EDM's preconditioning
    (c_skip, c_out, c_in, c_noise) inside the model if wanted: it is part of D_theta.

    Arguments:
        kernel: the `PFGMPPKernel` (its D; N must match the examples).
        parameterization: what the model outputs (default `X0Prediction()`).
        sigma_data: the data standard deviation of the weighting (EDM: 0.5).
        p_mean, p_std: the log-normal law of sigma (EDM: -1.2, 1.2).

    `aux` has `loss` and `mse_x0` (the unweighted mean squared data-prediction error).
    """

    kernel: PFGMPPKernel
    parameterization: AbstractParameterization
    sigma_data: RealLike = eqx.field(converter=hyperparameter)
    p_mean: RealLike = eqx.field(converter=hyperparameter)
    p_std: RealLike = eqx.field(converter=hyperparameter)

    def __init__(
        self,
        kernel: PFGMPPKernel,
        parameterization: AbstractParameterization = _X0,
        *,
        sigma_data: RealLike = 0.5,
        p_mean: RealLike = -1.2,
        p_std: RealLike = 1.2,
    ):
        if not isinstance(kernel, PFGMPPKernel):
            raise TypeError(f"`kernel` must be a PFGMPPKernel, got {kernel!r}.")
        check_parameterization(parameterization)
        check_positive("sigma_data", sigma_data)
        check_positive("p_std", p_std)
        concrete_numbers("p_mean", p_mean)
        self.kernel = kernel
        self.parameterization = parameterization
        self.sigma_data = sigma_data
        self.p_mean = p_mean
        self.p_std = p_std

    def weight(self, sigma: Float[Array, "*t"]) -> Float[Array, "*t"]:
        """lambda(sigma) = (sigma^2 + sigma_data^2)/(sigma sigma_data)^2 (EDM)."""
        return (sigma**2 + self.sigma_data**2) / (sigma * self.sigma_data) ** 2

    def __call__(
        self, model: Callable, batch: PyTree, *, key: Key | None = None
    ) -> tuple[Float[Array, ""], dict[str, Array]]:
        y = _data_batch(batch, "PFGMPPLoss")
        if key is None:
            raise TypeError("PFGMPPLoss draws noise levels and perturbations and needs `key`.")
        self.kernel.check_example("batch[0]", y[0])
        n = y.shape[0]
        k_s, k_x = jax.random.split(check_key("key", key))
        sigma = jnp.exp(self.p_mean + self.p_std * jax.random.normal(k_s, (n,), y.dtype))
        x = jax.vmap(self.kernel.perturb)(jax.random.split(k_x, n), y, sigma)
        out = jax.vmap(model)(sigma, x)
        if jnp.shape(out) != jnp.shape(x):
            raise ValueError(
                f"PFGMPPLoss: the model returned shape {tuple(jnp.shape(out))} for x of shape "
                f"{tuple(jnp.shape(x))}; it must return an array shaped like x."
            )
        x0_hat = jax.vmap(lambda o, xi, s: self.parameterization.to_x0_eps(o, xi, s, _EDM)[0])(
            out, x, sigma
        )
        err = jnp.mean((x0_hat - y).reshape(n, -1) ** 2, axis=1)
        value = jnp.mean(self.weight(sigma) * err)
        return value, {"loss": value, "mse_x0": jnp.mean(err)}
