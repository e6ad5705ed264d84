"""Gaussian-mixture data with closed-form noised marginals: the exact-score model.

For x0 ~ sum_k w_k N(mu_k, diag(v_k)) and x_t = alpha_t x0 + sigma_t eps, eps ~ N(0, I), the
marginal is p_t = sum_k w_k N(alpha_t mu_k, diag(alpha_t^2 v_k + sigma_t^2)), so log p_t, the
score grad log p_t and the noise prediction eps = -sigma_t grad log p_t are exact. Samplers
driven by `eps_model(schedule)` therefore have no network error: what is left is the
discretisation error of the sampler alone (the harness of Lu et al. 2022, DPM-Solver, sec. 6).
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._checks import check_finite, concrete_numbers
from .._custom_types import Array, Float, Key
from ._base import AbstractSchedule


class GaussianMixture(eqx.Module):
    """A K-component Gaussian mixture in d dimensions with diagonal covariances.

    Arguments:
        weights: (K,) positive, normalised here to sum to one.
        means: (K, d).
        variances: (K, d) positive (per-coordinate variances of each component).
    """

    weights: Float[Array, " K"]
    means: Float[Array, "K d"]
    variances: Float[Array, "K d"]

    def __init__(self, weights, means, variances):
        w = concrete_numbers("weights", weights)
        m = concrete_numbers("means", means)
        v = concrete_numbers("variances", variances)
        if w is None or m is None or v is None:
            raise TypeError("`weights`, `means` and `variances` must be concrete arrays.")
        if w.ndim != 1 or w.size == 0:
            raise ValueError(f"`weights` must be a non-empty 1-D array, got shape {w.shape}.")
        if not (np.all(np.isfinite(w)) and np.all(w > 0)):
            raise ValueError("`weights` must be finite and positive.")
        if m.ndim != 2 or m.shape[0] != w.size:
            raise ValueError(f"`means` must have shape ({w.size}, d), got {m.shape}.")
        check_finite("means", m)
        if v.shape != m.shape:
            raise ValueError(
                f"`variances` must have the shape of `means` {m.shape}, got {v.shape}."
            )
        if not (np.all(np.isfinite(v)) and np.all(v > 0)):
            raise ValueError("`variances` must be finite and positive.")
        dtype = jnp.result_type(float)  # float64 under jax_enable_x64, else float32
        self.weights = jnp.asarray(w / w.sum(), dtype)
        self.means = jnp.asarray(m, dtype)
        self.variances = jnp.asarray(v, dtype)

    @property
    def dim(self) -> int:
        return self.means.shape[1]

    def _parts(self, x, alpha, sigma):
        var = alpha**2 * self.variances + sigma**2
        diff = x[None, :] - alpha * self.means
        logk = -0.5 * jnp.sum(diff**2 / var + jnp.log(2 * jnp.pi * var), axis=-1)
        return diff / var, logk + jnp.log(self.weights)

    def marginal_logpdf(self, x: Float[Array, " d"], alpha, sigma) -> Float[Array, ""]:
        """log p_t(x) of the noised marginal with coefficients (alpha, sigma)."""
        return jax.scipy.special.logsumexp(self._parts(x, alpha, sigma)[1])

    def logpdf(self, x: Float[Array, " d"]) -> Float[Array, ""]:
        """log-density of the data distribution itself."""
        return self.marginal_logpdf(x, 1.0, 0.0)

    def score(self, x: Float[Array, " d"], alpha, sigma) -> Float[Array, " d"]:
        """grad_x log p_t(x): minus the responsibility-weighted (x - alpha mu_k) / var_k."""
        sol, logk = self._parts(x, alpha, sigma)
        return -jnp.sum(jax.nn.softmax(logk)[:, None] * sol, axis=0)

    def eps(self, x: Float[Array, " d"], alpha, sigma) -> Float[Array, " d"]:
        """The exact noise prediction E[eps | x_t = x] = -sigma grad log p_t(x)."""
        return -sigma * self.score(x, alpha, sigma)

    def eps_model(self, schedule: AbstractSchedule):
        """The exact eps model `(t, x) -> eps` for `schedule`, ready for `sample(...)`."""

        def model(t, x):
            return self.eps(x, schedule.alpha(t), schedule.sigma(t))

        return model

    def sample(self, key: Key, n: int, alpha=1.0, sigma=0.0) -> Float[Array, "n d"]:
        """`n` draws from the marginal with coefficients (alpha, sigma) (default: the data)."""
        k1, k2 = jax.random.split(key)
        comp = jax.random.choice(k1, self.weights.shape[0], (n,), p=self.weights)
        z = jax.random.normal(k2, (n, self.dim), dtype=self.means.dtype)
        std = jnp.sqrt(alpha**2 * self.variances + sigma**2)
        return alpha * self.means[comp] + std[comp] * z
