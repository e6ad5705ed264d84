r"""Training losses for diffusion and flow models: denoising score matching and flow matching.

Both implement the shared loss interface `loss(model, batch, *, key) -> (value, aux)`
(`jaxsci.losses.AbstractLoss`), so `jaxsci.train.fit` trains them. `batch` is an array of
data examples x0 with a leading batch axis; `model(t, x)` acts on one example (t a scalar
time of the schedule, x shaped like an example) and returns an array shaped like x.

**Denoising score matching** (Vincent 2011; Ho et al. 2020; Song et al. 2021). For each
example draw t and eps ~ N(0, I), form x_t = alpha_t x0 + sigma_t eps and regress the
model's prediction of the target F (any parameterisation: eps, x0, v, score, flow) onto
its true value:

    L = E_t E_{x0, eps} [ w(t) mean_j (F_hat(t, x_t) - F)_j^2 ],   t ~ U[t_min, t_max],

F_hat being the model output converted to the target space exactly (any model
parameterisation, see `jaxsci.diffusion.convert`). At fixed (t, x_t) the targets differ by
a factor: with d = eps_hat - eps,

    x0_hat - x0 = -(sigma/alpha) d,   v_hat - v = ((alpha^2 + sigma^2)/alpha) d,

so each weighting is a weight on the eps-space error times c_F(t) = (F-error / eps-error)^2
(`jaxsci.diffusion.target_scale`). The weightings are objects (`UniformWeighting`,
`SNRWeighting`, `MinSNRWeighting`, `LikelihoodWeighting`; see their module), and so are
the laws of the training times (`UniformTimes`, `LogSNRTimes`, `StratifiedTimes`: the
same objective with different variance).

**Flow matching** (Lipman et al. 2023; Liu et al. 2023, rectified flow): on the interpolant
x_t = alpha_t x0 + sigma_t eps of a schedule (default `RectifiedFlow`: alpha = 1 - t,
sigma = t, the optimal-transport path) regress a velocity model onto the conditional
velocity u = alpha'_t x0 + sigma'_t eps (= eps - x0 for the rectified flow):

    L = E_t E [ mean_j (u_hat(t, x_t) - u)_j^2 ],   t ~ U[t_min, t_max].

The minimiser is the marginal velocity E[u | x_t], the probability-flow velocity of the
process, so a trained model samples with `Denoiser(model, schedule, FlowPrediction())`.

**EMA of the weights** is not part of a loss: `jaxsci.train.fit(..., ema=0.999)` keeps an
exponential moving average (with the warm-up decay min(ema, (1 + t)/(10 + t))) and returns
the averaged model, which is what diffusion models are usually sampled with (Ho et al. 2020
use 0.9999; small 2-D models 0.99-0.999).
"""

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from .._checks import concrete
from .._custom_types import Array, Float, Key, PyTree
from ..losses import AbstractLoss
from ._base import AbstractSchedule, RealLike, check_schedule
from ._parameterization import AbstractParameterization, EpsPrediction, check_parameterization
from ._schedules import RectifiedFlow
from ._training_times import AbstractTimeSampler, UniformTimes
from ._weightings import AbstractWeighting, UniformWeighting, target_scale


def _time_range(schedule, t_min, t_max) -> tuple[RealLike, RealLike]:
    lo = schedule.t_min if t_min is None else t_min
    hi = schedule.t_max if t_max is None else t_max
    lo_c, hi_c = concrete(lo), concrete(hi)
    if lo_c is not None and hi_c is not None and not lo_c < hi_c:
        raise ValueError(f"need `t_min` < `t_max`, got t_min={lo}, t_max={hi}.")
    return lo, hi


def _check_time_sampling(time_sampling, schedule, t_min, t_max) -> None:
    if not isinstance(time_sampling, AbstractTimeSampler):
        raise TypeError(
            "`time_sampling` must be an AbstractTimeSampler (UniformTimes(), LogSNRTimes() or "
            f"StratifiedTimes()), got {time_sampling!r}."
        )
    time_sampling.check_range(schedule, t_min, t_max)


def _data_batch(batch, owner: str) -> Array:
    if not isinstance(batch, (jax.Array, np.ndarray)):
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


def _noised_batch(loss, model, batch, key, owner: str):
    """The data batch x0, times t ~ `loss.time_sampling` with their importance weights iw,
    noise eps ~ N(0, I), the noised x_t = alpha_t x0 + sigma_t eps (one t per example) and
    the model's outputs at (t, x_t)."""
    x0 = _data_batch(batch, owner)
    if key is None:
        raise TypeError(f"{owner} draws times and noise and needs `key` (a jax.random.key).")
    n = x0.shape[0]
    k_t, k_eps = jax.random.split(key)
    sch = loss.schedule
    t, iw = loss.time_sampling.sample(k_t, n, sch, loss.t_min, loss.t_max, x0.dtype)
    eps = jax.random.normal(k_eps, x0.shape, x0.dtype)
    shape = (n,) + (1,) * (x0.ndim - 1)
    x_t = sch.alpha(t).reshape(shape) * x0 + sch.sigma(t).reshape(shape) * eps
    out = jax.vmap(model)(t, x_t)
    if jnp.shape(out) != jnp.shape(x_t):
        raise ValueError(
            f"{owner}: the model returned shape {tuple(jnp.shape(out))} for x of shape "
            f"{tuple(jnp.shape(x_t))}; it must return an array shaped like x."
        )
    return x0, t, iw, eps, x_t, out


_EPS = EpsPrediction()
_UNIFORM_WEIGHTING = UniformWeighting()
_UNIFORM_TIMES = UniformTimes()


