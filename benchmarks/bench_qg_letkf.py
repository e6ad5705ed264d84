"""LETKF twin experiment on two-layer QG turbulence with sparse observations (issue 18).

Truth: `dynamics.TwoLayerQG` at pyqg's defaults (64^2, dt = 7200 s) spun up from pyqg's
random start for `--spinup` days into statistically steady baroclinic turbulence. Observed
(`--observe`): the upper-layer PV q_1 or streamfunction psi_1 at one grid point in `--k`
along each axis (k = 2: 1024 of the 4096 points of a layer, 1 in 8 of the state's 8192
values), every `--interval` days, with noise std `--noise` x the climatological std of the
observed field (0.1: 10%). Filter: `filters.LETKF` with one local domain per grid column
(both layers, `filters.grid_domains`), the gathered local-observation path, RTPS. The
initial ensemble is climatological: `--members` states of the steady part of the spin-up,
at least `--offset` days before the truth's start (`filters.run_filter`). Reported: rmse_a
of the full state (both layers) against the observation error and the climatological
spread (std of the truth about its time mean over the steady spin-up,
`filters.climatological_spread`), and the per-cycle analysis time (one jitted `update`).

    PYTHONPATH=$PWD .venv/bin/python benchmarks/bench_qg_letkf.py [--cycles 100 ...]
"""

import argparse
import json
import time

import jax
import jax.numpy as jnp
import numpy as np

from jaxsci import dynamics, filters, integrate

DAY = 86400.0
DT = 7200.0  # pyqg's default step


def qg_flow(n: int = 64) -> integrate.FlattenedFlow:
    """The QG model's flow on flattened states: ETDRK4 with a del^8 hyperviscosity that
    damps the grid-scale wavenumber k_max = pi n / L at the rate 1 / dt (scale-selective:
    k_max / 2 at 1 / (256 dt)) in the role of pyqg's filter (this script predates
    `integrate.AB3`; pyqg's own AB3 + filter is the `qg_letkf` pipeline's default,
    `jaxsci run configs/qg_letkf.yaml`)."""
    kmax = np.pi * n / 1e6
    model = dynamics.TwoLayerQG(n, hyperviscosity=1.0 / (DT * kmax**8))
    return integrate.FlattenedFlow(integrate.Flow(model, DT))


