r"""The light Schroedinger bridge (Korotin, Gushchin & Burnaev 2024, "Light Schroedinger
bridge", ICLR, arXiv 2310.01174) and the closed-form entropic OT plan between Gaussians.

**The problem.** The Schroedinger bridge (SB) between p0 and p1 with the Wiener prior of
volatility epsilon (dX = sqrt(epsilon) dW) is the process closest in KL to that prior with
these marginals. Its static plan solves entropic OT with the quadratic cost,

    pi* = argmin_{pi in Pi(p0, p1)} E_pi ||x - y||^2 / 2 - epsilon H(pi),

and has the form pi*(y | x) proportional to exp(<x, y>/epsilon) v*(y), v* the *adjusted
Schroedinger potential* (the paper's eq. 5-6); between the end points the bridge is a
Brownian bridge.

**Light SB** parameterises v as an unnormalised Gaussian mixture (section 3.2)

    v_theta(y) = sum_k alpha_k N(y | r_k, epsilon S_k),

so that everything is in closed form (its Propositions 3.2-3.3):

* c_theta(x) = int exp(<x, y>/epsilon) v_theta(y) dy
  = sum_k alpha_k exp((x^T S_k x / 2 + r_k^T x) / epsilon);
* the conditional plan pi_theta(y | x) = sum_k a_k(x) N(y | r_k + S_k x, epsilon S_k), with
  a_k(x) proportional to alpha_k exp((x^T S_k x / 2 + r_k^T x)/epsilon): sampled exactly;
* the SB drift g_theta(x, t) = epsilon grad_x log int N(x' | x, (1 - t) epsilon I)
  exp(||x'||^2/(2 epsilon)) v_theta(x') dx', a Gaussian integral per component (written out
  in `LightSB.log_phi`), and the bridge dX = g_theta(X, t) dt + sqrt(epsilon) dW from
  X_0 ~ p0 ends at X_1 ~ pi_theta(. | X_0).

**Training** (the paper's eq. 9 and Proposition 3.1): up to a constant independent of
theta, KL(pi* || pi_theta) = E_{x ~ p0} log c_theta(x) - E_{y ~ p1} log v_theta(y), which
needs only samples of the two marginals (`LightSBLoss`; trained with `jaxsci.train.fit` and
optax).

Here S_k = T_k T_k^T with T_k lower triangular with a positive (exponentiated) diagonal:
full covariances, O(K d^3) per evaluation (the official code also offers diagonal S_k for
high dimensions; this file does not).

**Gaussian reference** (`gaussian_eot_plan`): between N(m0, A) and N(m1, B) the plan is
Gaussian with means (m0, m1) and cross-covariance (Janati, Muzellec, Peyre & Cuturi 2020,
"Entropic optimal transport between unbalanced Gaussians", NeurIPS, theorem 1; Mallasto,
Gerolin & Minh 2021, "Entropy-regularized 2-Wasserstein distance between Gaussian
measures", Inf. Geom.), with sigma^2 = epsilon for this cost,

    C = A^{1/2} D A^{-1/2} / 2 - (epsilon / 2) I,   D = (4 A^{1/2} B A^{1/2} + epsilon^2 I)^{1/2}.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._checks import as_float_array, check_int, check_key, check_positive, hyperparameter
from .._custom_types import Array, ArrayLike, Float, Key, PyTree
from ..losses import AbstractLoss
from ._base import RealLike


def _sqrtm_psd(m: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh(0.5 * (m + m.T))
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def gaussian_eot_plan(
    m0: Float[ArrayLike, " d"],
    cov0: Float[ArrayLike, "d d"],
    m1: Float[ArrayLike, " d"],
    cov1: Float[ArrayLike, "d d"],
    epsilon: float,
) -> tuple[np.ndarray, np.ndarray]:
    r"""The entropic OT plan (the static Schroedinger bridge with volatility epsilon)
    between N(m0, cov0) and N(m1, cov1) for the cost ||x - y||^2/2 (module docstring;
    Janati et al. 2020, theorem 1; Mallasto et al. 2021):

        C = cov0^{1/2} D cov0^{-1/2} / 2 - (epsilon/2) I,
        D = (4 cov0^{1/2} cov1 cov0^{1/2} + epsilon^2 I)^{1/2}.

    A reference helper in float64 NumPy (eigendecompositions), not differentiable.

    Returns:
        (mean, cov): the joint mean (m0, m1) of shape (2d,) and covariance
        [[cov0, C], [C^T, cov1]] of shape (2d, 2d). The conditional law y | x is
        N(m1 + C^T cov0^{-1} (x - m0), cov1 - C^T cov0^{-1} C), and C^T cov0^{-1} equals
        that conditional covariance divided by epsilon (the plan's x-y precision block is
        -I/epsilon).
    """
    m0, m1 = np.asarray(m0, np.float64), np.asarray(m1, np.float64)
    a, b = np.asarray(cov0, np.float64), np.asarray(cov1, np.float64)
    d = m0.shape[0]
    if m0.ndim != 1 or m1.shape != (d,) or a.shape != (d, d) or b.shape != (d, d):
        raise ValueError(
            f"need m0, m1 of shape (d,) and cov0, cov1 of shape (d, d); got {m0.shape}, "
            f"{a.shape}, {m1.shape}, {b.shape}."
        )
    check_positive("epsilon", epsilon)
    for name, c in (("cov0", a), ("cov1", b)):
        if not np.allclose(c, c.T) or np.linalg.eigvalsh(c).min() <= 0:
            raise ValueError(f"`{name}` must be symmetric positive definite.")
    a_half = _sqrtm_psd(a)
    a_half_inv = np.linalg.inv(a_half)
    dmat = _sqrtm_psd(4 * a_half @ b @ a_half + epsilon**2 * np.eye(d))
    c = 0.5 * a_half @ dmat @ a_half_inv - 0.5 * epsilon * np.eye(d)
    mean = np.concatenate([m0, m1])
    cov = np.block([[a, c], [c.T, b]])
    return mean, cov


def _tril_factor(raw: Float[Array, "d d"]) -> Float[Array, "d d"]:
    """T = strictly lower part of raw + diag(exp(diag(raw))): a Cholesky factor."""
    return jnp.tril(raw, -1) + jnp.diag(jnp.exp(jnp.diag(raw)))


class LightSB(eqx.Module):
    r"""The light Schroedinger bridge: the adjusted potential
    v_theta(y) = sum_k alpha_k N(y | r_k, epsilon S_k) and everything it gives in closed
    form (module docstring): `log_potential` (log v), `log_normalizer` (log c), the
    conditional plan (`conditional`, `sample_plan`), `drift` and `sample_bridge`.

    Trainable arrays: `log_alpha` (K,), `r` (K, d) and `s_raw` (K, d, d) (S_k = T_k T_k^T,
    T_k = tril(s_raw_k, -1) + diag(exp(diag(s_raw_k)))). `epsilon` is an array field read
    through `stop_gradient`, so training leaves it unchanged and a vmap over it works.

    Arguments:
        means: (K, d) initial r_k (the official code draws them from the target samples).
        epsilon: the volatility of the Wiener prior, > 0.
        init_scale: the initial S_k = init_scale I (default 0.1, the official init).
        log_alpha: initial log-weights (default: log(1/K) each).
    """

    log_alpha: Float[Array, " K"]
    r: Float[Array, "K d"]
    s_raw: Float[Array, "K d d"]
    epsilon: RealLike = eqx.field(converter=hyperparameter)

    def __init__(
        self,
        means: Float[ArrayLike, "K d"],
        epsilon: RealLike,
        *,
        init_scale: float = 0.1,
        log_alpha: Float[ArrayLike, " K"] | None = None,
    ):
        r = as_float_array("means", means)
        if r.ndim != 2 or r.shape[0] < 1 or r.shape[1] < 1:
            raise ValueError(f"`means` must have shape (K, d), K, d >= 1; got {r.shape}.")
        check_positive("epsilon", epsilon)
        check_positive("init_scale", init_scale)
        k, d = r.shape
        if log_alpha is None:
            log_alpha = jnp.full((k,), -np.log(k), r.dtype)
        log_alpha = as_float_array("log_alpha", log_alpha)
        if log_alpha.shape != (k,):
            raise ValueError(f"`log_alpha` must have shape ({k},), got {log_alpha.shape}.")
        self.log_alpha = log_alpha
        self.r = r
        self.s_raw = jnp.broadcast_to(
            0.5 * np.log(init_scale) * jnp.eye(d, dtype=r.dtype), (k, d, d)
        )
        self.epsilon = epsilon

    @property
    def dim(self) -> int:
        return self.r.shape[1]

    def _eps(self):
        return jax.lax.stop_gradient(self.epsilon)

    def factors(self) -> Float[Array, "K d d"]:
        """The Cholesky factors T_k of S_k."""
        return jax.vmap(_tril_factor)(self.s_raw)

    def covariances(self) -> Float[Array, "K d d"]:
        """S_k = T_k T_k^T (the components' covariances are epsilon S_k)."""
        t = self.factors()
        return t @ jnp.swapaxes(t, -1, -2)

    def _check_x(self, name, x):
        if jnp.shape(x) != (self.dim,):
            raise ValueError(
                f"`{name}` must be one point of shape ({self.dim},), got {tuple(jnp.shape(x))}."
            )

    def log_potential(self, y: Float[Array, " d"]) -> Float[Array, ""]:
        """log v_theta(y) = logsumexp_k [log alpha_k + log N(y | r_k, epsilon S_k)]."""
        self._check_x("y", y)
        eps, t = self._eps(), self.factors()
        z = jax.vmap(lambda tk, rk: jax.scipy.linalg.solve_triangular(tk, y - rk, lower=True))(
            t, self.r
        )
        logdet = 2 * jnp.sum(jnp.log(jnp.diagonal(t, axis1=-2, axis2=-1)), axis=-1)
        d = self.dim
        log_n = -0.5 * jnp.sum(z**2, -1) / eps - 0.5 * (logdet + d * jnp.log(2 * jnp.pi * eps))
        return jax.scipy.special.logsumexp(self.log_alpha + log_n)

    def _log_terms(self, x):
        s = self.covariances()
        quad = 0.5 * jnp.einsum("i,kij,j->k", x, s, x)
        return self.log_alpha + (quad + self.r @ x) / self._eps(), s

    def log_normalizer(self, x: Float[Array, " d"]) -> Float[Array, ""]:
        """log c_theta(x) = logsumexp_k [log alpha_k + (x^T S_k x/2 + r_k^T x)/epsilon]."""
        self._check_x("x", x)
        return jax.scipy.special.logsumexp(self._log_terms(x)[0])

    def conditional(
        self, x: Float[Array, " d"]
    ) -> tuple[Float[Array, " K"], Float[Array, "K d"], Float[Array, "K d d"]]:
        """pi_theta(y | x) as a Gaussian mixture: (weights a_k(x), means r_k + S_k x,
        covariances epsilon S_k)."""
        self._check_x("x", x)
        logits, s = self._log_terms(x)
        return jax.nn.softmax(logits), self.r + s @ x, self._eps() * s

    def conditional_moments(
        self, x: Float[Array, " d"]
    ) -> tuple[Float[Array, " d"], Float[Array, "d d"]]:
        """The mean and covariance of pi_theta(y | x) (law of total variance)."""
        w, mu, cov = self.conditional(x)
        mean = w @ mu
        dev = mu - mean
        return mean, jnp.einsum("k,kij->ij", w, cov) + jnp.einsum("k,ki,kj->ij", w, dev, dev)

    def sample_plan(self, key: Key, x: Float[Array, " d"]) -> Float[Array, " d"]:
        """One exact draw y ~ pi_theta(y | x): a component k ~ a(x), then
        y = r_k + S_k x + sqrt(epsilon) T_k z."""
        key = check_key("key", key)
        k_c, k_z = jax.random.split(key)
        self._check_x("x", x)
        logits, s = self._log_terms(x)
        k = jax.random.categorical(k_c, logits)
        z = jax.random.normal(k_z, (self.dim,), x.dtype)
        return self.r[k] + s[k] @ x + jnp.sqrt(self._eps()) * self.factors()[k] @ z

    def log_phi(self, t: RealLike, x: Float[Array, " d"]) -> Float[Array, ""]:
        r"""log int N(x' | x, a I) exp(||x'||^2/(2 epsilon)) v_theta(x') dx', a = (1 - t)
        epsilon, t in [0, 1): per component a Gaussian integral with precision
        P = I/a - I/epsilon + Q, Q = (epsilon S_k)^{-1} (positive definite as a <= epsilon),
        linear term b = x/a + Q r_k: log h_k = -||x||^2/(2a) - r_k^T Q r_k / 2
        - (d/2) log(2 pi a) - log det(2 pi epsilon S_k)/2 + b^T P^{-1} b / 2
        + (d/2) log(2 pi) - log det P / 2."""
        eps, d = self._eps(), self.dim
        a = (1.0 - t) * eps
        s = self.covariances()
        eye = jnp.eye(d, dtype=x.dtype)

        def one(sk, rk):
            q = jnp.linalg.inv(eps * sk)
            p = eye / a - eye / eps + q
            b = x / a + q @ rk
            _, logdet_p = jnp.linalg.slogdet(p)
            _, logdet_s = jnp.linalg.slogdet(2 * jnp.pi * eps * sk)
            return (
                -0.5 * x @ x / a
                - 0.5 * rk @ q @ rk
                - 0.5 * d * jnp.log(2 * jnp.pi * a)
                - 0.5 * logdet_s
                + 0.5 * b @ jnp.linalg.solve(p, b)
                + 0.5 * d * jnp.log(2 * jnp.pi)
                - 0.5 * logdet_p
            )

        return jax.scipy.special.logsumexp(self.log_alpha + jax.vmap(one)(s, self.r))

    def drift(self, t: RealLike, x: Float[Array, " d"]) -> Float[Array, " d"]:
        """The SB drift g_theta(x, t) = epsilon grad_x log_phi(t, x), t in [0, 1)."""
        self._check_x("x", x)
        return self._eps() * jax.grad(self.log_phi, argnums=1)(t, x)

    def sample_bridge(
        self, key: Key, x0: Float[Array, " d"], n_steps: int, *, save_trajectory: bool = False
    ) -> Float[Array, "*n1 d"]:
        """Euler-Maruyama on dX = g_theta(X, t) dt + sqrt(epsilon) dW from X_0 = x0 over
        `n_steps` uniform steps of [0, 1] (the drift is evaluated at t_i < 1 only). Weak
        order 1. Returns X_1, or the (n_steps + 1, d) path with `save_trajectory`."""
        key = check_key("key", key)
        self._check_x("x0", x0)
        n = check_int("n_steps", n_steps, 1)
        dt = 1.0 / n
        keys = jax.random.split(key, n)

        def step(x, inp):
            i, k = inp
            z = jax.random.normal(k, x.shape, x.dtype)
            x = x + self.drift(i * dt, x) * dt + jnp.sqrt(self._eps() * dt) * z
            return x, x

        x1, path = jax.lax.scan(step, x0, (jnp.arange(n, dtype=x0.dtype), keys))
        if save_trajectory:
            return jnp.concatenate([x0[None], path], axis=0)
        return x1


class LightSBLoss(AbstractLoss):
    r"""The light SB objective (Korotin et al. 2024, eq. 9): from samples x ~ p0 and
    y ~ p1, L(theta) = mean log c_theta(x) - mean log v_theta(y), equal to
    KL(pi* || pi_theta) up to a constant. `batch` is the pair (x, y) of (n, d) arrays
    (independent draws of the two marginals; `jaxsci.train.fit` shuffles the pair
    together, which keeps them independent). `aux`: `loss`, `log_c` and `log_v`."""

    def __call__(
        self, model: LightSB, batch: PyTree, *, key: Key | None = None
    ) -> tuple[Float[Array, ""], dict[str, Array]]:
        if not isinstance(model, LightSB):
            raise TypeError(f"LightSBLoss: `model` must be a LightSB, got {type(model).__name__}.")
        if not (isinstance(batch, (tuple, list)) and len(batch) == 2):
            raise TypeError("LightSBLoss: `batch` must be the pair (x ~ p0, y ~ p1).")
        x, y = as_float_array("batch[0]", batch[0]), as_float_array("batch[1]", batch[1])
        for name, a in (("batch[0]", x), ("batch[1]", y)):
            if a.ndim != 2 or a.shape[1] != model.dim:
                raise ValueError(
                    f"LightSBLoss: `{name}` must have shape (n, {model.dim}), got {a.shape}."
                )
        log_c = jnp.mean(jax.vmap(model.log_normalizer)(x))
        log_v = jnp.mean(jax.vmap(model.log_potential)(y))
        value = log_c - log_v
        return value, {"loss": value, "log_c": log_c, "log_v": log_v}
