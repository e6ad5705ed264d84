r"""Pipeline `inverse_gmm`: DPS vs twisted SMC against the exact posterior of a mixture prior.

Built only from the public API (`jaxsci.diffusion`). The prior is a `GaussianMixture`
(diagonal components) driven through its exact noised-marginal eps, so the diffusion model
has no network error; the observation is y = A x + N(0, noise_std^2 I). Its posterior is a
Gaussian mixture with full covariances (`diffusion.exact_posterior`), the reference.

* **SMC** (`diffusion.TDS`, the twisted diffusion sampler of Wu et al. 2023) at each count
  in `smc.particles`, `smc.repeats` independent runs (one vmapped, jitted call per count):
  RMSE of the weighted posterior mean over runs (with its standard error), mean 1-D
  marginal Wasserstein-1 distance, the log-normaliser against the exact log-evidence, the
  median of the runs' smallest ESS and the number of runs whose weights collapsed.
* **DPS** (Chung et al. 2023) at each step size in `dps.zeta`, `dps.num_samples`
  independent draws: the error of their mean (with its Monte-Carlo standard error) and W1.
  DPS is biased; its errors do not fall with more samples.
* **Reference floor**: W1 of the same number of i.i.d. exact posterior draws (the Monte
  Carlo floor any sampler's W1 is limited by).

Outputs: `metrics.json` (`error_mean[method]`, `error_mean_se[method]`, `w1[method]` with
methods `smc_N` and `dps_zeta=Z`, per-count SMC diagnostics, the fitted slope of the SMC
error against N, the exact posterior's weights/mean/log-evidence), `samples.npz`,
`samples.png` (draws over the exact posterior's density contours) and
`error_vs_particles.png`.
"""

import dataclasses
import logging
import math
import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from matplotlib.figure import Figure

from .. import diffusion as jd, smc
from ..metrics import fit_convergence_order
from ..observations import LinearObservation
from . import _plots
from ._assimilate import RESAMPLING_SCHEMES
from ._diffusion import check_mixture_section
from ._diffusion_names import SCHEDULES, SPACINGS, TWISTS, make_twist
from ._schema import ConfigError, option, section

DESCRIPTION = "posterior sampling y = A x + noise, mixture prior: DPS vs twisted SMC vs exact"

logger = logging.getLogger("jaxsci.pipelines.inverse_gmm")


@dataclasses.dataclass(frozen=True)
class PriorSection:
    weights: list[float] = option(
        factory=lambda: [0.4, 0.3, 0.2, 0.1], help="component weights (K)"
    )
    means: list[list[float]] = option(
        factory=lambda: [[-2.0, -2.0], [2.0, 2.0], [-2.0, 2.0], [2.0, -2.0]],
        help="component means (K x d, d >= 2)",
    )
    variances: list[list[float]] = option(
        factory=lambda: [[0.3, 0.3]] * 4, help="diagonal variances (K x d)"
    )

    def __post_init__(self):
        check_mixture_section(self, min_dim=2)


@dataclasses.dataclass(frozen=True)
class ObservationSection:
    matrix: list[list[float]] = option(
        factory=lambda: [[1.0, 1.0]], help="A (m x d): y = A x + noise"
    )
    y: list[float] | None = option(
        factory=lambda: [0.3],
        help="the observation (m); null: y = A x_true + noise, x_true ~ prior",
    )
    noise_std: float = option(0.5, gt=0.0, help="observation-noise std (R = noise_std^2 I)")
    seed: int = option(0, ge=0, help="PRNG seed of x_true and the noise when y is null")

    def __post_init__(self):
        if not self.matrix or len({len(r) for r in self.matrix}) != 1 or not self.matrix[0]:
            raise ConfigError(
                "matrix", f"expected m >= 1 rows of equal length d, got {self.matrix}"
            )
        if self.y is not None and len(self.y) != len(self.matrix):
            raise ConfigError(
                "y", f"expected {len(self.matrix)} values (one per row of matrix), got {self.y}"
            )


@dataclasses.dataclass(frozen=True)
class DiffusionSection:
    schedule: str = option("vp_linear", choices=tuple(SCHEDULES), help="noise schedule")
    grid: str = option("logsnr_uniform", choices=tuple(SPACINGS), help="time grid")
    steps: int = option(100, ge=1, help="grid steps (one model evaluation + VJP each)")
    eta: float = option(
        1.0, gt=0.0, le=1.0, help="DDIM stochasticity of both samplers (1: ancestral)"
    )


