"""LETKF: ensemble-space vs observation-space local analyses, time per analysis near the
switch (N = k local observations) and on a sparse 2-D grid.

`filters.LETKF(space=None)` analyses each local domain in observation space (k x k systems)
when the ensemble is larger than the domain's local observation count k, and in ensemble
space (N x N, the form of DAPPER's LETKF) otherwise. This script times one jitted analysis
both ways on the same ensemble and checks that they agree:

  L96     DAPPER's Lorenz-96 setup (`mods/Lorenz96/sakov2008.py`): 40 variables all
          observed, R = I, loc_rad 4 (k = 15 local observations per point), batch sizes 1
          and 2 (DAPPER's tuning), N = 7 (DAPPER's LETKF ensemble) .. 100.
  QG      the two-layer QG LETKF of `configs/qg_letkf_psi.yaml`: 64^2 x 2 layers, a grid
          column per domain (`grid_domains`), upper-layer psi at every 2nd point per axis
          (1,024 observations), loc_rad 2 (k = 12 local observations, the gathered path),
          N = 10, 20 (the config), 40, 80.

The ensemble is F + N(0, 1) per variable (L96) or a smooth random field (QG) with unit
observation noise; the members' values change the time only through the Newton-Schulz
iteration count. Compile time (`jit(...).lower().compile()`) apart; the figure is the minimum
over calls (3-50, up to ~0.3 s), on one pinned core (`bench_scaling.pin_one_core`).

    PYTHONPATH=$PWD .venv/bin/python benchmarks/bench_letkf_space.py [--json PATH] [--quick]
"""

import argparse
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)


def _time(fn, args, budget=0.3):
    """(compile s, min s, median s, output) of a jitted function on `args`."""
    import jax

    t = time.perf_counter()
    compiled = fn.lower(*args).compile()
    compile_s = time.perf_counter() - t
    t = time.perf_counter()
    out = jax.block_until_ready(compiled(*args))
    first = time.perf_counter() - t
    reps = 1 if first > 1.0 else max(3, min(50, int(budget / max(first, 1e-6))))
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        jax.block_until_ready(compiled(*args))
        times.append(time.perf_counter() - t)
    return compile_s, min(times), statistics.median(times), out


def _row(setup, n, make, ens, y, obs_op, log):
    import jax
    import numpy as np

    key = jax.random.key(0)
    row = dict(setup=setup, N=n)
    outs = {}
    for space in ("ensemble", "observation"):
        filt = make(space)
        fn = jax.jit(lambda k, e, yy, f=filt: f.update(k, e, yy, obs_op))
        c, mn, md, out = _time(fn, (key, ens, y))
        row[space] = dict(compile_s=c, min_s=mn, median_s=md)
        outs[space] = np.asarray(out)
    default = make(None)
    row["k"] = int(default.obs_space_lists.shape[1])
    row["default"] = "observation" if default._in_observation_space(n) else "ensemble"
    row["max_abs_diff"] = float(np.max(np.abs(outs["ensemble"] - outs["observation"])))
    row["ratio_ens_over_obs"] = row["ensemble"]["min_s"] / row["observation"]["min_s"]
    log(
        f"  {setup:22s} N={n:4d} k={row['k']:3d}  ensemble {1e3 * row['ensemble']['min_s']:9.3f} ms"
        f"  observation {1e3 * row['observation']['min_s']:9.3f} ms"
        f"  (ens/obs {row['ratio_ens_over_obs']:5.2f}; default {row['default']:11s};"
        f" compile {row['ensemble']['compile_s']:.1f} / {row['observation']['compile_s']:.1f} s;"
        f" max |diff| {row['max_abs_diff']:.1e})"
    )
    return row


def l96_rows(sizes, log=print):
    import jax

    from jaxsci import filters as F

    obs_op = F.IndexObservation(40, noise_cov=1.0)
    rows = []
    for batch in (1, 2):
        for n in sizes:
            k1, k2 = jax.random.split(jax.random.key(n))
            ens = 8.0 + jax.random.normal(k1, (n, 40))
            y = 8.0 + jax.random.normal(k2, (40,))

            def make(space, batch=batch):
                return F.LETKF(4.0, obs_op, batch_size=batch, space=space)

            rows.append(_row(f"L96 batch {batch}", n, make, ens, y, obs_op, log))
    return rows


def qg_rows(sizes, log=print):
    import jax.numpy as jnp
    import numpy as np

    from jaxsci import filters as F

    ny = nx = 64
    grid = F.grid_domains((ny, nx), n_layers=2)
    obs_op = F.every_kth_grid((ny, nx), 2, n_layers=2, layers=0, noise_std=1.0)
    dim = 2 * ny * nx
    rows = []
    for n in sizes:
        rng = np.random.default_rng(n)
        # smooth random members: a few Fourier modes per layer, unit std
        yy, xx = np.meshgrid(np.arange(ny), np.arange(nx), indexing="ij")
        fields = np.zeros((n, 2, ny, nx))
        for _ in range(6):
            kx, ky = rng.integers(-4, 5, 2)
            phase = rng.uniform(0, 2 * np.pi, (n, 2, 1, 1))
            fields += np.cos(2 * np.pi * (kx * xx + ky * yy) / nx + phase)
        ens = jnp.asarray((fields / fields.std()).reshape(n, dim), dtype=jnp.float32)
        y = jnp.asarray(rng.standard_normal(obs_op.obs_dim), dtype=jnp.float32)

        def make(space):
            return F.LETKF(
                2.0,
                obs_op,
                grid.state_locations,
                grid.domain_length,
                domains=grid.domains,
                space=space,
            )

        rows.append(_row("QG psi_1 every 2nd", n, make, ens, y, obs_op, log))
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", default=None)
    parser.add_argument("--quick", action="store_true", help="a few sizes only")
    args = parser.parse_args()
    from bench_scaling import pin_one_core

    pin_one_core()
    from _timing import finish, machine_summary

    out = dict(machine=machine_summary())
    l96 = [7, 15, 20, 40] if args.quick else [7, 10, 15, 16, 20, 30, 40, 60, 100]
    qg = [20] if args.quick else [10, 20, 40, 80]
    print("one LETKF analysis, ensemble vs observation space (min over calls, one core)")
    out["l96"] = l96_rows(l96)
    out["qg"] = qg_rows(qg)
    finish(out, args.json)


if __name__ == "__main__":
    main()
