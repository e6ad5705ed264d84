r"""Pipeline `ks_pde_refiner`: PDE-Refiner vs the MSE one-step baseline on Kuramoto-Sivashinsky.

Built from the public API only (Lippe et al. 2023, "PDE-Refiner", NeurIPS, section 4.1):

1. **data**: KS trajectories from our ETDRK4 simulator (`data.ks_trajectories`), states
   `data.step` apart after a spin-up; training pairs (u(t), u(t + step)) from the first
   `data.num_train` trajectories, rollouts from the first state of each test trajectory.
2. **models**: the same conditional network (`nn.ScoreUNet1d` on [u(t), u_noisy], the step
   index k embedded as its time) from the same initialisation, wrapped as
   * `refiner`: `nn.PDERefiner` with K = `refiner.num_refinement_steps` refinements and
     minimum noise std `refiner.min_noise_std`;
   * `baseline`: the same with K = 0, i.e. the one-step model trained by MSE;
   both trained by `losses.PDERefinerLoss` (for K = 0 the MSE) with `train.fit` for the same
   number of optimiser steps.
3. **evaluation**: autoregressive rollouts (`integrate.rollout`, the refiner with a fresh
   key per step) from every test trajectory's first state for `data.test_steps` steps; the
   Pearson correlation with the truth at each step (`metrics.pearson_correlation`) and the
   time until it drops below `evaluation.threshold` (`metrics.high_correlation_time`), mean,
   std and median over the test trajectories; the one-step MSE on every test pair; the
   energy spectrum of the one-step error per wavenumber against the truth's spectrum.

Outputs: `metrics.json` (per method `hc_time_mean`, `hc_time_std`, `hc_time_median`,
`one_step_mse`, `train_seconds`; `params`, `horizon`), `ks_pde_refiner.npz` (times, per-method
correlation curves (N, T) and high-correlation times (N,), wavenumbers and spectra, one
sample rollout per method), `correlation.png` (mean and 10-90% band of the correlation
against time, the threshold, the high-correlation times), `spectrum.png` (the true
spectrum and each method's one-step error spectrum: where the error exceeds the truth the
prediction has no information at that wavenumber) and `training.png` (loss per step).
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

from .. import data as jdata, integrate, losses, metrics, nn, train
from . import _plots
from ._plots import PlotSection
from ._schema import ConfigError, option, section
from ._train_ks import KSData

DESCRIPTION = (
    "PDE-Refiner vs the MSE one-step baseline (same network) on Kuramoto-Sivashinsky: "
    "high-correlation time of long rollouts, one-step error spectrum"
)

logger = logging.getLogger("jaxsci.pipelines.ks_pde_refiner")

METHODS = ("baseline", "refiner")


@dataclasses.dataclass(frozen=True)
class NetworkSection:
    hidden_channels: int = option(16, ge=1, help="ScoreUNet1d base channels")
    channel_multipliers: list[int] = option(
        factory=lambda: [1, 2, 2], help="channels per level (len - 1 down-samplings)"
    )
    time_embedding_dim: int = option(32, ge=2, help="sinusoidal embedding of k / K (even)")
    residual: bool = option(True, help="the k = 0 step predicts u(t + step) - u(t)")
    seed: int = option(1, ge=0, help="PRNG seed of the (shared) initialisation")

    def __post_init__(self):
        if self.time_embedding_dim % 2:
            raise ConfigError(
                "time_embedding_dim", f"expected an even number, got {self.time_embedding_dim}"
            )
        if not self.channel_multipliers or any(m < 1 for m in self.channel_multipliers):
            raise ConfigError(
                "channel_multipliers",
                f"expected positive integers, got {self.channel_multipliers}",
            )


@dataclasses.dataclass(frozen=True)
class RefinerSection:
    num_refinement_steps: int = option(3, ge=1, help="K, denoising steps after the prediction")
    min_noise_std: float = option(
        2e-7,
        gt=0.0,
        lt=1.0,
        help="sigma_min, a std; sigma_k = sigma_min^(k/K) (paper, KS: 2e-7; its code: 4.47e-4)",
    )


@dataclasses.dataclass(frozen=True)
class TrainingSection:
    steps: int = option(2000, ge=1, help="optimiser steps (each method)")
    batch_size: int = option(32, ge=1)
    learning_rate: float = option(1e-3, gt=0.0, help="Adam, cosine decay to 0")
    ema: float | None = option(0.995, gt=0.0, lt=1.0, help="EMA decay of the weights (null: off)")
    seed: int = option(2, ge=0, help="PRNG seed of the batches, k and the noise")


@dataclasses.dataclass(frozen=True)
class EvaluationSection:
    threshold: float = option(0.8, gt=-1.0, lt=1.0, help="correlation ending the hc time")
    seed: int = option(3, ge=0, help="PRNG seed of the refiner's rollout noise")


@dataclasses.dataclass(frozen=True)
class KSPDERefinerConfig:
    """Schema of the `ks_pde_refiner` pipeline."""

    data: KSData = section(KSData, help="Kuramoto-Sivashinsky trajectories (ETDRK4)")
    network: NetworkSection = section(NetworkSection, help="the conditional U-Net")
    refiner: RefinerSection = section(RefinerSection, help="the refinement process")
    training: TrainingSection = section(TrainingSection, help="the same for both methods")
    evaluation: EvaluationSection = section(EvaluationSection)
    plot: PlotSection = section(PlotSection)

    def __post_init__(self):
        levels = len(self.network.channel_multipliers) - 1
        if self.data.num_points % 2**levels:
            raise ConfigError(
                "network.channel_multipliers",
                f"{levels} down-samplings need data.num_points divisible by {2**levels}, got "
                f"{self.data.num_points}",
            )
        pairs = self.data.num_train * self.data.train_steps
        if self.training.batch_size > pairs:
            raise ConfigError(
                "training.batch_size",
                f"expected at most the {pairs} training pairs, got {self.training.batch_size}",
            )


@eqx.filter_jit
def _rollouts(model, u0, steps: int, keys):
    """`integrate.rollout` of the model from each initial state (keys: one per rollout)."""
    if model.num_refinement_steps == 0:
        return jax.vmap(lambda u: integrate.rollout(model, u, steps))(u0)
    return jax.vmap(lambda u, k: integrate.rollout(model, u, steps, key=k))(u0, keys)


@eqx.filter_jit
def _one_step(model, u, keys):
    if model.num_refinement_steps == 0:
        return jax.vmap(model)(u)
    return jax.vmap(lambda x, k: model(x, key=k))(u, keys)


def _spectrum(u: np.ndarray) -> np.ndarray:
    """Mean energy per wavenumber |u_hat_k|^2 / n^2 over all leading axes (rfft modes)."""
    n = u.shape[-1]
    return np.mean(np.abs(np.fft.rfft(u, axis=-1)) ** 2, axis=tuple(range(u.ndim - 1))) / n**2


def run(config: KSPDERefinerConfig, run_dir: Path) -> dict:
    """Generate the data, train the baseline and the refiner, roll them out, write outputs."""
    d, net_cfg, rc, tc, ev = (
        config.data,
        config.network,
        config.refiner,
        config.training,
        config.evaluation,
    )
    horizon = max(d.train_steps, d.test_steps)
    logger.info(
        "Kuramoto-Sivashinsky L=%g, %d points: %d train / %d test trajectories, step %g",
        d.length,
        d.num_points,
        d.num_train,
        d.num_test,
        d.step,
    )
    t0 = time.perf_counter()
    traj = jdata.ks_trajectories(
        jax.random.key(d.seed),
        d.num_train + d.num_test,
        horizon,
        save_every=d.step,
        length=d.length,
        num_points=d.num_points,
        dt=d.dt,
        spinup=d.spinup,
        path=d.cache,
    )
    data_seconds = time.perf_counter() - t0
    train_traj = traj[: d.num_train, : d.train_steps + 1, None]  # (N, T + 1, 1, n)
    pairs = (
        train_traj[:, :-1].reshape(-1, 1, d.num_points),
        train_traj[:, 1:].reshape(-1, 1, d.num_points),
    )
    test = traj[d.num_train :, : d.test_steps + 1, None]  # (M, T + 1, 1, n)
    test_pairs = (
        test[:, :-1].reshape(-1, 1, d.num_points),
        test[:, 1:].reshape(-1, 1, d.num_points),
    )
    times = d.step * np.arange(1, d.test_steps + 1)
    net = nn.ScoreUNet1d(
        2,
        net_cfg.hidden_channels,
        tuple(net_cfg.channel_multipliers),
        net_cfg.time_embedding_dim,
        key=jax.random.key(net_cfg.seed),
    )
    steps_of = {"baseline": 0, "refiner": rc.num_refinement_steps}
    out: dict[str, Any] = {
        "task": "ks_pde_refiner",
        "horizon": float(times[-1]),
        "data_seconds": data_seconds,
        "params": nn.count_params(net),
        "num_refinement_steps": rc.num_refinement_steps,
        "min_noise_std": rc.min_noise_std,
    }
    corr, hc, spectra, histories, samples = {}, {}, {}, {}, {}
    eval_key = jax.random.key(ev.seed)
    for name in METHODS:
        model = nn.PDERefiner(net, 1, steps_of[name], rc.min_noise_std, residual=net_cfg.residual)
        schedule = optax.cosine_decay_schedule(tc.learning_rate, tc.steps)
        model, history = train.fit(
            model,
            losses.PDERefinerLoss(),
            pairs,
            optimizer=optax.adam(schedule),
            key=jax.random.key(tc.seed),
            batch_size=tc.batch_size,
            num_steps=tc.steps,
            ema=tc.ema,
            progress=True,
        )
        histories[name] = history
        t1 = time.perf_counter()
        k_roll, k_one = jax.random.split(jax.random.fold_in(eval_key, steps_of[name]))
        preds = np.asarray(
            _rollouts(
                model, jnp.asarray(test[:, 0]), d.test_steps, jax.random.split(k_roll, len(test))
            )
        )  # (M, T, 1, n)
        one = np.asarray(
            _one_step(
                model, jnp.asarray(test_pairs[0]), jax.random.split(k_one, len(test_pairs[0]))
            )
        )
        eval_seconds = time.perf_counter() - t1
        flat_pred, flat_true = preds[:, :, 0], test[:, 1:, 0]
        corr[name] = np.asarray(metrics.pearson_correlation(flat_pred, flat_true))
        hc[name] = np.asarray(
            metrics.high_correlation_time(flat_pred, flat_true, times, ev.threshold)
        )
        spectra[name] = _spectrum(one[:, 0] - test_pairs[1][:, 0])
        samples[name] = flat_pred[0]
        out[name] = {
            "hc_time_mean": float(np.mean(hc[name])),
            "hc_time_std": float(np.std(hc[name])),
            "hc_time_median": float(np.median(hc[name])),
            "censored": int(np.sum(hc[name] >= times[-1])),
            "one_step_mse": float(np.mean((one - test_pairs[1]) ** 2)),
            "final_train_loss": float(history["train_loss"][-1]),
            "train_seconds": float(history["train_seconds"]),
            "compile_seconds": float(history["compile_seconds"]),
            "eval_seconds": eval_seconds,
        }
        logger.info(
            "%s (K = %d): high-correlation time %.1f +- %.1f (median %.1f), one-step MSE %.3g; "
            "trained %.0f s",
            name,
            steps_of[name],
            out[name]["hc_time_mean"],
            out[name]["hc_time_std"],
            out[name]["hc_time_median"],
            out[name]["one_step_mse"],
            out[name]["train_seconds"],
        )
    out["refiner_minus_baseline_hc_time"] = (
        out["refiner"]["hc_time_mean"] - out["baseline"]["hc_time_mean"]
    )
    wavenumbers = 2 * np.pi / d.length * np.arange(d.num_points // 2 + 1)
    truth_spectrum = _spectrum(test_pairs[1][:, 0])
    np.savez_compressed(
        run_dir / "ks_pde_refiner.npz",
        times=times,
        wavenumbers=wavenumbers,
        truth_spectrum=truth_spectrum,
        truth_sample=test[0, 1:, 0],
        **{f"correlation_{n}": c for n, c in corr.items()},
        **{f"hc_time_{n}": h for n, h in hc.items()},
        **{f"error_spectrum_{n}": s for n, s in spectra.items()},
        **{f"rollout_{n}": s for n, s in samples.items()},
    )
    if config.plot.enabled:
        with _plots.guard():
            heading = (
                f"Kuramoto-Sivashinsky L={d.length:g}, {d.num_points} points, step {d.step:g}; "
                f"ScoreUNet1d ({out['params']} parameters), {tc.steps} steps each"
            )
            labels = {
                "baseline": "MSE one-step (K = 0)",
                "refiner": f"PDE-Refiner (K = {rc.num_refinement_steps}, "
                f"sigma_min = {rc.min_noise_std:g})",
            }
            _plots._save(
                _correlation_figure(times, corr, hc, ev.threshold, labels, heading),
                run_dir / "correlation.png",
                config.plot.dpi,
            )
            _plots._save(
                _spectrum_figure(wavenumbers, truth_spectrum, spectra, labels, heading),
                run_dir / "spectrum.png",
                config.plot.dpi,
            )
            _plots._save(
                _training_figure(histories, labels), run_dir / "training.png", config.plot.dpi
            )
    return out


def _correlation_figure(times, corr, hc, threshold, labels, heading) -> Figure:
    fig = Figure(figsize=(7.5, 4), layout="constrained")
    ax = fig.add_subplot()
    for i, (name, c) in enumerate(corr.items()):
        color = f"C{i}"
        c = np.nan_to_num(c, nan=-1.0)
        ax.plot(times, np.mean(c, axis=0), color=color, lw=1.5, label=labels[name])
        lo, hi = np.percentile(c, [10, 90], axis=0)
        ax.fill_between(times, lo, hi, color=color, alpha=0.2, lw=0)
        ax.axvline(np.mean(hc[name]), color=color, ls=":", lw=1.2)
    ax.axhline(threshold, color="0.4", ls="--", lw=0.9, label=f"threshold {threshold:g}")
    ax.set_xlabel("rollout time")
    ax.set_ylabel("Pearson correlation with the truth")
    ax.set_ylim(-0.5, 1.05)
    ax.set_title(heading + "\nmean, 10-90% band; dotted: mean high-correlation time", fontsize=8)
    ax.legend(fontsize=8, loc="lower left")
    ax.grid(alpha=0.3)
    return fig


def _spectrum_figure(wavenumbers, truth, spectra, labels, heading) -> Figure:
    fig = Figure(figsize=(7.5, 4.2), layout="constrained")
    ax = fig.add_subplot()
    ax.semilogy(wavenumbers[1:], truth[1:], color="k", lw=1.6, label="truth u(t + step)")
    for i, (name, s) in enumerate(spectra.items()):
        ax.semilogy(
            wavenumbers[1:], s[1:], color=f"C{i}", lw=1.3, label=f"one-step error, {labels[name]}"
        )
    ax.set_xlabel("wavenumber k")
    ax.set_ylabel("energy |u_hat(k)|^2 (mean over test states)")
    ax.set_title(
        heading + "\nerror above the truth: that wavenumber is not predicted at all", fontsize=8
    )
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, which="both")
    return fig


def _training_figure(histories, labels) -> Figure:
    fig = Figure(figsize=(7, 3.6), layout="constrained")
    ax = fig.add_subplot()
    for i, (name, h) in enumerate(histories.items()):
        ax.semilogy(np.asarray(h["loss"]), color=f"C{i}", lw=0.6, alpha=0.7, label=labels[name])
    ax.set_xlabel("optimiser step")
    ax.set_ylabel("training loss (refiner: mixed MSE / noise targets)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, which="both")
    return fig
