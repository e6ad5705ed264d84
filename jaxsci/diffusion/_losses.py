r"""Training losses for diffusion and flow models: denoising score matching and flow matching.

Both implement the shared loss interface `loss(model, batch, *, key) -> (value, aux)`
(`jaxsci.losses.AbstractLoss`), so `jaxsci.train.fit` trains them. `batch` is an array of
data examples x0 with a leading batch axis; `model(t, x)` acts on one example (t a scalar
time of the schedule, x shaped like an example) and returns an array shaped like x.

**Denoising score matching** (Vincent 2011; Ho et al. 2020; Song et al. 2021). For each
example draw t and eps ~ N(0, I), form x_t = alpha_t x0 + sigma_t eps and regress the
model's prediction of the target F in {eps, x0, v} onto its true value:

    L = E_t E_{x0, eps} [ w(t) mean_j (F_hat(t, x_t) - F)_j^2 ],   t ~ U[t_min, t_max],

F_hat being the model output converted to the target space exactly (any model
parameterisation, see `jaxsci.diffusion.convert`). At fixed (t, x_t) the three targets
differ by a factor: with d = eps_hat - eps,

    x0_hat - x0 = -(sigma/alpha) d,   v_hat - v = ((alpha^2 + sigma^2)/alpha) d,

so each weighting is a weight on the eps-space error times c_F(t) = (F-error / eps-error)^2.
Weightings:

* ``"uniform"``: w = 1 in the target space (Ho et al. 2020's "simple" loss for eps;
  the x0 loss of Karras et al. without their weight; the v loss of Salimans & Ho 2022).
* ``"snr"``: w = SNR(t) = alpha^2 / sigma^2 in the target space.
* ``"min_snr"``: Min-SNR-gamma (Hang et al. 2023, "Efficient diffusion training via
  Min-SNR weighting strategy", eq. 10): the x0-space weight min(SNR, gamma), i.e. in eps
  space min(SNR, gamma)/SNR and for v min(SNR, gamma)/(SNR + 1) on VP schedules (their
  table); here the exact factor for any schedule. gamma = 5 is the paper's default.
* ``"likelihood"``: the weight g(t)^2 on the score error ||s_hat - s||^2 (Song, Durkan,
  Murray & Ermon 2021, "Maximum likelihood training of score-based diffusion models",
  theorem 1): the eps-space weight g^2/sigma^2 = -2 lambda'(t). With the per-example sum
  over coordinates (multiply the mean by the number of elements), (t_max - t_min)/2 times L
  is, up to a constant that does not depend on the model (denoising vs explicit score
  matching, Vincent 2011), the score-matching term of their bound on the KL divergence
  from the data to the model; it applies to every schedule here,
  since g(t)^2 = -2 sigma_t^2 lambda'(t) is defined by the marginals.

`"min_snr"` and `"likelihood"` are weights on the objective itself, so their loss value is
the same for the three targets (only the regressed quantity changes); `"uniform"` and
`"snr"` are weights in the target space.

**Time sampling.** `"uniform"` draws t ~ U[t_min, t_max]. `"logsnr"` draws
lambda ~ U[lambda(t_max), lambda(t_min)] and t = t(lambda), and multiplies each term by the
importance weight (lambda(t_min) - lambda(t_max)) / ((t_max - t_min) |lambda'(t)|), so the
objective is the same and only its variance changes (Kingma et al. 2021 argue for sampling
in lambda; with the likelihood weighting the weighted integrand is then constant in t
apart from the error itself). `"stratified"` draws the batch's times on a stratified grid
(t_b = t_min + (b + u_b)/B (t_max - t_min), shuffled), the low-discrepancy sampler of
Kingma et al. 2021, unbiased for the same objective.

**Flow matching** (Lipman et al. 2023; Liu et al. 2023, rectified flow): on the interpolant
x_t = alpha_t x0 + sigma_t eps of a schedule (default `RectifiedFlow`: alpha = 1 - t,
sigma = t, the optimal-transport path) regress a velocity model onto the conditional
velocity u = alpha'_t x0 + sigma'_t eps (= eps - x0 for the rectified flow):

    L = E_t E [ mean_j (u_hat(t, x_t) - u)_j^2 ],   t ~ U[t_min, t_max].

The minimiser is the marginal velocity E[u | x_t], the probability-flow velocity of the
process, so a trained model samples with `Denoiser(model, schedule, "flow")`.

**EMA of the weights** is not part of a loss: `jaxsci.train.fit(..., ema=0.999)` keeps an
exponential moving average (with the warm-up decay min(ema, (1 + t)/(10 + t))) and returns
the averaged model, which is what diffusion models are usually sampled with (Ho et al. 2020
use 0.9999; small 2-D models 0.99-0.999).
"""

