r"""Pipeline `ns2d_spectral_refiner`: Spectral-Refiner fine-tuning of an FNO stepper on 2-D
Kolmogorov flow (Cao, Liu, Zhang et al. 2024, "Spectral-Refiner: Accurate fine-tuning of
spatiotemporal Fourier neural operator for turbulent flows", arXiv:2405.17211).

Built from the public API only:

1. **data**: vorticity trajectories of forced 2-D Navier-Stokes
   (`data.navier_stokes_trajectories`, `dynamics.NavierStokes2D` with the Kolmogorov forcing
   -A k_f cos(k_f y), linear drag, ETDRK4), saved every `data.step` after a spin-up onto the
   attractor; the first `data.num_train` trajectories give the training windows
   (`data.rollout_windows`), the others the test rollouts.
2. **pretraining**: an `nn.Stepper` (residual) around an `nn.FNO2d`, trained with the MSE of
   `training.rollout_steps`-step rollouts (`losses.RolloutLoss`, `train.fit`).
3. **fine-tuning** from the pretrained weights, the last `finetune.fourier_layers` Fourier
   layers and the projection free (`nn.FNO.last_layers`, `train.fit(..., trainable=...)`),
   everything else frozen:
   * `hm1_ft`: with the H^{-1} loss (`losses.SobolevLoss(-1, seminorm=True)`: weights
     |kappa|^{-2}, the mean mode dropped; for vorticity it is the squared error of the
     velocity field, since |u_hat| = |w_hat| / |kappa|), Spectral-Refiner's choice;
   * `mse_ft` (the control, `finetune.control`): the same layers, steps, optimizer and data
     order with the MSE, so that a gain of `hm1_ft` over `mse` is not just more training.
4. **evaluation** on the test trajectories: autoregressive rollouts (`integrate.rollout`) of
   every model from the true initial states; the relative L2 error of the vorticity and of
   the velocity (the relative H^{-1} seminorm of the vorticity error) against the rollout
   step; the valid time (`metrics.valid_time`, relative L2 below
   `evaluation.error_threshold`); the enstrophy spectra Z(k) (`spectral.isotropic_spectrum`)
   of the rollouts and of the truth at the steps `evaluation.spectrum_steps`, averaged over
   the test trajectories, and their log-error mean_k |log10 Z_model(k) / Z_true(k)| over
   the shells 1 <= k <= n/3 - 1/2 (those whose every mode the 2/3-de-aliased simulator
   keeps; the data have no enstrophy beyond |m_i| >= n/3).

Outputs: `metrics.json` (`table`: per model the one-step MSE and H^{-1} losses on all test
pairs, the rollout errors at step 1, at `evaluation.report_step` and averaged over the
rollout, the valid time and the spectrum log-errors; `finetune`: each fine-tune's loss on
the training windows before and after; the times and parameter counts), `rollout.npz` (error
curves, spectra, one test trajectory and its rollouts), `rollout_error.png`,
`enstrophy_spectrum.png`, `snapshots.png` and `training.png`.
"""

import dataclasses
import logging
import time
from pathlib import Path
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from matplotlib.figure import Figure

from .. import data as jdata, integrate, losses, nn, spectral, train
from ..metrics import valid_time
from . import _plots
from ._plots import PlotSection
from ._schema import ConfigError, option, section
from ._training import check_multiple, history_figure

DESCRIPTION = (
    "Spectral-Refiner on 2-D Kolmogorov flow: an MSE-trained FNO stepper fine-tuned in its "
    "last layers with the H^-1 loss vs an MSE fine-tune of the same layers; rollout error "
    "and enstrophy spectra"
)

logger = logging.getLogger("jaxsci.pipelines.ns2d_spectral_refiner")

#: The models compared: the pretrained one and the two fine-tunes.
MODELS = ("mse", "mse_ft", "hm1_ft")
_LABELS = {
    "mse": "MSE-trained",
    "mse_ft": "+ MSE fine-tune (control)",
    "hm1_ft": "+ H^-1 fine-tune (Spectral-Refiner)",
}