def run(args) -> dict:
    flow = qg_flow(args.n)
    model = flow.flow.dynamics
    n = args.n
    t = time.perf_counter()
    spin = jax.jit(lambda q: integrate.rollout(flow, q, args.spinup // 10, dt=10 * DAY))
    traj = jax.block_until_ready(spin(flow.flatten(model.default_initial_state())))
    spinup_s = time.perf_counter() - t
    x0 = traj[-1]
    # climatology: the statistically steady part of the spin-up, every 10 days
    steady = traj[args.steady_from // 10 :]
    clim_long = float(filters.climatological_spread(steady))
    points = filters.every_kth_grid((n, n), args.k, n_layers=2, layers=0)
    if args.observe == "q":
        sigma = float(jnp.std(steady[:, : n * n]))
        obs_op = filters.every_kth_grid(
            (n, n), args.k, n_layers=2, layers=0, noise_std=args.noise * sigma
        )
    else:  # the upper-layer streamfunction at the same points: h(q) = psi_1(q)[::k, ::k]
        psi1 = jax.vmap(lambda x: model.streamfunction(flow.unflatten(x))[0])(steady)
        sigma = float(jnp.std(psi1))

        def h(x):
            return model.streamfunction(flow.unflatten(x))[0, :: args.k, :: args.k].ravel()

        obs_op = filters.NonlinearObservation(
            h,
            2 * n * n,
            points.obs_dim,
            locations=points.locations,
            noise_std=args.noise * sigma,
        )
    noise = args.noise * sigma
    g = filters.grid_domains((n, n), n_layers=2)
    letkf = filters.LETKF(
        args.loc_rad, obs_op, g.state_locations, g.domain_length, domains=g.domains
    )
    assert letkf.local_obs is not None  # the gathered path
    filt = filters.RTPS(letkf, args.rtps)
    # a climatological initial ensemble: states of the steady spin-up, each `offset` days
    # or more from the truth's start and from each other (every 10 days)
    pool = steady[: -args.offset // 10]
    members = pool[np.linspace(0, pool.shape[0] - 1, args.members).astype(int)]
    key_obs, key_filter = jax.random.split(jax.random.key(args.seed))
    dt = args.interval * DAY
    t = time.perf_counter()
    truth = jax.jit(lambda x: integrate.rollout(flow, x, args.cycles, dt=dt))(x0)
    ys = filters.synthetic_observations(key_obs, obs_op, truth)
    res = filters.run_filter(
        key_filter, flow, obs_op, filt, members, ys, dt=dt, compute_likelihood=False
    )
    res = jax.block_until_ready(res)
    da_s = time.perf_counter() - t
    err = jnp.sqrt(jnp.mean((res.mean_a - truth) ** 2, axis=1))
    err_q1 = jnp.sqrt(jnp.mean((res.mean_a - truth)[:, : n * n] ** 2, axis=1))
    burn = args.burn_in // args.interval
    rmse_a = float(jnp.mean(err[burn:]))
    # the analysis alone, one jitted update on a forecast-like ensemble (compile apart)
    ens = truth[-1] + clim_long * jax.random.normal(jax.random.key(1), (args.members, 2 * n * n))
    y = obs_op(truth[-1])
    upd = jax.jit(lambda e, y: letkf.update(jax.random.key(2), e, y, obs_op))
    t = time.perf_counter()
    jax.block_until_ready(upd(ens, y))
    compile_update_s = time.perf_counter() - t
    t = time.perf_counter()
    for _ in range(10):
        jax.block_until_ready(upd(ens, y))
    update_ms = 100 * (time.perf_counter() - t)
    clim = clim_long
    out = {
        "grid": n,
        "obs": obs_op.obs_dim,
        "state_dim": 2 * n * n,
        "local_obs_max": int(letkf.local_obs.shape[1]),
        "members": args.members,
        "loc_rad": args.loc_rad,
        "rtps": args.rtps,
        "cycles": args.cycles,
        "interval_days": args.interval,
        "obs_noise_std": noise,
        "rmse_a": rmse_a,
        "spread_a": float(jnp.mean(res.spread_a[burn:])),
        "rmse_a_series_every_10": np.asarray(err[::10]).tolist(),
        "climatological_spread": clim,
        "rmse_a / clim": rmse_a / clim,
        "rmse_a / obs_noise": rmse_a / noise,
        "rmse_a_q1": float(jnp.mean(err_q1[burn:])),
        "observe": args.observe,
        "obs_noise_fraction_of_field_std": args.noise,
        "spinup_seconds": spinup_s,
        "truth_and_filter_seconds (incl. compile)": da_s,
        "update_compile_seconds": compile_update_s,
        "analysis_ms_per_cycle": update_ms,
    }
    return out


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--n", type=int, default=64)
    p.add_argument("--k", type=int, default=8)
    p.add_argument("--spinup", type=int, default=2000, help="days")
    p.add_argument("--steady-from", type=int, default=1200, help="days: climatology start")
    p.add_argument("--observe", choices=("psi", "q"), default="psi")
    p.add_argument("--offset", type=int, default=200, help="days")
    p.add_argument("--cycles", type=int, default=100)
    p.add_argument("--interval", type=int, default=1, help="days between analyses")
    p.add_argument("--burn-in", type=int, default=20, help="days")
    p.add_argument("--members", type=int, default=20)
    p.add_argument("--loc-rad", type=float, default=4.0)
    p.add_argument("--rtps", type=float, default=0.7)
    p.add_argument("--noise", type=float, default=0.1)
    p.add_argument("--init-std", type=float, default=0.3)
    p.add_argument("--seed", type=int, default=0)
    print(json.dumps(run(p.parse_args()), indent=1))
