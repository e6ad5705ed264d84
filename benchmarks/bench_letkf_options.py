"""LETKF options on DAPPER's Lorenz-96 setup: batch sizes (grid points per local domain) and
the random rotation, rmse_a and wall time.

Setup of `mods/Lorenz96/sakov2008.py` (tests/filters/_l96.py): 40 variables, all observed
every 0.05 with R = I, LETKF N=7, infl 1.04, loc_rad 4. For each (batch_size, rotate) the
seeds run as one vmapped, jitted `assimilate` (median rmse_a over seeds after 20 time units
of burn-in, diverged count), timed after compilation (median of `--repeats`); the analysis
alone (one `update` of a 7 x 40 ensemble) is timed too, since batching changes only that
(40 / batch_size N x N square roots instead of 40). DAPPER's suggested tuning uses batches of
2 and rot=True (rmse_a 0.22).

    PYTHONPATH=$PWD .venv/bin/python benchmarks/bench_letkf_options.py [--cycles 2400] [--quick]
"""

import argparse
import os
import sys

import equinox as eqx
import jax
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _timing import finish, machine_summary, time_variants  # noqa: E402

from jaxsci import filters as F  # noqa: E402
from jaxsci.dynamics import Lorenz96  # noqa: E402
from jaxsci.integrate import Flow  # noqa: E402

DT, BURN_IN, INIT_STD = 0.05, 20.0, 0.001**0.5


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=2400)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--json", default=None)
    parser.add_argument("--quick", action="store_true", help="600 cycles, 1 repeat, batch 1 and 2")
    args = parser.parse_args()
    if args.quick:
        args.cycles, args.repeats, args.batch_sizes = 600, 1, [1, 2]

    model = Lorenz96(40, 8.0)
    flow = Flow(model, DT)
    obs_op = F.IndexObservation(40, noise_cov=1.0)
    x = jax.jit(lambda x: jax.lax.fori_loop(0, 1000, lambda i, x: flow(x, 0.0, DT), x))(
        model.default_initial_state()
    )
    keys = jax.random.split(jax.random.key(0), args.seeds)
    x0s = x + INIT_STD * jax.vmap(lambda k: jax.random.normal(k, (40,)))(keys)

    ens = x + jax.random.normal(jax.random.key(1), (7, 40))
    y = x + jax.random.normal(jax.random.key(2), (40,))

    runs, analyses, filters_ = {}, {}, {}
    for bs in args.batch_sizes:
        for rot in (False, True):
            name = f"batch {bs}{' rot' if rot else ''}"
            filt = F.Inflation(F.LETKF(4.0, obs_op, batch_size=bs, rotate=rot), 1.04)
            filters_[name] = filt

            def one(key, x0, filt=filt):
                return F.assimilate(
                    key,
                    flow,
                    obs_op,
                    filt,
                    x0,
                    n_cycles=args.cycles,
                    dt=DT,
                    ensemble_size=7,
                    init_std=INIT_STD,
                    burn_in=BURN_IN,
                )

            run = jax.jit(jax.vmap(one))
            runs[name] = lambda run=run: run(keys, x0s)
            update = eqx.filter_jit(lambda f, k, e, yy: f.update(k, e, yy, obs_op))
            analyses[name] = lambda f=filt, u=update: u(f, jax.random.key(3), ens, y)

    machine = machine_summary()
    t_run = time_variants(runs, args.repeats)
    t_ana = time_variants(analyses, 20 * args.repeats)
    rows = {}
    print(
        f"\n| LETKF N=7 infl 1.04 loc_rad 4 | domains | median rmse_a ({args.seeds} seeds) | "
        f"rmse_a per seed | diverged | ms per cycle ({args.seeds} seeds) | analysis us |"
        "\n|---|---|---|---|---|---|---|"
    )
    for name in runs:
        res = runs[name]()
        rmse = np.asarray(res.rmse_a_mean)
        letkf = filters_[name].filter
        rows[name] = dict(
            rmse_a=float(np.median(rmse)),
            rmse_a_seeds=rmse.tolist(),
            diverged=int(np.asarray(res.diverged).sum()),
            ms_per_cycle=1e3 * t_run[name]["median"] / args.cycles,
            analysis_us=1e6 * t_ana[name]["median"],
            compile_s=t_run[name]["compile"],
        )
        r = rows[name]
        print(
            f"| {name} | {letkf.domain_points.shape[0]} | {r['rmse_a']:.4f} | "
            f"{', '.join(f'{v:.4f}' for v in rmse)} | {r['diverged']} | "
            f"{r['ms_per_cycle']:.3f} | {r['analysis_us']:.0f} |"
        )
    print("load average at the start:", machine["load_average"])
    finish({"results": rows, "args": vars(args), "machine": machine}, args.json)


if __name__ == "__main__":
    main()