from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp

from .._custom_types import Array, Float, Key
from ..losses import AbstractLoss
from ._base import AbstractSchedule
from ._parameterization import check_parameterization, from_x0_eps, to_x0_eps
from ._schedules import RectifiedFlow

DSM_TARGETS = ("eps", "x0", "v")
WEIGHTINGS = ("uniform", "snr", "min_snr", "likelihood")
TIME_SAMPLINGS = ("uniform", "logsnr", "stratified")


def _check_choice(value, name: str, choices) -> None:
    if value not in choices:
        raise ValueError(f"Unknown `{name}` {value!r}; expected one of {list(choices)}.")


def _time_range(schedule, t_min, t_max, owner: str) -> tuple[float, float]:
    lo = schedule.t_min if t_min is None else t_min
    hi = schedule.t_max if t_max is None else t_max
    if isinstance(lo, (int, float)) and isinstance(hi, (int, float)) and not lo < hi:
        raise ValueError(f"{owner}: need t_min < t_max, got t_min={lo}, t_max={hi}.")
    return lo, hi


def _data_batch(batch, owner: str) -> Array:
    if not (isinstance(batch, jax.Array) or hasattr(batch, "__array__")):
        raise TypeError(
            f"{owner}: `batch` must be an array of data examples with a leading batch axis, "
            f"got {type(batch).__name__}."
        )
    x0 = jnp.asarray(batch)
    if x0.ndim < 1 or x0.shape[0] < 1:
        raise ValueError(
            f"{owner}: `batch` must have a leading batch axis of size >= 1, got shape "
            f"{tuple(x0.shape)}."
        )
    if not jnp.issubdtype(x0.dtype, jnp.floating):
        raise TypeError(f"{owner}: `batch` must be a floating array, got dtype {x0.dtype}.")
    return x0


def _check_output(out, x, owner: str) -> None:
    if jnp.shape(out) != jnp.shape(x):
        raise ValueError(
            f"{owner}: the model returned shape {tuple(jnp.shape(out))} for x of shape "
            f"{tuple(jnp.shape(x))}; it must return an array shaped like x."
        )


def _sample_times(kind, key, n, schedule, t_min, t_max, dtype):
    """Times (n,) and importance weights (n,) making E[w f(t)] = E_{t~U}[f(t)]."""
    u = jax.random.uniform(key, (n,), dtype=dtype)
    span = t_max - t_min
    if kind == "uniform":
        return t_min + span * u, jnp.ones((n,), dtype)
    if kind == "stratified":
        k_perm = jax.random.fold_in(key, 1)
        strata = jax.random.permutation(k_perm, n).astype(dtype)
        return t_min + span * (strata + u) / n, jnp.ones((n,), dtype)
    lam_hi = schedule.lambda_(jnp.asarray(t_min, dtype))
    lam_lo = schedule.lambda_(jnp.asarray(t_max, dtype))
    t = schedule.t_from_lambda(lam_lo + u * (lam_hi - lam_lo))
    t = jnp.clip(t, t_min, t_max)
    weight = (lam_hi - lam_lo) / (span * jnp.abs(schedule.d_lambda(t)))
    return t, weight