@dataclasses.dataclass(frozen=True)
class SMCSection:
    particles: list[int] = option(
        factory=lambda: [64, 256, 1024, 4096], help="particle counts (increasing)"
    )
    repeats: int = option(16, ge=2, help="independent SMC runs per count (for standard errors)")
    twist_variance: str | jd.AbstractTwist = option(
        "pigdm",
        choices=TWISTS,
        help="TDS twist; from Python, a twist object (any diffusion.AbstractTwist) instead",
        objects=jd.AbstractTwist,
    )
    data_std: float = option(2.0, gt=0.0, help="prior scale s of the pigdm twist")
    resampling: str = option(
        "systematic", choices=tuple(RESAMPLING_SCHEMES), help="resampling scheme"
    )
    ess_threshold: float = option(0.5, ge=0.0, le=1.0, help="resample when ESS < threshold N")

    def __post_init__(self):
        if not isinstance(self.twist_variance, str) and self.data_std != 2.0:
            raise ConfigError("data_std", "is not used with a twist object; remove it")
        if not self.particles or sorted(set(self.particles)) != list(self.particles):
            raise ConfigError("particles", f"expected increasing counts, got {self.particles}")
        for i, n in enumerate(self.particles):
            if n < 1:
                raise ConfigError(f"particles[{i}]", f"expected an integer >= 1, got {n}")


@dataclasses.dataclass(frozen=True)
class DPSSection:
    zeta: list[float] = option(
        factory=lambda: [0.3, 1.0], help="step sizes zeta' (the paper uses 0.1-1)"
    )
    num_samples: int = option(4096, ge=2, help="independent DPS draws per step size")

    def __post_init__(self):
        if not self.zeta:
            raise ConfigError("zeta", "expected at least one step size")
        for i, z in enumerate(self.zeta):
            if not (math.isfinite(z) and z >= 0):
                raise ConfigError(f"zeta[{i}]", f"expected a finite number >= 0, got {z}")


@dataclasses.dataclass(frozen=True)
class PlotSection:
    enabled: bool = option(True, help="write PNG plots")
    dpi: int = option(120, ge=50, le=600)
    max_points: int = option(2000, ge=10, help="draws shown per scatter panel")


@dataclasses.dataclass(frozen=True)
class InverseGMMConfig:
    """Schema of the `inverse_gmm` pipeline."""

    prior: PriorSection = section(PriorSection, help="the Gaussian-mixture prior")
    observation: ObservationSection = section(ObservationSection, help="y = A x + noise")
    diffusion: DiffusionSection = section(DiffusionSection, help="schedule and grid")
    smc: SMCSection = section(SMCSection, help="twisted SMC (TDS)")
    dps: DPSSection = section(DPSSection, help="diffusion posterior sampling")
    seed: int = option(0, ge=0, help="PRNG seed of the samplers")
    plot: PlotSection = section(PlotSection)

    def __post_init__(self):
        d = len(self.prior.means[0])
        if len(self.observation.matrix[0]) != d:
            raise ConfigError(
                "observation.matrix",
                f"expected rows of length d = {d} (the prior's dimension), got "
                f"{len(self.observation.matrix[0])}",
            )


def _rmse(estimates, target):
    """RMSE of repeated estimates and its delta-method standard error."""
    sq = np.sum((np.asarray(estimates) - np.asarray(target)) ** 2, axis=-1)
    mse = float(np.mean(sq))
    se = float(np.std(sq, ddof=1) / math.sqrt(len(sq))) if len(sq) > 1 else float("nan")
    return math.sqrt(mse), se / (2 * math.sqrt(mse)) if mse > 0 else float("nan")


