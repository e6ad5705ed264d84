r"""The discrete-time DDPM schedule: integer training steps, betas, and diffusers' timesteps.

A DDPM (Ho et al. 2020) is trained on integer steps n = 0 .. N-1 with noise levels
abar_n = prod_{k <= n} (1 - beta_k): x_n = sqrt(abar_n) x_0 + sqrt(1 - abar_n) eps. A
pretrained noise network eps(x, n) is indexed by n. `DiscreteDDPM` is that schedule as an
`AbstractSchedule` whose time *is* the training step: alpha_n^2 = abar_n and
sigma_n^2 = 1 - abar_n at every integer n (to rounding), so the network plugs into
`sample` directly, with a grid of integer steps (`ddpm_grid`) and no lambda mapping by
hand. Between integer steps the half log-SNR lambda = log(alpha/sigma) is interpolated
linearly in n, which gives the exact inverse t(lambda) the samplers need (alpha^2 =
sigmoid(2 lambda) for a variance-preserving schedule). Samplers that evaluate the model
only on grid times (DDIM, the multistep DPM-Solver++/DEIS/UniPC) call it at integer steps
only; singlestep DPM-Solver-2/3 and DPM-Solver++(2S) also evaluate between them.

Betas: `linear_betas` (DDPM's 1e-4 .. 0.02 over 1000 steps; diffusers' "linear"),
`scaled_linear_betas` (Stable Diffusion's; diffusers' "scaled_linear") and `cosine_betas`
(Nichol & Dhariwal 2021; diffusers' "squaredcos_cap_v2"). Timestep spacings (Lin et al.
2024, "Common diffusion noise schedules and sample steps are flawed", Table 2, as diffusers
implements them): `Trailing`, `Leading`, `Linspace`; where diffusers' DDIMScheduler and
DPMSolverMultistepScheduler place them differently ("leading", "linspace"), the
`include_zero` field picks one (see `ddpm_grid` for the final step and for which diffusers
trajectory a sampler on the grid follows).
"""

import abc
import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._checks import check_int
from .._custom_types import Array, ArrayLike, Float, Int
from ._base import AbstractSchedule, TimeArray, Times


def linear_betas(
    n_train: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02
) -> Float[np.ndarray, " n"]:
    """DDPM's betas (Ho et al. 2020, section 4): linear from `beta_start` to `beta_end`."""
    check_int("n_train", n_train, 2)
    return np.linspace(beta_start, beta_end, n_train, dtype=np.float64)


def scaled_linear_betas(
    n_train: int = 1000, beta_start: float = 0.00085, beta_end: float = 0.012
) -> Float[np.ndarray, " n"]:
    """Latent diffusion's betas (diffusers' "scaled_linear"): linear in sqrt(beta) from
    sqrt(`beta_start`) to sqrt(`beta_end`), squared."""
    check_int("n_train", n_train, 2)
    return np.linspace(math.sqrt(beta_start), math.sqrt(beta_end), n_train) ** 2


def cosine_betas(n_train: int = 1000, max_beta: float = 0.999) -> Float[np.ndarray, " n"]:
    """The cosine schedule's betas (Nichol & Dhariwal 2021, eq. 17; diffusers'
    "squaredcos_cap_v2"): beta_n = min(1 - f((n+1)/N)/f(n/N), `max_beta`) with
    f(u) = cos((u + 0.008)/1.008 pi/2)^2; the cap keeps the last step finite."""
    check_int("n_train", n_train, 2)
    u = np.arange(n_train + 1, dtype=np.float64) / n_train
    f = np.cos((u + 0.008) / 1.008 * np.pi / 2) ** 2
    return np.minimum(1.0 - f[1:] / f[:-1], max_beta)


