"""Pipeline `qg_letkf`: an LETKF twin experiment on two-layer quasi-geostrophic turbulence.

Built only from the public API. The truth: `dynamics.TwoLayerQG` spun up from pyqg's random
start (`experiment.spinup` days, states kept every 10 days) into statistically steady
baroclinic turbulence; its climatological spread is the std of the states from
`experiment.steady_from` on about their time mean (`filters.climatological_spread`). The
model steps with pyqg's scheme (`model.scheme: ab3`: `integrate.AB3` with the model's
exponential filter; it restarts from an Euler step at every analysis window), or ETDRK4
with the same filter (`integrate.Filtered`), or ETDRK4 with a del^8 hyperviscosity damping
the grid-scale wavenumber pi n / L at the rate `model.grid_damping` / dt instead of the
filter. States (2, n, n) are flattened for the filter
(`integrate.FlattenedFlow`); the observations are the upper-layer PV q_1 (`field: q`) or
streamfunction psi_1 (`field: psi`) at every `stride`-th grid point along each axis
(`observations.every_kth_grid` positions), with noise `noise_fraction` x the climatological
std of that field. The LETKF analyses each grid column (both layers) as one domain
(`filters.grid_domains`), on the gathered local-observation path, with RTPS; the initial
ensemble is climatological (steady spin-up states at least 100 days before the truth's
start). The analysed variable (`filter.analysis_variable`) is the model's PV q, or the
streamfunction psi of both layers: the filter's state is then psi (members and truth are
inverted with `TwoLayerQG.streamfunction`, the forecast turns psi back into q, steps the
model and inverts again), so psi observations are direct observations of the analysed
field and the column-local weights act on a smooth field; q = lap psi + stretching is
recovered from the analysis. Analysing q from psi observations is unstable at the
radii that suit them (benchmarks/RESULTS.md: q-space analyses put the localisation's
errors into the largest scales of psi, which carry the energy; psi-space analyses put
them into the smallest scales of q, which the model's filter damps). Metrics: rmse_a of
the whole q state over the cycles after `experiment.burn_in`, against the observation
error and the climatological spread; rmse_a of q_1, q_2, psi_1 and psi_2 apart against
each one's climatological spread; and the analysis time per cycle (one compiled
`LETKF.update`).
"""

import dataclasses
import logging
import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from .. import dynamics, filters, integrate
from . import _plots
from ._schema import ConfigError, option, section

DESCRIPTION = "LETKF on two-layer QG turbulence from sparse observations; rmse vs climatology"

logger = logging.getLogger("jaxsci.pipelines.qg_letkf")

DAY = 86400.0
_SAMPLE_DAYS = 10  # the spin-up keeps one state every 10 days (climatology, members)
_MEMBER_GAP_DAYS = 100  # initial members come from at least this long before the truth


@dataclasses.dataclass(frozen=True)
class ModelSection:
    num_points: int = option(64, ge=8, le=1024, help="grid points per side (even)")
    dt: float = option(7200.0, gt=0.0, help="model step in seconds (pyqg's 7200)")
    scheme: str = option(
        "ab3",
        choices=("ab3", "etdrk4_filter", "etdrk4_hyperviscosity"),
        help="ab3: pyqg's AB3 + exponential filter; etdrk4_filter: ETDRK4 + the same "
        "filter; etdrk4_hyperviscosity: ETDRK4 + a del^8 hyperviscosity, no filter",
    )
    grid_damping: float = option(
        1.0,
        gt=0.0,
        help="etdrk4_hyperviscosity: damping rate x dt at the grid-scale wavenumber",
    )


@dataclasses.dataclass(frozen=True)
class ObservationsSection:
    field: str = option("q", choices=("q", "psi"), help="observed upper-layer field")
    stride: int = option(2, ge=1, help="observe every stride-th grid point along each axis")
    noise_fraction: float = option(
        0.1, gt=0.0, help="noise std as a fraction of the field's climatological std"
    )
    interval_days: float = option(1.0, gt=0.0, help="days between analyses")


@dataclasses.dataclass(frozen=True)
class FilterSection:
    ensemble_size: int = option(20, ge=2, help="members")
    loc_rad: float = option(2.0, gt=0.0, help="localisation radius in grid points")
    rtps: float = option(0.7, ge=0.0, le=1.0, help="relaxation to prior spread (0: off)")
    analysis_variable: str = option(
        "q",
        choices=("q", "psi"),
        help="the analysed field: the PV q (the model state) or the streamfunction psi of "
        "both layers (members inverted to psi, analysed, turned back into q); psi suits "
        "psi observations",
    )


