r"""The quadratic objectives of stochastic interpolants (Albergo, Boffi & Vanden-Eijnden
2023, "SI", thm. 2.7 and eq. 2.13-2.17): regressions whose unique minimisers are the
velocity b and the denoiser eta, as `jaxsci.losses.AbstractLoss` implementations.

For times t ~ U[t_min, t_max] and x_t = I(t, x0, x1) + gamma(t) z (see
`StochasticInterpolant`):

* **velocity** (`InterpolantVelocityLoss`):
  L_b = E[ mean_j (b_hat(t, x_t) - R)_j^2 - (gamma' z)_j^2 ],  R = dI/dt + gamma'(t) z,
  minimised by b = E[R | x_t]. The subtracted (gamma' z)^2 does not depend on the model
  (it is SI's form E[|b|^2 - 2 R.b] plus a constant) and has infinite variance at the
  ends, where gamma' blows up for gamma = sqrt(a t (1 - t)). With `antithetic=True` (the
  official code's variance reduction) each example is evaluated at x_t^+- = I +- gamma z
  and the two errors averaged: the remaining z-term is -gamma' z (b_hat(x^+) - b_hat(x^-)),
  O(gamma gamma') = O(1) at the ends. With gamma = 0 and a Gaussian base (one-sided linear
  path) it is the flow-matching loss of `FlowMatching()` (rectified flow) with time
  reversed, b(t, x) = -u(1 - t, x).
* **denoiser** (`InterpolantDenoiserLoss`): L_eta = E[ mean_j (eta_hat(t, x_t) - zeta)_j^2 ],
  zeta = `interpolant.latent(t, x0, z)` (z two-sided), minimised by eta = E[zeta | x_t];
  the score is s = -eta / sigma(t) (`StochasticInterpolant.score_from_denoiser`).

`batch` is the target data x1 (n, ...) for a one-sided interpolant (x0 ~ N(0, I) is drawn
here) and a pair (x0, x1) of arrays of the same shape for a two-sided one (the independent
coupling: pair them as drawn). `model(t, x)` acts on one example.
"""

from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._checks import check_range, concrete
from .._custom_types import Array, Float, Key, PyTree
from ..losses import AbstractLoss
from ._base import RealLike
from ._interpolants import NoLatentNoise, StochasticInterpolant


def _check_interpolant(interpolant) -> StochasticInterpolant:
    if not isinstance(interpolant, StochasticInterpolant):
        raise TypeError(
            f"`interpolant` must be a StochasticInterpolant, got {type(interpolant).__name__}."
        )
    return interpolant


def _check_times(t_min, t_max) -> None:
    check_range("t_min", t_min, 0.0, 1.0)
    check_range("t_max", t_max, 0.0, 1.0)
    lo, hi = concrete(t_min), concrete(t_max)
    if lo is not None and hi is not None and not float(lo) < float(hi):
        raise ValueError(f"need `t_min` < `t_max`, got t_min={t_min}, t_max={t_max}.")


def _floating(name: str, owner: str, x) -> Array:
    if not isinstance(x, (jax.Array, np.ndarray)):
        raise TypeError(f"{owner}: `{name}` must be an array, got {type(x).__name__}.")
    x = jnp.asarray(x)
    if x.ndim < 1 or x.shape[0] < 1:
        raise ValueError(
            f"{owner}: `{name}` must have a leading batch axis of size >= 1, got shape "
            f"{tuple(x.shape)}."
        )
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise TypeError(f"{owner}: `{name}` must be a floating array, got dtype {x.dtype}.")
    return x


def _draws(loss, batch, key, owner: str):
    """(t, x0, x1, z) for the batch: t ~ U[t_min, t_max], z ~ N(0, I), and x0 ~ N(0, I)
    one-sided (`batch` = x1) or x0 from the pair `batch` = (x0, x1) two-sided."""
    si = loss.interpolant
    if si.one_sided:
        if isinstance(batch, tuple | list):
            raise TypeError(
                f"{owner}: a one-sided interpolant takes `batch` = x1 (the target data), "
                "not a pair."
            )
        x1 = _floating("batch", owner, batch)
        x0 = None
    else:
        if not isinstance(batch, tuple | list) or len(batch) != 2:
            raise TypeError(
                f"{owner}: a two-sided interpolant takes `batch` = (x0, x1), a pair of arrays; "
                f"got {type(batch).__name__}."
            )
        x0 = _floating("batch[0] (x0)", owner, batch[0])
        x1 = _floating("batch[1] (x1)", owner, batch[1])
        if x0.shape != x1.shape:
            raise ValueError(
                f"{owner}: `batch` x0 and x1 must have the same shape, got {tuple(x0.shape)} "
                f"and {tuple(x1.shape)}."
            )
    if key is None:
        raise TypeError(f"{owner} draws times and noise and needs `key` (a jax.random.key).")
    n = x1.shape[0]
    k_t, k_0, k_z = jax.random.split(key, 3)
    u = jax.random.uniform(k_t, (n,), dtype=x1.dtype)
    t = loss.t_min + (loss.t_max - loss.t_min) * u
    if x0 is None:
        x0 = jax.random.normal(k_0, x1.shape, x1.dtype)
    z = jax.random.normal(k_z, x1.shape, x1.dtype)
    return t, x0, x1, z