def _noised_batch(loss, batch, key, owner: str):
    """The data batch x0, times t ~ `loss.time_sampling` with their importance weights iw,
    noise eps ~ N(0, I) and the noised x_t = alpha_t x0 + sigma_t eps (one t per example)."""
    x0 = _data_batch(batch, owner)
    if key is None:
        raise TypeError(f"{owner} draws times and noise and needs `key` (a jax.random.key).")
    n = x0.shape[0]
    k_t, k_eps = jax.random.split(key)
    sch = loss.schedule
    t, iw = _sample_times(loss.time_sampling, k_t, n, sch, loss.t_min, loss.t_max, x0.dtype)
    eps = jax.random.normal(k_eps, x0.shape, x0.dtype)
    shape = (n,) + (1,) * (x0.ndim - 1)
    x_t = sch.alpha(t).reshape(shape) * x0 + sch.sigma(t).reshape(shape) * eps
    return x0, t, iw, eps, x_t


class DenoisingScoreMatching(AbstractLoss):
    r"""Denoising score matching with eps / x0 / v targets and weightings (see the module
    docstring for the objective, its weightings and references).

    Arguments:
        schedule: the noise schedule (alpha_t, sigma_t) the model is trained for.
        parameterization: what the model outputs: "eps", "x0", "v", "score" or "flow"
            (converted exactly to the target).
        target: the regressed quantity, "eps", "x0" or "v" (default: the model's own
            parameterisation when it is one of these, else "eps").
        weighting: "uniform", "snr", "min_snr" or "likelihood".
        gamma: the Min-SNR gamma (weighting "min_snr"; default 5, Hang et al. 2023).
        time_sampling: "uniform", "logsnr" or "stratified" (same objective, different
            variance).
        t_min, t_max: the training time range (default: the schedule's).

    `aux` has `loss` and `mse_eps`, the unweighted eps-space mean squared error (comparable
    across weightings and targets).
    """

    schedule: AbstractSchedule
    parameterization: str = eqx.field(static=True)
    target: str = eqx.field(static=True)
    weighting: str = eqx.field(static=True)
    gamma: float
    time_sampling: str = eqx.field(static=True)
    t_min: float
    t_max: float

    def __init__(
        self,
        schedule: AbstractSchedule,
        parameterization: str = "eps",
        target: str | None = None,
        weighting: str = "uniform",
        *,
        gamma: float = 5.0,
        time_sampling: str = "uniform",
        t_min: float | None = None,
        t_max: float | None = None,
    ):
        if not isinstance(schedule, AbstractSchedule):
            raise TypeError(
                f"DenoisingScoreMatching: `schedule` must be an AbstractSchedule, got "
                f"{type(schedule).__name__}."
            )
        check_parameterization(parameterization)
        if target is None:
            target = parameterization if parameterization in DSM_TARGETS else "eps"
        _check_choice(target, "target", DSM_TARGETS)
        _check_choice(weighting, "weighting", WEIGHTINGS)
        _check_choice(time_sampling, "time_sampling", TIME_SAMPLINGS)
        if isinstance(gamma, (int, float)) and not gamma > 0:
            raise ValueError(f"DenoisingScoreMatching: `gamma` must be > 0, got {gamma}.")
        self.schedule = schedule
        self.parameterization = parameterization
        self.target = target
        self.weighting = weighting
        self.gamma = gamma
        self.time_sampling = time_sampling
        self.t_min, self.t_max = _time_range(schedule, t_min, t_max, "DenoisingScoreMatching")

    def target_factor(self, t):
        """c_F(t) = (F-space error / eps-space error)^2 at fixed (t, x) for the target F."""
        a, s = self.schedule.alpha(t), self.schedule.sigma(t)
        if self.target == "eps":
            return jnp.ones_like(a)
        if self.target == "x0":
            return (s / a) ** 2
        return ((a**2 + s**2) / a) ** 2

    def weight(self, t):
        """w(t), the weight on the squared target-space error at time t."""
        sch = self.schedule
        a, s = sch.alpha(t), sch.sigma(t)
        snr = (a / s) ** 2
        if self.weighting == "uniform":
            return jnp.ones_like(snr)
        if self.weighting == "snr":
            return snr
        # Objective-level weights W on the eps-space error, divided by c_F.
        if self.weighting == "min_snr":
            eps_weight = jnp.minimum(snr, self.gamma) / snr
        else:
            eps_weight = -2.0 * sch.d_lambda(t)  # g^2 / sigma^2
        return eps_weight / self.target_factor(t)

    def __call__(
        self, model: Callable, batch: Float[Array, "batch ..."], *, key: Key | None = None
    ) -> tuple[Float[Array, ""], dict[str, Array]]:
        owner = "DenoisingScoreMatching"
        x0, t, iw, eps, x_t = _noised_batch(self, batch, key, owner)
        sch = self.schedule
        out = jax.vmap(model)(t, x_t)
        _check_output(out, x_t, owner)

        def errors(out1, x1, t1, x01, eps1):
            x0_hat, eps_hat = to_x0_eps(self.parameterization, out1, x1, t1, sch)
            pred = from_x0_eps(self.target, x0_hat, eps_hat, t1, sch)
            true = from_x0_eps(self.target, x01, eps1, t1, sch)
            return jnp.mean((pred - true) ** 2), jnp.mean((eps_hat - eps1) ** 2)

        err, mse_eps = jax.vmap(errors)(out, x_t, t, x0, eps)
        value = jnp.mean(iw * self.weight(t) * err)
        return value, {"loss": value, "mse_eps": jnp.mean(mse_eps)}