def run(config: InverseGMMConfig, run_dir: Path) -> dict:
    """Sample with SMC and DPS, compare with the exact posterior, plot, return the metrics."""
    start = time.perf_counter()
    pc, oc, dc = config.prior, config.observation, config.diffusion
    prior = jd.GaussianMixture(pc.weights, pc.means, pc.variances)
    a = jnp.asarray(oc.matrix, dtype=prior.means.dtype)
    if oc.y is None:
        k1, k2 = jax.random.split(jax.random.key(oc.seed))
        x_true = prior.sample(k1, 1)[0]
        y = a @ x_true + oc.noise_std * jax.random.normal(k2, (a.shape[0],), a.dtype)
    else:
        y = jnp.asarray(oc.y, a.dtype)
    obs = LinearObservation(a, noise_std=oc.noise_std)
    post = jax.jit(jd.exact_posterior)(prior, obs, y)  # one program, not op-by-op
    sch = SCHEDULES[dc.schedule]()
    grid = jd.time_grid(sch, dc.steps, SPACINGS[dc.grid]())
    model = prior.eps_model(sch)
    logger.info(
        "prior: %d components in d = %d; y = %s; exact posterior weights %s, mean %s, "
        "log-evidence %.4f",
        len(pc.weights),
        prior.dim,
        np.round(np.asarray(y), 4).tolist(),
        np.round(np.asarray(post.weights), 4).tolist(),
        np.round(np.asarray(post.mean()), 4).tolist(),
        float(post.log_evidence),
    )
    key_smc, key_dps, key_ref = jax.random.split(jax.random.key(config.seed), 3)
    target = np.asarray(post.mean())
    n_max = max(max(config.smc.particles), config.dps.num_samples)
    w1_one = jax.jit(lambda p, lw: jd.marginal_wasserstein1(post, p, lw))

    def w1_fn(samples, log_weights):
        """Mean over runs and coordinates of the marginal W1, through one compiled program:
        every run is padded to n_max draws with zero-weight copies of its first draw."""
        samples, log_weights = np.asarray(samples), np.asarray(log_weights)
        pad = n_max - samples.shape[1]
        out = []
        for p, lw in zip(samples, log_weights, strict=True):
            p = np.concatenate([p, np.repeat(p[:1], pad, axis=0)])
            lw = np.concatenate([lw, np.full(pad, -np.inf, lw.dtype)])
            out.append(np.asarray(w1_one(jnp.asarray(p), jnp.asarray(lw))))
        return np.mean(out)

    error_mean, error_se, w1 = {}, {}, {}
    smc_diag, exact_w1 = {}, {}
    smc_draws = np.zeros((0, prior.dim))
    sc = config.smc
    tds = jd.TDS(
        obs,
        y,
        eta=dc.eta,
        twist=(
            sc.twist_variance
            if isinstance(sc.twist_variance, jd.AbstractTwist)
            else make_twist(sc.twist_variance, sc.data_std)
        ),
        resampler=smc.Resampler(RESAMPLING_SCHEMES[sc.resampling]),
        ess_threshold=sc.ess_threshold,
    )
    for i, n in enumerate(sc.particles):
        run_smc = jax.jit(jax.vmap(lambda k, n=n: jd.smc_sample(tds, model, sch, grid, n, key=k)))
        keys = jax.random.split(jax.random.fold_in(key_smc, i), sc.repeats)
        t0 = time.perf_counter()
        compiled = run_smc.lower(keys).compile()
        t1 = time.perf_counter()
        res = jax.block_until_ready(compiled(keys))
        seconds = time.perf_counter() - t1
        means = np.einsum("rn,rnd->rd", np.exp(np.asarray(res.log_weights)), res.particles)
        name = f"smc_{n}"
        error_mean[name], error_se[name] = _rmse(means, target)
        w1[name] = float(w1_fn(res.particles, res.log_weights))
        log_z = np.asarray(res.log_normalizer)
        smc_diag[n] = {
            "log_normalizer_mean": float(np.mean(log_z)),
            "log_normalizer_se": float(np.std(log_z, ddof=1) / math.sqrt(len(log_z))),
            "log_normalizer_error": float(np.mean(log_z) - float(post.log_evidence)),
            "min_ess_median": float(np.median(np.asarray(res.min_ess))),
            "final_ess_median": float(np.median(np.asarray(res.ess))),
            "resamplings_mean": float(np.mean(np.sum(np.asarray(res.info.resampled), -1))),
            "collapsed_runs": int(np.sum(np.asarray(res.collapsed))),
            "compile_seconds": t1 - t0,
            "seconds": seconds,
        }
        if smc_diag[n]["collapsed_runs"]:
            logger.warning(
                "smc N=%d: weights collapsed in %d of %d runs",
                n,
                smc_diag[n]["collapsed_runs"],
                sc.repeats,
            )
        ref = post.sample(jax.random.fold_in(key_ref, i), sc.repeats * n).reshape(sc.repeats, n, -1)
        exact_w1[n] = float(w1_fn(ref, np.zeros(ref.shape[:2], np.float32)))
        logger.info(
            "smc N=%5d: mean error %.4f +- %.4f, W1 %.4f (exact draws %.4f), log Z %.4f "
            "(exact %.4f), min ESS %.0f, %.2f s (+%.2f s compile)",
            n,
            error_mean[name],
            error_se[name],
            w1[name],
            exact_w1[n],
            smc_diag[n]["log_normalizer_mean"],
            float(post.log_evidence),
            smc_diag[n]["min_ess_median"],
            seconds,
            t1 - t0,
        )
        if i == len(sc.particles) - 1:
            one = jax.tree.map(lambda leaf: leaf[0], res)  # the first run
            smc_draws = np.asarray(one.resample(jax.random.fold_in(key_smc, 10_000)))

    dpc = config.dps
    nd = dpc.num_samples

    @jax.jit
    def dps_run(zeta, key):
        # (pyright reads the AbstractVar `stochastic`, a property of DPS, as an __init__ field)
        sampler = jd.DPS(observation=obs, y=y, zeta=zeta, eta=dc.eta)  # pyright: ignore[reportCallIssue]
        k1, k2 = jax.random.split(key)
        x_T = sch.prior_std() * jax.random.normal(k2, (nd, prior.dim), a.dtype)
        return jax.vmap(lambda k, x: jd.sample(sampler, model, sch, grid, x, key=k).x)(
            jax.random.split(k1, nd), x_T
        )

    dps_draws: dict[float, np.ndarray] = {}
    for j, zeta in enumerate(dpc.zeta):
        t0 = time.perf_counter()
        x = np.asarray(dps_run(jnp.asarray(zeta, a.dtype), jax.random.fold_in(key_dps, j)))
        name = f"dps_zeta={zeta:g}"
        error_mean[name] = float(np.linalg.norm(x.mean(0) - target))
        error_se[name] = float(np.sqrt(np.sum(x.var(0)) / nd))  # MC error of the mean
        w1[name] = float(w1_fn(x[None], np.zeros((1, nd), np.float32)))
        dps_draws[zeta] = x
        logger.info(
            "dps zeta=%g: mean error %.4f (MC se %.4f), W1 %.4f, %.2f s (incl. compile)",
            zeta,
            error_mean[name],
            error_se[name],
            w1[name],
            time.perf_counter() - t0,
        )

    counts = np.asarray(sc.particles, float)
    errs = np.asarray([error_mean[f"smc_{n}"] for n in sc.particles])
    # the log-log slope of the error against N (-1/2 for Monte Carlo)
    slope = -fit_convergence_order(counts, errs) if len(counts) > 1 else None
    exact_ref = np.asarray(post.sample(jax.random.fold_in(key_ref, 99), nd))
    arrays: dict[str, Any] = {"smc": smc_draws, "exact": exact_ref, "y": np.asarray(y)}
    arrays.update({f"dps_zeta={z:g}": v for z, v in dps_draws.items()})
    np.savez(run_dir / "samples.npz", **arrays)
    if config.plot.enabled:
        with _plots.guard():
            _plots._save(
                _samples_figure(post, smc_draws, dps_draws, exact_ref, config),
                run_dir / "samples.png",
                config.plot.dpi,
            )
            _plots._save(
                _error_figure(config, error_mean, error_se, w1, exact_w1),
                run_dir / "error_vs_particles.png",
                config.plot.dpi,
            )
    return {
        "error_mean": error_mean,
        "error_mean_se": error_se,
        "w1": w1,
        "w1_exact_draws": {str(n): v for n, v in exact_w1.items()},
        "smc_error_slope": slope,
        "smc": {str(n): v for n, v in smc_diag.items()},
        "exact": {
            "weights": np.asarray(post.weights).tolist(),
            "mean": target.tolist(),
            "log_evidence": float(post.log_evidence),
        },
        "y": np.asarray(y).tolist(),
        "wall_seconds": time.perf_counter() - start,
    }


