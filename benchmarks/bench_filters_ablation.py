"""Ablations behind the data-assimilation speed-ups (RESULTS.md section 3b), on one pinned core.

1. `sqrt`: the LETKF's batch of 40 symmetric 7 x 7 inverse square roots, LAPACK `eigh`
   against the Newton-Schulz iteration `inv_sqrt_shifted`, at three ensemble spreads (the
   settled L96 run, and 3x / 20x that: spin-up). Max relative difference printed.
2. `time`: L96 (N=40) EnKF, DEnKF and a do-nothing analysis through `run_filter`, with the
   model as it is (its vector field ignores t, so `Flow.window` integrates from 0 with a
   constant step) against the same model with `+ 0 * t` in its vector field (t is read, so
   the window starts at the traced cycle time t0 and the step is (t0 + h) - t0 at run time:
   the behaviour of every model before commit 875973b). Also the EnKF's perturbation draw
   alone (a do-nothing analysis plus one 40 x 40 normal draw).
3. `gather`: LETKF with each domain gathering its local observations against the dense
   taper over all observations: L96 (N=7, loc_rad 4, 29 of 40 observations local, where the
   LETKF keeps the dense taper), and Kuramoto-Sivashinsky (N=10, every 4th point observed,
   loc_rad 4) at 64 and 1024 grid points.

    .venv/bin/python benchmarks/bench_filters_ablation.py [--repeats 5] [--only sqrt time gather]
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_filters_dapper import _set_threads  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--only", nargs="+", default=["sqrt", "time", "gather"])
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    _set_threads(1)

    import equinox as eqx
    import jax
    import jax.numpy as jnp
    import numpy as np
    from _timing import finish, load_average, machine_summary, time_variants

    from jaxsci import filters as F
    from jaxsci.dynamics import KuramotoSivashinsky, Lorenz96
    from jaxsci.filters._ensemble_filters import inv_sqrt_shifted
    from jaxsci.filters._localization import local_observations, sqrt_taper_matrix
    from jaxsci.integrate import Flow

    out = {"machine": machine_summary(), "args": vars(args), "results": {}}
    print(f"load average {load_average()}")

    def report(section, timings, per):
        rows = {k: v["median"] / per * 1e6 for k, v in timings.items()}
        out["results"][section] = {
            k: dict(median=rows[k], compile_s=v["compile"]) for k, v in timings.items()
        }
        for k, v in rows.items():
            print(f"  {section:28s} {k:34s} {v:9.1f} us")
        return rows

    if "sqrt" in args.only:

        def eigh_inv_sqrt(a):
            lam, v = jnp.linalg.eigh(a)
            return (v / jnp.sqrt(lam)[..., None, :]) @ jnp.swapaxes(v, -1, -2)

        eigh_fn = jax.jit(eigh_inv_sqrt)
        ns_fn = jax.jit(jax.vmap(lambda a: inv_sqrt_shifted(a, 6.0)))
        reps = 200
        for label, spread in [("settled", 0.15), ("3x", 0.5), ("20x", 3.0)]:
            y = spread * jax.random.normal(jax.random.key(0), (40, 7, 10))
            y = y - y.mean(axis=1, keepdims=True)
            a = 6.0 * jnp.eye(7) + jnp.einsum("bip,bjp->bij", y, y)
            diff = float(jnp.max(jnp.abs(ns_fn(a) - eigh_fn(a))) / jnp.max(jnp.abs(eigh_fn(a))))
            # one timed call = `reps` dispatches, so the figure is per call (dispatch included)
            variants = {
                "eigh": lambda a=a: [eigh_fn(a) for _ in range(reps)][-1],
                "newton_schulz": lambda a=a: [ns_fn(a) for _ in range(reps)][-1],
            }
            rows = report(f"sqrt {label}", time_variants(variants, args.repeats), reps)
            print(
                f"    eigh / newton_schulz = {rows['eigh'] / rows['newton_schulz']:.2f}x, "
                f"max rel. difference {diff:.1e}"
            )

    if "time" in args.only:

        class ReadsTime(Lorenz96):
            def vector_field(self, t, y, args):
                return super().vector_field(t, y, args) + 0.0 * t

        class NoAnalysis(F.AbstractEnsembleFilter):
            draw: bool = eqx.field(static=True, default=False)

            def update(self, key, ensemble, y_obs, obs_op):
                if self.draw:
                    z = jax.random.normal(key, ensemble.shape, dtype=ensemble.dtype)
                    return ensemble + 1e-3 * (z - z.mean(axis=0))
                return ensemble

        obs_op = F.IndexObservation(40, noise_cov=1.0)
        cycles = 1400
        ys = 2.0 + jax.random.normal(jax.random.key(5), (cycles, 40))
        filters = {
            "EnKF": F.Inflation(F.EnKF(), 1.06),
            "DEnKF": F.Inflation(F.DEnKF(), 1.01),
            "no analysis": NoAnalysis(),
            "no analysis + 40x40 draw": NoAnalysis(draw=True),
        }
        variants = {}
        for model_name, model in [("t ignored", Lorenz96(40, 8.0)), ("t read", ReadsTime(40, 8.0))]:
            flow = Flow(model, 0.05)
            for filt_name, filt in filters.items():

                def run(flow=flow, filt=filt):
                    ens0 = 2.0 + jax.random.normal(jax.random.key(0), (40, 40))
                    return F.run_filter(
                        jax.random.key(1),
                        flow,
                        obs_op,
                        filt,
                        ens0,
                        ys,
                        dt=0.05,
                        compute_likelihood=False,
                    ).mean_a

                variants[f"{filt_name}, {model_name}"] = run
        rows = report("L96 N=40 cycle", time_variants(variants, args.repeats), cycles)
        for filt_name in filters:
            old, new = rows[f"{filt_name}, t read"], rows[f"{filt_name}, t ignored"]
            print(f"    {filt_name}: t read / t ignored = {old / new:.2f}x")

    if "gather" in args.only:
        # L96 (40 variables, all observed, loc_rad 4): 29 of 40 observations per domain, so
        # the LETKF keeps the dense taper; here the gather is forced, to show why
        obs_op = F.IndexObservation(40, noise_cov=1.0)
        flow = Flow(Lorenz96(40, 8.0), 0.05)
        cycles = 1400
        ys = 2.0 + jax.random.normal(jax.random.key(5), (cycles, 40))
        dense = F.LETKF(4.0, obs_op)
        idx, taper = local_observations(np.arange(40), np.arange(40), 4.0, 40.0)
        forced = eqx.tree_at(
            lambda f: (f.local_obs, f.local_sqrt_taper),
            dense,
            (jnp.asarray(idx), jnp.asarray(taper, dtype=jnp.float32)),
            is_leaf=lambda x: x is None,
        )

        def make_l96(filt):
            def run():
                ens0 = 2.0 + jax.random.normal(jax.random.key(0), (7, 40))
                return F.run_filter(
                    jax.random.key(1),
                    flow,
                    obs_op,
                    F.Inflation(filt, 1.04),
                    ens0,
                    ys,
                    dt=0.05,
                    compute_likelihood=False,
                ).mean_a

            return run

        timings = time_variants(
            {"dense": make_l96(dense), "gathered": make_l96(forced)}, args.repeats
        )
        rows = report("L96 N=7 LETKF cycle", timings, cycles)
        print(
            f"    {idx.shape[1]} of 40 observations per domain; "
            f"dense / gathered = {rows['dense'] / rows['gathered']:.2f}x"
        )
        for dim in (64, 1024):
            obs_op = F.IndexObservation(dim, indices=np.arange(0, dim, 4), noise_cov=0.01)
            flow = Flow(KuramotoSivashinsky(length=22.0 * dim / 64, num_points=dim), 0.25)
            cycles = 300
            ys = jax.random.normal(jax.random.key(5), (cycles, obs_op.obs_dim))
            x0 = jnp.cos(jnp.linspace(0, 2 * jnp.pi, dim))
            gathered = F.LETKF(4.0, obs_op)
            dense = eqx.tree_at(
                lambda f: (f.local_obs, f.local_sqrt_taper),
                gathered,
                (None, sqrt_taper_matrix(np.arange(dim), np.arange(0, dim, 4), 4.0, float(dim))),
                is_leaf=lambda x: x is None,
            )
            k = gathered.local_obs.shape[1]

            def make(filt, obs_op=obs_op, flow=flow, ys=ys, x0=x0, dim=dim):
                def run():
                    ens0 = x0 + 0.1 * jax.random.normal(jax.random.key(0), (10, dim))
                    return F.run_filter(
                        jax.random.key(1),
                        flow,
                        obs_op,
                        F.Inflation(filt, 1.05),
                        ens0,
                        ys,
                        dt=1.0,
                        compute_likelihood=False,
                    ).mean_a

                return run

            timings = time_variants(
                {"dense": make(dense), "gathered": make(gathered)}, args.repeats
            )
            rows = report(f"KS {dim} LETKF cycle", timings, cycles)
            print(
                f"    {k} of {obs_op.obs_dim} observations per domain; "
                f"dense / gathered = {rows['dense'] / rows['gathered']:.2f}x"
            )

    finish(out, args.json)


if __name__ == "__main__":
    main()
