"""Pipeline `posterior`: Bayesian inference of simulator parameters with NUTS/HMC through diffrax.

Built only from the public API (`jaxsci.inference`, `jaxsci.dynamics`). Two problems:

- `lotka_volterra`: posteriordb's `hudson_lynx_hare-lotka_volterra`, exactly as posteriordb states
  it (`inference.lotka_volterra_model`, Stan's rk45 tolerances), with its reference summary:
  the metrics add the posteriordb comparison (z = (mean - mean_ref) / sd_ref, sd ratios, and
  whether the benchmark rule passes).
- `lorenz63`: Lorenz-63 (sigma, rho, beta) from noisy observations of some components at a
  few times of a trajectory from a known initial state on the attractor (a twin experiment;
  the truth is known, so the metrics report whether each 90% interval covers it).

Outputs: `posterior.nc` (ArviZ InferenceData: posterior, sample_stats, posterior_predictive,
observed_data), `summary.txt`, `trace.png`, `pair.png`, `posterior_predictive.png`, and
`metrics.json` with `mean`, `sd` (by parameter element, posteriordb names such as `theta[1]`),
`rhat_max`, `ess_bulk_min`, `ess_tail_min`, `divergences`, `grad_evals` and `seconds` (warmup +
sampling wall time, compilation excluded; `compile_seconds` and `wall_seconds` apart), and
`warnings`: the run's failed checks by kind, each saying what to change
(`PosteriorResult.diagnose`: e.g. raise `sampler.target_accept`, `sampler.dense_mass: true`),
also logged as warnings to run.log and the console.
"""

import dataclasses
import logging
import time
from pathlib import Path
from typing import Any

import diffrax
import jax
import numpy as np
from matplotlib.figure import Figure

from .. import inference, integrate
from . import _plots
from ._schema import ConfigError, option, section

DESCRIPTION = "posterior of simulator parameters: NUTS/HMC through diffrax; diagnostics, plots"

logger = logging.getLogger("jaxsci.pipelines.posterior")

PROBLEMS = ("lotka_volterra", "lorenz63")
SENSITIVITIES = {
    "forward": lambda: "forward",
    "recursive_checkpoint": diffrax.RecursiveCheckpointAdjoint,
    "backsolve": diffrax.BacksolveAdjoint,
    "direct": diffrax.DirectAdjoint,
}
BACKENDS = tuple(inference.SAMPLERS)
INITS = tuple(inference.INIT_STRATEGIES)
# Draws (spread over chains) used for the posterior-predictive bands and trajectory plots.
_PREDICTIVE_DRAWS = 400


@dataclasses.dataclass(frozen=True)
class LotkaVolterraSection:
    """posteriordb's model and data exactly; nothing to choose but the solve."""


@dataclasses.dataclass(frozen=True)
class Lorenz63Section:
    sigma: float = option(10.0, gt=0.0, help="true sigma (generates the data)")
    rho: float = option(28.0, gt=0.0, help="true rho")
    beta: float = option(8.0 / 3.0, gt=0.0, help="true beta")
    obs_interval: float = option(0.1, gt=0.0, help="time between observations")
    num_obs: int = option(20, ge=1, help="number of observation times")
    observed: list[int] = option(factory=lambda: [0, 2], help="observed components (0=x, 1=y, 2=z)")
    noise_std: float = option(1.0, gt=0.0, help="observation-noise std (known)")
    data_seed: int = option(1, ge=0, help="PRNG seed of the observation noise")
    prior_loc: list[float] = option(
        factory=lambda: [8.0, 25.0, 2.0], help="LogNormal prior medians of sigma, rho, beta"
    )
    prior_scale: list[float] = option(
        factory=lambda: [0.3, 0.3, 0.3], help="LogNormal prior log-scales"
    )

    def __post_init__(self):
        if not self.observed or any(not 0 <= i < 3 for i in self.observed):
            raise ConfigError("observed", f"expected indices in [0, 3), got {self.observed}")
        if len(set(self.observed)) != len(self.observed):
            raise ConfigError("observed", f"expected distinct indices, got {self.observed}")
        for key in ("prior_loc", "prior_scale"):
            values = getattr(self, key)
            if len(values) != 3 or any(not v > 0 for v in values):
                raise ConfigError(key, f"expected 3 positive numbers, got {values}")


