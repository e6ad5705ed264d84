"""LETKF on two-layer QG from sparse upper-layer streamfunction observations: the sweeps
behind `configs/qg_letkf_psi.yaml` (issue 18's example; results in benchmarks/RESULTS.md).

The setup of the `qg_letkf` pipeline: `dynamics.TwoLayerQG` at pyqg's defaults (64^2, L =
1000 km, rd = 15 km: one grid spacing is 1.04 rd), pyqg's AB3 + exponential filter, dt =
7200 s, spun up 2000 days from pyqg's random start (states every 10 days; climatology from
day 1200); `members` climatological members from the steady spin-up >= 100 days before the
truth's start; daily analyses; observed: psi_1 (or q_1) at every `stride`-th grid point
along each axis, noise `noise_fraction` x the climatological std of the observed field. The
LETKF (one domain per grid column, both layers, `filters.grid_domains`; RTPS) analyses
either the PV q (`space: q`; psi observations are then `NonlinearObservation`s through
`TwoLayerQG.streamfunction`) or the streamfunction psi of both layers (`space: psi`: members
and truth inverted to psi, the forecast maps psi -> q -> model step -> psi, q rebuilt by
`TwoLayerQG.potential_vorticity` plus the layer means; psi observations are direct). The
spin-up is computed once and cached (`--cache`), so each row costs only its truth,
observations and filter.

Each row prints the rmse of q_1, q_2, psi_1, psi_2 (mean over cycles after `burn`) over that
field's climatological spread (std about the time mean of the steady spin-up), of the whole
q state (`q_all`), of psi_1 over the psi obs error (`psi1_over_noise`, psi units), and the
psi_1 error every 5 cycles, and where the errors sit: the fraction of the psi error variance
in mode numbers |k| < 4 and of the q error variance in |k| > N / 4. `free: true` runs the
members without analyses (the baseline).

    PYTHONPATH=$PWD .venv/bin/python benchmarks/bench_qg_letkf_psi.py \\
        '{"space": "psi", "loc_rad": 2, "rtps": 0.5}' '{"space": "q", "loc_rad": 2}' ...

Each argument is one row: a JSON object of `run`'s keyword arguments.
"""

import argparse
import json
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

from jaxsci import dynamics, filters, integrate

DAY = 86400.0
N = 64
MODEL = dynamics.TwoLayerQG(N)
FLOW = integrate.FlattenedFlow(
    integrate.Flow(MODEL, 7200.0, integrate.AB3(filter=MODEL.spectral_filter()))
)


def spin_up(cache: str) -> jax.Array:
    """2000 days from pyqg's random start, a state every 10 days (cached in `cache`)."""
    if os.path.exists(cache):
        return jnp.asarray(np.load(cache))
    t = time.perf_counter()
    x0 = FLOW.flatten(MODEL.default_initial_state())
    traj = jax.jit(lambda q: integrate.rollout(FLOW, q, 200, dt=10 * DAY))(x0)
    np.save(cache, np.asarray(traj))
    print(f"spin-up {time.perf_counter() - t:.1f} s", flush=True)
    return traj


def layer_spread(a) -> list[float]:
    a = a - a.mean(0)
    return [float(jnp.sqrt(jnp.mean(a[:, k * N * N : (k + 1) * N * N] ** 2))) for k in (0, 1)]


def band_fractions(err) -> tuple[float, float]:
    """Of the error variance of flattened (cycles, 2 N^2) fields, the fractions in the
    largest scales (mode numbers |k| < 4) and in the smallest (|k| > N / 4)."""
    power = np.abs(np.fft.fft2(np.asarray(err).reshape(-1, 2, N, N))) ** 2
    m = np.fft.fftfreq(N, 1.0 / N)
    shell = np.hypot(m[:, None], m[None, :])
    total = power.sum()
    return float(power[..., shell < 4].sum() / total), float(
        power[..., shell > N / 4].sum() / total
    )