# ---------------------------------------------------------------------------------- plots


def _contour(ax, post, lo, hi):
    """Density contours of the exact posterior's (x0, x1) marginal."""
    g0 = np.linspace(lo[0], hi[0], 160)
    g1 = np.linspace(lo[1], hi[1], 160)
    xx = np.stack(np.meshgrid(g0, g1, indexing="xy"), -1).reshape(-1, 2)
    sub = jd.MixturePosterior(
        post.weights, post.means[:, :2], post.covariances[:, :2, :2], post.log_evidence
    )
    dens = np.exp(np.asarray(jax.jit(jax.vmap(sub.logpdf))(jnp.asarray(xx, post.means.dtype))))
    # Levels at fixed fractions of the peak density (automatic levels would also draw the
    # far tails of negligible components).
    levels = float(dens.max()) * np.array([0.01, 0.05, 0.2, 0.5, 0.8])
    ax.contour(g0, g1, dens.reshape(160, 160), levels=levels, colors="k", linewidths=0.7)


def _samples_figure(post, smc, dps, exact, config) -> Figure:
    panels = [
        ("exact posterior draws", exact),
        (f"SMC (TDS), N={config.smc.particles[-1]}, resampled", smc),
    ]
    panels += [(f"DPS, zeta={z:g}", x) for z, x in dps.items()]
    pts = np.concatenate([p[1][:, :2] for p in panels])
    lo = np.percentile(pts, 0.5, axis=0) - 0.5
    hi = np.percentile(pts, 99.5, axis=0) + 0.5
    fig = Figure(figsize=(3.6 * len(panels), 3.8), layout="constrained")
    axes = fig.subplots(1, len(panels), sharex=True, sharey=True, squeeze=False)[0]
    m = config.plot.max_points
    for ax, (label, x) in zip(axes, panels, strict=True):
        _contour(ax, post, lo, hi)
        ax.plot(x[:m, 0], x[:m, 1], ".", ms=2, alpha=0.35, color="tab:blue")
        ax.set_title(label, fontsize=9)
        ax.set_xlabel("x[0]")
        ax.set_xlim(lo[0], hi[0])
        ax.set_ylim(lo[1], hi[1])
    axes[0].set_ylabel("x[1]")
    fig.suptitle("draws over the exact posterior's density contours (first two coordinates)")
    return fig