_PROBLEM_SECTIONS = {"lotka_volterra": LotkaVolterraSection, "lorenz63": Lorenz63Section}


@dataclasses.dataclass(frozen=True)
class ProblemSection:
    name: str = option(help="which posterior", choices=PROBLEMS)
    settings: Any = option(
        factory=dict,
        section=lambda siblings: _PROBLEM_SECTIONS[siblings["name"]],
        help="problem options (lorenz63: truth, observations, priors)",
    )


@dataclasses.dataclass(frozen=True)
class SolverSection:
    method: str = option(
        "dopri5",
        choices=("dopri5", "rk4"),
        help="dopri5: adaptive Dormand-Prince (Stan's rk45); rk4: classic RK4, fixed step dt",
    )
    dt: float = option(0.25, gt=0.0, help="rk4 only: the fixed step")
    rtol: float | None = option(
        None, gt=0.0, help="Dormand-Prince relative tolerance (default: the problem's)"
    )
    atol: float | None = option(None, gt=0.0, help="absolute tolerance (default: the problem's)")
    max_steps: int | None = option(None, ge=1, help="step budget; beyond it a proposal is rejected")
    sensitivity: str = option(
        "forward", choices=tuple(SENSITIVITIES), help="gradient: forward mode or a diffrax adjoint"
    )

    def __post_init__(self):
        if self.method == "rk4" and (self.rtol is not None or self.atol is not None):
            raise ConfigError("rtol" if self.rtol is not None else "atol", "is not used by rk4")
        if self.method == "dopri5" and self.dt != 0.25:
            raise ConfigError("dt", "is used only by method 'rk4'")


@dataclasses.dataclass(frozen=True)
class SamplerSection:
    backend: str = option("nuts", choices=BACKENDS, help="blackjax NUTS / HMC or numpyro NUTS")
    num_chains: int = option(4, ge=1)
    num_warmup: int = option(1000, ge=0)
    num_samples: int = option(1000, ge=4)
    dense_mass: bool = option(
        True, help="dense (vs diagonal) inverse mass matrix, adapted in warmup (correlations)"
    )
    target_accept: float = option(
        0.8,
        gt=0.0,
        lt=1.0,
        help="dual-averaging target acceptance; raise (0.95, 0.99) on divergences",
    )
    max_tree_depth: int = option(10, ge=1, le=20, help="NUTS only")
    num_integration_steps: int = option(16, ge=1, help="hmc only: mean leapfrog steps")
    init: str = option("map", choices=INITS, help="chain starts (see inference.posterior)")
    seed: int = option(0, ge=0)

    def __post_init__(self):
        if self.backend != "hmc" and self.num_integration_steps != 16:
            raise ConfigError("num_integration_steps", "is used only by backend 'hmc'")
        if self.backend == "hmc" and self.max_tree_depth != 10:
            raise ConfigError("max_tree_depth", "is not used by backend 'hmc'")


@dataclasses.dataclass(frozen=True)
class PlotSection:
    enabled: bool = option(True, help="write PNG plots")
    pair_max: int = option(4, ge=2, le=8, help="parameters shown in the pair plot")
    dpi: int = option(110, ge=50, le=600)


