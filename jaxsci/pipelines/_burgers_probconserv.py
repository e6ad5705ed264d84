r"""Pipeline `burgers_probconserv`: ProbConserv (Hansen, Maddix, Alizadeh, Gupta & Mahoney
2023, ICML) on viscous Burgers: a probabilistic surrogate made to conserve mass exactly.

1. Data: initial fields u0 from the Gaussian random field N(0, sigma^2 (-Laplacian +
   tau^2 I)^{-alpha}) on [0, 1) *with* its mean mode (so the mass int u0 dx = b varies from
   field to field; it is N(0, sigma^2 tau^{-2 alpha}), variance 1 at the defaults), solved by
   `jaxsci.dynamics.Burgers` (ETDRK4, `integrate.simulate`) to the times
   t_j = j t_max / num_times, j = 1..num_times. On a periodic domain u_t + (u^2/2)_x = nu u_xx
   conserves int u dx exactly; the pseudo-spectral solver keeps the mean mode to float32
   rounding (`simulator_conservation` in metrics.json).
2. Surrogate (step 1 of ProbConserv): a deep ensemble (`jaxsci.train.fit_ensemble`, MSE) of
   FNOs mapping (u0, t) -> u(t) (the time as a constant second input channel). Its prediction
   at each test (u0, t) is the Gaussian N(mu, Sigma): mu the members' mean, Sigma their
   variances on the diagonal (`conservation.covariance: diagonal`, the pointwise-Gaussian
   surrogate of the paper) or their full sample covariance (`ensemble`, rank members - 1),
   plus `conservation.variance_floor` on the diagonal.
3. Conservation update (step 2): `jaxsci.filters.conservation_update` with G the periodic
   quadrature row (spacing * ones), b = G u0 and slack `conservation.noise_std` (0: the hard
   constraint), i.e. mu~ = mu - Sigma G^T (G Sigma G^T + sigma_G^2)^{-1} (G mu - b).
4. Metrics over the test (u0, t) pairs, before (`surrogate`) and after (`probconserv`) the
   update, against the simulator: the conservation error |G mu - b| (absolute, and relative
   to int |u0| dx), the relative L2 error of the mean (`losses.relative_l2`), the CRPS and
   negative log-likelihood of the pointwise Gaussian marginals N(mu_i, Sigma_ii)
   (`losses.crps_gaussian`, `losses.gaussian_nll`, averaged over points) and the variance
   along G (G Sigma G^T); each also per time (`per_time`).

Writes `metrics.json`, `probconserv.npz` (test u0, truth, and the mean and std before and
after the update for the first `num_plot` test fields at every time), `profiles.png` (mean
+- 2 std before and after against the truth at a few times) and `conservation.png` (mass
error against time, before and after, with the simulator's).
"""

import dataclasses
import logging
import time
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from matplotlib.figure import Figure

from .. import data as jdata, dynamics, filters, integrate, losses, nn, spectral, train
from . import _plots
from ._schema import ConfigError, option, section

DESCRIPTION = (
    "ProbConserv on Burgers: a deep-ensemble FNO surrogate (u0, t) -> u(t) made to conserve "
    "mass exactly by the Gaussian conservation update; error and CRPS before and after"
)

logger = logging.getLogger("jaxsci.pipelines.burgers_probconserv")

#: The two predictions compared: the ensemble alone and after the conservation update.
STAGES = ("surrogate", "probconserv")
METRIC_KEYS = ("conservation_abs", "conservation_rel", "rel_l2", "crps", "nll", "var_along_g")


@dataclasses.dataclass(frozen=True)
class DataSection:
    num_train: int = option(200, ge=1, help="training initial fields (each at every time)")
    num_test: int = option(50, ge=1, help="test initial fields (each at every time)")
    num_points: int = option(128, ge=8, le=spectral.MAX_GRID_POINTS, help="grid on [0, 1), even")
    nu: float = option(0.05, gt=0.0, help="viscosity")
    t_max: float = option(0.5, gt=0.0, help="the last time the surrogate predicts")
    num_times: int = option(10, ge=1, help="times t_j = j t_max / num_times, j = 1..num_times")
    dt: float = option(0.005, gt=0.0, help="ETDRK4 step of the simulator")
    sigma: float = option(25.0, gt=0.0, help="GRF amplitude (mass std sigma tau^-alpha)")
    tau: float = option(5.0, gt=0.0, help="GRF inverse length scale")
    alpha: float = option(2.0, gt=0.0, help="GRF smoothness exponent")
    seed: int = option(0, ge=0, help="PRNG seed of the initial fields")

    def __post_init__(self):
        if self.num_points % 2:
            raise ConfigError("num_points", f"expected an even grid size, got {self.num_points}")