class DiscreteDDPM(AbstractSchedule):
    """The discrete DDPM schedule of `betas` (one per training step), time = training step.

    `alpha(n)^2 = abar_n = prod_{k <= n} (1 - beta_k)` at integer n in [0, N-1] (computed
    in float64, stored in the default float dtype); lambda is linear in n between integer
    steps (see the module docstring). `t_min = 0`, `t_max = N - 1`.

    Arguments:
        betas: the N betas in (0, 1), e.g. `linear_betas()` (the default: DDPM's 1000
            linear betas), `scaled_linear_betas()`, `cosine_betas()`. A concrete array: the
            cumulative products are precomputed here.
    """

    lam_n: Float[Array, " n"]
    t_min: float
    t_max: float

    def __init__(self, betas: Float[ArrayLike, " n"] | None = None):
        b = linear_betas() if betas is None else np.asarray(betas, dtype=np.float64)
        if b.ndim != 1 or b.shape[0] < 2:
            raise ValueError(
                f"`betas` must be a 1-D array of at least 2 values, got shape {b.shape}."
            )
        if not (np.all(np.isfinite(b)) and np.all(b > 0) and np.all(b < 1)):
            raise ValueError("`betas` must lie in (0, 1).")
        log_abar = np.cumsum(np.log1p(-b))
        lam = 0.5 * (log_abar - np.log(-np.expm1(log_abar)))
        self.lam_n = jnp.asarray(lam)
        self.t_min = 0.0
        self.t_max = float(b.shape[0] - 1)

    def alphas_cumprod(self) -> Float[Array, " n"]:
        """abar_n at every training step (DDPM's alpha-bar, diffusers' `alphas_cumprod`)."""
        return jax.nn.sigmoid(2.0 * self.lam_n)

    def lambda_(self, t: Times) -> TimeArray:
        t = jnp.asarray(t)
        steps = jnp.arange(self.lam_n.shape[0], dtype=self.lam_n.dtype)
        return jnp.interp(t, steps, self.lam_n).astype(jnp.result_type(t, self.lam_n))

    def log_alpha(self, t: Times) -> TimeArray:
        return -0.5 * jax.nn.softplus(-2.0 * self.lambda_(t))

    def log_sigma(self, t: Times) -> TimeArray:
        return -0.5 * jax.nn.softplus(2.0 * self.lambda_(t))

    def t_from_lambda(self, lam: Times) -> TimeArray:
        lam = jnp.asarray(lam)
        steps = jnp.arange(self.lam_n.shape[0], dtype=self.lam_n.dtype)
        # lambda decreases with n: interpolate on the reversed (increasing) table.
        t = jnp.interp(lam, self.lam_n[::-1], steps[::-1])
        return t.astype(jnp.result_type(lam, self.lam_n))


class AbstractTimestepSpacing(eqx.Module):
    """How `n_steps` integer training steps are chosen among `n_train` (diffusers'
    `timestep_spacing`)."""

    @abc.abstractmethod
    def __call__(self, n_train: int, n_steps: int) -> Int[np.ndarray, " n_steps"]:
        """The decreasing training steps at which the model is evaluated."""


def _check_include_zero(value: bool) -> None:
    if not isinstance(value, bool):
        raise TypeError(f"`include_zero` must be True or False, got {value!r}.")


class Trailing(AbstractTimestepSpacing):
    """round(N - k N/n) - 1 for k = 0 .. n-1: from the last training step N-1 down in steps
    of N/n (Lin et al. 2024, "trailing"), e.g. 999, 899, ..., 99 for N = 1000, n = 10.

    diffusers' DDIMScheduler and its DPM-Solver, UniPC and DEIS multistep schedulers (at
    DPM-Solver's default `lambda_min_clipped`) give these same timesteps for every n.
    They compute them with NumPy's `arange(N, 0, -N/n)`, whose float step makes some n
    (62 of n = 1 .. 1000: 61, 103, 121, 122, ...) produce one point too many, rounded to
    0, i.e. a spurious last timestep -1 (DDIMScheduler then reads `alphas_cumprod[-1]`,
    the noise end): here the same values are computed and only the first n are kept.
    """

    def __call__(self, n_train, n_steps):
        # the same floats as diffusers' arange (so the same round-half-to-even ties)
        points = np.arange(n_train, 0, -n_train / n_steps)[:n_steps]
        return np.round(points).astype(np.int64) - 1


