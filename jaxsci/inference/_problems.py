"""Ready-made posteriors on the zoo's simulators, and the posteriordb data they are checked on.

- `lotka_volterra_model`: posteriordb's `hudson_lynx_hare-lotka_volterra` (Carpenter 2018,
  "Predator-prey population dynamics: the Lotka-Volterra model in Stan"), exactly as Stan states
  it, as a numpyro model whose ODE is `jaxsci.dynamics.LotkaVolterra` solved by `solve_ode`.
- `lorenz63_posterior`: Lorenz-63 (sigma, rho, beta) from noisy, sparse observations of a
  trajectory, as a `LogDensity` with log-normal priors.
"""

import functools
import json
from importlib import resources
from typing import Any

import diffrax
import jax.numpy as jnp
import numpy as np

from .._custom_types import Array, Float
from ..dynamics import Lorenz63, LotkaVolterra
from ._simulator import ODESolution, log_likelihood, observe, solve_ode
from ._target import LogDensity

POSTERIORDB_LV = "hudson_lynx_hare-lotka_volterra"
#: Stan's `ode_rk45` tolerances in the posteriordb model.
LV_RTOL, LV_ATOL = 1e-5, 1e-3
# Step budget per LV solve: ~40 steps at Stan's tolerances for posterior draws; a proposal
# that needs 25x more is in a stiff blow-up region and is rejected instead.
LV_MAX_STEPS = 1000


def _read(name: str) -> Any:
    return json.loads(resources.files("jaxsci.inference").joinpath("data", name).read_text())


def hudson_lynx_hare() -> dict[str, np.ndarray]:
    """The Hudson's Bay Company hare and lynx pelts 1900-1920, as posteriordb ships them.

    Returns:
        ts (20,) years after 1900; y_init (2,) the 1900 [hare, lynx] pelts (thousands), at t=0;
        y (20, 2) the 1901-1920 pelts.
    """
    raw = _read("hudson_lynx_hare.json")
    return {
        "ts": np.asarray(raw["ts"], dtype=float),
        "y_init": np.asarray(raw["y_init"], dtype=float),
        "y": np.asarray(raw["y"], dtype=float),
    }


def posteriordb_reference(name: str = POSTERIORDB_LV) -> dict[str, dict[str, float]]:
    """posteriordb's reference summary (mean, sd, q05, q50, q95 per parameter), plus the
    reference MCSE of the mean and bulk/tail ESS (`mcse_mean`, `ess_bulk`, `ess_tail`) computed
    from its reference draws with ArviZ (see `data/README.md`)."""
    if name != POSTERIORDB_LV:
        raise ValueError(f"`name` must be {POSTERIORDB_LV!r} (the one shipped), got {name!r}.")
    summary = _read(f"summary_{name}.json")
    extra = _read(f"reference_mcse_{name}.json")
    return {k: {**v, **extra[k]} for k, v in summary.items()}


def lv_solve(
    theta: Float[Array, "4"],
    z_init: Float[Array, "2"],
    ts: Float[Array, " T"],
    *,
    sensitivity: Any = "forward",
    rtol: float = LV_RTOL,
    atol: float = LV_ATOL,
    max_steps: int = LV_MAX_STEPS,
    solver: diffrax.AbstractSolver | None = None,
    dt0: float | None = None,
) -> ODESolution:
    """The Lotka-Volterra states at `ts` from z_init at t = 0, theta = (alpha, beta, gamma,
    delta): by default Dormand-Prince 5(4) at Stan's rk45 tolerances; with `dt0` and a
    fixed-step `solver` (e.g. `jaxsci.integrate.RK4()`), fixed steps of `dt0`."""
    # (the model's parameters are arrays; its constructor's defaults are annotated as floats)
    dynamics = LotkaVolterra(theta[0], theta[1], theta[2], theta[3])  # pyright: ignore[reportArgumentType]
    return solve_ode(
        dynamics,
        z_init,
        ts,
        t0=0.0,
        solver=solver,
        dt0=dt0,
        rtol=rtol,
        atol=atol,
        max_steps=max_steps,
        sensitivity=sensitivity,
    )