@dataclasses.dataclass(frozen=True)
class ExperimentSection:
    n_cycles: int = option(100, ge=1, help="analysis cycles")
    burn_in: int = option(20, ge=0, help="cycles left out of rmse_a")
    spinup: int = option(2000, ge=20, help="days of spin-up from pyqg's random start")
    steady_from: int = option(1200, ge=0, help="day from which the spin-up is climatology")
    free_run: bool = option(
        False,
        help="also run the initial ensemble without analyses (the no-assimilation baseline: "
        "rmse_free_over_climatological_spread)",
    )


@dataclasses.dataclass(frozen=True)
class PlotSection:
    enabled: bool = option(True, help="write PNG plots")
    dpi: int = option(120, ge=50, le=600)


@dataclasses.dataclass(frozen=True)
class QGLetkfConfig:
    """Schema of the `qg_letkf` pipeline."""

    seed: int = option(0, ge=0, help="PRNG seed (observation noise, filter)")
    model: ModelSection = section(ModelSection)
    observations: ObservationsSection = section(ObservationsSection)
    filter: FilterSection = section(FilterSection)
    experiment: ExperimentSection = section(ExperimentSection)
    plot: PlotSection = section(PlotSection)

    def __post_init__(self):
        e, n = self.experiment, self.model.num_points
        if n % 2:
            raise ConfigError("model.num_points", f"expected an even number, got {n}")
        if e.burn_in >= e.n_cycles:
            raise ConfigError(
                "experiment.burn_in", f"expected fewer than n_cycles = {e.n_cycles} cycles"
            )
        pool = (e.spinup - e.steady_from - _MEMBER_GAP_DAYS) // _SAMPLE_DAYS
        if pool < 2:
            raise ConfigError(
                "experiment.steady_from",
                f"expected at least {2 * _SAMPLE_DAYS} days of steady spin-up ending "
                f"{_MEMBER_GAP_DAYS} days before its end (the initial members' pool), got "
                f"spinup {e.spinup} - steady_from {e.steady_from} - {_MEMBER_GAP_DAYS}",
            )
        if self.observations.stride >= n:
            raise ConfigError("observations.stride", f"expected < num_points = {n}")


