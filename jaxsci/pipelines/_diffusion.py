r"""Pipelines `gmm_samplers` and `train_diffusion`, built from `jaxsci.diffusion`.

**gmm_samplers**: every deterministic sampler of the registry (`_diffusion_names.SAMPLERS`,
named as diffusers names its `solver_order`: `deis_3` is third order) at a list of
NFE budgets on the exact-score `GaussianMixture` (no network error), in float64. The
reference is a tight adaptive diffrax solve (Dopri8, rtol = atol = 1e-10 by default) of
the probability-flow ODE from the same initial noise x_T ~ p_{t_max} (the exact noised
marginal), the harness of Lu et al. (2022, DPM-Solver, section 6). For each sampler and
budget the grid has `steps = NFE // nfe_per_step` steps (singlestep methods spend
`nfe_per_step` evaluations per step; multistep methods one); the NFE actually spent is
measured and reported, and never exceeds the budget unless even one step (or the
sampler's minimum number of steps) costs more. The fitted order
(`jaxsci.metrics.fit_convergence_order`) is the least-squares slope of -log(error) against
log(steps) (h ~ 1/steps), over all budgets: with budgets as small as 5 it is
pre-asymptotic, see `order_tail` (the last two budgets) too; `theory_order` is each
sampler's `convergence_order`. Per-sample errors are
RMS over coordinates; `error_rms` is their root mean square, `error_median` their median
(few-step runs on mixtures are dominated by the samples that land in the wrong component).
`dc_solver` (`jd.DCSolver`) has its compensation ratios searched for each grid
(`jd.dc_calibrate`) on 10 calibration noises drawn apart from the scored ones, with their
own reference solves.

**train_diffusion**: train a `jaxsci.nn.ScoreMLP` on a 2-D dataset of `jaxsci.data`
(`two_moons`, or a `ring` of Gaussians) with denoising score matching (or conditional flow
matching), using `jaxsci.train.fit` with an EMA of the weights; sample with a chosen
sampler; plot samples against held-out data; report the squared MMD
(`jaxsci.metrics.mmd2`: unbiased U-statistic, Gretton et al. 2012, eq. 3, with a sum of
Gaussian kernels) between samples and held-out data, and as its noise floor the MMD between
two independent data samples of the same sizes.
"""

import dataclasses
import logging
import time
from pathlib import Path

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, NullFormatter, ScalarFormatter

from .. import diffusion as jd, train
from ..data import ring, two_moons
from ..metrics import fit_convergence_order, mmd2
from ..nn import ScoreMLP
from . import _plots
from ._diffusion_names import (
    DSM_TARGETS,
    PARAMETERIZATIONS,
    SAMPLERS,
    SCHEDULES,
    SPACINGS,
    TIME_SAMPLINGS,
    WARMUPS,
    WEIGHTINGS,
    make_sampler,
)
from ._plots import PlotSection
from ._schema import ConfigError, option, section

logger = logging.getLogger("jaxsci.pipelines.diffusion")

GMM_DESCRIPTION = "every ODE sampler at NFE 5-50 on an exact-score Gaussian mixture (float64)"
TRAIN_DESCRIPTION = "train a score network on 2-D data, sample, plot, MMD to held-out data"


def _deterministic_samplers() -> tuple[str, ...]:
    return tuple(n for n in SAMPLERS if not make_sampler(n).stochastic)


def _default_samplers() -> list[str]:
    """All deterministic samplers but `probability_flow`: that is the diffrax solve the
    reference itself uses (with a fixed-step Tsit5 one interval already costs more than the
    smallest budgets); it can still be listed explicitly."""
    return [n for n in _deterministic_samplers() if n != "probability_flow"]


def _sampler_kwargs(name: str, lower_order_final: bool, warmup: str) -> dict:
    """Options passed to a sampler that has them (`lower_order_final`, `warmup`)."""
    fields = {f.name for f in dataclasses.fields(make_sampler(name))}
    kw = {}
    if "lower_order_final" in fields:
        kw["lower_order_final"] = lower_order_final
    if "warmup" in fields:
        kw["warmup"] = WARMUPS[warmup]()
    return kw


