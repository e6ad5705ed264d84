"""Throughput of a vmapped hyperparameter sweep, and ensemble-size scaling.

Sweep: Lorenz-96 (Sakov & Oke 2008 setup) ETKF N=24 with rotation, 8 inflation factors
x 8 seeds, as ONE jitted call (`jax.vmap` over the inflation inside `Inflation(ETKF, a)` and
over the PRNG keys) against the same 64 runs one by one through a single compiled
`assimilate`. Prints the rmse_a table (median over seeds, diverged count per inflation).

Scaling (`--scaling`): time per cycle of the L96 EnKF and ETKF as the ensemble grows from 16
to 10^4 members (the N > P observation-space branch keeps the cost linear in N).

    .venv/bin/python benchmarks/bench_filters_sweep.py [--quick] [--scaling]
"""

import argparse
import json
import os
import sys
import time


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--cycles", type=int, default=1400)
    parser.add_argument("--scaling", action="store_true", help="also ensemble-size scaling")
    parser.add_argument("--sizes", type=int, nargs="+", default=[16, 64, 256, 1024, 4096, 10000])
    parser.add_argument("--scaling-cycles", type=int, default=200)
    parser.add_argument("--no-sweep", action="store_true", help="only the scaling part")
    args = parser.parse_args()
    if args.quick:
        args.cycles, args.scaling_cycles, args.sizes = 500, 50, [16, 256, 1024]

    import jax
    import jax.numpy as jnp
    import numpy as np

    from jaxsci import filters as F
    from jaxsci.dynamics import Lorenz96
    from jaxsci.integrate import Flow

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from _timing import load_average, machine_summary

    model = Lorenz96(40, 8.0)
    flow = Flow(model, 0.05)
    obs_op = F.IndexObservation(40, noise_cov=1.0)
    x_start = jax.jit(lambda x: jax.lax.fori_loop(0, 1000, lambda i, x: flow(x, 0.0, 0.05), x))(
        model.default_initial_state()
    )
    inflations = jnp.linspace(1.0, 1.07, 8)
    keys = jax.random.split(jax.random.key(0), 8)
    x0s = x_start + 0.001**0.5 * jax.vmap(lambda k: jax.random.normal(k, (40,)))(keys)

    out = {}
    if not args.no_sweep:

        def one(infl, key, x0):
            res = F.assimilate(
                key,
                flow,
                obs_op,
                F.Inflation(F.ETKF(rotate=True), infl),
                x0,
                n_cycles=args.cycles,
                dt=0.05,
                ensemble_size=24,
                init_std=0.001**0.5,
                burn_in=20.0,
                compute_likelihood=False,
            )
            return res.rmse_a_mean, res.diverged

        sweep = jax.jit(jax.vmap(jax.vmap(one, in_axes=(None, 0, 0)), in_axes=(0, None, None)))
        t = time.perf_counter()
        jax.block_until_ready(sweep(inflations, keys, x0s))
        first = time.perf_counter() - t
        t = time.perf_counter()
        rmse, diverged = jax.block_until_ready(sweep(inflations, keys, x0s))
        vmapped = time.perf_counter() - t

        single = jax.jit(one)
        t = time.perf_counter()
        jax.block_until_ready(single(inflations[0], keys[0], x0s[0]))
        first_single = time.perf_counter() - t
        t = time.perf_counter()
        loop = [[single(a, k, x) for k, x in zip(keys, x0s, strict=True)] for a in inflations]
        jax.block_until_ready(loop)
        looped = time.perf_counter() - t
        loop_rmse = np.array([[float(r[0]) for r in row] for row in loop])
        # float32 runs of a chaotic model: vmapped and single runs round differently, so compare
        # the time-averaged rmse of the runs that did not diverge
        ok = ~np.asarray(diverged)
        agree = (
            float(np.max(np.abs(loop_rmse - np.asarray(rmse))[ok])) if ok.any() else float("nan")
        )

        out["sweep"] = {
            "runs": 64,
            "cycles": args.cycles,
            "vmapped_s": vmapped,
            "vmapped_compile_s": max(first - vmapped, 0.0),
            "one_by_one_s": looped,
            "single_compile_s": max(first_single - looped / 64, 0.0),
            "speedup": looped / vmapped,
            "max_abs_rmse_difference_vmap_vs_loop_not_diverged": agree,
            "inflations": np.asarray(inflations).round(4).tolist(),
            "median_rmse_a": np.median(np.asarray(rmse), axis=1).round(4).tolist(),
            "diverged": np.asarray(diverged).sum(axis=1).tolist(),
        }
        s = out["sweep"]
        print(
            f"sweep 8 inflations x 8 seeds x {args.cycles} cycles (ETKF N=24 rot): vmapped "
            f"{vmapped:.2f}s (compile {s['vmapped_compile_s']:.1f}s) vs one by one {looped:.2f}s "
            f"-> {s['speedup']:.1f}x; max |rmse diff| {agree:.2e}"
        )
        print("| infl | " + " | ".join(f"{a:.2f}" for a in s["inflations"]) + " |")
        print("|---" * 9 + "|")
        print("| median rmse_a | " + " | ".join(f"{r:.3f}" for r in s["median_rmse_a"]) + " |")
        print("| diverged / 8 | " + " | ".join(str(d) for d in s["diverged"]) + " |", flush=True)

    if args.scaling:
        rows = []
        for n in args.sizes:
            for name, filt in (
                ("EnKF", F.Inflation(F.EnKF(), 1.02)),
                ("ETKF", F.Inflation(F.ETKF(), 1.02)),
            ):
                fn = jax.jit(
                    lambda key, filt=filt, n=n: (
                        F.assimilate(
                            key,
                            flow,
                            obs_op,
                            filt,
                            x_start,
                            n_cycles=args.scaling_cycles,
                            dt=0.05,
                            ensemble_size=n,
                            init_std=0.001**0.5,
                            compute_likelihood=False,
                        ).rmse_a_mean
                    )
                )
                t = time.perf_counter()
                jax.block_until_ready(fn(jax.random.key(0)))
                first = time.perf_counter() - t
                t = time.perf_counter()
                r = jax.block_until_ready(fn(jax.random.key(1)))
                el = time.perf_counter() - t
                rows.append(
                    {
                        "filter": name,
                        "N": n,
                        "ms_per_cycle": 1e3 * el / args.scaling_cycles,
                        "compile_s": max(first - el, 0.0),
                        "rmse_a": float(r),
                    }
                )
                print(
                    f"{name} N={n:6d}: {rows[-1]['ms_per_cycle']:.3f} ms/cycle "
                    f"(compile {rows[-1]['compile_s']:.1f}s), rmse_a {float(r):.3f}",
                    flush=True,
                )
        out["scaling"] = rows

    out.update(
        load_average=load_average(),
        machine=machine_summary(),
        jax_backend=jax.default_backend(),
        args=vars(args),
    )
    out_dir = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_out")
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "bench_filters_sweep.json"), "w") as f:
        json.dump(out, f, indent=2)
    print(f"load average {load_average()}; backend {jax.default_backend()}")


if __name__ == "__main__":
    main()