@dataclasses.dataclass(frozen=True)
class ModelSection:
    width: int = option(32, ge=1, help="channels of the Fourier layers")
    modes: int = option(16, ge=1, help="Fourier modes kept per layer")
    depth: int = option(4, ge=1, help="Fourier layers")
    projection_width: int = option(64, ge=1, help="features of the output projection")


@dataclasses.dataclass(frozen=True)
class TrainingSection:
    members: int = option(5, ge=2, help="deep-ensemble members")
    epochs: int = option(40, ge=1)
    batch_size: int = option(32, ge=1, help="(u0, t) pairs per step")
    learning_rate: float = option(2e-3, gt=0.0, help="Adam, cosine decay to 0")
    seed: int = option(1, ge=0, help="PRNG seed of the initialisations and data orders")


@dataclasses.dataclass(frozen=True)
class ConservationSection:
    covariance: str = option(
        "diagonal",
        choices=("diagonal", "ensemble"),
        help="Sigma: the members' variances (diagonal) or their sample covariance (ensemble)",
    )
    noise_std: float = option(
        0.0, ge=0.0, help="sigma_G, slack of the constraint G u = b (0: hard constraint)"
    )
    variance_floor: float = option(
        0.0, ge=0.0, help="added to the diagonal of Sigma (0: the ensemble's own)"
    )


@dataclasses.dataclass(frozen=True)
class BurgersProbConservConfig:
    """Schema of the `burgers_probconserv` pipeline."""

    data: DataSection = section(DataSection, help="Burgers fields and times")
    model: ModelSection = section(ModelSection, help="the FNO of every member")
    training: TrainingSection = section(TrainingSection, help="the deep ensemble")
    conservation: ConservationSection = section(ConservationSection, help="the ProbConserv update")
    num_plot: int = option(2, ge=1, le=8, help="test fields kept in probconserv.npz")
    plot: _plots.PlotSection = section(_plots.PlotSection)

    def __post_init__(self):
        pairs = self.data.num_train * self.data.num_times
        if self.training.batch_size > pairs:
            raise ConfigError(
                "training.batch_size",
                f"expected at most data.num_train * data.num_times = {pairs} training pairs",
            )


def _simulate(d: DataSection, key) -> tuple[np.ndarray, np.ndarray]:
    """(times (K,), fields (N, K + 1, n)): u at t = 0 and the K times, N fields."""
    grf = jdata.GaussianRandomField(
        d.num_points, sigma=d.sigma, tau=d.tau, alpha=d.alpha, zero_mean=False
    )
    model = dynamics.Burgers(nu=d.nu, length=1.0, num_points=d.num_points)
    times = d.t_max * np.arange(1, d.num_times + 1) / d.num_times
    ts = jnp.asarray(np.concatenate([[0.0], times]))

    def one(k):
        traj = integrate.simulate(model, grf(k), ts, solver=integrate.ETDRK4(), dt0=d.dt)
        return traj.ys

    return times, np.asarray(jax.vmap(one)(jax.random.split(key, d.num_train + d.num_test)))