def _call(model, t, x, owner):
    out = model(t, x)
    if jnp.shape(out) != jnp.shape(x):
        raise ValueError(
            f"{owner}: the model returned shape {tuple(jnp.shape(out))} for x of shape "
            f"{tuple(jnp.shape(x))}; it must return an array shaped like x."
        )
    return out


class InterpolantVelocityLoss(AbstractLoss):
    r"""The velocity objective L_b of a stochastic interpolant (module docstring).

    Arguments:
        interpolant: the `StochasticInterpolant`.
        t_min, t_max: the training time range (default [0, 1]).
        antithetic: evaluate each example at I +- gamma z (default True; irrelevant, and
            skipped, for `NoLatentNoise`).
    """

    interpolant: StochasticInterpolant
    t_min: RealLike = 0.0
    t_max: RealLike = 1.0
    antithetic: bool = eqx.field(static=True, default=True)

    def __check_init__(self):
        _check_interpolant(self.interpolant)
        _check_times(self.t_min, self.t_max)
        if not isinstance(self.antithetic, bool):
            raise TypeError(f"`antithetic` must be a bool, got {self.antithetic!r}.")

    def __call__(
        self, model: Callable, batch: PyTree, *, key: Key | None = None
    ) -> tuple[Float[Array, ""], dict[str, Array]]:
        owner = "InterpolantVelocityLoss"
        si = self.interpolant
        t, x0, x1, z = _draws(self, batch, key, owner)
        deterministic = isinstance(si.noise, NoLatentNoise)

        def one(t1, a, b, c):
            base = si.path.interpolate(t1, a, b)
            r0 = si.path.d_interpolate(t1, a, b)
            if deterministic:
                return jnp.mean((_call(model, t1, base, owner) - r0) ** 2)
            g, gd = si.noise.gamma(t1), si.noise.d_gamma(t1)
            bp = _call(model, t1, base + g * c, owner) - r0
            if not self.antithetic:
                return jnp.mean(bp**2 - 2 * gd * c * bp)
            bm = _call(model, t1, base - g * c, owner) - r0
            return jnp.mean(0.5 * (bp**2 + bm**2) - gd * c * (bp - bm))

        value = jnp.mean(jax.vmap(one)(t, x0, x1, z))
        return value, {"loss": value}


class InterpolantDenoiserLoss(AbstractLoss):
    r"""The denoiser objective L_eta of a stochastic interpolant (module docstring); its
    minimiser eta = E[zeta | x_t] gives the score s = -eta / sigma(t).

    Arguments:
        interpolant: the `StochasticInterpolant` (two-sided needs latent noise, gamma > 0).
        t_min, t_max: the training time range (default [0, 1]).
    """

    interpolant: StochasticInterpolant
    t_min: RealLike = 0.0
    t_max: RealLike = 1.0

    def __check_init__(self):
        si = _check_interpolant(self.interpolant)
        _check_times(self.t_min, self.t_max)
        if not si.one_sided and isinstance(si.noise, NoLatentNoise):
            raise ValueError(
                "a two-sided `interpolant` with NoLatentNoise has no Gaussian part to denoise: "
                "give it latent noise (BrownianBridgeNoise(a)) or make it one-sided."
            )

    def __call__(
        self, model: Callable, batch: PyTree, *, key: Key | None = None
    ) -> tuple[Float[Array, ""], dict[str, Array]]:
        owner = "InterpolantDenoiserLoss"
        si = self.interpolant
        t, x0, x1, z = _draws(self, batch, key, owner)

        def one(t1, a, b, c):
            xt = si.interpolate(t1, a, b, c)
            return jnp.mean((_call(model, t1, xt, owner) - si.latent(t1, a, c)) ** 2)

        value = jnp.mean(jax.vmap(one)(t, x0, x1, z))
        return value, {"loss": value}
