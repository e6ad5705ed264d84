"""Ready-made posteriors on the zoo's simulators, and the posteriordb data they are checked on.

- `lotka_volterra_model`: posteriordb's `hudson_lynx_hare-lotka_volterra` (Carpenter 2018,
  "Predator-prey population dynamics: the Lotka-Volterra model in Stan"), exactly as Stan states
  it, as a numpyro model whose ODE is `jaxsci.dynamics.LotkaVolterra` solved by `solve_ode`.
- `lorenz63_posterior`: Lorenz-63 (sigma, rho, beta) from noisy, sparse observations of a
  trajectory, as a `LogDensity` with log-normal priors.
- `lotka_volterra_problem`, `lorenz63_problem`: each as a `PosteriorProblem`, the target
  with its data, its posterior-predictive simulation and ODE curves of posterior draws.
"""

import dataclasses
import functools
import json
import math
from collections.abc import Callable
from importlib import resources
from typing import Any, NamedTuple, cast

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._checks import check_int, check_positive
from .._custom_types import Array, ArrayLike, Float, Key
from ..dynamics import AbstractDynamics, Lorenz63, LotkaVolterra
from ._result import PosteriorResult
from ._simulator import ODESolution, log_likelihood, observe, solve_ode
from ._target import AbstractTarget, LogDensity, NumpyroModel

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
    ts: Float[ArrayLike, " N"],
    y_init: Float[ArrayLike, "2"] | None = None,
    y: Float[ArrayLike, "N 2"] | None = None,
    **solve: Any,
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
        solve: the ODE solve's keywords (`lv_solve`'s: sensitivity, rtol, atol, max_steps,
            solver, dt0). The default is posteriordb's: Dormand-Prince at rtol 1e-5, atol
            1e-3 (Stan's rk45). A cheaper alternative of similar or better accuracy is
            classic RK4 with fixed steps, `solver=jaxsci.integrate.RK4(), dt0=0.25`: over
            posterior draws its log-likelihood is closer to a 1e-12-tolerance solve than
            Stan's tolerances are (benchmarks/bench_posterior_lv.py prints both errors).
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
    sol = lv_solve(jnp.asarray(theta), jnp.asarray(z_init), ts, **solve)
    numpyro.sample("y_init", dist.LogNormal(jnp.log(z_init), sigma), obs=y_init)
    obs = cast(Array | None, y)  # an array-like, read by numpyro as it is
    observe("y", sol, lambda ys: dist.LogNormal(jnp.log(ys), sigma), obs=obs)


#: Lorenz-63 parameter names, in `Lorenz63`'s order.
L63_PARAMS = ("sigma", "rho", "beta")


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
    if jnp.shape(y0) != (3,):
        raise ValueError(f"`y0` must have shape (3,), got {jnp.shape(y0)}.")
    return twin_logdensity(
        Lorenz63(),
        L63_PARAMS,
        ts,
        y0,
        y_obs,
        observed=tuple(observed),
        noise_std=noise_std,
        prior_loc=prior_loc,
        prior_scale=prior_scale,
        rtol=rtol,
        atol=atol,
        max_steps=max_steps,
        sensitivity=sensitivity,
        solver=solver,
        dt0=dt0,
    )


def lorenz63_simulate(params: dict[str, Array], y0: Array, ts: Array, **kwargs) -> ODESolution:
    """The Lorenz-63 trajectory at `ts` for `params` (posterior predictive helper)."""
    model = Lorenz63(params["sigma"], params["rho"], params["beta"])  # pyright: ignore[reportArgumentType]
    return solve_ode(model, y0, ts, t0=0.0, **kwargs)


# --------------------------------------------------------------------------------------------
# Posterior problems with their data and predictive simulation (what an experiment samples,
# checks and plots).


class PredictiveCurves(NamedTuple):
    """ODE solutions of posterior draws on a fine time grid (for plots of the fit).

    Attributes:
        times: the fine grid from t = 0, (fine,).
        paths: the observed components of the solutions, (draws, fine, observed).
    """

    times: np.ndarray
    paths: np.ndarray


class PosteriorProblem(NamedTuple):
    """A posterior of simulator parameters with its data and its predictive simulation.

    Attributes:
        name: a short name.
        target: the posterior (`LogDensity` or `NumpyroModel`) for `posterior`.
        observed: name -> observed array (the `observed_data` of `to_arviz`).
        obs_times: the observation times, (T,).
        obs_values: the observations at them, (T, observed).
        labels: a label per observed component.
        predictive: `(key, result) -> name -> (chains, draws, ...)` posterior-predictive
            simulations of the observations (one per draw).
        curves: `(result) -> PredictiveCurves` of about `max_draws` draws spread over all
            chains (`thinned_draws`).
        truth: the true parameters of a twin experiment, or None.
        reference: a reference summary (posteriordb), or None.
    """

    name: str
    target: AbstractTarget
    observed: dict[str, np.ndarray]
    obs_times: np.ndarray
    obs_values: np.ndarray
    labels: tuple[str, ...]
    predictive: Callable[[Any, PosteriorResult], dict[str, np.ndarray]]
    curves: Callable[[PosteriorResult], PredictiveCurves]
    truth: dict[str, float] | None = None
    reference: dict[str, dict[str, float]] | None = None


def thinned_draws(result: PosteriorResult, max_draws: int = 400) -> dict[str, Array]:
    """About `max_draws` posterior draws spread evenly over all chains (flattened), per
    parameter: name -> (draws, *shape)."""
    max_draws = check_int("max_draws", max_draws)
    flat = {
        k: v.reshape(-1, *v.shape[2:])
        for k, v in result.draws.items()
        if k in result.parameter_names
    }
    n = next(iter(flat.values())).shape[0]
    idx = np.linspace(0, n - 1, min(n, max_draws)).astype(int)
    return {k: jnp.asarray(v[idx]) for k, v in flat.items()}


def lotka_volterra_problem(max_draws: int = 400, **solve: Any) -> PosteriorProblem:
    """posteriordb's `hudson_lynx_hare-lotka_volterra` as a `PosteriorProblem`.

    The target is `lotka_volterra_model` on `hudson_lynx_hare()` with posteriordb's reference
    summary. `solve` sets its ODE solve (`lotka_volterra_model`'s keywords: `rtol`, `atol`,
    `max_steps`, `sensitivity`, `solver`, `dt0`; default Stan's rk45 tolerances). The
    predictive simulates (y_init, y) from the model; the curves solve each thinned draw
    from its z_init at rtol = atol = 1e-6 on 201 times over the 20 years.
    """
    data = hudson_lynx_hare()
    kwargs = {"rtol": LV_RTOL, "atol": LV_ATOL, "max_steps": LV_MAX_STEPS, **solve}
    target = NumpyroModel(lotka_volterra_model, (data["ts"], data["y_init"], data["y"]), kwargs)
    fine = np.linspace(0.0, data["ts"][-1], 201)

    def predictive(key, result):
        pred = result.posterior_predictive(key, None, data["ts"], None, None, **kwargs)
        return {"y_init": pred["y_init"], "y": pred["y"]}

    def curves(result):
        params = thinned_draws(result, max_draws)

        def curve(theta, z_init):
            dyn = LotkaVolterra(theta[0], theta[1], theta[2], theta[3])
            return solve_ode(dyn, z_init, jnp.asarray(fine[1:]), t0=0.0, rtol=1e-6, atol=1e-6).ys

        paths = jax.jit(jax.vmap(curve))(params["theta"], params["z_init"])
        paths = np.concatenate(
            [np.broadcast_to(params["z_init"][:, None], (len(paths), 1, 2)), paths], 1
        )
        return PredictiveCurves(fine, np.asarray(paths))

    return PosteriorProblem(
        name="lotka_volterra",
        target=target,
        observed={"y_init": data["y_init"], "y": data["y"]},
        obs_times=np.concatenate([[0.0], data["ts"]]),
        obs_values=np.concatenate([data["y_init"][None], data["y"]]),
        labels=("hare (thousands)", "lynx (thousands)"),
        predictive=predictive,
        curves=curves,
        reference=posteriordb_reference(),
    )


def lorenz63_problem(
    key: Key,
    *,
    sigma: float = 10.0,
    rho: float = 28.0,
    beta: float = 8.0 / 3.0,
    obs_interval: float = 0.1,
    num_obs: int = 20,
    observed: tuple[int, ...] = (0, 2),
    noise_std: float = 1.0,
    prior_loc: tuple[float, float, float] = (8.0, 25.0, 2.0),
    prior_scale: tuple[float, float, float] = (0.3, 0.3, 0.3),
    max_draws: int = 400,
    **solve: Any,
) -> PosteriorProblem:
    """A Lorenz-63 twin experiment: (sigma, rho, beta) from noisy observations of some
    components at `num_obs` times `obs_interval` apart, from the model's default initial
    state (known) at t = 0.

    `twin_problem` on `Lorenz63(sigma, rho, beta)`: the data are the trajectory of the true
    parameters solved at rtol = atol = 1e-9, its `observed` components plus N(0,
    noise_std^2) noise drawn from `key`; the target has log-normal priors (`prior_loc`
    medians, `prior_scale` log-scales) and the solve `solve` (`lorenz63_posterior`'s
    keywords; default Dormand-Prince at rtol = atol = 1e-6, 4096 steps). The predictive
    re-simulates the noisy observations per draw; the curves solve thinned draws on 401
    times.

    Raises:
        ValueError: if the true parameters do not give a finite solve, or bad arguments.
    """
    check_positive("obs_interval", obs_interval)
    num_obs = check_int("num_obs", num_obs)
    problem = twin_problem(
        key,
        Lorenz63(sigma, rho, beta),
        L63_PARAMS,
        obs_times=obs_interval * np.arange(1, num_obs + 1),
        observed=observed,
        noise_std=noise_std,
        prior_loc=prior_loc,
        prior_scale=prior_scale,
        labels=("x", "y", "z"),
        name="lorenz63",
        max_draws=max_draws,
        **solve,
    )
    # the truth as given (the model's float32 fields round 8/3)
    return problem._replace(truth={"sigma": sigma, "rho": rho, "beta": beta})


def check_parameter_fields(model: AbstractDynamics, names: tuple[str, ...]) -> None:
    """Raise a ValueError naming `names` unless each is a scalar floating-point array field
    of `model` (what a sampler can move: not a property, not static, not an integer)."""
    fields = {f.name: f for f in dataclasses.fields(model)}
    for n in names:
        field = fields.get(n)
        value = getattr(model, n, None) if field is not None else None
        static = field is not None and field.metadata.get("static", False)
        if (
            field is None
            or static
            or not eqx.is_array(value)
            or np.ndim(np.asarray(value)) != 0
            or not jnp.issubdtype(jnp.result_type(value), jnp.inexact)
        ):
            raise ValueError(
                f"`names`: {n!r} is not a scalar floating-point array field of "
                f"{type(model).__name__} (a sampler moves array fields; a property, a static "
                "field or an integer cannot be inferred)."
            )


def _with_parameters(model: AbstractDynamics, names: tuple[str, ...], params: dict) -> Any:
    """`model` with the fields `names` replaced by `params[name]` (in the field's dtype)."""
    values = tuple(jnp.asarray(params[n], jnp.result_type(getattr(model, n))) for n in names)
    return eqx.tree_at(lambda m: tuple(getattr(m, n) for n in names), model, values)


def _twin_logdensity(params, *, model, names, ts, y0, y_obs, observed, noise_std, prior, solve):
    import numpyro.distributions as dist

    lp = 0.0
    for name in names:
        lp += prior[name].log_prob(params[name])
    sol = solve_ode(_with_parameters(model, names, params), y0, ts, t0=0.0, **solve)
    idx = jnp.asarray(observed)
    return lp + log_likelihood(sol, lambda ys: dist.Normal(ys[:, idx], noise_std), y_obs)


def _observed_indices(observed: Any, dim: int) -> tuple[int, ...]:
    """`observed` as a tuple of distinct indices in [0, dim), or a ValueError naming it."""
    index = np.asarray(observed).reshape(-1)
    if (
        index.size == 0
        or not np.issubdtype(index.dtype, np.integer)
        or np.any((index < 0) | (index >= dim))
        or len(set(index.tolist())) != index.size
    ):
        raise ValueError(f"`observed` must be distinct indices in [0, {dim}), got {observed}.")
    return tuple(int(i) for i in index)


def _log_normal_priors(names: tuple[str, ...], prior_loc: Any, prior_scale: Any):
    """(medians, log-scales) as float tuples, one per name (a single scale serves all), or a
    ValueError naming the argument that is not `len(names)` positive numbers."""
    locs = np.asarray(prior_loc, dtype=float).reshape(-1)
    scales = np.asarray(prior_scale, dtype=float).reshape(-1)
    if scales.size == 1:
        scales = np.repeat(scales, len(names))
    for arg, values in (("prior_loc", locs), ("prior_scale", scales)):
        if values.size != len(names) or not np.all(values > 0):
            raise ValueError(
                f"`{arg}` must hold {len(names)} positive numbers (one per name in {names}), "
                f"got {tuple(values.tolist())}."
            )
    return tuple(locs.tolist()), tuple(scales.tolist())


def twin_logdensity(
    model: AbstractDynamics,
    names: str | tuple[str, ...] | list[str],
    ts: Float[ArrayLike, " T"],
    y0: Float[ArrayLike, " dim"],
    y_obs: Float[ArrayLike, "T k"],
    *,
    observed: tuple[int, ...],
    noise_std: float,
    prior_loc: tuple[float, ...],
    prior_scale: tuple[float, ...],
    **solve: Any,
) -> LogDensity:
    """The posterior of the scalar parameter fields `names` of any ODE `model` given
    y_obs[t] ~ N(x(ts[t])[observed], noise_std^2 I), x solved by `solve_ode` from the known
    state `y0` at t = 0 with the other fields of `model` fixed.

    Priors: each parameter ~ LogNormal(log prior_loc, prior_scale), independent and
    positive (rates, coefficients). `solve`: `solve_ode`'s keywords (default Dormand-Prince
    at rtol 1e-6, atol 1e-8). A failed solve (step budget, non-finite state) gives -inf.
    """
    import numpyro.distributions as dist

    names = (names,) if isinstance(names, str) else tuple(names)
    check_parameter_fields(model, names)
    ts, y0, y_obs = jnp.asarray(ts), jnp.asarray(y0), jnp.asarray(y_obs)
    model.check_state(y0, "y0")
    dim = int(math.prod(model.state_shape))
    observed = _observed_indices(observed, dim)
    if ts.ndim != 1:
        raise ValueError(f"`ts` must be 1-D, got shape {ts.shape}.")
    if y_obs.shape != (ts.shape[0], len(observed)):
        raise ValueError(
            f"`y_obs` has shape {y_obs.shape}, expected (len(ts), len(observed)) = "
            f"{(ts.shape[0], len(observed))}."
        )
    check_positive("noise_std", noise_std)
    locs, scales = _log_normal_priors(names, prior_loc, prior_scale)
    prior = {
        name: dist.LogNormal(jnp.log(loc), scale)
        for name, loc, scale in zip(names, locs, scales, strict=True)
    }
    fn = functools.partial(
        _twin_logdensity,
        model=model,
        names=names,
        ts=ts,
        y0=y0,
        y_obs=y_obs,
        observed=observed,
        noise_std=float(noise_std),
        prior=prior,
        solve=solve,
    )
    return LogDensity(fn, {name: "positive" for name in names}, prior=prior)


def twin_problem(
    key: Key,
    model: AbstractDynamics,
    names: str | tuple[str, ...] | list[str],
    *,
    obs_times: Float[ArrayLike, " T"],
    prior_loc: tuple[float, ...] | list[float] | Float[ArrayLike, " n"],
    prior_scale: tuple[float, ...] | list[float] | Float[ArrayLike, "*n"] = 0.3,
    observed: tuple[int, ...] | list[int] | None = None,
    noise_std: float = 1.0,
    y0: Float[ArrayLike, " dim"] | None = None,
    labels: tuple[str, ...] | None = None,
    name: str | None = None,
    max_draws: int = 400,
    **solve: Any,
) -> PosteriorProblem:
    """A twin experiment on any ODE model: its scalar parameter fields `names` from noisy
    observations of some components, as a `PosteriorProblem` (what the `posterior` pipeline
    samples, checks and plots).

    The truth is `model` itself (its field values). The data: its trajectory from `y0`
    (default `model.default_initial_state()`, known) at t = 0, solved at rtol = atol = 1e-9
    and saved at `obs_times` (> 0, increasing), its `observed` components (default all)
    plus N(0, noise_std^2) noise drawn from `key`. The target: `twin_logdensity` with
    log-normal priors (`prior_loc` medians, `prior_scale` log-scales, one or per name) and
    the solve `solve` (`solve_ode`'s keywords; default Dormand-Prince at rtol = atol = 1e-6,
    4096 steps). The predictive re-simulates the noisy observations per draw; the curves
    solve about `max_draws` thinned draws on 401 times.

    Arguments:
        key: PRNG key of the observation noise.
        model: the true model (an `AbstractDynamics` with a vector state).
        names: the inferred fields (scalar, positive) of `model`.
        obs_times: observation times, (T,).
        labels: a label per state component (default `x[i]`).
        name: the problem's name (default the model's class name).

    Raises:
        ValueError: a bad argument (naming it), or the true parameters do not give a
            finite solve.
    """
    names = (names,) if isinstance(names, str) else tuple(names)
    if not names or len(set(names)) != len(names):
        raise ValueError(f"`names` must be distinct field names, got {names}.")
    check_parameter_fields(model, names)
    if len(model.state_shape) != 1:
        raise ValueError(f"`model` must have a vector state, got state shape {model.state_shape}.")
    dim = model.state_shape[0]
    index = np.asarray(_observed_indices(np.arange(dim) if observed is None else observed, dim))
    locs, scales = _log_normal_priors(names, prior_loc, prior_scale)  # checked before the solve
    if labels is not None and len(labels) != dim:
        raise ValueError(f"`labels` must hold {dim} labels (one per component), got {labels}.")
    ts = np.asarray(obs_times, dtype=float)
    if ts.ndim != 1 or ts.size == 0 or not ts[0] > 0 or np.any(np.diff(ts) <= 0):
        raise ValueError(f"`obs_times` must be increasing times > 0, got {obs_times}.")
    check_positive("noise_std", noise_std)
    max_draws = check_int("max_draws", max_draws)
    kwargs = {"rtol": 1e-6, "atol": 1e-6, "max_steps": 4096, **solve}
    y0 = jnp.asarray(model.default_initial_state() if y0 is None else y0)
    model.check_state(y0, "y0")
    clean = solve_ode(model, y0, jnp.asarray(ts), t0=0.0, rtol=1e-9, atol=1e-9)
    truth = {n: float(getattr(model, n)) for n in names}
    if not bool(clean.ok):
        raise ValueError(
            f"the true parameters {truth} of {type(model).__name__} do not give a finite solve."
        )
    noise = noise_std * np.asarray(jax.random.normal(key, (len(ts), len(index))))
    y_obs = np.asarray(clean.ys)[:, index] + noise
    target = twin_logdensity(
        model,
        names,
        ts,
        y0,
        y_obs,
        observed=tuple(int(i) for i in index),
        noise_std=noise_std,
        prior_loc=locs,
        prior_scale=scales,
        **kwargs,
    )
    plain = {k: v for k, v in kwargs.items() if k != "sensitivity"}
    fine = np.linspace(0.0, ts[-1], 401)

    def simulate(key, params):
        sol = solve_ode(
            _with_parameters(model, names, params), y0, jnp.asarray(ts), t0=0.0, **plain
        )
        ys = sol.ys[:, index]
        return {"y": ys + noise_std * jax.random.normal(key, ys.shape, ys.dtype)}

    def predictive(key, result):
        return result.posterior_predictive(key, simulate)

    def curves(result):
        params = thinned_draws(result, max_draws)

        def curve(draw):
            m = _with_parameters(model, names, draw)
            return solve_ode(m, y0, jnp.asarray(fine[1:]), t0=0.0, **plain).ys

        paths = jax.jit(jax.vmap(curve))({n: params[n] for n in names})
        paths = np.concatenate([np.broadcast_to(np.asarray(y0), (len(paths), 1, dim)), paths], 1)
        return PredictiveCurves(fine, np.asarray(paths)[:, :, index])

    labels = tuple(f"x[{i}]" for i in range(dim)) if labels is None else tuple(labels)
    return PosteriorProblem(
        name=type(model).__name__ if name is None else name,
        target=target,
        observed={"y": y_obs},
        obs_times=ts,
        obs_values=y_obs,
        labels=tuple(labels[i] for i in index),
        predictive=predictive,
        curves=curves,
        truth=truth,
    )


class PosteriordbCheck(NamedTuple):
    """A posterior summary against posteriordb's reference (`posteriordb_check`).

    Attributes:
        z: (mean - mean_ref) / sd_ref per parameter element.
        sd_ratio: sd / sd_ref per parameter element.
        max_abs_z: the largest |z|.
        max_mcse_z: the largest |mean - mean_ref| / sqrt(mcse^2 + mcse_ref^2).
        passes: whether every rule below holds.
    """

    z: dict[str, float]
    sd_ratio: dict[str, float]
    max_abs_z: float
    max_mcse_z: float
    passes: bool


def posteriordb_check(
    summary: dict[str, dict[str, float]], reference: dict[str, dict[str, float]]
) -> PosteriordbCheck:
    """posteriordb's acceptance rule for a posterior summary (`summary()`'s output).

    Every reference parameter element must have |z| < 0.25 with z = (mean - mean_ref) /
    sd_ref, an sd ratio in [0.8, 1.25], |mean - mean_ref| / sqrt(mcse^2 + mcse_ref^2) < 4,
    R-hat < 1.01 and bulk and tail ESS > 400 (the reference from `posteriordb_reference`).
    """
    z = {k: (summary[k]["mean"] - r["mean"]) / r["sd"] for k, r in reference.items()}
    ratio = {k: summary[k]["sd"] / r["sd"] for k, r in reference.items()}
    mcse_z = {
        k: abs(summary[k]["mean"] - r["mean"]) / math.hypot(summary[k]["mcse_mean"], r["mcse_mean"])
        for k, r in reference.items()
    }
    passes = (
        all(abs(v) < 0.25 for v in z.values())
        and all(0.8 <= v <= 1.25 for v in ratio.values())
        and all(v < 4 for v in mcse_z.values())
        and all(summary[k]["rhat"] < 1.01 for k in reference)
        and all(min(summary[k]["ess_bulk"], summary[k]["ess_tail"]) > 400 for k in reference)
    )
    return PosteriordbCheck(
        z=z,
        sd_ratio=ratio,
        max_abs_z=max(abs(v) for v in z.values()),
        max_mcse_z=max(mcse_z.values()),
        passes=bool(passes),
    )