class Leading(AbstractTimestepSpacing):
    """k (N // m) + `offset` for k = m-1 .. 0 (DDPM/DDIM's original spacing, "leading"),
    keeping the n largest.

    `include_zero=True` (default; diffusers' DDIMScheduler): m = n, so the timesteps end
    at step 0, e.g. 900, 800, ..., 0 for N = 1000, n = 10; `ddpm_grid` then has n - 1
    steps (DDIMScheduler's extra last step from 0 to abar_0 is the identity).
    `include_zero=False` (diffusers' DPMSolverMultistepScheduler; its UniPC and DEIS
    multistep schedulers place them the same way): m = n + 1 and step 0 is left out, e.g.
    900, 810, ..., 90; `ddpm_grid` appends step 0 and has n steps.
    """

    offset: int = eqx.field(default=0, static=True)
    include_zero: bool = eqx.field(default=True, static=True)

    def __check_init__(self):
        check_int("offset", self.offset, 0)
        _check_include_zero(self.include_zero)

    def __call__(self, n_train, n_steps):
        m = n_steps if self.include_zero else n_steps + 1
        points = (np.arange(m) * (n_train // m))[::-1][:n_steps]
        return points.astype(np.int64) + self.offset


class Linspace(AbstractTimestepSpacing):
    """round(linspace(0, N - 1, m)), reversed, keeping the n largest ("linspace").

    `include_zero=True` (default; diffusers' DDIMScheduler): m = n, e.g. 999, 888, ..., 0
    for N = 1000, n = 10; `ddpm_grid` then has n - 1 steps. `include_zero=False`
    (diffusers' DPMSolverMultistepScheduler; its UniPC and DEIS multistep schedulers place
    them the same way): m = n + 1 and step 0 is left out, e.g. 999, 899, ..., 100;
    `ddpm_grid` appends step 0 and has n steps.
    """

    include_zero: bool = eqx.field(default=True, static=True)

    def __check_init__(self):
        _check_include_zero(self.include_zero)

    def __call__(self, n_train, n_steps):
        m = n_steps if self.include_zero else n_steps + 1
        points = np.linspace(0, n_train - 1, m).round()[::-1][:n_steps]
        return points.astype(np.int64)


_TRAILING = Trailing()


def ddpm_timesteps(
    schedule: DiscreteDDPM, n_steps: int, spacing: AbstractTimestepSpacing = _TRAILING
) -> Int[np.ndarray, " n_steps"]:
    """The `n_steps` integer training steps at which diffusers' schedulers with this
    `timestep_spacing` evaluate the model (its `scheduler.timesteps`)."""
    check_int("n_steps", n_steps, 1)
    n_train = int(schedule.t_max) + 1
    if n_steps > n_train:
        raise ValueError(f"`n_steps` must be <= the {n_train} training steps, got {n_steps}.")
    if not isinstance(spacing, AbstractTimestepSpacing):
        raise TypeError(
            "`spacing` must be an AbstractTimestepSpacing such as jaxsci.diffusion.Trailing(); "
            f"got {spacing!r}."
        )
    return spacing(n_train, n_steps)


def ddpm_grid(
    schedule: DiscreteDDPM, n_steps: int, spacing: AbstractTimestepSpacing = _TRAILING
) -> Float[Array, " n1"]:
    """A sampling grid of integer training steps for `sample`: `ddpm_timesteps` followed by
    step 0, the data end of the training schedule (abar_0 = 1 - beta_0). Times are floats
    with integer values (`t.astype(int)` indexes a pretrained network's embedding).

    When the timesteps already end at 0 (`Leading()`, `Linspace()`), nothing is appended
    and the grid has `n_steps - 1` steps (diffusers' last step from 0 to abar_0 is the
    identity there); otherwise (`Trailing()`, `include_zero=False`) it has `n_steps`.

    **The final step, as diffusers names it.** Ending at step 0 is DDIMScheduler's
    `set_alpha_to_one=False` and DPMSolverMultistepScheduler's
    `final_sigmas_type="sigma_min"`. Their "alpha = 1" ends (`set_alpha_to_one=True`,
    `final_sigmas_type="zero"`) step from the last timestep to sigma = 0, i.e. return the
    x0 prediction there: use `ddpm_timesteps(...)` itself as the grid with
    `sample(..., denoise_final=True)` (the schedule has no time with alpha = 1). That
    x0 prediction is diffusers' (first-order) final step, so for its DPM-Solver++(2M)
    the grid's own last step keeps order 2: `lower_order_final=False`.

    **Which diffusers trajectory a sampler on this grid follows.** Every step goes from one
    timestep to the next, as DPMSolverMultistepScheduler does (DDIM is its
    `solver_order=1`; DPM-Solver++(2M) with `lower_order_final_ratio=math.inf` is its
    `solver_order=2`, `algorithm_type="dpmsolver++"`). DDIMScheduler instead steps from
    timestep t to t - N // n: the next timestep for "leading" at every n and for
    "trailing" when n divides N, but not otherwise (e.g. 999 -> 857 while its next
    timestep is 856 at n = 7; "linspace" at every 1 < n < N), where its state is then
    used as if it were at the next timestep. There `DDIM()` on this grid follows
    DPMSolverMultistepScheduler(solver_order=1), not DDIMScheduler.
    """
    steps = ddpm_timesteps(schedule, n_steps, spacing)
    if steps[-1] != 0:
        steps = np.concatenate([steps, [0]])
    if np.any(np.diff(steps) >= 0):
        raise ValueError(f"`n_steps`={n_steps} gives repeated training steps {steps.tolist()}.")
    return jnp.asarray(steps.astype(np.float64), dtype=schedule.lam_n.dtype)
