"""Exact-score harness: Gaussian-mixture data whose noised marginals are closed form.

For x0 ~ sum_k w_k N(mu_k, C_k) and x_t = a x0 + s eps, the marginal is
p_t = sum_k w_k N(a mu_k, a^2 C_k + s^2 I), so log p_t, the score and
eps = -s * score are exact. The VP-linear coefficients are written out here (not taken from
jaxsci) so that the reference ODE is independent of the library's schedule code.
"""

import diffrax
import jax
import jax.numpy as jnp
import numpy as np

BETA_MIN, BETA_MAX = 0.1, 20.0


def vp_log_alpha(t):
    return -0.25 * t**2 * (BETA_MAX - BETA_MIN) - 0.5 * t * BETA_MIN


def vp_alpha(t):
    return jnp.exp(vp_log_alpha(t))


def vp_sigma(t):
    return jnp.sqrt(-jnp.expm1(2.0 * vp_log_alpha(t)))


def vp_beta(t):
    return BETA_MIN + t * (BETA_MAX - BETA_MIN)


class Mixture:
    """Gaussian mixture with diagonal covariances: weights (K,), means (K, d), variances
    (K, d). Diagonal marginal covariances a^2 C_k + s^2 I keep the exact score elementwise
    (cheap to compile); the score is still nonlinear through the responsibilities."""

    def __init__(self, weights, means, variances):
        self.weights = np.asarray(weights, np.float64)
        self.means = np.asarray(means, np.float64)
        self.variances = np.asarray(variances, np.float64)
        self.dim = self.means.shape[1]

    def _marginal(self, a, s):
        return a * jnp.asarray(self.means), a**2 * jnp.asarray(self.variances) + s**2

    def _parts(self, x, a, s):
        means, var = self._marginal(a, s)
        diff = x[None, :] - means
        logk = -0.5 * jnp.sum(diff**2 / var + jnp.log(2 * jnp.pi * var), axis=-1)
        return diff / var, logk + jnp.log(jnp.asarray(self.weights))

    def logpdf(self, x, a, s):
        return jax.scipy.special.logsumexp(self._parts(x, a, s)[1])

    def score(self, x, a, s):
        sol, logk = self._parts(x, a, s)
        return -jnp.sum(jax.nn.softmax(logk)[:, None] * sol, axis=0)

    def eps(self, x, a, s):
        return -s * self.score(x, a, s)

    def sample(self, key, n, a=1.0, s=0.0):
        """n draws from the marginal with coefficients (a, s)."""
        k1, k2 = jax.random.split(key)
        means, var = self._marginal(a, s)
        comp = jax.random.choice(k1, len(self.weights), (n,), p=jnp.asarray(self.weights))
        z = jax.random.normal(k2, (n, self.dim), dtype=means.dtype)
        return means[comp] + jnp.sqrt(var[comp]) * z


def vp_eps_model(mix: Mixture):
    """The exact eps(t, x) for VP-linear noising of `mix`."""
    return lambda t, x: mix.eps(x, vp_alpha(t), vp_sigma(t))


def reference_pf_ode(mix: Mixture, x_T, t_max, t_min, rtol=1e-10):
    """Tight Dopri8 solve of the VP probability-flow ODE dx/dt = -beta/2 (x + score)."""

    def vf(t, x, args):
        return -0.5 * vp_beta(t) * (x + mix.score(x, vp_alpha(t), vp_sigma(t)))

    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(vf),
        diffrax.Dopri8(),
        t_max,
        t_min,
        -1e-3,
        x_T,
        stepsize_controller=diffrax.PIDController(rtol=rtol, atol=rtol),
        max_steps=100_000,
    )
    return sol.ys[-1]