@dataclasses.dataclass(frozen=True)
class DataSection:
    num_points: int = option(32, ge=8, help="grid points per axis (even)")
    length: float = option(6.283185307179586, gt=0.0, help="period of the box (2 pi)")
    nu: float = option(1e-2, gt=0.0, help="viscosity (1e-2 is resolved on 32^2)")
    drag: float = option(0.1, ge=0.0, help="linear drag")
    forcing_amplitude: float = option(1.0, help="Kolmogorov forcing amplitude A")
    forcing_wavenumber: int = option(4, ge=1, help="forcing mode number k_f")
    dt: float = option(0.02, gt=0.0, help="ETDRK4 step of the simulator")
    step: float = option(0.2, gt=0.0, help="time step of the surrogate (a multiple of dt)")
    spinup: float = option(20.0, ge=0.0, help="time run onto the attractor before saving")
    num_train: int = option(96, ge=1, help="training trajectories")
    num_test: int = option(8, ge=1, help="test trajectories")
    train_steps: int = option(40, ge=1, help="surrogate steps saved per training trajectory")
    test_steps: int = option(50, ge=1, help="rollout horizon in surrogate steps")
    cache: str | None = option(None, help="cache the trajectories in this .npz file")
    seed: int = option(0, ge=0, help="PRNG seed of the initial vorticity fields")

    def __post_init__(self):
        if self.num_points % 2:
            raise ConfigError("num_points", f"expected an even number, got {self.num_points}")
        check_multiple("step", self.step, self.dt, "dt")


@dataclasses.dataclass(frozen=True)
class ModelSection:
    width: int = option(24, ge=1, help="FNO channels")
    modes: int = option(8, ge=1, help="Fourier modes per axis")
    depth: int = option(4, ge=1, help="Fourier layers")
    projection_width: int = option(64, ge=1, help="hidden channels of the projection")
    seed: int = option(1, ge=0, help="PRNG seed of the initialisation")


@dataclasses.dataclass(frozen=True)
class TrainingSection:
    steps: int = option(3000, ge=1, help="optimiser steps of the MSE pretraining")
    batch_size: int = option(16, ge=1)
    learning_rate: float = option(3e-3, gt=0.0, help="Adam, cosine decay to 0")
    rollout_steps: int = option(1, ge=1, help="steps unrolled in every loss")
    seed: int = option(2, ge=0, help="PRNG seed of the data order")


@dataclasses.dataclass(frozen=True)
class FinetuneSection:
    steps: int = option(1000, ge=1, help="optimiser steps of each fine-tune")
    learning_rate: float = option(1e-3, gt=0.0, help="Adam, cosine decay to 0")
    fourier_layers: int = option(
        1, ge=0, help="last Fourier layers freed with the projection (nn.FNO.last_layers)"
    )
    loss: str = option(
        "h-1-semi",
        choices=("h-1-semi", "h-1"),
        help="h-1-semi: |kappa|^-2, mean mode dropped (Spectral-Refiner); h-1: (1 + |kappa|^2)^-1",
    )
    control: bool = option(True, help="also fine-tune the same layers with the MSE")
    seed: int = option(3, ge=0, help="PRNG seed of the data order (both fine-tunes)")


@dataclasses.dataclass(frozen=True)
class EvaluationSection:
    error_threshold: float = option(0.5, gt=0.0, help="relative L2 error that ends the valid time")
    report_step: int = option(10, ge=1, help="rollout step reported in the table")
    spectrum_steps: list[int] = option(
        factory=lambda: [1, 10, 50], help="rollout steps whose enstrophy spectra are compared"
    )

    def __post_init__(self):
        if not self.spectrum_steps:
            raise ConfigError("spectrum_steps", "expected at least one rollout step")
        for i, s in enumerate(self.spectrum_steps):
            if s < 1:
                raise ConfigError(f"spectrum_steps[{i}]", f"expected a step >= 1, got {s}")