def lotka_volterra_model(
    ts: Float[Array, " N"],
    y_init: Float[Array, "2"] | None = None,
    y: Float[Array, "N 2"] | None = None,
    *,
    sensitivity: Any = "forward",
    rtol: float = LV_RTOL,
    atol: float = LV_ATOL,
    max_steps: int = LV_MAX_STEPS,
    solver: diffrax.AbstractSolver | None = None,
    dt0: float | None = None,
) -> None:
    """posteriordb `hudson_lynx_hare-lotka_volterra` as a numpyro model.

    theta[1], theta[3] ~ Normal(1, 0.5) truncated to > 0; theta[2], theta[4] ~ Normal(0.05,
    0.05) truncated to > 0; z_init[k] ~ LogNormal(log 10, 1); sigma[k] ~ LogNormal(-1, 1);
    y_init[k] ~ LogNormal(log z_init[k], sigma[k]); y[n, k] ~ LogNormal(log z(ts[n])[k],
    sigma[k]) with z the ODE solution from z_init at t = 0. Pass `y_init=None, y=None` to
    simulate the observations (posterior predictive).

    Arguments:
        ts: (N,) observation times after t = 0.
        y_init: (2,) observed initial pelts; y: (N, 2) observed pelts.
        sensitivity, rtol, atol, max_steps, solver, dt0: of the ODE solve (`solve_ode`).
            The default is posteriordb's: Dormand-Prince at rtol 1e-5, atol 1e-3 (Stan's
            rk45). A cheaper alternative of similar or better accuracy is classic RK4 with
            fixed steps, `solver=jaxsci.integrate.RK4(), dt0=0.25`: over posterior draws its
            log-likelihood is closer to a 1e-12-tolerance solve than Stan's tolerances are
            (benchmarks/bench_posterior_lv.py prints both errors).
    """
    import numpyro
    import numpyro.distributions as dist

    ts = jnp.asarray(ts)
    if ts.ndim != 1:
        raise ValueError(f"`ts` must be 1-D (N,), got shape {ts.shape}.")
    if y_init is not None and jnp.shape(y_init) != (2,):
        raise ValueError(f"`y_init` must have shape (2,), got {jnp.shape(y_init)}.")
    if y is not None and jnp.shape(y) != (ts.shape[0], 2):
        raise ValueError(f"`y` must have shape (N, 2) = {(ts.shape[0], 2)}, got {jnp.shape(y)}.")
    theta = numpyro.sample(
        "theta",
        dist.TruncatedNormal(
            loc=jnp.array([1.0, 0.05, 1.0, 0.05]),
            scale=jnp.array([0.5, 0.05, 0.5, 0.05]),
            low=0.0,
        ),
    )
    z_init = numpyro.sample("z_init", dist.LogNormal(jnp.log(10.0), 1.0).expand([2]))
    sigma = numpyro.sample("sigma", dist.LogNormal(-1.0, 1.0).expand([2]))
    sol = lv_solve(
        jnp.asarray(theta),
        jnp.asarray(z_init),
        ts,
        sensitivity=sensitivity,
        rtol=rtol,
        atol=atol,
        max_steps=max_steps,
        solver=solver,
        dt0=dt0,
    )
    numpyro.sample("y_init", dist.LogNormal(jnp.log(z_init), sigma), obs=y_init)
    observe("y", sol, lambda ys: dist.LogNormal(jnp.log(ys), sigma), obs=y)


#: Lorenz-63 parameter names, in `Lorenz63`'s order.
L63_PARAMS = ("sigma", "rho", "beta")