@dataclasses.dataclass(frozen=True)
class PosteriorConfig:
    """Schema of the `posterior` pipeline (the top-level `pipeline:` key is handled apart)."""

    problem: ProblemSection | inference.PosteriorProblem = option(
        help="the posterior to sample; from Python, an inference.PosteriorProblem object "
        "instead (e.g. inference.twin_problem on your own model class)",
        objects=inference.PosteriorProblem,
    )
    solver: SolverSection = section(SolverSection)
    sampler: SamplerSection = section(SamplerSection)
    plot: PlotSection = section(PlotSection)

    def __post_init__(self):
        if isinstance(self.problem, inference.PosteriorProblem):
            default = SolverSection()
            for field in dataclasses.fields(SolverSection):
                if getattr(self.solver, field.name) != getattr(default, field.name):
                    raise ConfigError(
                        f"solver.{field.name}",
                        "is not used with a problem object (its solve is set when it is "
                        "built, e.g. twin_problem's solve keywords); remove it",
                    )


def make_sampler(cfg: SamplerSection) -> inference.AbstractSampler:
    if cfg.backend == "hmc":
        return inference.HMC(
            num_integration_steps=cfg.num_integration_steps,
            dense_mass=cfg.dense_mass,
            target_accept=cfg.target_accept,
        )
    cls = inference.NUTS if cfg.backend == "nuts" else inference.NumpyroNUTS
    return cls(
        dense_mass=cfg.dense_mass,
        target_accept=cfg.target_accept,
        max_tree_depth=cfg.max_tree_depth,
    )


def _solve_kwargs(cfg: SolverSection) -> dict:
    """The solver section as keywords of the problem's ODE solve (None: the problem's)."""
    out = {}
    for key in ("rtol", "atol", "max_steps"):
        if getattr(cfg, key) is not None:
            out[key] = getattr(cfg, key)
    if cfg.method == "rk4":
        out.update(solver=integrate.RK4(), dt0=cfg.dt)
    out["sensitivity"] = SENSITIVITIES[cfg.sensitivity]()
    return out


def make_problem(cfg: PosteriorConfig) -> inference.PosteriorProblem:
    """The configured `inference.PosteriorProblem` (its data, target and predictive), or the
    problem object given from Python."""
    if isinstance(cfg.problem, inference.PosteriorProblem):
        return cfg.problem
    if cfg.problem.name == "lotka_volterra":
        # posteriordb's solve (Stan's rk45 at rtol 1e-5, atol 1e-3) unless configured
        return inference.lotka_volterra_problem(_PREDICTIVE_DRAWS, **_solve_kwargs(cfg.solver))
    s: Lorenz63Section = cfg.problem.settings
    try:
        return inference.lorenz63_problem(
            jax.random.key(s.data_seed),
            sigma=s.sigma,
            rho=s.rho,
            beta=s.beta,
            obs_interval=s.obs_interval,
            num_obs=s.num_obs,
            observed=tuple(s.observed),
            noise_std=s.noise_std,
            prior_loc=(s.prior_loc[0], s.prior_loc[1], s.prior_loc[2]),
            prior_scale=(s.prior_scale[0], s.prior_scale[1], s.prior_scale[2]),
            max_draws=_PREDICTIVE_DRAWS,
            **_solve_kwargs(cfg.solver),
        )
    except ValueError as err:
        if "true parameters" in str(err):
            raise ConfigError("problem.settings", str(err)) from None
        raise