@dataclasses.dataclass(frozen=True)
class NS2DSpectralRefinerConfig:
    """Schema of the `ns2d_spectral_refiner` pipeline."""

    data: DataSection = section(DataSection, help="Kolmogorov-flow trajectories")
    model: ModelSection = section(ModelSection, help="the FNO stepper")
    training: TrainingSection = section(TrainingSection, help="MSE pretraining")
    finetune: FinetuneSection = section(FinetuneSection, help="last-layer fine-tuning")
    evaluation: EvaluationSection = section(EvaluationSection, help="rollouts and spectra")
    plot: PlotSection = section(PlotSection)

    def __post_init__(self):
        d, e = self.data, self.evaluation
        if self.training.rollout_steps > d.train_steps:
            raise ConfigError(
                "training.rollout_steps",
                f"expected <= data.train_steps = {d.train_steps}, got "
                f"{self.training.rollout_steps}",
            )
        windows = d.num_train * (d.train_steps + 1 - self.training.rollout_steps)
        if self.training.batch_size > windows:
            raise ConfigError(
                "training.batch_size",
                f"expected at most the {windows} training windows, got {self.training.batch_size}",
            )
        if e.report_step > d.test_steps:
            raise ConfigError(
                "evaluation.report_step",
                f"expected <= data.test_steps = {d.test_steps}, got {e.report_step}",
            )
        for i, s in enumerate(e.spectrum_steps):
            if s > d.test_steps:
                raise ConfigError(
                    f"evaluation.spectrum_steps[{i}]",
                    f"expected <= data.test_steps = {d.test_steps}, got {s}",
                )
        if self.finetune.fourier_layers > self.model.depth:
            raise ConfigError(
                "finetune.fourier_layers",
                f"expected <= model.depth = {self.model.depth}, got {self.finetune.fourier_layers}",
            )


def _adam(learning_rate: float, steps: int) -> optax.GradientTransformation:
    return optax.adam(optax.cosine_decay_schedule(learning_rate, steps))


@eqx.filter_jit
def _rollouts(model, u0, steps: int):
    """`integrate.rollout` of the stepper from each of a batch of initial states."""
    return jax.vmap(lambda u: integrate.rollout(model, u, steps))(u0)


def _relative_errors(preds, truth, length):
    """Per trajectory and step: relative L2 of the vorticity and relative H^-1 seminorm (the
    relative L2 error of the velocity), both (N, steps)."""
    err = preds - truth
    axes = (-3, -2, -1)
    l2 = np.sqrt(np.sum(err**2, axis=axes) / np.sum(truth**2, axis=axes))

    def hm1(u):
        return losses.sobolev_norm(u, -1.0, length=length, spatial_dims=2, seminorm=True)

    norms = jax.jit(jax.vmap(jax.vmap(hm1)))
    return l2, np.asarray(norms(jnp.asarray(err))) / np.asarray(norms(jnp.asarray(truth)))


def _spectra(fields, steps, length):
    """Enstrophy spectra averaged over trajectories at each rollout step (1-based) of
    `steps`: (len(steps), K), and the angular wavenumbers (K,)."""
    chosen = fields[:, [s - 1 for s in steps], 0]  # (N, S, n, n)
    kappa, z = spectral.isotropic_spectrum(jnp.asarray(chosen), length=length)
    return kappa, np.asarray(z).mean(axis=0)


def _resolved_shells(n: int) -> slice:
    """The shells 1 <= k <= n/3 - 1/2: every mode of them (|m| < k + 1/2 <= n/3) is kept by
    the simulator's 2/3 de-aliasing, so the truth has its full enstrophy there (beyond, the
    shells are partly or wholly empty in the data)."""
    return slice(1, int(np.floor(n / 3 - 0.5)) + 1)


def _log_error(z_model, z_true, n):
    """mean over the resolved shells (`_resolved_shells`) of |log10(Z_model / Z_true)|, per
    spectrum."""
    k = _resolved_shells(n)
    tiny = np.finfo(np.float32).tiny
    ratio = np.maximum(z_model[..., k], tiny) / np.maximum(z_true[..., k], tiny)
    return np.mean(np.abs(np.log10(ratio)), axis=-1)


