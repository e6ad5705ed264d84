"""Train task `burgers_operator`: an FNO learns the solution operator u(0) -> u(t1) of viscous
Burgers from Gaussian-random-field data (the FNO paper's benchmark, Li et al. 2021).

The test relative L2 error (per example, averaged) is reported at the training resolution
and at every resolution in `data.eval_points` (zero-shot super-resolution).
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
from matplotlib.figure import Figure

from .. import data as jdata, losses, nn, spectral
from . import _plots
from ._schema import ConfigError, option
from ._training import Task, check_divides, fit, history_figure, network_label, network_of

logger = logging.getLogger("jaxsci.pipelines.train")


@dataclasses.dataclass(frozen=True)
class BurgersData:
    num_train: int = option(1000, ge=1, help="training pairs")
    num_test: int = option(200, ge=1, help="test pairs")
    num_points: int = option(
        1024, ge=8, le=spectral.MAX_GRID_POINTS, help="simulation grid (points on [0, 1))"
    )
    train_points: int | None = option(
        None, ge=4, help="training resolution, a divisor of num_points (default num_points)"
    )
    eval_points: list[int] = option(
        factory=list, help="extra test resolutions (divisors of num_points)"
    )
    nu: float = option(0.1, gt=0.0, help="viscosity")
    t1: float = option(1.0, gt=0.0, help="the operator maps u(0) to u(t1)")
    zero_mean: bool = option(
        True, help="zero-mean initial fields (the FNO data); false: a random mean too"
    )
    dt: float = option(0.01, gt=0.0, help="ETDRK4 step of the data generation")
    cache: str | None = option(None, help="cache the generated pairs in this .npz file")
    seed: int = option(0, ge=0, help="PRNG seed of the initial conditions")

    def __post_init__(self):
        if self.train_points is not None:
            check_divides("train_points", self.train_points, self.num_points, "num_points")
        for i, n in enumerate(self.eval_points):
            if n < 4:
                raise ConfigError(f"eval_points[{i}]", f"expected a number >= 4, got {n}")
            check_divides(f"eval_points[{i}]", n, self.num_points, "num_points")


@dataclasses.dataclass(frozen=True)
class FNOModel:
    width: int = option(64, ge=1, help="channels of the Fourier layers")
    modes: int = option(16, ge=1, help="Fourier modes kept per layer")
    depth: int = option(4, ge=1, help="Fourier layers")
    grid: bool = option(
        True, help="append the coordinate x (Li et al.); false: translation-equivariant"
    )
    seed: int = option(1, ge=0, help="PRNG seed of the initialisation")


@dataclasses.dataclass(frozen=True)
class RegressionLoss:
    name: str = option("rel_l2", choices=("rel_l2", "mse", "sobolev"), help="training loss")
    s: float = option(-1.0, help="sobolev: the order s of H^s")
    seminorm: bool = option(False, help="sobolev: homogeneous weights, mean mode dropped")


def _channel(u: np.ndarray) -> np.ndarray:
    """(N, n) fields -> (N, 1, n) FNO inputs (`nn.FNO1d` appends the grid coordinate)."""
    return np.asarray(u, dtype=np.float32)[:, None]


def _regression_loss(lc: RegressionLoss):
    if lc.name == "rel_l2":
        return losses.RelativeL2Loss()
    if lc.name == "mse":
        return losses.MSELoss()
    return losses.SobolevLoss(lc.s, seminorm=lc.seminorm)


def _rel_l2_per_example(model, x, y, batch: int = 100) -> np.ndarray:
    fn = eqx.filter_jit(jax.vmap(lambda xi, yi: losses.relative_l2(model(xi), yi)))
    out = [np.asarray(fn(x[i : i + batch], y[i : i + batch])) for i in range(0, len(x), batch)]
    return np.concatenate(out)


def run(config, run_dir: Path) -> dict:
    """Generate the pairs, train the FNO, evaluate at every resolution, write the outputs."""
    d, m = config.data, config.model
    n_train_pts = d.train_points or d.num_points
    logger.info(
        "Burgers (nu=%g, t1=%g): %d train / %d test pairs, simulated at %d points, trained at %d",
        d.nu,
        d.t1,
        d.num_train,
        d.num_test,
        d.num_points,
        n_train_pts,
    )
    t = time.perf_counter()
    u0, u1 = jdata.burgers_dataset(
        jax.random.key(d.seed),
        d.num_train + d.num_test,
        num_points=d.num_points,
        nu=d.nu,
        t1=d.t1,
        dt=d.dt,
        grf=jdata.GaussianRandomField(d.num_points, zero_mean=d.zero_mean),
        path=d.cache,
    )
    data_seconds = time.perf_counter() - t
    logger.info("data: %.1f s", data_seconds)
    stride = d.num_points // n_train_pts
    x_train = _channel(u0[: d.num_train, ::stride])
    y_train = u1[: d.num_train, None, ::stride]
    model = network_of(
        m,
        lambda: nn.FNO1d(1, 1, m.width, m.modes, m.depth, key=jax.random.key(m.seed), grid=m.grid),
    )
    params = nn.count_params(model)
    label = network_label(m, lambda: f"FNO width {m.width}, {m.modes} modes, depth {m.depth}")
    logger.info("%s: %d parameters", label, params)
    loss = _regression_loss(config.loss)
    model, history, wall = fit(config.training, model, loss, (x_train, y_train), run_dir)

    metrics: dict[str, Any] = {"task": config.task}
    resolutions = [n_train_pts] + [n for n in d.eval_points if n != n_train_pts]
    per_res = {}
    for n in resolutions:
        s = d.num_points // n
        xt, yt = _channel(u0[d.num_train :, ::s]), u1[d.num_train :, None, ::s]
        per_res[n] = _rel_l2_per_example(model, jnp.asarray(xt), jnp.asarray(yt))
        logger.info("test relative L2 at %d points: %.4g", n, per_res[n].mean())
    metrics["test_rel_l2"] = float(per_res[n_train_pts].mean())
    for n in resolutions[1:]:
        metrics[f"test_rel_l2_at_{n}"] = float(per_res[n].mean())
    metrics["train_rel_l2"] = float(
        _rel_l2_per_example(model, jnp.asarray(x_train), jnp.asarray(y_train)).mean()
    )
    metrics.update(
        train_seconds=float(history["train_seconds"]),
        compile_seconds=float(history["compile_seconds"]),
        fit_wall_seconds=wall,
        data_seconds=data_seconds,
        samples_per_second=float(history["steps_per_second"] * config.training.batch_size),
        params=params,
        final_train_loss=float(history["train_loss"][-1]),
    )

    # Arrays and plots.
    xt = _channel(u0[d.num_train :, ::stride])
    yt = u1[d.num_train :, None, ::stride]
    k = min(config.evaluation.num_plot, d.num_test)
    pred = np.asarray(jax.vmap(model)(jnp.asarray(xt[:k])))
    np.savez_compressed(
        run_dir / "predictions.npz",
        u0=xt[:k, 0],
        truth=yt[:k, 0],
        prediction=pred[:, 0],
        test_rel_l2=per_res[n_train_pts],
    )
    np.savez_compressed(
        run_dir / "history.npz",
        loss=history["loss"],
        epoch_train_loss=history["train_loss"],
    )
    if config.plot.enabled:
        with _plots.guard():
            title = (
                f"Burgers u(0) -> u({d.t1:g}), nu={d.nu:g}: {label}; "
                f"{d.num_train} training pairs at {n_train_pts} points"
            )
            _plots._save(
                _burgers_figure(xt[:k, 0], yt[:k, 0], pred[:, 0], per_res[n_train_pts][:k], title),
                run_dir / "predictions.png",
                config.plot.dpi,
            )
            _plots._save(
                history_figure(
                    {config.loss.name: history}, "training loss (per step and epoch mean)"
                ),
                run_dir / "training.png",
                config.plot.dpi,
            )
    return metrics


def _burgers_figure(u0, truth, pred, errs, title) -> Figure:
    """Per test example: the input u(0); truth and prediction of u(t1) on their own scale
    (at nu = 0.1 u(t1) is ~100x smaller than u(0)); the error."""
    k, n = truth.shape
    x = np.arange(n) / n
    fig = Figure(figsize=(3.3 * k, 7.0), layout="constrained")
    axes = fig.subplots(3, k, sharex=True, squeeze=False, height_ratios=(1, 1.4, 1))
    for j in range(k):
        axes[0, j].plot(x, u0[j], color="0.4", lw=1, label="input u(0)")
        axes[0, j].set_title(f"test {j}: rel. L2 {errs[j]:.2e}", fontsize=9)
        axes[1, j].plot(x, truth[j], color="k", lw=1.8, label="truth u(t1)")
        axes[1, j].plot(x, pred[j], color="tab:red", lw=1.1, ls="--", label="FNO")
        axes[2, j].plot(x, pred[j] - truth[j], color="tab:red", lw=0.9)
        axes[2, j].set_xlabel("x")
        for ax in axes[:, j]:
            ax.grid(alpha=0.3)
    axes[0, 0].set_ylabel("u(0)")
    axes[1, 0].set_ylabel("u(t1)")
    axes[2, 0].set_ylabel("FNO - truth")
    handles = axes[0, 0].get_legend_handles_labels()
    more = axes[1, 0].get_legend_handles_labels()
    fig.legend(
        handles[0] + more[0],
        handles[1] + more[1],
        loc="outside lower center",
        ncol=3,
        fontsize=8,
        frameon=False,
    )
    fig.suptitle(title, fontsize=10)
    return fig


TASK = Task(
    data=BurgersData,
    model=FNOModel,
    loss=RegressionLoss,
    num_train_examples=lambda config: config.data.num_train,
    run=run,
)
