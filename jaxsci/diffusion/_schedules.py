r"""Noise schedules: VP (linear beta, cosine), sub-VP, VE, EDM/Karras and the rectified flow.

All give log alpha_t and log sigma_t in closed form and a closed-form inverse t(lambda);
the generic safeguarded-Newton inverse `newton_t_from_lambda` remains for user schedules.
Stable forms used throughout: for VP schedules sigma^2 = 1 - alpha^2, so
lambda = log alpha - log(-expm1(2 log alpha)) / 2 and, inversely,
log alpha = -softplus(-2 lambda) / 2.
"""

import math

import equinox as eqx
import jax.numpy as jnp
import numpy as np

from .._checks import check_finite, check_range, concrete
from ._base import AbstractSchedule, RealLike, TimeArray, Times


def _number(value: RealLike) -> RealLike:
    """A Python int as a float, anything else as given: the fields are Python scalars that
    JAX parses in every jitted op, and a Python int beyond int32 is an OverflowError there
    (`t_max = 2**40`). An int beyond float64 stays an int, which the checks refuse by name."""
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            return float(value)
        except OverflowError:
            return value
    return value


def _field(default: float):
    """A scalar field with `_number` as converter."""
    return eqx.field(default=default, converter=_number)


def _numbers(**values) -> bool:
    """Whether every value is concrete (checks on traced values are skipped); a concrete
    value that is not a finite real number is a TypeError/ValueError naming it."""
    for name, value in values.items():
        check_finite(name, value)
    return all(concrete(v) is not None for v in values.values())


def _check_range(name: str, t_min, t_max, lower: float, upper: float | None, open_lower: bool):
    if not _numbers(t_min=t_min, t_max=t_max):
        return
    if not t_min < t_max:
        raise ValueError(f"{name}: need t_min < t_max, got t_min={t_min}, t_max={t_max}.")
    t_lo = float(np.asarray(t_min, dtype=jnp.result_type(float)))  # 1e-300 is 0 in float32
    if (open_lower and t_lo <= lower) or (not open_lower and t_lo < lower):
        op = ">" if open_lower else ">="
        raise ValueError(f"{name}: t_min must be {op} {lower} (finite lambda), got {t_min}.")
    if upper is not None and t_max > upper:
        raise ValueError(f"{name}: t_max must be <= {upper}, got {t_max}.")


def _check_linear_beta(name: str, beta_min, beta_max, t_min, t_max) -> None:
    """The checks of a linear-beta schedule: 0 <= beta_min <= beta_max, beta_max > 0, and
    0 < t_min < t_max."""
    if _numbers(beta_min=beta_min, beta_max=beta_max) and not (
        0 <= beta_min <= beta_max and beta_max > 0
    ):
        raise ValueError(
            f"{name}: need 0 <= beta_min <= beta_max, beta_max > 0; got "
            f"beta_min={beta_min}, beta_max={beta_max}."
        )
    _check_range(name, t_min, t_max, 0.0, None, open_lower=True)


def _magnitude(log_x: float) -> str:
    """exp(log_x) as text, also where it overflows a Python float."""
    return f"{math.exp(log_x):.3g}" if log_x < 700 else f"10^{log_x / math.log(10):.4g}"


def _check_noise_levels(
    what: str, log_lo: float, log_hi: float, log_g2_factor: float, lower: str, upper: str
) -> None:
    """The noise levels sigma_t of a schedule whose log sigma_t rises from `log_lo` at t_min
    to `log_hi` at t_max must be usable in the default float dtype, as samplers see them:
    sigma(t_min) a positive normal number (a 0 there divides the eps <-> x0 conversions),
    and the variance sigma^2 and g^2 = exp(`log_g2_factor`) sigma^2 finite at t_max (the
    prior's and the SDE's scale). `what` names the arguments; `lower` / `upper` say what to
    change."""
    dtype = jnp.result_type(float)
    info = jnp.finfo(dtype)
    if log_lo < math.log(float(info.tiny)):
        raise ValueError(
            f"{what} is {_magnitude(log_lo)} at `t_min`, below the smallest normal {dtype} "
            f"({float(info.tiny):.3g}): sigma(t_min) would be 0; {lower}."
        )
    log_limit = 0.5 * (math.log(float(info.max)) - max(log_g2_factor, 0.0))
    if log_hi > log_limit:
        raise ValueError(
            f"{what} reaches {_magnitude(log_hi)} at `t_max`, whose square, the noise "
            f"variance, overflows {dtype}: need sigma(t_max) <= "
            f"{_magnitude(log_limit)}; {upper}."
        )