def _pairs(fields: np.ndarray, times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Inputs (N K, 2, n) = (u0, t ones) and targets (N K, 1, n) = u(t), field-major."""
    n_fields, n_times, n = fields.shape[0], times.size, fields.shape[-1]
    u0 = np.repeat(fields[:, 0], n_times, axis=0)
    t = np.broadcast_to(np.tile(times, n_fields)[:, None], (n_fields * n_times, n))
    x = np.stack([u0, t], axis=1).astype(np.float32)
    y = fields[:, 1:].reshape(-1, 1, n).astype(np.float32)
    return x, y


def _scores(mean, cov, truth, g, totals, scale) -> dict[str, jax.Array]:
    """Per test pair: the metrics of N(mean, cov) against the truth."""
    std = jnp.sqrt(jnp.diagonal(cov, axis1=-2, axis2=-1))
    resid = jnp.abs(mean @ g - totals)
    return {
        "conservation_abs": resid,
        "conservation_rel": resid / scale,
        "rel_l2": jax.vmap(losses.relative_l2)(mean, truth),
        "crps": jnp.mean(losses.crps_gaussian(mean, std, truth), axis=-1),
        "nll": jnp.mean(losses.gaussian_nll(mean, std**2, truth), axis=-1),
        "var_along_g": jnp.einsum("i,cij,j->c", g, cov, g),
    }


def run(config: BurgersProbConservConfig, run_dir: Path) -> dict:
    """Simulate, train the ensemble, apply the conservation update, score, plot."""
    start = time.perf_counter()
    d, m, t, c = config.data, config.model, config.training, config.conservation
    seconds: dict[str, float] = {}

    # 1. Data.
    t0 = time.perf_counter()
    times, fields = _simulate(d, jax.random.key(d.seed))
    train_fields, test_fields = fields[: d.num_train], fields[d.num_train :]
    x_train, y_train = _pairs(train_fields, times)
    x_test, y_test = _pairs(test_fields, times)
    truth = y_test[:, 0]
    spacing = dynamics.Burgers(nu=d.nu, length=1.0, num_points=d.num_points).grid.spacing
    g = np.full(d.num_points, spacing, np.float32)  # periodic quadrature row
    totals = x_test[:, 0] @ g  # b = int u0 dx, conserved
    scale = np.abs(x_test[:, 0]) @ g  # int |u0| dx, the scale of the relative errors
    sim_resid = np.abs(test_fields[:, 1:] @ g - test_fields[:, :1] @ g)
    seconds["data"] = time.perf_counter() - t0
    logger.info(
        "data: %d training and %d test fields x %d times (t <= %g, nu = %g, %d points); "
        "simulator mass drift max %.2g; %.1f s",
        d.num_train,
        d.num_test,
        d.num_times,
        d.t_max,
        d.nu,
        d.num_points,
        float(sim_resid.max()),
        seconds["data"],
    )

    # 2. The surrogate: a deep ensemble of FNOs (u0, t) -> u(t).
    t0 = time.perf_counter()
    steps = (x_train.shape[0] // t.batch_size) * t.epochs
    ensemble, histories = train.fit_ensemble(
        lambda k: nn.FNO1d(
            2, 1, m.width, m.modes, m.depth, key=k, projection_width=m.projection_width
        ),
        losses.MSELoss(),
        (x_train, y_train),
        num_members=t.members,
        key=jax.random.key(t.seed),
        optimizer=optax.adam(optax.cosine_decay_schedule(t.learning_rate, steps)),
        batch_size=t.batch_size,
        epochs=t.epochs,
        progress=False,
    )
    seconds["train"] = time.perf_counter() - t0
    train_loss = float(np.mean([h["train_loss"][-1] for h in histories]))
    logger.info(
        "deep ensemble: %d FNOs, %d steps each, final train MSE %.3g; %.1f s",
        t.members,
        steps,
        train_loss,
        seconds["train"],
    )

    # 3. Gaussian prediction and the conservation update.
    t0 = time.perf_counter()
    predict = eqx.filter_jit(lambda ms, x: eqx.filter_vmap(lambda mm: jax.vmap(mm)(x))(ms))
    members = np.asarray(predict(ensemble, jnp.asarray(x_test)))[:, :, 0]  # (M, cases, n)
    mean = members.mean(axis=0)
    anomalies = members - mean
    if c.covariance == "diagonal":
        cov = jax.vmap(jnp.diag)(jnp.asarray(anomalies.var(axis=0, ddof=1)))
    else:
        cov = jnp.einsum("mci,mcj->cij", anomalies, anomalies) / (t.members - 1)
    cov = cov + c.variance_floor * jnp.eye(d.num_points, dtype=cov.dtype)
    update = jax.jit(
        jax.vmap(
            lambda mu, sig, b: filters.conservation_update(mu, sig, g, b, noise_std=c.noise_std)
        )
    )(jnp.asarray(mean), cov, jnp.asarray(totals))
    seconds["update"] = time.perf_counter() - t0

    # 4. Metrics, overall and per time.
    per_case = {
        "surrogate": _scores(jnp.asarray(mean), cov, truth, g, totals, scale),
        "probconserv": _scores(update.mean, update.cov, truth, g, totals, scale),
    }
    table: dict[str, dict[str, float]] = {}
    per_time: dict[str, dict[str, list[float]]] = {}
    for stage, scores in per_case.items():
        table[stage] = {k: float(jnp.mean(v)) for k, v in scores.items()}
        table[stage]["conservation_rel_max"] = float(jnp.max(scores["conservation_rel"]))
        per_time[stage] = {
            k: np.asarray(v).reshape(d.num_test, d.num_times).mean(axis=0).tolist()
            for k, v in scores.items()
        }
    per_time["simulator"] = {
        "conservation_abs": sim_resid.mean(axis=0).tolist(),
        "conservation_rel": (sim_resid / scale.reshape(d.num_test, d.num_times)).mean(0).tolist(),
    }
    _log_table(table)

    # Arrays and plots.
    kp = min(config.num_plot, d.num_test) * d.num_times
    std_before = np.sqrt(np.diagonal(np.asarray(cov), axis1=-2, axis2=-1))
    std_after = np.sqrt(np.clip(np.diagonal(np.asarray(update.cov), axis1=-2, axis2=-1), 0, None))
    shape = (-1, d.num_times, d.num_points)
    arrays = {
        "times": times,
        "initial": x_test[:kp:, 0].reshape(shape)[:, 0],
        "truth": truth[:kp].reshape(shape),
        "mean_surrogate": mean[:kp].reshape(shape),
        "std_surrogate": std_before[:kp].reshape(shape),
        "mean_probconserv": np.asarray(update.mean)[:kp].reshape(shape),
        "std_probconserv": std_after[:kp].reshape(shape),
        "members": members[:, :kp].reshape(t.members, *shape),
    }
    np.savez_compressed(run_dir / "probconserv.npz", **arrays)
    if config.plot.enabled:
        with _plots.guard():
            _plots._save(
                _profiles_figure(arrays, config), run_dir / "profiles.png", config.plot.dpi
            )
            _plots._save(
                _conservation_figure(times, per_time, config),
                run_dir / "conservation.png",
                config.plot.dpi,
            )
    seconds["total"] = time.perf_counter() - start
    return {
        "table": table,
        "per_time": {"times": times.tolist(), **per_time},
        "simulator_conservation_rel_max": float(
            (sim_resid / scale.reshape(d.num_test, d.num_times)).max()
        ),
        "train_loss": train_loss,
        "network_params": nn.count_params(
            jax.tree.map(lambda a: a[0] if eqx.is_array(a) else a, ensemble)
        ),
        "seconds": seconds,
    }


def _log_table(table) -> None:
    logger.info("%-12s %12s %12s %9s %9s %9s %10s", "", *METRIC_KEYS)
    for stage, row in table.items():
        logger.info(
            "%-12s %12.3g %12.3g %9.4g %9.4g %9.4g %10.3g",
            stage,
            *(row[k] for k in METRIC_KEYS),
        )


_STYLE = {"surrogate": ("tab:blue", "ensemble"), "probconserv": ("tab:orange", "ProbConserv")}


def _profiles_figure(arrays, config) -> Figure:
    """First test field, at four times (columns): the truth and mean +- 2 std before and
    after the update (top), and the same as deviations from the truth (bottom)."""
    times = arrays["times"]
    cols = np.unique(np.linspace(0, times.size - 1, min(4, times.size)).round().astype(int))
    fig = Figure(figsize=(3.2 * cols.size, 5.0), layout="constrained")
    axes = fig.subplots(2, cols.size, squeeze=False, sharex=True)
    n = arrays["truth"].shape[-1]
    x = np.arange(n) / n
    for j, k in enumerate(cols):
        truth = arrays["truth"][0, k]
        axes[0, j].plot(x, truth, color="k", lw=1.2, label="simulator")
        axes[1, j].axhline(0.0, color="k", lw=1.0, ls="--")
        for stage, (color, label) in _STYLE.items():
            mu, sd = arrays[f"mean_{stage}"][0, k], arrays[f"std_{stage}"][0, k]
            for ax, ref in ((axes[0, j], 0.0), (axes[1, j], truth)):
                ax.fill_between(x, mu - 2 * sd - ref, mu + 2 * sd - ref, color=color, alpha=0.25)
                ax.plot(x, mu - ref, color=color, lw=1.0, label=f"{label} mean +- 2 std")
        axes[0, j].set_title(f"t = {times[k]:.3g}", fontsize=9)
        axes[1, j].set_xlabel("x")
        for ax in axes[:, j]:
            ax.grid(alpha=0.3)
    axes[0, 0].set_ylabel("u")
    axes[1, 0].set_ylabel("prediction - simulator")
    axes[0, 0].legend(fontsize=7)
    c = config.conservation
    fig.suptitle(
        f"Burgers nu={config.data.nu:g}, first test field: {config.training.members}-member FNO "
        f"ensemble and ProbConserv ({c.covariance} Sigma, sigma_G={c.noise_std:g})",
        fontsize=9,
    )
    return fig


def _conservation_figure(times, per_time, config) -> Figure:
    """Mean over test fields of the relative mass error |int mu dx - b| / int |u0| dx
    against time (left) and of the relative L2 error (right), before and after."""
    fig = Figure(figsize=(9.5, 3.4), layout="constrained")
    ax, ax2 = fig.subplots(1, 2)
    for stage, (color, label) in _STYLE.items():
        ax.semilogy(times, per_time[stage]["conservation_rel"], "o-", color=color, label=label)
        ax2.plot(times, per_time[stage]["rel_l2"], "o-", color=color, label=label)
    sim = np.maximum(per_time["simulator"]["conservation_rel"], 1e-12)  # 0 is off a log axis
    ax.semilogy(times, sim, "s--", color="k", label="simulator")
    ax.set_title("mass error |int u dx - b| / int |u0| dx", fontsize=10)
    ax2.set_title("relative L2 error of the mean", fontsize=10)
    for a in (ax, ax2):
        a.set_xlabel("t")
        a.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    return fig