def run(config: PosteriorConfig, run_dir: Path) -> dict:
    """Sample the posterior; save the InferenceData, summary and plots; return the metrics."""
    start = time.perf_counter()
    problem = make_problem(config)
    sc = config.sampler
    sampler = make_sampler(sc)
    logger.info(
        "problem %s: %d parameters (%s); sampler %s, %d chains x (%d warmup + %d draws), init %s",
        problem.name,
        problem.target.dim,
        ", ".join(problem.target.shapes),
        type(sampler).__name__ + (" dense" if sc.dense_mass else " diag"),
        sc.num_chains,
        sc.num_warmup,
        sc.num_samples,
        sc.init,
    )
    key_run, key_pred = jax.random.split(jax.random.key(sc.seed))
    t = time.perf_counter()
    result = inference.posterior(
        problem.target,
        key=key_run,
        sampler=sampler,
        num_chains=sc.num_chains,
        num_warmup=sc.num_warmup,
        num_samples=sc.num_samples,
        init=sc.init,
    )
    posterior_seconds = time.perf_counter() - t
    summary = result.summary()
    logger.info(
        "sampled in %.2f s (+ %.2f s compile, %.2f s init and summaries)",
        result.seconds,
        result.compile_seconds,
        posterior_seconds - result.seconds - result.compile_seconds,
    )
    for line in inference.format_summary(summary).splitlines():
        logger.info("%s", line)
    (run_dir / "summary.txt").write_text(inference.format_summary(summary) + "\n")

    metrics: dict[str, Any] = {
        "mean": {k: v["mean"] for k, v in summary.items()},
        "sd": {k: v["sd"] for k, v in summary.items()},
        "rhat_max": max(v["rhat"] for v in summary.values()),
        "ess_bulk_min": min(v["ess_bulk"] for v in summary.values()),
        "ess_tail_min": min(v["ess_tail"] for v in summary.values()),
        "divergences": result.divergences,
        "grad_evals": result.grad_evals,
        "seconds": result.seconds,
        "compile_seconds": result.compile_seconds,
        "ess_bulk_per_second": min(v["ess_bulk"] for v in summary.values())
        / max(result.seconds, 1e-9),
    }
    # What to change if the run failed a check (divergences, R-hat, ESS, tree depth, E-BFMI,
    # dense mass): logged as warnings (run.log, the console) and kept in metrics.json.
    advice = result.diagnose(summary)
    for item in advice:
        logger.warning("%s", item)
    if not advice:
        logger.info("diagnostics: no divergences, R-hat <= 1.01, ESS >= 100 per chain")
    metrics["warnings"] = {item.kind: str(item) for item in advice}
    if problem.reference is not None:
        metrics["posteriordb"] = inference.posteriordb_check(summary, problem.reference)._asdict()
        logger.info("posteriordb %s", metrics["posteriordb"])
    if problem.truth is not None:
        metrics["truth_in_90"] = {
            k: bool(summary[k]["q5"] <= v <= summary[k]["q95"]) for k, v in problem.truth.items()
        }

    predictive = problem.predictive(key_pred, result)
    idata = result.to_arviz(posterior_predictive=predictive, observed_data=problem.observed)
    idata.to_netcdf(str(run_dir / "posterior.nc"))

    if config.plot.enabled:
        with _plots.guard():
            heading = (
                f"{problem.name}: {type(sampler).__name__}, "
                f"{sc.num_chains} chains x {sc.num_samples} draws"
            )
            dpi = config.plot.dpi
            _plots._save(_trace_plot(result, heading), run_dir / "trace.png", dpi)
            _plots._save(
                _pair_plot(result, heading, config.plot.pair_max, problem.truth),
                run_dir / "pair.png",
                dpi,
            )
            _plots._save(
                _predictive_plot(problem, predictive, problem.curves(result), heading),
                run_dir / "posterior_predictive.png",
                dpi,
            )
    metrics["wall_seconds"] = time.perf_counter() - start
    return metrics


# ------------------------------------------------------------------------------------------
# Plots (matplotlib Figure objects, no pyplot state).
# ------------------------------------------------------------------------------------------


def _elements(result: inference.PosteriorResult) -> list[tuple[str, np.ndarray]]:
    """(posteriordb-style name, (chains, draws) array) for every parameter element."""
    out = []
    for name in result.parameter_names:
        arr = result.draws[name]
        event = arr.shape[2:]
        if not event:
            out.append((name, arr))
            continue
        for index in np.ndindex(*event):
            label = f"{name}[{','.join(str(i + 1) for i in index)}]"
            out.append((label, arr[(slice(None), slice(None), *index)]))
    return out