def run(config: NS2DSpectralRefinerConfig, run_dir: Path) -> dict:
    """Simulate, pretrain, fine-tune, roll out and compare; write the outputs."""
    d, m, t, f, e = config.data, config.model, config.training, config.finetune, config.evaluation
    seconds: dict[str, float] = {}
    logger.info(
        "Kolmogorov flow %d^2, nu=%g, drag=%g, A=%g, k_f=%d: %d train / %d test trajectories, "
        "step %g",
        d.num_points,
        d.nu,
        d.drag,
        d.forcing_amplitude,
        d.forcing_wavenumber,
        d.num_train,
        d.num_test,
        d.step,
    )
    t0 = time.perf_counter()
    traj = jdata.navier_stokes_trajectories(
        jax.random.key(d.seed),
        d.num_train + d.num_test,
        max(d.train_steps, d.test_steps),
        save_every=d.step,
        num_points=d.num_points,
        length=d.length,
        nu=d.nu,
        drag=d.drag,
        forcing_amplitude=d.forcing_amplitude,
        forcing_wavenumber=d.forcing_wavenumber,
        dt=d.dt,
        spinup=d.spinup,
        path=d.cache,
    )
    seconds["data"] = time.perf_counter() - t0
    if not np.all(np.isfinite(traj)):
        raise FloatingPointError(
            "the simulated vorticity is not finite: lower data.dt or raise data.nu"
        )
    k = t.rollout_steps
    train_data = jdata.rollout_windows(traj[: d.num_train, : d.train_steps + 1, None], k)
    test = traj[d.num_train :, : d.test_steps + 1, None]  # (N, T + 1, 1, n, n)
    logger.info(
        "data: %d training windows, vorticity rms %.3g (%.1f s)",
        len(train_data[0]),
        float(np.sqrt(np.mean(traj**2))),
        seconds["data"],
    )

    # 2. MSE pretraining of the whole network.
    stepper = nn.Stepper(
        nn.FNO2d(
            1,
            1,
            m.width,
            m.modes,
            m.depth,
            key=jax.random.key(m.seed),
            projection_width=m.projection_width,
        )
    )
    mse = losses.RolloutLoss(k, base=losses.MSELoss())
    t0 = time.perf_counter()
    pretrained, hist_pre = train.fit(
        stepper,
        mse,
        train_data,
        optimizer=_adam(t.learning_rate, t.steps),
        key=jax.random.key(t.seed),
        batch_size=t.batch_size,
        num_steps=t.steps,
        progress=True,
    )
    seconds["pretraining"] = time.perf_counter() - t0
    histories = {"MSE pretraining": hist_pre}

    # 3. Fine-tuning of the last layers, H^-1 (and the MSE control), from the same weights.
    def where(model):
        return model.net.last_layers(f.fourier_layers)

    sobolev = losses.SobolevLoss(
        -1.0, length=d.length, spatial_dims=2, seminorm=f.loss == "h-1-semi"
    )
    tunes = {"hm1_ft": losses.RolloutLoss(k, base=sobolev)}
    if f.control:
        tunes["mse_ft"] = mse
    models: dict[str, Any] = {"mse": pretrained}
    fine_stats: dict[str, dict] = {}
    for tag, loss in tunes.items():
        t0 = time.perf_counter()
        models[tag], hist = train.fit(
            pretrained,
            loss,
            train_data,
            optimizer=_adam(f.learning_rate, f.steps),
            key=jax.random.key(f.seed),
            batch_size=t.batch_size,
            num_steps=f.steps,
            trainable=where,
            progress=True,
        )
        seconds[f"finetune_{tag}"] = time.perf_counter() - t0
        histories[f"fine-tune {tag}"] = hist
        fine_stats[tag] = {
            # the fine-tune's own loss on all the training windows, before and after
            "train_loss_before": train.evaluate(
                pretrained, loss, train_data, batch_size=t.batch_size
            ),
            "train_loss_after": train.evaluate(
                models[tag], loss, train_data, batch_size=t.batch_size
            ),
            "steps_per_second": float(hist["steps_per_second"]),
        }
    mask = train.trainable_mask(pretrained, where)
    sizes = [
        (bool(free), int(np.size(x)) * (2 if jnp.iscomplexobj(x) else 1))
        for free, x in zip(jax.tree.leaves(mask), jax.tree.leaves(pretrained), strict=True)
        if eqx.is_inexact_array(x)
    ]
    num_params = sum(s for _, s in sizes)
    num_free = sum(s for free, s in sizes if free)

    # 4. Rollouts from the test initial states.
    t0 = time.perf_counter()
    order = [name for name in MODELS if name in models]
    truth = test[:, 1:]
    curves, curves_hm1, spectra, sample = {}, {}, {}, {}
    kappa, z_true = _spectra(truth, e.spectrum_steps, d.length)
    table: dict[str, dict[str, float]] = {}
    times = d.step * np.arange(1, d.test_steps + 1)
    r = e.report_step - 1
    test_pairs = jdata.rollout_windows(test, 1)
    one_step = {
        "mse": losses.RolloutLoss(1, base=losses.MSELoss()),
        "hm1": losses.RolloutLoss(1, base=sobolev),
    }
    for name in order:
        preds = np.asarray(_rollouts(models[name], jnp.asarray(test[:, 0]), d.test_steps))
        l2, hm1 = _relative_errors(preds, truth, d.length)
        curves[name], curves_hm1[name] = l2.mean(axis=0), hm1.mean(axis=0)
        spectra[name] = _spectra(preds, e.spectrum_steps, d.length)[1]
        sample[name] = preds[0, :, 0]
        log_err = _log_error(spectra[name], z_true, d.num_points)
        finite = np.isfinite(curves[name])
        table[name] = {
            **{
                f"test_{loss_name}": train.evaluate(
                    models[name], loss, test_pairs, batch_size=t.batch_size
                )
                for loss_name, loss in one_step.items()
            },
            "rel_l2_step1": float(curves[name][0]),
            f"rel_l2_step{e.report_step}": float(curves[name][r]),
            "rel_l2_mean": float(np.mean(curves[name])) if finite.all() else float("inf"),
            f"rel_velocity_step{e.report_step}": float(curves_hm1[name][r]),
            "valid_time": float(
                valid_time(
                    np.concatenate([[0.0], curves[name]]),
                    np.concatenate([[0.0], times]),
                    e.error_threshold,
                    last_below=True,
                )
            ),
            **{
                f"spectrum_log_error_step{s}": float(v)
                for s, v in zip(e.spectrum_steps, log_err, strict=True)
            },
        }
        logger.info(
            "%s: rel L2 %.3g at step 1, %.3g at step %d; valid time %.3g; spectrum log-error %s",
            name,
            curves[name][0],
            curves[name][r],
            e.report_step,
            table[name]["valid_time"],
            ", ".join(f"{v:.3g}" for v in log_err),
        )
    seconds["evaluation"] = time.perf_counter() - t0

    metrics: dict[str, Any] = {
        "table": table,
        "finetune": fine_stats,
        "params": num_params,
        "free_params": num_free,
        "pretrain_steps_per_second": float(hist_pre["steps_per_second"]),
        "seconds": seconds,
    }
    np.savez_compressed(
        run_dir / "rollout.npz",
        times=times,
        wavenumbers=kappa,
        spectrum_steps=np.asarray(e.spectrum_steps),
        spectrum_truth=z_true,
        truth=test[0, 1:, 0],
        **{f"rel_l2_{n}": c for n, c in curves.items()},
        **{f"rel_velocity_{n}": c for n, c in curves_hm1.items()},
        **{f"spectrum_{n}": s for n, s in spectra.items()},
        **{f"prediction_{n}": p for n, p in sample.items()},
    )
    if config.plot.enabled:
        with _plots.guard():
            heading = (
                f"Kolmogorov flow {d.num_points}$^2$, nu={d.nu:g}: FNO stepper (width {m.width}, "
                f"{m.modes} modes, depth {m.depth}), step {d.step:g}; fine-tuned: last "
                f"{f.fourier_layers} Fourier layer(s) + projection, {num_free}/{num_params} "
                "parameters"
            )
            dpi = config.plot.dpi
            _plots._save(
                _error_figure(times, curves, curves_hm1, e.error_threshold, heading),
                run_dir / "rollout_error.png",
                dpi,
            )
            _plots._save(
                _spectrum_figure(kappa, z_true, spectra, e.spectrum_steps, d, heading),
                run_dir / "enstrophy_spectrum.png",
                dpi,
            )
            _plots._save(
                _snapshots(times, test[0, 1:, 0], sample, e.spectrum_steps, heading),
                run_dir / "snapshots.png",
                dpi,
            )
            _plots._save(
                history_figure(histories, "training loss (H^-1 and MSE on different scales)"),
                run_dir / "training.png",
                dpi,
            )
    return metrics