def _error_figure(config, error_mean, error_se, w1, exact_w1) -> Figure:
    counts = np.asarray(config.smc.particles, float)
    fig = Figure(figsize=(10, 4.2), layout="constrained")
    ax_m, ax_w = fig.subplots(1, 2)
    e = [error_mean[f"smc_{n}"] for n in config.smc.particles]
    s = [error_se[f"smc_{n}"] for n in config.smc.particles]
    ax_m.errorbar(counts, e, yerr=s, marker="o", capsize=3, label="SMC (TDS), RMSE over runs")
    ax_m.loglog(counts, e[0] * np.sqrt(counts[0] / counts), "k:", lw=0.8, label="N^-1/2")
    ax_w.loglog(counts, [w1[f"smc_{n}"] for n in config.smc.particles], "o-", label="SMC (TDS)")
    ax_w.loglog(
        counts,
        [exact_w1[n] for n in config.smc.particles],
        "s--",
        color="gray",
        label="i.i.d. exact draws",
    )
    for i, z in enumerate(config.dps.zeta):
        name = f"dps_zeta={z:g}"
        kw = dict(
            color=f"C{i + 1}",
            ls="--",
            lw=1.0,
            label=f"DPS zeta={z:g} ({config.dps.num_samples} draws)",
        )
        ax_m.axhline(error_mean[name], **kw)
        ax_w.axhline(w1[name], **kw)
    ax_m.set_xscale("log")
    ax_m.set_yscale("log")
    ax_m.set_title("error of the posterior mean", fontsize=10)
    ax_w.set_title("mean 1-D marginal Wasserstein-1", fontsize=10)
    for ax in (ax_m, ax_w):
        ax.set_xlabel("particles N")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7)
    fig.suptitle("posterior sampling against the exact mixture posterior")
    return fig