def _trace_plot(result: inference.PosteriorResult, heading: str) -> Figure:
    elements = _elements(result)
    n = len(elements)
    fig = Figure(figsize=(11, 1.6 * n + 0.8), layout="constrained")
    grid = fig.add_gridspec(n, 2, width_ratios=(2.2, 1))
    for row, (label, arr) in enumerate(elements):
        ax_t = fig.add_subplot(grid[row, 0])
        ax_h = fig.add_subplot(grid[row, 1])
        bins = np.linspace(arr.min(), arr.max(), 40)
        for c in range(arr.shape[0]):
            ax_t.plot(arr[c], lw=0.5, alpha=0.8)
            ax_h.hist(arr[c], bins=bins, histtype="step", density=True)
        ax_t.set_ylabel(label, fontsize=9)
        ax_t.tick_params(labelsize=8, labelbottom=row == n - 1)
        ax_h.tick_params(labelsize=8)
        ax_h.set_yticks([])
        if row == 0:
            ax_t.set_title(f"{heading}\ntraces (one colour per chain)", fontsize=10)
            ax_h.set_title("marginal per chain", fontsize=10)
    fig.axes[-2].set_xlabel("draw")
    return fig


def _pair_plot(result, heading: str, pair_max: int, truth: dict | None) -> Figure:
    elements = _elements(result)[:pair_max]
    n = len(elements)
    fig = Figure(figsize=(2.4 * n, 2.4 * n), layout="constrained")
    axes = fig.subplots(n, n, squeeze=False)
    diverging = result.sample_stats["diverging"].reshape(-1)
    for i, (li, xi) in enumerate(elements):
        for j, (lj, xj) in enumerate(elements):
            ax = axes[i, j]
            a, b = xj.reshape(-1), xi.reshape(-1)
            if j > i:
                ax.set_axis_off()
                continue
            if i == j:
                ax.hist(a, bins=40, color="tab:blue", alpha=0.7)
                ax.set_yticks([])
            else:
                ax.plot(a, b, ".", ms=1.5, alpha=0.3, color="tab:blue")
                if diverging.any():
                    ax.plot(a[diverging], b[diverging], ".", ms=3, color="tab:red")
            if truth is not None and lj in truth:
                ax.axvline(truth[lj], color="k", lw=0.8, ls="--")
                if i != j and li in truth:
                    ax.axhline(truth[li], color="k", lw=0.8, ls="--")
            ax.tick_params(labelsize=7)
            if i == n - 1:
                ax.set_xlabel(lj, fontsize=9)
            if j == 0 and i > 0:
                ax.set_ylabel(li, fontsize=9)
    fig.suptitle(f"{heading}\npairs (divergent transitions in red)", fontsize=10)
    return fig


def _predictive_plot(problem, predictive, curves, heading: str) -> Figure:
    fine, paths = curves
    d = problem.obs_values.shape[1]
    fig = Figure(figsize=(11, 2.8 * d + 0.6), layout="constrained")
    axes = fig.subplots(d, 1, sharex=True, squeeze=False)[:, 0]
    y = predictive["y"].reshape(-1, *predictive["y"].shape[2:])
    times = problem.obs_times[-y.shape[1] :]
    lo, med, hi = np.percentile(y, [5, 50, 95], axis=0)
    for k, ax in enumerate(axes):
        for path in paths[:: max(1, len(paths) // 60)]:
            ax.plot(fine, path[:, k], color="tab:blue", lw=0.4, alpha=0.25)
        ax.fill_between(
            times,
            lo[:, k],
            hi[:, k],
            color="tab:orange",
            alpha=0.3,
            label="posterior predictive 90%",
        )
        ax.plot(times, med[:, k], color="tab:orange", lw=1.2, label="predictive median")
        ax.plot(problem.obs_times, problem.obs_values[:, k], "ko", ms=3.5, label="observed")
        ax.set_ylabel(problem.labels[k], fontsize=9)
        ax.grid(alpha=0.3)
    axes[0].plot([], [], color="tab:blue", lw=0.8, label="ODE solution, posterior draws")
    axes[0].legend(fontsize=8, loc="upper right")
    axes[0].set_title(f"{heading}\nposterior predictive", fontsize=10)
    axes[-1].set_xlabel("time t")
    return fig