def _vp_log_sigma(log_alpha):
    return 0.5 * jnp.log(-jnp.expm1(2.0 * log_alpha))


def _vp_log_alpha_from_lambda(lam):
    return -0.5 * jnp.logaddexp(0.0, -2.0 * jnp.asarray(lam))


def _linear_beta_log_alpha(t, beta_min, beta_max):
    """log alpha_t = -int_0^t beta(s) ds / 2 for beta(s) = beta_min + s (beta_max - beta_min)."""
    t = jnp.asarray(t)
    return -0.25 * t**2 * (beta_max - beta_min) - 0.5 * t * beta_min


def _linear_beta_t_from_log_alpha(log_alpha, beta_min, beta_max):
    """Root of (b1 - b0) t^2 / 4 + b0 t / 2 + log alpha = 0 in the cancellation-free form
    t = -4 log alpha / (b0 + sqrt(b0^2 - 4 (b1 - b0) log alpha)) (valid for b1 = b0 too)."""
    disc = beta_min**2 - 4.0 * (beta_max - beta_min) * log_alpha
    return -4.0 * log_alpha / (beta_min + jnp.sqrt(disc))


class VPLinear(AbstractSchedule):
    r"""Variance-preserving SDE with linear beta (Ho et al. 2020; Song et al. 2021, VP SDE).

    beta(t) = beta_min + t (beta_max - beta_min), alpha_t = exp(-int_0^t beta / 2),
    sigma_t = sqrt(1 - alpha_t^2), t in [t_min, t_max]. f = -beta/2, g^2 = beta.
    Defaults are the DDPM / score-SDE values beta in [0.1, 20] on t in [1e-3, 1]
    (t_min = 1e-3 is the usual sampling end of Song et al. 2021). Inverse: the quadratic
    for t given log alpha(lambda).
    """

    beta_min: RealLike = _field(0.1)
    beta_max: RealLike = _field(20.0)
    t_min: RealLike = _field(1e-3)
    t_max: RealLike = _field(1.0)

    def __check_init__(self):
        _check_linear_beta("VPLinear", self.beta_min, self.beta_max, self.t_min, self.t_max)

    def log_alpha(self, t: Times) -> TimeArray:
        return _linear_beta_log_alpha(t, self.beta_min, self.beta_max)

    def log_sigma(self, t: Times) -> TimeArray:
        return _vp_log_sigma(self.log_alpha(t))

    def t_from_lambda(self, lam: Times) -> TimeArray:
        log_alpha = _vp_log_alpha_from_lambda(lam)
        return _linear_beta_t_from_log_alpha(log_alpha, self.beta_min, self.beta_max)

    def beta(self, t: Times) -> TimeArray:
        """beta(t) = g(t)^2 = -2 f(t)."""
        return self.beta_min + jnp.asarray(t) * (self.beta_max - self.beta_min)


class VPCosine(AbstractSchedule):
    r"""Variance-preserving cosine schedule (Nichol & Dhariwal 2021, eq. 17).

    alpha_bar(t) = alpha_t^2 = f(t)/f(0), f(t) = cos^2((t + s)/(1 + s) * pi/2),
    sigma_t = sqrt(1 - alpha_t^2). s = 0.008 is the paper's offset. alpha vanishes at t = 1
    (lambda -> -inf), so the default t_max = 0.9946 is the value Lu et al. (2022,
    appendix D.1) use to keep lambda_T finite (the paper's beta <= 0.999 clipping).

    Computed as alpha_t = sin((1 - t) c) / sin(c), c = pi / (2 (1 + s)) (the same function:
    cos(pi/2 - x) = sin x), whose small arguments near t = 1 or for a large s keep full
    precision where the cosine of an argument rounded to pi/2 does not (in float32 the
    cosine form gives NaN at t_max from s ~ 1e5). Inverse: t = 1 - arcsin(alpha sin c) / c.
    `s` must be in (0, 1e6]: the offset is of order 1e-2, and from 1e6 on the schedule is
    its s -> inf limit alpha_t = 1 - t to a relative 1e-12 (the difference is O(c^2)).
    """

    s: RealLike = _field(0.008)
    t_min: RealLike = _field(1e-3)
    t_max: RealLike = _field(0.9946)

    def __check_init__(self):
        check_range("s", self.s, 0.0, 1e6, lower_open=True)
        _check_range("VPCosine", self.t_min, self.t_max, 0.0, 1.0, open_lower=True)

    def _c(self):
        return math.pi / (2.0 * (1.0 + self.s))

    def log_alpha(self, t: Times) -> TimeArray:
        c = self._c()
        return jnp.log(jnp.sin((1.0 - jnp.asarray(t)) * c)) - math.log(math.sin(c))

    def log_sigma(self, t: Times) -> TimeArray:
        return _vp_log_sigma(self.log_alpha(t))

    def t_from_lambda(self, lam: Times) -> TimeArray:
        c = self._c()
        alpha = jnp.exp(_vp_log_alpha_from_lambda(lam))
        return 1.0 - jnp.arcsin(alpha * math.sin(c)) / c