class FlowMatching(AbstractLoss):
    r"""Conditional flow matching (Lipman et al. 2023; rectified flow, Liu et al. 2023).

    L = E_{t ~ U[t_min, t_max]} E [ mean_j (u_hat(t, x_t) - u)_j^2 ] with
    x_t = alpha_t x0 + sigma_t eps and u = alpha'_t x0 + sigma'_t eps (module docstring).
    The default schedule is `RectifiedFlow(t_min=1e-3, t_max=1 - 1e-3)` trained on
    t in [0, 1] (the velocity eps - x0 is finite at both ends); sample the trained model
    with `Denoiser(model, schedule, "flow")` (Euler / Heun, or any sampler on a range with
    finite lambda).

    Arguments:
        schedule: the interpolant (default `RectifiedFlow()`).
        t_min, t_max: the training time range (default [0, 1] for the rectified flow,
            else the schedule's).
        time_sampling: "uniform" or "stratified".
    """

    schedule: AbstractSchedule
    t_min: float
    t_max: float
    time_sampling: str = eqx.field(static=True)

    def __init__(
        self,
        schedule: AbstractSchedule | None = None,
        *,
        t_min: float | None = None,
        t_max: float | None = None,
        time_sampling: str = "uniform",
    ):
        if schedule is None:
            schedule = RectifiedFlow()
        if not isinstance(schedule, AbstractSchedule):
            raise TypeError(
                f"FlowMatching: `schedule` must be an AbstractSchedule, got "
                f"{type(schedule).__name__}."
            )
        _check_choice(time_sampling, "time_sampling", ("uniform", "stratified"))
        if isinstance(schedule, RectifiedFlow):
            t_min = 0.0 if t_min is None else t_min
            t_max = 1.0 if t_max is None else t_max
        self.schedule = schedule
        self.time_sampling = time_sampling
        self.t_min, self.t_max = _time_range(schedule, t_min, t_max, "FlowMatching")

    def __call__(
        self, model: Callable, batch: Float[Array, "batch ..."], *, key: Key | None = None
    ) -> tuple[Float[Array, ""], dict[str, Array]]:
        owner = "FlowMatching"
        x0, t, _, eps, x_t = _noised_batch(self, batch, key, owner)
        sch = self.schedule
        shape = (x0.shape[0],) + (1,) * (x0.ndim - 1)
        if isinstance(sch, RectifiedFlow):
            # alpha' = -1, sigma' = 1 exactly; the generic derivative through log sigma is
            # 0 * inf at t = 0.
            u = eps - x0
        else:
            da, ds = sch.d_alpha(t).reshape(shape), sch.d_sigma(t).reshape(shape)
            u = da * x0 + ds * eps
        out = jax.vmap(model)(t, x_t)
        _check_output(out, x_t, owner)
        err = jnp.mean((out - u) ** 2, axis=tuple(range(1, x0.ndim)))
        value = jnp.mean(err)
        return value, {"loss": value}