def run(config: QGLetkfConfig, run_dir: Path) -> dict:
    """Spin up, observe, filter; save `qg_letkf.npz` and plots; return the metrics."""
    start = time.perf_counter()
    mc, oc, fc, ec = config.model, config.observations, config.filter, config.experiment
    n = mc.num_points
    if mc.scheme == "etdrk4_hyperviscosity":
        kmax = np.pi * n / 1e6  # pyqg's default side L = 1e6 m
        model = dynamics.TwoLayerQG(
            n, filterfac=0.0, hyperviscosity=mc.grid_damping / (mc.dt * kmax**8)
        )
        solver = integrate.ETDRK4()
    else:
        model = dynamics.TwoLayerQG(n)
        solver = (
            integrate.AB3(filter=model.spectral_filter())
            if mc.scheme == "ab3"
            else integrate.Filtered(integrate.ETDRK4(), model.spectral_filter())
        )
    flow = integrate.FlattenedFlow(integrate.Flow(model, mc.dt, solver))
    logger.info("TwoLayerQG %d^2, %s, dt %g s; spin-up %d days", n, mc.scheme, mc.dt, ec.spinup)

    t = time.perf_counter()
    spin = jax.jit(
        lambda q: integrate.rollout(flow, q, ec.spinup // _SAMPLE_DAYS, dt=_SAMPLE_DAYS * DAY)
    )
    traj = jax.block_until_ready(spin(flow.flatten(model.default_initial_state())))
    spinup_seconds = time.perf_counter() - t
    if not bool(jnp.all(jnp.isfinite(traj))):
        raise ConfigError("model.grid_damping", "the spin-up blew up: damp the grid scale more")
    steady = traj[ec.steady_from // _SAMPLE_DAYS :]
    clim = float(filters.climatological_spread(steady))
    to_psi = jax.vmap(lambda x: flow.flatten(model.streamfunction(flow.unflatten(x))))
    psi_steady = to_psi(steady)
    # the layer means of q: every tendency term is a divergence or vanishes at k = 0, so
    # they are conserved and the same for the truth and every member (one spin-up); psi
    # (zero mean) does not hold them, so they are added back when q is rebuilt from psi
    q_means = jnp.mean(flow.unflatten(traj[-1]), axis=(1, 2))

    def to_q(psi):
        return flow.flatten(_potential_vorticity(model, flow.unflatten(psi), q_means))

    if fc.analysis_variable == "psi":
        to_analysis, from_analysis = to_psi, jax.vmap(to_q)

        def analysis_flow(y, t0, t1):  # the model's step on psi: psi -> q -> step -> psi
            x = to_q(y)
            return flow.flatten(model.streamfunction(flow.unflatten(flow(x, t0, t1))))

    else:
        to_analysis = from_analysis = _identity
        analysis_flow = flow

    observed = (steady if oc.field == "q" else psi_steady)[:, : n * n]
    noise = oc.noise_fraction * float(jnp.std(observed))
    noise_q = oc.noise_fraction * float(jnp.std(steady[:, : n * n]))
    points = filters.every_kth_grid((n, n), oc.stride, n_layers=2, layers=0, noise_std=noise)
    obs_op: filters.AbstractObservation = points  # the field observed is the one analysed
    if oc.field != fc.analysis_variable:  # the other field at the points, from the analysed one
        stride = oc.stride
        other = to_q if oc.field == "q" else lambda x: to_psi(x[None])[0]

        def upper(x):
            return flow.unflatten(other(x))[0, ::stride, ::stride].ravel()

        obs_op = filters.NonlinearObservation(
            upper, 2 * n * n, points.obs_dim, locations=points.locations, noise_std=noise
        )
    g = filters.grid_domains((n, n), n_layers=2)
    letkf = filters.LETKF(fc.loc_rad, obs_op, g.state_locations, g.domain_length, domains=g.domains)
    filt = filters.RTPS(letkf, fc.rtps) if fc.rtps > 0 else letkf
    gathered = letkf.local_obs is not None
    local = int(letkf.local_sqrt_taper.shape[1])
    logger.info(
        "%s_1 at every %d-th point per axis: %d obs (%.3g of the state), noise %.3g; "
        "LETKF on %s, loc_rad %g, %s path (%d local obs at most)",
        oc.field,
        oc.stride,
        obs_op.obs_dim,
        obs_op.obs_dim / (2 * n * n),
        noise,
        fc.analysis_variable,
        fc.loc_rad,
        "gathered" if gathered else "dense",
        local,
    )

    pool = steady[: len(steady) - _MEMBER_GAP_DAYS // _SAMPLE_DAYS]
    members_q = pool[np.linspace(0, pool.shape[0] - 1, fc.ensemble_size).astype(int)]
    members = to_analysis(members_q)
    key_obs, key_filter, key_update = jax.random.split(jax.random.key(config.seed), 3)
    dt = oc.interval_days * DAY
    t = time.perf_counter()
    truth = jax.jit(lambda x: integrate.rollout(flow, x, ec.n_cycles, dt=dt))(traj[-1])
    ys = filters.synthetic_observations(key_obs, obs_op, to_analysis(truth))
    res = filters.run_filter(
        key_filter, analysis_flow, obs_op, filt, members, ys, dt=dt, compute_likelihood=False
    )
    res = jax.block_until_ready(res)
    filter_seconds = time.perf_counter() - t

    update = jax.jit(lambda e, y: letkf.update(key_update, e, y, obs_op))
    t = time.perf_counter()
    jax.block_until_ready(update(members, ys[-1]))
    update_compile = time.perf_counter() - t
    t = time.perf_counter()
    for _ in range(5):
        jax.block_until_ready(update(members, ys[-1]))
    analysis_ms = 1e3 * (time.perf_counter() - t) / 5

    mean_q = from_analysis(res.mean_a)
    err = np.sqrt(np.mean((np.asarray(mean_q) - np.asarray(truth)) ** 2, axis=1))
    rmse_a = float(np.mean(err[ec.burn_in :]))
    # each layer's q and psi apart, each against its own climatological spread
    layers = np.stack(
        [_layer_rmse(mean_q, truth, n), _layer_rmse(to_psi(mean_q), to_psi(truth), n)], axis=1
    ).reshape(ec.n_cycles, 4)  # (cycle, [q1, q2, psi1, psi2])
    layer_clim = np.concatenate([_layer_spread(steady, n), _layer_spread(psi_steady, n)])
    layer_ratio = np.mean(layers[ec.burn_in :], axis=0) / layer_clim
    observed_rmse = float(np.mean(layers[ec.burn_in :, 0 if oc.field == "q" else 2]))
    analysed_clim = (
        clim if fc.analysis_variable == "q" else float(filters.climatological_spread(psi_steady))
    )
    if ec.free_run:  # the same members, no analyses: what the filter must beat
        free = jax.jit(jax.vmap(lambda x: integrate.rollout(flow, x, ec.n_cycles, dt=dt)))
        free_err = np.sqrt(np.mean((np.mean(free(members_q), axis=0) - truth) ** 2, axis=1))
        free_ratio = float(np.mean(free_err[ec.burn_in :])) / clim
    metrics: dict[str, Any] = {
        "rmse_a": rmse_a,
        "spread_a": float(np.mean(np.asarray(res.spread_a)[ec.burn_in :])),
        "spread_a_over_climatological_spread": float(
            np.mean(np.asarray(res.spread_a)[ec.burn_in :]) / analysed_clim
        ),
        "climatological_spread": clim,
        "obs_noise_std": noise,
        "obs_noise_std_q_units": noise_q,
        "rmse_a_over_climatological_spread": rmse_a / clim,
        "rmse_a_over_obs_noise": rmse_a / noise_q,
        "rmse_observed_over_obs_noise": observed_rmse / noise,
        "rmse_q1_over_climatological_spread": float(layer_ratio[0]),
        "rmse_q2_over_climatological_spread": float(layer_ratio[1]),
        "rmse_psi1_over_climatological_spread": float(layer_ratio[2]),
        "rmse_psi2_over_climatological_spread": float(layer_ratio[3]),
        "obs_dim": obs_op.obs_dim,
        "state_dim": 2 * n * n,
        "gathered_path": gathered,
        "max_local_obs": local,
        "finite": bool(np.all(np.asarray(res.finite))),
        "spinup_seconds": spinup_seconds,
        "filter_seconds": filter_seconds,
        "analysis_ms_per_cycle": analysis_ms,
        "analysis_compile_seconds": update_compile,
    }
    if ec.free_run:
        metrics["rmse_free_over_climatological_spread"] = free_ratio
    logger.info(
        "rmse_a %.3g = %.3f x climatological spread %.3g = %.3f x obs error in q units %.3g; "
        "q1 %.3f, q2 %.3f, psi1 %.3f, psi2 %.3f x their spreads; observed %s_1 %.3f x its "
        "obs error",
        rmse_a,
        rmse_a / clim,
        clim,
        rmse_a / noise_q,
        noise_q,
        *layer_ratio,
        oc.field,
        observed_rmse / noise,
    )
    np.savez_compressed(
        run_dir / "qg_letkf.npz",
        rmse_a=err,
        rmse_layers=layers,
        spread_a=np.asarray(res.spread_a),
        truth_last=np.asarray(flow.unflatten(truth[-1])),
        mean_a_last=np.asarray(flow.unflatten(mean_q[-1])),
        observed_indices=np.asarray(points.indices),
    )
    if config.plot.enabled:
        with _plots.guard():
            _plot(
                run_dir, err, np.asarray(res.spread_a), clim, noise_q, truth, mean_q, flow, config
            )
    metrics["wall_seconds"] = time.perf_counter() - start
    return metrics


def _identity(x):
    return x


def _potential_vorticity(model, psi, q_means):
    """q of the streamfunction psi (2, n, n) (`model.potential_vorticity`) plus the layer
    means `q_means` that psi does not hold."""
    return model.potential_vorticity(psi) + q_means[:, None, None]


def _layer_rmse(a, b, n):
    """(cycles, 2): the rmse of each layer of flattened (cycles, 2 n^2) states."""
    d = (np.asarray(a) - np.asarray(b)).reshape(-1, 2, n * n)
    return np.sqrt(np.mean(d**2, axis=2))


def _layer_spread(states, n):
    """(2,): each layer's climatological spread (std about the time mean)."""
    d = np.asarray(states).reshape(-1, 2, n * n)
    return np.sqrt(np.mean((d - d.mean(axis=0)) ** 2, axis=(0, 2)))


def _plot(run_dir, err, spread, clim, noise, truth, mean_q, flow, config) -> None:
    import matplotlib.pyplot as plt

    days = config.observations.interval_days * np.arange(1, err.size + 1)
    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.semilogy(days, err, label="rmse_a")
    if config.filter.analysis_variable == "q":  # (psi analyses spread in psi units)
        ax.semilogy(days, spread, label="spread_a")
    ax.axhline(clim, color="k", ls="--", label="climatological spread")
    noise_name = (
        "observation error"
        if config.observations.field == "q"
        else "psi obs' error fraction x q_1's std"
    )
    ax.axhline(noise, color="gray", ls=":", label=noise_name)
    ax.set_xlabel("day")
    ax.set_ylabel("PV error (1/s)")
    ax.legend(fontsize=8)
    fig.savefig(run_dir / "rmse.png", dpi=config.plot.dpi, bbox_inches="tight")
    plt.close(fig)
    q_t = np.asarray(flow.unflatten(truth[-1]))[0]
    q_a = np.asarray(flow.unflatten(mean_q[-1]))[0]
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.4))
    vmax = float(np.max(np.abs(q_t)))
    panels = ((q_t, "truth q_1"), (q_a, "analysis"), (q_a - q_t, "error"))
    for ax, (field, name) in zip(axes, panels, strict=True):
        im = ax.imshow(field, origin="lower", cmap="RdBu_r", vmin=-vmax, vmax=vmax)
        ax.set_title(name)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.colorbar(im, ax=axes.ravel().tolist(), shrink=0.8)
    fig.savefig(run_dir / "analysis.png", dpi=config.plot.dpi, bbox_inches="tight")
    plt.close(fig)