def _l63_logdensity(
    params,
    *,
    ts,
    y0,
    y_obs,
    observed,
    noise_std,
    prior_loc,
    prior_scale,
    rtol,
    atol,
    max_steps,
    sensitivity,
    solver,
    dt0,
):
    import numpyro.distributions as dist

    lp = 0.0
    for name, loc, scale in zip(L63_PARAMS, prior_loc, prior_scale, strict=True):
        lp += dist.LogNormal(jnp.log(loc), scale).log_prob(params[name])
    sol = solve_ode(
        Lorenz63(params["sigma"], params["rho"], params["beta"]),  # pyright: ignore[reportArgumentType]
        y0,
        ts,
        t0=0.0,
        rtol=rtol,
        atol=atol,
        max_steps=max_steps,
        sensitivity=sensitivity,
        solver=solver,
        dt0=dt0,
    )
    idx = jnp.asarray(observed)
    return lp + log_likelihood(sol, lambda ys: dist.Normal(ys[:, idx], noise_std), y_obs)


def lorenz63_posterior(
    ts: Float[Array, " T"],
    y0: Float[Array, "3"],
    y_obs: Float[Array, "T k"],
    *,
    observed: tuple[int, ...] = (0, 1, 2),
    noise_std: float = 1.0,
    prior_loc: tuple[float, float, float] = (10.0, 28.0, 8.0 / 3.0),
    prior_scale: tuple[float, float, float] = (0.5, 0.5, 0.5),
    rtol: float = 1e-6,
    atol: float = 1e-6,
    max_steps: int = 4096,
    sensitivity: Any = "forward",
    solver: diffrax.AbstractSolver | None = None,
    dt0: float | None = None,
) -> LogDensity:
    """Posterior of Lorenz-63's (sigma, rho, beta) given y_obs[t] ~ N(x(ts[t])[observed],
    noise_std^2 I), x solved from the known initial state y0 at t = 0.

    Priors: each parameter ~ LogNormal(log prior_loc, prior_scale) (independent, positive).
    The solve (`solve_ode`): Dormand-Prince at (rtol, atol) by default, or a fixed-step
    `solver` with step `dt0`; `sensitivity` as `solve_ode`.
    """
    ts = jnp.asarray(ts)
    y_obs = jnp.asarray(y_obs)
    observed = tuple(int(i) for i in observed)
    if not observed or any(not 0 <= i < 3 for i in observed) or len(set(observed)) != len(observed):
        raise ValueError(f"`observed` must be distinct indices in [0, 3), got {observed}.")
    if ts.ndim != 1:
        raise ValueError(f"`ts` must be 1-D, got shape {ts.shape}.")
    if y_obs.shape != (ts.shape[0], len(observed)):
        raise ValueError(
            f"`y_obs` has shape {y_obs.shape}, expected (len(ts), len(observed)) = "
            f"{(ts.shape[0], len(observed))}."
        )
    if jnp.shape(y0) != (3,):
        raise ValueError(f"`y0` must have shape (3,), got {jnp.shape(y0)}.")
    if not noise_std > 0:
        raise ValueError(f"`noise_std` must be positive, got {noise_std}.")
    import numpyro.distributions as dist

    fn = functools.partial(
        _l63_logdensity,
        ts=ts,
        y0=jnp.asarray(y0),
        y_obs=y_obs,
        observed=observed,
        noise_std=float(noise_std),
        prior_loc=tuple(float(v) for v in prior_loc),
        prior_scale=tuple(float(v) for v in prior_scale),
        rtol=rtol,
        atol=atol,
        max_steps=max_steps,
        sensitivity=sensitivity,
        solver=solver,
        dt0=dt0,
    )
    prior = {
        name: dist.LogNormal(jnp.log(loc), scale)
        for name, loc, scale in zip(L63_PARAMS, prior_loc, prior_scale, strict=True)
    }
    return LogDensity(fn, {name: "positive" for name in L63_PARAMS}, prior=prior)


def lorenz63_simulate(params: dict[str, Array], y0: Array, ts: Array, **kwargs) -> ODESolution:
    """The Lorenz-63 trajectory at `ts` for `params` (posterior predictive helper)."""
    model = Lorenz63(params["sigma"], params["rho"], params["beta"])  # pyright: ignore[reportArgumentType]
    return solve_ode(model, y0, ts, t0=0.0, **kwargs)
