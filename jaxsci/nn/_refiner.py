"""`PDERefiner`: a one-step prediction followed by a few denoising refinements."""

from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp

from .._checks import as_float_array, check_int, check_key, check_range, hyperparameter
from .._custom_types import Array, Float, Int, Key, ScalarLike
from ._base import AbstractNetwork


class PDERefiner(AbstractNetwork):
    r"""PDE-Refiner (Lippe, Veeling, Perdikaris, Turner & Brandstetter 2023, "PDE-Refiner:
    Achieving accurate long rollouts with neural PDE solvers", NeurIPS): a learned time
    stepper u(t) -> u(t + Delta) whose one-step prediction is refined by K denoising steps.

    One conditional network f(s, [u_prev, u_tilde]) serves every step k = 0..K, told which
    by s = k / K (0 when K = 0; a `ScoreUNet1d`'s time, whose default `time_scale` 1000
    spreads the K + 1 values over DDPM's range):

    * k = 0, the plain prediction: u^0 = f_0(u_prev, 0) (the noisy input is zero), trained
      by the MSE against u(t + Delta); with `residual`, u^0 = u_prev + f_0(u_prev, 0);
    * k = 1..K, refinement with noise std sigma_k = sigma_min^(k / K) (exponentially
      decreasing from sigma_min^(1/K) to sigma_min): u_tilde = u^{k-1} + sigma_k eps,
      eps ~ N(0, I), and u^k = u_tilde - sigma_k f_k(u_prev, u_tilde), f_k trained to
      predict eps from u_tilde = u(t + Delta) + sigma_k eps (`jaxsci.losses.PDERefinerLoss`).

    Predicting the noise makes the loss of step k weigh the state error by 1 / sigma_k^2, so
    the last steps fit the components of amplitude ~ sigma_k: the low-amplitude (for KS and
    most dissipative PDEs, high-wavenumber) part of the spectrum that an MSE-trained stepper
    neglects (the paper's section 3-4). With K = 0 this is the MSE-trained one-step model of
    the same network (the paper's baseline) and needs no key. Inference is the paper's
    Algorithm 2, stochastic through the eps of the refinements.

    sigma_min: the paper (appendix C) writes sigma_k = sigma_min^(k/K) as a noise std with
    sigma_min = 2e-7 for KS (K = 3), and that is what `min_noise_std` is (default 2e-7).
    Its code (pdearena, `pderefiner.py`) passes sigma_min^(k/K) to a DDPM scheduler as the
    betas, i.e. as noise *variances*: to train with the code's stds sqrt(1 - alpha_bar)
    (0.0767, 5.9e-3, 4.47e-4 for K = 3) pass `min_noise_std=sqrt(2e-7)` = 4.47e-4 (equal to
    0.4%: the cumulative product in alpha_bar; the code also scales the signal by
    sqrt(alpha_bar) >= 0.997, we do not). Measured on KS (benchmarks/RESULTS_nn.md, 8000
    steps): high-correlation time +9.9 +- 3.8 over the MSE baseline with the paper's 2e-7,
    +3.3 +- 2.8 with the code's 4.47e-4 (which cuts the high-wavenumber error 178x, 2e-7
    9x). Note a std of 2e-7 is below float32's spacing for |u| > 1.7 (KS fields reach
    |u| ~ 3): the last refinement then adds almost no noise to the large entries.

    The network sees `[u_prev, u_tilde]` stacked on the channel axis, (2 C, *spatial), and
    the first C channels of its output are used (a `ScoreUNet1d(2 C, ...)` maps 2 C
    channels to 2 C; a network with C output channels is used whole).

    Roll it out with `jaxsci.integrate.rollout(refiner, u0, n, key=key)` (one key per step).
    Parameter count: that of `net` plus 1, the float `min_noise_std` (a hyperparameter
    array, so a `vmap` over values sweeps it; read through `stop_gradient`, so an optimiser
    without weight decay leaves it unchanged).

    Arguments:
        net: the conditional network, a callable `eqx.Module` `net(s, x)` with s a scalar
            and x of shape (2 C, *spatial), e.g. `ScoreUNet1d(2 C, ...)`.
        channels: C, the channels of the state (states are channels-first, (C, *spatial)).
        num_refinement_steps: K >= 0 (0: the plain one-step model).
        min_noise_std: sigma_min in (0, 1), the noise std of the last refinement.
        residual: the k = 0 step predicts the increment u(t + Delta) - u(t).
    """

    net: Callable[[ScalarLike, Array], Array]
    min_noise_std: Float[Array, ""]
    channels: int = eqx.field(static=True)
    num_refinement_steps: int = eqx.field(static=True)
    residual: bool = eqx.field(static=True)

    def __init__(
        self,
        net: Callable[[ScalarLike, Array], Array],
        channels: int,
        num_refinement_steps: int = 3,
        min_noise_std: float | Float[Array, ""] = 2e-7,
        *,
        residual: bool = False,
    ):
        if not (isinstance(net, eqx.Module) and callable(net)):
            raise TypeError(
                "`net` must be a conditional network net(s, x) (a callable eqx.Module such as "
                f"jaxsci.nn.ScoreUNet1d), got {type(net).__name__}."
            )
        self.net = net
        self.channels = check_int("channels", channels)
        self.num_refinement_steps = check_int("num_refinement_steps", num_refinement_steps, 0)
        self.min_noise_std = hyperparameter(min_noise_std)
        self.residual = bool(residual)

    def __check_init__(self):
        check_range("min_noise_std", self.min_noise_std, 0.0, 1.0, lower_open=True, upper_open=True)

    def noise_std(self, k: Int[Array, "*k"] | int) -> Float[Array, "*k"]:
        """sigma_k = sigma_min^(k / K) for a refinement step k in 1..K (1 when K = 0).
        sigma_min is read through `stop_gradient`: a fixed hyperparameter, not trained."""
        sigma_min = jax.lax.stop_gradient(self.min_noise_std)
        return sigma_min ** (jnp.asarray(k) / max(self.num_refinement_steps, 1))

    def noise_stds(self) -> Float[Array, " K"]:
        """sigma_1, ..., sigma_K, the noise stds of the refinement steps (decreasing)."""
        return self.noise_std(jnp.arange(1, self.num_refinement_steps + 1))

    def predict(
        self,
        u_prev: Float[Array, " channels *spatial"],
        u_noisy: Float[Array, " channels *spatial"],
        k: Int[Array, ""] | int,
    ) -> Float[Array, " channels *spatial"]:
        """The network's output at step k: for k = 0 the prediction of u(t + Delta) (the
        increment with `residual`; `u_noisy` should then be zeros), for k >= 1 the
        predicted noise eps of `u_noisy`."""
        self._check_state("u_prev", u_prev)
        if u_noisy.shape != u_prev.shape:
            raise ValueError(
                f"`u_noisy` has shape {tuple(u_noisy.shape)}; expected the shape of `u_prev`, "
                f"{tuple(u_prev.shape)}."
            )
        s = jnp.asarray(k, u_prev.dtype) / max(self.num_refinement_steps, 1)
        out = self.net(s, jnp.concatenate([u_prev, u_noisy.astype(u_prev.dtype)], axis=0))
        return out[: self.channels]

    def __call__(
        self, u: Float[Array, " channels *spatial"], *, key: Key | None = None
    ) -> Float[Array, " channels *spatial"]:
        """The refined state one step after `u` (one example). `key` draws the refinement
        noise; it is required when K > 0 and unused when K = 0."""
        u = as_float_array("u", u)
        self._check_state("u", u)
        pred = self.predict(u, jnp.zeros_like(u), 0)
        pred = u + pred if self.residual else pred
        if self.num_refinement_steps == 0:
            return pred
        if key is None:
            raise TypeError(
                f"PDERefiner with K = {self.num_refinement_steps} refinement steps draws noise "
                "and needs `key` (a jax.random.key); rollout(refiner, u0, n, key=key) passes one "
                "per step."
            )
        keys = jax.random.split(check_key("key", key), self.num_refinement_steps)
        for k in range(1, self.num_refinement_steps + 1):
            sigma = self.noise_std(k).astype(u.dtype)
            noisy = pred + sigma * jax.random.normal(keys[k - 1], u.shape, u.dtype)
            pred = noisy - sigma * self.predict(u, noisy, k)
        return pred

    def _check_state(self, name: str, u: Array) -> None:
        if u.ndim < 2 or u.shape[0] != self.channels:
            raise ValueError(
                f"`{name}` has shape {tuple(u.shape)}; expected one channels-first state "
                f"(channels, *spatial) with channels = {self.channels}; batch with jax.vmap "
                "outside the network (one example in)."
            )