# ---------------------------------------------------------------------------- gmm_samplers

# Data draws of the mixture that DPM-Solver-v3's statistics are estimated from.
V3_STATISTICS_SAMPLES = 1024


def _with_statistics(sampler, denoiser, mix, seed: int):
    """The sampler, with statistics where it needs them (once, not per grid as `_prepare`):
    DPM-Solver-v3 without statistics gets
    `model_statistics` from `V3_STATISTICS_SAMPLES` draws of the mixture (its own key)."""
    if isinstance(sampler, jd.DPMSolverV3) and sampler.statistics is None:
        k_data, k_stats = jax.random.split(jax.random.fold_in(jax.random.key(seed), 3))
        x0 = mix.sample(k_data, V3_STATISTICS_SAMPLES)
        stats = jd.model_statistics(denoiser, x0, k_stats)
        sampler = dataclasses.replace(sampler, statistics=stats)
    return sampler


def check_mixture_section(section, min_dim: int) -> None:
    """Config checks of a Gaussian-mixture section (`weights`, `means`, `variances`): K
    positive weights, K rows of equal length d >= `min_dim` for means and variances, positive
    variances. Errors name the key."""
    k = len(section.weights)
    if k == 0 or any(w <= 0 for w in section.weights):
        raise ConfigError("weights", f"expected positive weights, got {section.weights}")
    for name, rows in (("means", section.means), ("variances", section.variances)):
        if len(rows) != k or len({len(r) for r in rows}) != 1 or len(rows[0]) < min_dim:
            raise ConfigError(
                name,
                f"expected {k} rows (one per weight) of equal length d >= {min_dim}, got {rows}",
            )
    if len(section.means[0]) != len(section.variances[0]):
        raise ConfigError("variances", "expected rows of the length of the means' rows")
    if any(v <= 0 for row in section.variances for v in row):
        raise ConfigError("variances", "expected positive variances")


@dataclasses.dataclass(frozen=True)
class MixtureSection:
    weights: list[float] = option(factory=lambda: [0.3, 0.7], help="component weights (K)")
    means: list[list[float]] = option(
        factory=lambda: [[-1.0, 0.5], [1.0, -0.5]], help="component means (K x d)"
    )
    variances: list[list[float]] = option(
        factory=lambda: [[0.25, 0.25], [0.3, 0.2]], help="diagonal variances (K x d)"
    )

    def __post_init__(self):
        check_mixture_section(self, min_dim=1)


@dataclasses.dataclass(frozen=True)
class ReferenceSection:
    rtol: float = option(1e-10, gt=0.0, help="Dopri8 relative (and absolute) tolerance")
    max_steps: int = option(100_000, ge=100, help="step cap of the reference solve")