_COLORS = {"mse": "tab:blue", "mse_ft": "tab:green", "hm1_ft": "tab:red"}


def _error_figure(times, curves, curves_hm1, threshold, heading) -> Figure:
    fig = Figure(figsize=(11, 4), layout="constrained")
    axes = fig.subplots(1, 2)
    for ax, data, label in (
        (axes[0], curves, "relative L2 error of the vorticity"),
        (axes[1], curves_hm1, "relative L2 error of the velocity (H$^{-1}$ of vorticity)"),
    ):
        for name, c in data.items():
            ax.plot(times, c, color=_COLORS[name], lw=1.4, label=_LABELS[name])
        ax.set_yscale("log")
        ax.set_xlabel("rollout time")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3, which="both")
    axes[0].axhline(threshold, color="0.4", ls="--", lw=0.9, label=f"threshold {threshold:g}")
    axes[0].legend(fontsize=8)
    fig.suptitle(heading + "\nmean over test trajectories", fontsize=9)
    return fig


def _spectrum_figure(kappa, z_true, spectra, steps, d, heading) -> Figure:
    # the truth on the shells the de-aliased simulator fills; the models up to n/2
    resolved, shells = _resolved_shells(d.num_points), slice(1, d.num_points // 2 + 1)
    fig = Figure(figsize=(4.2 * len(steps), 4), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(steps), sharey=True))
    bottom = 0.1 * float(np.min(z_true[:, resolved]))
    for i, (ax, s) in enumerate(zip(axes, steps, strict=True)):
        ax.loglog(kappa[resolved], z_true[i, resolved], color="k", lw=2.0, label="truth")
        for name, z in spectra.items():
            ax.loglog(kappa[shells], z[i, shells], color=_COLORS[name], lw=1.2, label=_LABELS[name])
        ax.axvline(kappa[resolved.stop - 1], color="0.5", ls=":", lw=0.9)
        ax.set_title(f"rollout step {s} (t = {s * d.step:g})", fontsize=9)
        ax.set_xlabel("wavenumber |k| (dotted: de-aliasing band of the data)")
        ax.grid(alpha=0.3, which="both")
    axes[0].set_ylim(bottom=bottom)
    axes[0].set_ylabel("enstrophy spectrum Z(k)")
    axes[0].legend(fontsize=7)
    fig.suptitle(heading + "\nmean over test trajectories", fontsize=9)
    return fig


def _snapshots(times, truth, sample, steps, heading) -> Figure:
    rows = [("truth", truth)] + [(_LABELS[n], p) for n, p in sample.items()]
    scale = float(np.max(np.abs(truth)))
    fig = Figure(figsize=(2.4 * len(steps) + 1, 2.3 * len(rows)), layout="constrained")
    axes = fig.subplots(len(rows), len(steps), squeeze=False)
    im = None
    for i, (name, field) in enumerate(rows):
        for j, s in enumerate(steps):
            ax = axes[i, j]
            im = ax.imshow(field[s - 1].T, origin="lower", cmap="RdBu_r", vmin=-scale, vmax=scale)
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(f"t = {times[s - 1]:g}", fontsize=9)
            if j == 0:
                ax.set_ylabel(name, fontsize=8)
    if im is not None:
        fig.colorbar(im, ax=axes.ravel().tolist(), label="vorticity", shrink=0.8)
    fig.suptitle(heading, fontsize=9)
    return fig