class DenoisingScoreMatching(AbstractLoss):
    r"""Denoising score matching with any target, weighting and law of the training times
    (see the module docstring for the objective and references).

    Arguments:
        schedule: the noise schedule (alpha_t, sigma_t) the model is trained for.
        parameterization: what the model outputs (default `EpsPrediction()`; converted
            exactly to the target).
        target: the regressed quantity, an `AbstractParameterization` (default: the
            model's own parameterisation).
        weighting: an `AbstractWeighting` (default `UniformWeighting()`).
        time_sampling: an `AbstractTimeSampler` (default `UniformTimes()`).
        t_min, t_max: the training time range (default: the schedule's).

    `aux` has `loss` and `mse_eps`, the unweighted eps-space mean squared error (comparable
    across weightings and targets).
    """

    schedule: AbstractSchedule
    parameterization: AbstractParameterization
    target: AbstractParameterization
    weighting: AbstractWeighting
    time_sampling: AbstractTimeSampler
    t_min: RealLike
    t_max: RealLike

    def __init__(
        self,
        schedule: AbstractSchedule,
        parameterization: AbstractParameterization = _EPS,
        target: AbstractParameterization | None = None,
        weighting: AbstractWeighting = _UNIFORM_WEIGHTING,
        *,
        time_sampling: AbstractTimeSampler = _UNIFORM_TIMES,
        t_min: RealLike | None = None,
        t_max: RealLike | None = None,
    ):
        check_schedule(schedule)
        check_parameterization(parameterization)
        target = parameterization if target is None else check_parameterization(target, "target")
        if not isinstance(weighting, AbstractWeighting):
            raise TypeError(
                "`weighting` must be an AbstractWeighting (UniformWeighting(), SNRWeighting(), "
                f"MinSNRWeighting(gamma) or LikelihoodWeighting()), got {weighting!r}."
            )
        self.schedule = schedule
        self.parameterization = parameterization
        self.target = target
        self.weighting = weighting
        self.t_min, self.t_max = _time_range(schedule, t_min, t_max)
        _check_time_sampling(time_sampling, schedule, self.t_min, self.t_max)
        self.time_sampling = time_sampling

    def target_factor(self, t: Float[Array, "*t"]) -> Float[Array, "*t"]:
        """c_F(t) = (F-space error / eps-space error)^2 at fixed (t, x) for the target F."""
        return target_scale(self.target, t, self.schedule) ** 2

    def weight(self, t: Float[Array, "*t"]) -> Float[Array, "*t"]:
        """w(t), the weight on the squared target-space error at time t."""
        return self.weighting.weight(t, self.schedule, self.target_factor(t))

    def __call__(
        self, model: Callable, batch: PyTree, *, key: Key | None = None
    ) -> tuple[Float[Array, ""], dict[str, Array]]:
        owner = "DenoisingScoreMatching"
        x0, t, iw, eps, x_t, out = _noised_batch(self, model, batch, key, owner)
        sch = self.schedule

        def errors(out1, x1, t1, x01, eps1):
            x0_hat, eps_hat = self.parameterization.to_x0_eps(out1, x1, t1, sch)
            pred = self.target.from_x0_eps(x0_hat, eps_hat, t1, sch)
            true = self.target.from_x0_eps(x01, eps1, t1, sch)
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
    with `Denoiser(model, schedule, FlowPrediction())` (Euler / Heun, or any sampler on a
    range with finite lambda).

    Arguments:
        schedule: the interpolant (default `RectifiedFlow()`).
        t_min, t_max: the training time range (default [0, 1] for the rectified flow,
            else the schedule's).
        time_sampling: an `AbstractTimeSampler` (default `UniformTimes()`; `LogSNRTimes`
            needs a range with finite lambda at both ends, so not [0, 1]).
    """

    schedule: AbstractSchedule
    t_min: RealLike
    t_max: RealLike
    time_sampling: AbstractTimeSampler

    def __init__(
        self,
        schedule: AbstractSchedule | None = None,
        *,
        t_min: RealLike | None = None,
        t_max: RealLike | None = None,
        time_sampling: AbstractTimeSampler = _UNIFORM_TIMES,
    ):
        if schedule is None:
            schedule = RectifiedFlow()
        check_schedule(schedule)
        if isinstance(schedule, RectifiedFlow):
            t_min = 0.0 if t_min is None else t_min
            t_max = 1.0 if t_max is None else t_max
        self.schedule = schedule
        self.t_min, self.t_max = _time_range(schedule, t_min, t_max)
        _check_time_sampling(time_sampling, schedule, self.t_min, self.t_max)
        self.time_sampling = time_sampling

    def __call__(
        self, model: Callable, batch: PyTree, *, key: Key | None = None
    ) -> tuple[Float[Array, ""], dict[str, Array]]:
        x0, t, iw, eps, _, out = _noised_batch(self, model, batch, key, "FlowMatching")
        sch = self.schedule
        shape = (x0.shape[0],) + (1,) * (x0.ndim - 1)
        if isinstance(sch, RectifiedFlow):
            # alpha' = -1, sigma' = 1 exactly; the generic derivative through log sigma is
            # 0 * inf at t = 0.
            u = eps - x0
        else:
            da, ds = sch.d_alpha(t).reshape(shape), sch.d_sigma(t).reshape(shape)
            u = da * x0 + ds * eps
        err = jnp.mean((out - u) ** 2, axis=tuple(range(1, x0.ndim)))
        value = jnp.mean(iw * err)
        return value, {"loss": value}