class SubVP(AbstractSchedule):
    r"""Sub-VP SDE (Song et al. 2021, eq. 29) with linear beta.

    alpha_t as for `VPLinear`, sigma_t = 1 - alpha_t^2 (variance (1 - alpha^2)^2, below
    the VP variance). g^2 = beta(t)(1 - exp(-2 int_0^t beta)), which is the general
    -2 sigma^2 lambda'. Inverse: alpha/(1 - alpha^2) = e^lambda gives
    alpha = 2 / (e^{-lambda} + sqrt(e^{-2 lambda} + 4)), then the VP quadratic in t.
    """

    beta_min: RealLike = _field(0.1)
    beta_max: RealLike = _field(20.0)
    t_min: RealLike = _field(1e-3)
    t_max: RealLike = _field(1.0)

    def __check_init__(self):
        _check_linear_beta("SubVP", self.beta_min, self.beta_max, self.t_min, self.t_max)

    def log_alpha(self, t: Times) -> TimeArray:
        return _linear_beta_log_alpha(t, self.beta_min, self.beta_max)

    def log_sigma(self, t: Times) -> TimeArray:
        return jnp.log(-jnp.expm1(2.0 * self.log_alpha(t)))

    def t_from_lambda(self, lam: Times) -> TimeArray:
        lam = jnp.asarray(lam)
        # log alpha = log 2 - log(e^{-lam} + sqrt(e^{-2 lam} + 4)), written with logaddexp
        # so that neither large nor small lambda overflows.
        log_root = 0.5 * jnp.logaddexp(-2.0 * lam, jnp.log(4.0))
        log_alpha = jnp.log(2.0) - jnp.logaddexp(-lam, log_root)
        return _linear_beta_t_from_log_alpha(log_alpha, self.beta_min, self.beta_max)