def main(rows: list[dict], cache: str) -> None:
    traj = spin_up(cache)
    steady = traj[120:]  # from day 1200
    to_psi = jax.vmap(lambda x: FLOW.flatten(MODEL.streamfunction(FLOW.unflatten(x))))
    psi_steady = to_psi(steady)
    clim_q, clim_psi = layer_spread(steady), layer_spread(psi_steady)
    clim_all = float(filters.climatological_spread(steady))
    q_means = jnp.mean(FLOW.unflatten(traj[-1]), axis=(1, 2))

    def q_of(y):
        return FLOW.flatten(MODEL.potential_vorticity(FLOW.unflatten(y)) + q_means[:, None, None])

    def psi_of(x):
        return FLOW.flatten(MODEL.streamfunction(FLOW.unflatten(x)))

    print(json.dumps({"clim_q": clim_q, "clim_psi": clim_psi, "clim_q_all": clim_all}))

    def run(
        field="psi",
        space="q",
        stride=2,
        loc_rad=2.0,
        rtps=0.7,
        members=20,
        seed=0,
        cycles=40,
        burn=15,
        noise_fraction=0.1,
        interval=1.0,
        free=False,
    ):
        flow = FLOW
        if space == "psi":

            def flow(y, t0, t1):
                return psi_of(FLOW(q_of(y), t0, t1))

        observed = (steady if field == "q" else psi_steady)[:, : N * N]
        noise = noise_fraction * float(jnp.std(observed))
        points = filters.every_kth_grid((N, N), stride, n_layers=2, layers=0, noise_std=noise)
        obs_op = points  # direct when the observed field is the analysed one
        if field != space:
            other = psi_of if field == "psi" else q_of

            def h(x):
                return FLOW.unflatten(other(x))[0, ::stride, ::stride].ravel()

            obs_op = filters.NonlinearObservation(
                h, 2 * N * N, points.obs_dim, locations=points.locations, noise_std=noise
            )
        g = filters.grid_domains((N, N), n_layers=2)
        letkf = filters.LETKF(
            loc_rad, obs_op, g.state_locations, g.domain_length, domains=g.domains
        )
        filt = filters.RTPS(letkf, rtps) if rtps > 0 else letkf
        pool = steady[: len(steady) - 10]  # >= 100 days before the truth's start
        ens = pool[np.linspace(0, pool.shape[0] - 1, members).astype(int)]
        key_obs, key_filter = jax.random.split(jax.random.key(seed))
        dt = interval * DAY
        t = time.perf_counter()
        truth = jax.jit(lambda x: integrate.rollout(FLOW, x, cycles, dt=dt))(traj[-1])
        to_space = jax.vmap(psi_of) if space == "psi" else (lambda x: x)
        ys = filters.synthetic_observations(key_obs, obs_op, to_space(truth))
        spread = float("nan")
        if free:
            runs = jax.vmap(lambda x: integrate.rollout(FLOW, x, cycles, dt=dt))(ens)
            mean = jnp.mean(runs, axis=0)
        else:
            res = filters.run_filter(
                key_filter, flow, obs_op, filt, to_space(ens), ys, dt=dt, compute_likelihood=False
            )
            mean = jax.vmap(q_of)(res.mean_a) if space == "psi" else res.mean_a
            spread = float(np.mean(np.asarray(res.spread_a)[burn:]))
        e, ep = np.asarray(mean - truth), np.asarray(to_psi(mean) - to_psi(truth))

        def rmse(a, k):
            layer = a[burn:, k * N * N : (k + 1) * N * N]
            return float(np.mean(np.sqrt(np.mean(layer**2, axis=1))))

        out = dict(
            space=space,
            field=field,
            stride=stride,
            loc_rad=loc_rad,
            rtps=rtps,
            members=members,
            seed=seed,
            cycles=cycles,
            burn=burn,
            free=free,
            max_local_obs=int(letkf.local_sqrt_taper.shape[1]),
            gathered=letkf.local_obs is not None,
            q_all=float(np.mean(np.sqrt(np.mean(e[burn:] ** 2, axis=1)))) / clim_all,
            q1=rmse(e, 0) / clim_q[0],
            q2=rmse(e, 1) / clim_q[1],
            psi1=rmse(ep, 0) / clim_psi[0],
            psi2=rmse(ep, 1) / clim_psi[1],
            psi1_over_noise=rmse(ep, 0) / noise if field == "psi" else float("nan"),
            spread_a=spread,  # in the analysed field's units
            # where the errors sit: psi's in the largest scales, q's in the smallest
            psi_err_fraction_k_lt_4=band_fractions(ep[burn:])[0],
            q_err_fraction_k_gt_16=band_fractions(e[burn:])[1],
            finite=bool(np.all(np.isfinite(e))),
            psi1_every_5=[
                round(float(np.sqrt(np.mean(ep[k, : N * N] ** 2))) / clim_psi[0], 3)
                for k in range(0, cycles, 5)
            ],
            seconds=round(time.perf_counter() - t, 1),
        )
        print(json.dumps(out), flush=True)

    for row in rows:
        run(**row)


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("rows", nargs="+", help="one JSON object of run's keyword arguments per row")
    p.add_argument("--cache", default="/tmp/qg_letkf_psi_spinup.npy", help="spin-up cache")
    args = p.parse_args()
    main([json.loads(r) for r in args.rows], args.cache)