@dataclasses.dataclass(frozen=True)
class GMMSamplersConfig:
    """Schema of the `gmm_samplers` pipeline."""

    mixture: MixtureSection = section(MixtureSection, help="the exact-score data")
    schedule: str = option("vp_linear", choices=tuple(SCHEDULES), help="noise schedule")
    grid: str = option("logsnr_uniform", choices=tuple(SPACINGS), help="time grid")
    samplers: list[str | jd.AbstractSampler] = option(
        factory=_default_samplers,
        help="deterministic samplers of the registry (default: all but probability_flow); "
        "from Python, sampler objects (any diffusion.AbstractSampler) may stand in the list",
        objects=jd.AbstractSampler,
    )

    @property
    def labels(self) -> list[str]:
        """A name per sampler: its registry name, or an object's class name (numbered when
        several objects share a class)."""
        names = [s if isinstance(s, str) else type(s).__name__ for s in self.samplers]
        return [
            f"{n}#{names[:i].count(n) + 1}" if names.count(n) > 1 and not isinstance(s, str) else n
            for i, (n, s) in enumerate(zip(names, self.samplers, strict=True))
        ]

    nfe: list[int] = option(factory=lambda: [5, 10, 20, 50], help="NFE budgets (>= 2 of them)")
    num_samples: int = option(256, ge=1, help="initial noises (same for every sampler)")
    lower_order_final: bool = option(False, help="lower-order final steps (off: true orders)")
    warmup: str = option("lower_order", choices=tuple(WARMUPS))
    seed: int = option(0, ge=0, help="PRNG seed of the initial noise")
    reference: ReferenceSection = section(ReferenceSection)
    plot: PlotSection = section(PlotSection)

    def __post_init__(self):
        known = _deterministic_samplers()
        for i, name in enumerate(self.samplers):
            if isinstance(name, jd.AbstractSampler):
                if name.stochastic:
                    raise ConfigError(
                        f"samplers[{i}]",
                        f"{type(name).__name__} is stochastic; only deterministic samplers are "
                        "compared against the reference solve",
                    )
                continue
            if name not in known:
                stoch = "" if name not in SAMPLERS else " (stochastic samplers are not compared)"
                raise ConfigError(
                    f"samplers[{i}]", f"expected one of {list(known)}, got {name!r}{stoch}"
                )
        if len(set(self.labels)) != len(self.labels) or not self.samplers:
            raise ConfigError("samplers", f"expected distinct names, got {self.labels}")
        if len(self.nfe) < 2 or sorted(set(self.nfe)) != list(self.nfe):
            raise ConfigError("nfe", f"expected >= 2 increasing budgets, got {self.nfe}")
        for i, n in enumerate(self.nfe):
            if n < 1:
                raise ConfigError(f"nfe[{i}]", f"expected a positive integer, got {n}")


def _run_sampler(sampler, denoiser, grid, x_T):
    out = jax.vmap(lambda x: jd.sample(sampler, denoiser, denoiser.schedule, grid, x))(x_T)
    return out.x, int(np.asarray(out.nfe)[0])