class VE(AbstractSchedule):
    r"""Variance-exploding SDE (Song & Ermon 2019; Song et al. 2021, VE SDE).

    alpha_t = 1, sigma_t = sigma_min (sigma_max / sigma_min)^t on t in [0, 1]; f = 0,
    g^2 = d sigma^2/dt = 2 sigma_t^2 log(sigma_max/sigma_min). Defaults sigma in
    [0.01, 50] are the score-SDE CIFAR-10 values. lambda = -log sigma_t, inverse
    t = (-lambda - log sigma_min) / log(sigma_max / sigma_min). t_max > 1 extrapolates past
    sigma_max; the arguments must keep sigma(t_min) a normal float and sigma(t_max)^2 and g^2
    finite in the default float dtype (float32: sigma(t_max) <= 4.5e18 at the defaults'
    rate, i.e. t_max <= 5.58).
    """

    sigma_min: RealLike = _field(0.01)
    sigma_max: RealLike = _field(50.0)
    t_min: RealLike = _field(0.0)
    t_max: RealLike = _field(1.0)

    def __check_init__(self):
        if _numbers(sigma_min=self.sigma_min, sigma_max=self.sigma_max):
            if not 0 < self.sigma_min < self.sigma_max:
                raise ValueError(
                    f"VE: need 0 < sigma_min < sigma_max, got sigma_min={self.sigma_min}, "
                    f"sigma_max={self.sigma_max}."
                )
        _check_range("VE", self.t_min, self.t_max, 0.0, None, open_lower=False)
        if _numbers(
            sigma_min=self.sigma_min, sigma_max=self.sigma_max, t_min=self.t_min, t_max=self.t_max
        ):
            rate = math.log(self.sigma_max) - math.log(self.sigma_min)
            log_lo = math.log(self.sigma_min) + float(self.t_min) * rate
            log_hi = math.log(self.sigma_min) + float(self.t_max) * rate
            _check_noise_levels(
                "VE: sigma_t = `sigma_min` (`sigma_max` / `sigma_min`)^t",
                log_lo,
                log_hi,
                log_g2_factor=math.log(2.0 * rate),
                lower="raise `sigma_min` or `t_min`",
                upper="lower `sigma_max` or `t_max` (sigma_max is sigma_t at t = 1)",
            )

    def log_alpha(self, t: Times) -> TimeArray:
        return jnp.zeros_like(jnp.asarray(t, dtype=jnp.result_type(float)))

    def log_sigma(self, t: Times) -> TimeArray:
        rate = math.log(self.sigma_max) - math.log(self.sigma_min)
        return math.log(self.sigma_min) + jnp.asarray(t) * rate

    def t_from_lambda(self, lam: Times) -> TimeArray:
        rate = math.log(self.sigma_max) - math.log(self.sigma_min)
        return (-jnp.asarray(lam) - math.log(self.sigma_min)) / rate


class EDM(AbstractSchedule):
    r"""The EDM / Karras et al. (2022) process: alpha_t = 1, sigma_t = t.

    Time is the noise level, t in [sigma_min, sigma_max] = [0.002, 80] (Karras et al. 2022,
    table 1). The probability-flow ODE is dx/dt = (x - x0(x, t)) / t; g^2 = 2t.
    lambda = -log t, inverse t = e^{-lambda}.
    """

    t_min: RealLike = _field(0.002)
    t_max: RealLike = _field(80.0)

    def __check_init__(self):
        _check_range("EDM", self.t_min, self.t_max, 0.0, None, open_lower=True)
        if _numbers(t_min=self.t_min, t_max=self.t_max):
            _check_noise_levels(
                "EDM: sigma_t = t",
                math.log(self.t_min),
                math.log(self.t_max),
                log_g2_factor=0.0,
                lower="raise `t_min`",
                upper="lower `t_max`",
            )

    def log_alpha(self, t: Times) -> TimeArray:
        return jnp.zeros_like(jnp.asarray(t, dtype=jnp.result_type(float)))

    def log_sigma(self, t: Times) -> TimeArray:
        return jnp.log(jnp.asarray(t, dtype=jnp.result_type(float)))

    def t_from_lambda(self, lam: Times) -> TimeArray:
        return jnp.exp(-jnp.asarray(lam))


class RectifiedFlow(AbstractSchedule):
    r"""The flow-matching / rectified-flow interpolant x_t = (1 - t) x_0 + t eps
    (Liu et al. 2023; Lipman et al. 2023, optimal-transport path with sigma_min = 0).

    alpha_t = 1 - t, sigma_t = t; the flow velocity is u = eps - x_0. lambda =
    log((1 - t)/t), inverse t = 1 / (1 + e^lambda) (the logistic function of -lambda).
    t = 0 and t = 1 have infinite lambda, so exponential-integrator samplers need
    0 < t_min < t_max < 1; defaults [1e-3, 1 - 1e-3]. Euler/Heun on a time grid may use
    t_max = 1.
    """

    t_min: RealLike = _field(1e-3)
    t_max: RealLike = _field(1.0 - 1e-3)

    def __check_init__(self):
        _check_range("RectifiedFlow", self.t_min, self.t_max, 0.0, 1.0, open_lower=True)

    def log_alpha(self, t: Times) -> TimeArray:
        return jnp.log1p(-jnp.asarray(t, dtype=jnp.result_type(float)))

    def log_sigma(self, t: Times) -> TimeArray:
        return jnp.log(jnp.asarray(t, dtype=jnp.result_type(float)))

    def t_from_lambda(self, lam: Times) -> TimeArray:
        return 1.0 / (1.0 + jnp.exp(jnp.asarray(lam)))