def _first_steps(sampler, nfe: int) -> int:
    """The number of steps `_budgeted` tries first for an NFE budget (and `_prepare`
    calibrates for: samplers prepared per grid take one NFE per step, so it is kept)."""
    return max(sampler.min_steps(), nfe // sampler.nfe_per_step)


def _budgeted(sampler, denoiser, spacing, nfe, x_T):
    """Run with the most steps whose measured NFE fits the budget (see the module doc)."""
    sch = denoiser.schedule
    lo = sampler.min_steps()
    steps = _first_steps(sampler, nfe)
    for _ in range(4):
        x, used = _run_sampler(sampler, denoiser, jd.time_grid(sch, steps, spacing), x_T)
        if used <= nfe or steps == lo:
            return x, used, steps
        steps = max(lo, min(steps - 1, (steps * nfe) // used))
    return x, used, steps


# Calibration trajectories of samplers prepared per grid (DC-Solver: the paper uses 10).
_CALIBRATION_SAMPLES = 10


def _prepare(sampler, denoiser, spacing, nfe, calibration):
    """A sampler ready for the grid of `nfe` steps: `DCSolver` gets its ratios searched
    (`jd.dc_calibrate`) on `calibration` = (noises, reference samples), not the scored ones."""
    if isinstance(sampler, jd.DCSolver):
        grid = jd.time_grid(denoiser.schedule, _first_steps(sampler, nfe), spacing)
        sampler, info = jd.dc_calibrate(sampler, denoiser, grid, *calibration)
        logger.info("dc_solver NFE %d: calibration loss %.2e", nfe, float(info.final_loss))
    return sampler


def run_gmm_samplers(config: GMMSamplersConfig, run_dir: Path) -> dict:
    """Errors of every sampler against the reference, table, plot, metrics."""
    start = time.perf_counter()
    with jax.enable_x64(True):
        mc = config.mixture
        mix = jd.GaussianMixture(mc.weights, mc.means, mc.variances)
        sch = SCHEDULES[config.schedule]()
        denoiser = jd.Denoiser(mix.eps_model(sch), sch)
        t_max = jnp.asarray(sch.t_max, jnp.float64)
        a_T, s_T = float(sch.alpha(t_max)), float(sch.sigma(t_max))
        x_T = mix.sample(jax.random.key(config.seed), config.num_samples, a_T, s_T)
        ref_sampler = jd.ProbabilityFlowODE(  # pyright: ignore[reportCallIssue]
            solver=diffrax.Dopri8(),
            rtol=config.reference.rtol,
            atol=config.reference.rtol,
            max_steps=config.reference.max_steps,
        )
        t0 = time.perf_counter()
        # Calibration noises (of the samplers `_prepare`d per grid), solved with the scored ones.
        key_cal = jax.random.fold_in(jax.random.key(config.seed), 1)
        x_cal = mix.sample(key_cal, _CALIBRATION_SAMPLES, a_T, s_T)
        ref, ref_nfe = _run_sampler(
            ref_sampler,
            denoiser,
            jnp.asarray([sch.t_max, sch.t_min], jnp.float64),
            jnp.concatenate([x_T, x_cal]),
        )
        ref, calibration = ref[: len(x_T)], (x_cal, ref[len(x_T) :])
        logger.info(
            "reference: Dopri8 rtol=%g, %d NFE per sample, %.1f s",
            config.reference.rtol,
            ref_nfe,
            time.perf_counter() - t0,
        )
        rms, med, used, steps_of, theory = {}, {}, {}, {}, {}
        for name, given in zip(config.labels, config.samplers, strict=True):
            if isinstance(given, jd.AbstractSampler):
                sampler = given
            else:
                kwargs = _sampler_kwargs(given, config.lower_order_final, config.warmup)
                sampler = make_sampler(given, **kwargs)
            sampler = _with_statistics(sampler, denoiser, mix, config.seed)
            theory[name] = None if name == "probability_flow" else sampler.convergence_order
            rms[name], med[name], used[name], steps_of[name] = {}, {}, {}, {}
            for nfe in config.nfe:
                prepared = _prepare(sampler, denoiser, SPACINGS[config.grid](), nfe, calibration)
                x, n_used, steps = _budgeted(prepared, denoiser, SPACINGS[config.grid](), nfe, x_T)
                e = np.sqrt(np.mean((np.asarray(x) - np.asarray(ref)) ** 2, axis=-1))
                rms[name][nfe] = float(np.sqrt(np.mean(e**2)))
                med[name][nfe] = float(np.median(e))
                used[name][nfe], steps_of[name][nfe] = n_used, steps
            logger.info(
                "%-14s %s",
                name,
                "  ".join(f"{rms[name][n]:.2e}@{used[name][n]}" for n in config.nfe),
            )
    order = {
        n: fit_convergence_order(list(steps_of[n].values()), list(rms[n].values())) for n in rms
    }
    order_median = {
        n: fit_convergence_order(list(steps_of[n].values()), list(med[n].values())) for n in med
    }
    order_tail = {
        n: fit_convergence_order(list(steps_of[n].values())[-2:], list(rms[n].values())[-2:])
        for n in rms
    }
    table = _gmm_table(config, rms, med, used, order, order_tail, theory)
    (run_dir / "table.md").write_text(table + "\n")
    logger.info("\n%s", table)
    np.savez(
        run_dir / "errors.npz",
        samplers=np.asarray(config.labels),
        nfe=np.asarray(config.nfe),
        error_rms=np.asarray([[rms[s][n] for n in config.nfe] for s in config.labels]),
        error_median=np.asarray([[med[s][n] for n in config.nfe] for s in config.labels]),
        nfe_used=np.asarray([[used[s][n] for n in config.nfe] for s in config.labels]),
        x_T=np.asarray(x_T),
        reference=np.asarray(ref),
    )
    if config.plot.enabled:
        with _plots.guard():
            _plots._save(
                _gmm_figure(config, rms, med, used), run_dir / "error_vs_nfe.png", config.plot.dpi
            )
    return {
        "error_rms": rms,
        "error_median": med,
        "order": order,
        "order_median": order_median,
        "order_tail": order_tail,
        "theory_order": theory,
        "nfe_used": used,
        "steps": steps_of,
        "reference_nfe": ref_nfe,
        "dim": mix.dim,
        "num_samples": config.num_samples,
        "wall_seconds": time.perf_counter() - start,
    }


def _gmm_table(config, rms, med, used, order, order_tail, theory) -> str:
    head = ["sampler", *[f"NFE {n}" for n in config.nfe], "order", "order (last 2)", "theory"]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for s in config.labels:
        cells = [s]
        for n in config.nfe:
            star = "" if used[s][n] == n else f" ({used[s][n]})"
            cells.append(f"{rms[s][n]:.2e} / {med[s][n]:.2e}{star}")
        th = "-" if theory[s] is None else str(theory[s])
        cells += [f"{order[s]:.2f}", f"{order_tail[s]:.2f}", th]
        rows.append("| " + " | ".join(cells) + " |")
    note = (
        "RMS / median error against the Dopri8 reference; (n): NFE actually spent when it "
        "differs from the budget. Orders: slope of log RMS error against log steps."
    )
    return "\n".join(rows + ["", note])


def _gmm_figure(config, rms, med, used) -> Figure:
    fig = Figure(figsize=(12.5, 4.8), layout="constrained")
    axes = fig.subplots(1, 2, sharey=True)
    styles = _plots.series_styles(config.labels, known=tuple(SAMPLERS))
    for s in config.labels:
        x = [used[s][n] for n in config.nfe]
        kw = dict(**styles[s], ms=4, lw=1.1, label=s)
        axes[0].loglog(x, [rms[s][n] for n in config.nfe], **kw)
        axes[1].loglog(x, [med[s][n] for n in config.nfe], **kw)
    for ax, what in zip(axes, ("RMS", "median"), strict=True):
        ax.set_xlabel("NFE (model evaluations)")
        ax.xaxis.set_major_locator(FixedLocator(config.nfe))
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_title(f"{what} error vs a Dopri8 PF-ODE solve", fontsize=10)
        ax.grid(alpha=0.3, which="both")
    axes[0].set_ylabel("error of the final sample")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside right upper", fontsize=8, handlelength=3)
    fig.suptitle(f"exact-score Gaussian mixture, {config.schedule}, {config.grid} grid (float64)")
    return fig


# ------------------------------------------------------------------------- train_diffusion

DATASETS = ("two_moons", "ring")


@dataclasses.dataclass(frozen=True)
class DataSection:
    name: str = option("two_moons", choices=DATASETS, help="2-D dataset (jaxsci.data)")
    num_train: int = option(8192, ge=2, help="training examples")
    num_test: int = option(2000, ge=2, help="held-out examples (MMD reference)")
    noise: float = option(0.05, ge=0.0, help="two_moons: noise std; ring: component std")
    components: int = option(8, ge=1, help="ring: number of Gaussians on the unit circle")
    seed: int = option(0, ge=0, help="PRNG seed of the data")


@dataclasses.dataclass(frozen=True)
class NetworkSection:
    width: int = option(128, ge=1)
    depth: int = option(3, ge=1, help="hidden layers")
    time_embedding_dim: int = option(16, ge=2, help="sinusoidal embedding size (even)")
    time_scale: float = option(100.0, gt=0.0, help="multiplies t before the embedding")

    def __post_init__(self):
        if self.time_embedding_dim % 2:
            raise ConfigError(
                "time_embedding_dim", f"expected an even number, got {self.time_embedding_dim}"
            )


@dataclasses.dataclass(frozen=True)
class LossSection:
    kind: str = option("dsm", choices=("dsm", "flow_matching"), help="training objective")
    schedule: str | None = option(
        None,
        choices=tuple(SCHEDULES),
        help="noise schedule / interpolant (default: vp_linear for dsm, rectified_flow for "
        "flow_matching)",
    )
    parameterization: str = option(
        "eps", choices=tuple(PARAMETERIZATIONS), help="dsm: what the network outputs"
    )
    target: str | None = option(
        None, choices=DSM_TARGETS, help="dsm: default = output kind if eps/x0/v, else eps"
    )
    weighting: str = option("uniform", choices=tuple(WEIGHTINGS), help="dsm weighting")
    gamma: float = option(5.0, gt=0.0, help="min_snr: gamma")
    time_sampling: str = option("uniform", choices=tuple(TIME_SAMPLINGS))

    def __post_init__(self):
        if self.kind == "flow_matching" and self.time_sampling == "logsnr":
            raise ConfigError("time_sampling", "flow_matching takes uniform or stratified")
        if self.kind == "flow_matching" and self.parameterization != "eps":
            raise ConfigError(
                "parameterization", "flow_matching trains a flow-velocity network; leave it unset"
            )


@dataclasses.dataclass(frozen=True)
class DiffusionTrainingSection:
    steps: int = option(8000, ge=1, help="optimizer steps")
    batch_size: int = option(256, ge=1)
    learning_rate: float = option(5e-3, gt=0.0, help="peak learning rate (cosine decay)")
    ema: float | None = option(0.995, gt=0.0, lt=1.0, help="EMA decay of the weights")
    clip_norm: float | None = option(1.0, gt=0.0, help="clip gradients to this global norm")
    seed: int = option(1, ge=0, help="PRNG seed of the network, data order and loss noise")


@dataclasses.dataclass(frozen=True)
class SamplingSection:
    sampler: str | jd.AbstractSampler = option(
        "dpmpp_2m",
        choices=tuple(SAMPLERS),
        help="sampler name; from Python, a sampler object (any diffusion.AbstractSampler)",
        objects=jd.AbstractSampler,
    )

    @property
    def label(self) -> str:
        """The sampler's registry name or an object's class name."""
        return self.sampler if isinstance(self.sampler, str) else type(self.sampler).__name__

    steps: int = option(20, ge=1, help="grid steps")
    grid: str = option("logsnr_uniform", choices=tuple(SPACINGS))
    num_samples: int = option(2000, ge=2, help="generated samples")
    seed: int = option(2, ge=0, help="PRNG seed of the initial noise (and SDE noise)")


@dataclasses.dataclass(frozen=True)
class MMDSection:
    bandwidths: list[float] = option(
        factory=lambda: [0.05, 0.1, 0.2, 0.5, 1.0],
        help="Gaussian kernel bandwidths (units of the standardised data)",
    )

    def __post_init__(self):
        if not self.bandwidths or any(b <= 0 for b in self.bandwidths):
            raise ConfigError("bandwidths", f"expected positive numbers, got {self.bandwidths}")


@dataclasses.dataclass(frozen=True)
class TrainDiffusionConfig:
    """Schema of the `train_diffusion` pipeline."""

    data: DataSection = section(DataSection)
    network: NetworkSection | eqx.Module = section(
        NetworkSection,
        help="the score network (a ScoreMLP); from Python, a network object instead (an "
        "equinox Module called as net(t, x) on one 2-D point x, returning the "
        "parameterisation's target)",
        objects=eqx.Module,
    )
    loss: LossSection = section(LossSection)
    training: DiffusionTrainingSection = section(DiffusionTrainingSection)
    sampling: SamplingSection = section(SamplingSection)
    mmd: MMDSection = section(MMDSection)
    plot: PlotSection = section(PlotSection)

    def __post_init__(self):
        if self.training.batch_size > self.data.num_train:
            raise ConfigError(
                "training.batch_size",
                f"expected <= data.num_train = {self.data.num_train}, got "
                f"{self.training.batch_size}",
            )
        sampler = sampler_of(self.sampling)
        if self.sampling.steps < sampler.min_steps():
            raise ConfigError(
                "sampling.steps",
                f"{self.sampling.label} needs at least {sampler.min_steps()} steps, got "
                f"{self.sampling.steps}",
            )


def sampler_of(sc: SamplingSection) -> jd.AbstractSampler:
    """The sampler object given from Python, or the registry's sampler of that name."""
    return sc.sampler if isinstance(sc.sampler, jd.AbstractSampler) else make_sampler(sc.sampler)


def _dataset(d: DataSection, key, n):
    if d.name == "two_moons":
        return two_moons(key, n, d.noise)
    return ring(key, n, d.components, d.noise)


def _optimizer(t: DiffusionTrainingSection):
    lr = optax.cosine_decay_schedule(t.learning_rate, t.steps, alpha=0.05)
    return optax.adam(lr)


def run_train_diffusion(config: TrainDiffusionConfig, run_dir: Path) -> dict:
    """Generate data, train, sample, plot, MMD."""
    start = time.perf_counter()
    d, lc, tc, sc = config.data, config.loss, config.training, config.sampling
    k_train, k_test, k_floor = jax.random.split(jax.random.key(d.seed), 3)
    raw_train = _dataset(d, k_train, d.num_train)
    mean, std = jnp.mean(raw_train, axis=0), jnp.std(raw_train, axis=0)
    train_x = (raw_train - mean) / std  # standardised: the schedules assume unit-scale data
    test_x = (_dataset(d, k_test, d.num_test) - mean) / std
    floor_x = (_dataset(d, k_floor, sc.num_samples) - mean) / std

    time_sampling = TIME_SAMPLINGS[lc.time_sampling]()
    if lc.kind == "dsm":
        schedule = SCHEDULES[lc.schedule or "vp_linear"]()
        param = lc.parameterization
        target = lc.target or (param if param in DSM_TARGETS else "eps")
        weighting = (
            jd.MinSNRWeighting(lc.gamma)
            if lc.weighting == "min_snr"
            else WEIGHTINGS[lc.weighting]()
        )
        loss = jd.DenoisingScoreMatching(
            schedule,
            PARAMETERIZATIONS[param](),
            PARAMETERIZATIONS[target](),
            weighting,
            time_sampling=time_sampling,
        )
    else:
        schedule = SCHEDULES[lc.schedule or "rectified_flow"]()
        param = "flow"
        loss = jd.FlowMatching(schedule, time_sampling=time_sampling)
    k_net, k_fit = jax.random.split(jax.random.key(tc.seed))
    net = config.network
    if isinstance(net, eqx.Module):
        model = net
    else:
        model = ScoreMLP(
            2, net.width, net.depth, net.time_embedding_dim, key=k_net, time_scale=net.time_scale
        )
    t0 = time.perf_counter()
    model, hist = train.fit(
        model,
        loss,
        train_x,
        optimizer=_optimizer(tc),
        key=k_fit,
        batch_size=tc.batch_size,
        num_steps=tc.steps,
        ema=tc.ema,
        clip_norm=tc.clip_norm,
        progress=True,
    )
    train_wall = time.perf_counter() - t0
    # Held-out loss of the returned (EMA) model, once at the end: evaluating at every epoch
    # end would cost more than training on small 2-D datasets.
    val_loss = train.evaluate(
        model, loss, test_x, batch_size=min(d.num_test, 1000), key=jax.random.key(tc.seed + 1)
    )
    losses = hist["loss"]
    window = max(1, min(100, len(losses) // 10))
    loss_first, loss_last = float(np.mean(losses[:window])), float(np.mean(losses[-window:]))
    logger.info(
        "trained %d steps in %.1f s (%.1f s compile): loss %.4g -> %.4g (mean of %d steps), "
        "held-out %.4g",
        len(losses),
        train_wall,
        hist["compile_seconds"],
        loss_first,
        loss_last,
        window,
        val_loss,
    )

    sampler = sampler_of(sc)
    denoiser = jd.Denoiser(model, schedule, PARAMETERIZATIONS[param]())
    grid = jd.time_grid(schedule, sc.steps, SPACINGS[sc.grid]())
    k_noise, k_sde = jax.random.split(jax.random.key(sc.seed))
    x_T = schedule.prior_std() * jax.random.normal(k_noise, (sc.num_samples, 2))
    keys = jax.random.split(k_sde, sc.num_samples)
    t0 = time.perf_counter()
    out = jax.vmap(lambda x, k: jd.sample(sampler, denoiser, schedule, grid, x, key=k))(x_T, keys)
    samples = np.asarray(out.x)
    sample_wall = time.perf_counter() - t0
    finite = bool(np.all(np.isfinite(samples)))
    if not finite:
        logger.warning("some samples are not finite; MMD uses the finite ones")
    good = samples[np.all(np.isfinite(samples), axis=1)]
    bw = config.mmd.bandwidths
    value = float(mmd2(good, test_x, bw)) if len(good) >= 2 else float("nan")
    floor = float(mmd2(floor_x, test_x, bw))
    logger.info(
        "%s, %d steps (%d NFE): MMD^2 to held-out data %.3g (noise floor %.3g, two data samples)",
        sc.label,
        sc.steps,
        int(np.asarray(out.nfe)[0]),
        value,
        floor,
    )
    scale = np.asarray(std), np.asarray(mean)
    np.savez(
        run_dir / "samples.npz",
        samples=samples * scale[0] + scale[1],
        test=np.asarray(test_x) * scale[0] + scale[1],
        loss=losses,
    )
    if config.plot.enabled:
        with _plots.guard():
            fig = _train_figure(
                np.asarray(test_x) * scale[0] + scale[1],
                good * scale[0] + scale[1],
                hist,
                f"{d.name}: {lc.kind} ({param}), {sc.label} {sc.steps} steps; "
                f"MMD$^2$ {value:.2g} (floor {floor:.2g})",
            )
            _plots._save(fig, run_dir / "samples.png", config.plot.dpi)
    return {
        "mmd2": value,
        "mmd2_floor": floor,
        "loss_first": loss_first,
        "loss_last": loss_last,
        "val_loss": float(val_loss),
        "finite": finite,
        "nfe": int(np.asarray(out.nfe)[0]),
        "train_seconds": float(hist["train_seconds"]),
        "compile_seconds": float(hist["compile_seconds"]),
        "sample_seconds": sample_wall,
        "num_params": int(sum(x.size for x in jax.tree.leaves(eqx.filter(model, eqx.is_array)))),
        "wall_seconds": time.perf_counter() - start,
    }


def _train_figure(data, samples, hist, title) -> Figure:
    fig = Figure(figsize=(12, 4), layout="constrained")
    ax_d, ax_s, ax_l = fig.subplots(1, 3)
    lim = np.quantile(np.abs(data), 0.999, axis=0) * 1.3 + np.abs(np.mean(data, axis=0))
    for ax, pts, name, c in ((ax_d, data, "held-out data", "C0"), (ax_s, samples, "samples", "C1")):
        ax.scatter(pts[:, 0], pts[:, 1], s=2, alpha=0.5, color=c)
        ax.set_title(f"{name} ({len(pts)})", fontsize=10)
        ax.set_xlim(np.mean(data[:, 0]) - lim[0], np.mean(data[:, 0]) + lim[0])
        ax.set_ylim(np.mean(data[:, 1]) - lim[1], np.mean(data[:, 1]) + lim[1])
        ax.set_aspect("equal")
    steps = np.arange(1, len(hist["loss"]) + 1)
    ax_l.plot(steps, hist["loss"], lw=0.3, alpha=0.4, color="C0", label="step loss")
    ax_l.plot(hist["eval_step"], hist["train_loss"], "-", color="C3", label="epoch mean")
    ax_l.set_yscale("log")
    ax_l.set_xlabel("step")
    ax_l.set_title("training loss", fontsize=10)
    ax_l.legend(fontsize=8)
    ax_l.grid(alpha=0.3, which="both")
    fig.suptitle(title, fontsize=10)
    return fig
