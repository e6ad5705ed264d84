r"""Scaling curves: time per analysis against ensemble size N and state dimension d, and time
per NUTS iteration against the number of chains.

Sweeps (every point compiled once, `jit(...).lower().compile()` timed apart, then the median
of `repeats` calls):

  ensemble   one analysis of a Lorenz-96 (d = 40) forecast ensemble, every variable observed
             (`IndexObservation(40, noise_cov=1)`), N = 10^2 .. 10^6 (the LETKF also at
             N = 50, 200, 400), for the stochastic
             EnKF (perturbed observations), the ETKF (symmetric square root), the DEnKF and
             the LETKF (one domain per variable, `loc_rad` 4: 25 local observations),
             default (observation space for N > 25) and `space="ensemble"` (LETKF-ens).
  dimension  the same at fixed N = 40 for L96 d = 40 .. 10240 (P = d observations).
  chains     `inference.posterior` NUTS (blackjax, diagonal mass) on posteriordb's
             Lotka-Volterra posterior (`inference.lotka_volterra_problem`), 1 .. 256 chains
             vmapped; time per iteration of the sampling phase (all chains advance together)
             and per draw (per iteration / chains), with leapfrog steps of the slowest chain.

The forecast ensemble is F + N(0, 1) per variable (unit spread against unit observation
noise: the Newton-Schulz inverse square roots of ETKF/LETKF then take 5-8 iterations, see
`filters._ensemble_filters.inv_sqrt_shifted`); its values change the cost only through
that iteration count.

Theoretical costs (P observations, d state variables; the global filters switch statically to
observation space when N > P, as DAPPER does):
  EnKF, DEnKF, ETKF  ensemble space (N <= P): O(N^2 P + N^3 + N^2 d);
                     observation space (N > P): O(N P^2 + P^3 + N P d), linear in N.
                     So at d = P = 40 the N-sweep (N >= 100 > P) should show a ~ 1, and the
                     d-sweep at N = 40 <= P (ensemble space) a ~ 1 in d.
  LETKF              k local observations per domain (fixed by loc_rad). Ensemble space
                     (LETKF-ens, and the default for N <= k): d domains x (N^2 k + N^3),
                     a ~ 3 in N once N^3 dominates (a ~ 2 while N^2 k does), a ~ 1 in d.
                     Observation space (the default for N > k): global products
                     O(N P (P + d) + d k^3), or per-domain gathers O(d N k^2) when P is
                     large: a ~ 1 in N, a ~ 1 in d.
  NUTS chains        vmapped chains cost chains x leapfrogs(slowest chain) x one gradient: on a
                     CPU a ~ 1 per iteration (a ~ 0 per draw) once the batch fills the cores; on
                     a GPU a ~ 0 per iteration until the device is saturated.

Points that cannot run are skipped with the reason: an estimate of the largest live arrays
over `--max-gib` (LETKF-ens holds d x N x N matrices, 16 GB at N = 10^4, d = 40), or a
predicted time (the last point's time scaled by the theoretical exponent) over
`--max-seconds` per point.

The empirical exponent a of time ~ x^a is the least-squares slope in log-log over the points
that ran (of the minimum over the timed calls, the estimate least disturbed by other jobs on a
shared machine; the medians are in the JSON), printed next to the theoretical one and with
the slope of the last two points (the asymptotic regime, where fixed per-call overheads no
longer dominate).

Run: `python benchmarks/bench_scaling.py` (all three sweeps), `--quick` (a smoke test: N up to
10^4, d up to 640, chains 1..16, few NUTS steps), `--only ensemble dimension chains`,
`--json PATH`, `--reuse PATH` (keep an earlier run's sweeps that are not in --only),
`--png PATH` (default benchmarks/scaling_cpu.png; on a GPU scaling_gpu.png; with --quick
benchmarks/_out/scaling_*_quick.png),
`--threads 1` (the default: one pinned CPU core, see `pin_one_core`; 0 leaves all cores).
"""

import argparse
import json
import os
import statistics
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

# "LETKF" is the default (observation space per domain once N > k local observations);
# "LETKF-ens" forces the ensemble-space form (N x N per domain), the only one before
FILTERS = ("EnKF", "ETKF", "DEnKF", "LETKF", "LETKF-ens")
LOC_RAD = 4.0  # DAPPER's Lorenz-96 LETKF radius (grid units); taper half-width 1.82 x 4
FORCING = 8.0
# theoretical exponents (the regime the sweep sits in, see the module docstring)
THEORY_N = {"EnKF": 1.0, "ETKF": 1.0, "DEnKF": 1.0, "LETKF": 1.0, "LETKF-ens": 3.0}
THEORY_D = {"EnKF": 1.0, "ETKF": 1.0, "DEnKF": 1.0, "LETKF": 1.0, "LETKF-ens": 1.0}
FULL = dict(
    sizes=[100, 1_000, 10_000, 100_000, 1_000_000],
    # the ensemble-space LETKF's cubic cost ends its curve near N = 10^3 on a CPU: more
    # points below that
    letkf_sizes=[50, 100, 200, 400, 1_000, 10_000, 100_000, 1_000_000],
    dims=[40, 160, 640, 2560, 10240],
    dim_members=40,
    chains=[1, 4, 16, 64, 256],
    # short runs: a per-iteration cost needs few iterations, and one 1-core iteration of 256
    # chains costs seconds; a short warmup leaves deeper trees than a tuned sampler, so the
    # cost per leapfrog of the slowest chain is the figure comparable across chain counts
    warmup=20,
    samples=10,
)
QUICK = dict(  # a smoke test (`run_all.py --quick`), 1-2 minutes
    sizes=[100, 1_000, 10_000],
    letkf_sizes=[50, 100],
    dims=[40, 160, 640],
    dim_members=40,
    chains=[1, 4, 16],
    warmup=30,
    samples=10,
)


def make_filter(name: str, obs_op):
    from jaxsci import filters as F

    if name == "EnKF":
        return F.EnKF()
    if name == "ETKF":
        return F.ETKF()
    if name == "DEnKF":
        return F.DEnKF()
    if name == "LETKF":
        return F.LETKF(LOC_RAD, obs_op)
    if name == "LETKF-ens":
        return F.LETKF(LOC_RAD, obs_op, space="ensemble")
    raise ValueError(f"`name` must be one of {FILTERS}, got {name!r}.")


def peak_bytes(name: str, n: int, d: int, itemsize: int = 4) -> float:
    """A rough estimate of the largest live arrays of one analysis (P = d observations).

    Ensemble-sized arrays (forecast, anomalies, observed anomalies, analysis, and for the
    EnKF the perturbed observations): about 6 N d numbers. The ensemble-space LETKF adds d
    domains of N x N matrices, about 5 alive at once in the Newton-Schulz loop (Y, Z, ZY, T
    and the product); in observation space (N > k = 25 local observations at loc_rad 4) its
    global products add P x P and P x d matrices and d domains of k x k ones.
    """
    base = 6.0 * n * d
    if name == "LETKF-ens" or (name == "LETKF" and n <= 25):
        base += 5.0 * d * n * n
    elif name == "LETKF":
        base += 2.0 * d * d + 5.0 * d * 25 * 25
    elif n <= d:  # ensemble space: N x N systems
        base += 4.0 * n * n
    else:  # observation space: P x P
        base += 4.0 * d * d
    return base * itemsize


def analysis_point(name: str, n: int, d: int, repeats: int = 3, seed: int = 0) -> dict:
    """Compile and time one analysis of an (n, d) Lorenz-96 forecast ensemble."""
    import jax
    import jax.numpy as jnp

    from jaxsci import filters as F

    obs_op = F.IndexObservation(d, noise_cov=1.0)
    filt = make_filter(name, obs_op)
    k_ens, k_obs, k_an = jax.random.split(jax.random.key(seed), 3)

    @jax.jit
    def forecast(k):
        return FORCING + jax.random.normal(k, (n, d))

    ens = jax.block_until_ready(forecast(k_ens))
    y = FORCING + jax.random.normal(k_obs, (d,))
    fn = jax.jit(lambda k, e, yy: filt.update(k, e, yy, obs_op))
    t = time.perf_counter()
    compiled = fn.lower(k_an, ens, y).compile()
    compile_s = time.perf_counter() - t
    t = time.perf_counter()
    out = jax.block_until_ready(compiled(k_an, ens, y))
    first = time.perf_counter() - t
    # sub-millisecond calls are noisy on a shared machine: repeat up to ~0.3 s (at most 50);
    # a call over 5 s is timed once (its first, compiled, call), over 1 s twice
    if first > 5.0:
        reps = 0
    elif first > 1.0:
        reps = 1
    else:
        reps = max(repeats, min(50, int(0.3 / max(first, 1e-6))))
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        jax.block_until_ready(compiled(k_an, ens, y))
        times.append(time.perf_counter() - t)
    finite = bool(jnp.all(jnp.isfinite(out)))
    return dict(
        filter=name,
        N=n,
        d=d,
        compile_s=compile_s,
        first_s=first,
        run_s=statistics.median(times) if times else first,
        min_s=min(times) if times else first,
        finite=finite,
    )


def analysis_sweep(
    axis: str,
    names,
    values,
    fixed: int,
    *,
    max_seconds: float,
    max_gib: float,
    repeats: int = 3,
    log=print,
) -> list[dict]:
    """Time per analysis over `values` of N (axis 'N', d = fixed) or of d (axis 'd', N = fixed).

    A point is skipped (recorded with its reason) when its memory estimate exceeds `max_gib`
    or its predicted time -- the last timed point scaled by the theoretical exponent, and
    at least 1.5x the growth observed so far -- exceeds `max_seconds`.
    """
    theory = THEORY_N if axis == "N" else THEORY_D
    rows = []
    for name in names:
        last = None
        for v in values:
            n, d = (v, fixed) if axis == "N" else (fixed, v)
            row = dict(filter=name, N=n, d=d)
            gib = peak_bytes(name, n, d) / 2**30
            if gib > max_gib:
                row["skipped"] = f"memory: ~{gib:.3g} GiB estimated > {max_gib} GiB"
            elif last is not None:
                ratio = v / last["x"]
                # the run time grows with the size, the compile time hardly does
                predicted = last["run_s"] * ratio ** theory[name] + last["compile_s"]
                if predicted > max_seconds:
                    row["skipped"] = (
                        f"time: ~{predicted:.3g} s predicted (x^{theory[name]:g} from the last "
                        f"point) > {max_seconds} s"
                    )
            if "skipped" not in row:
                try:
                    row = analysis_point(name, n, d, repeats=repeats)
                    last = dict(x=v, run_s=row["run_s"], compile_s=row["compile_s"])
                except Exception as e:  # noqa: BLE001 -- recorded, not fatal
                    row["skipped"] = f"error: {type(e).__name__}: {str(e)[:200]}"
            rows.append(row)
            if "skipped" in row:
                log(f"  {name:6s} N={n:>8d} d={d:>6d}  skipped ({row['skipped']})")
            else:
                log(
                    f"  {name:6s} N={n:>8d} d={d:>6d}  {1e3 * row['run_s']:10.3f} ms/analysis"
                    f" (min {1e3 * row['min_s']:.3f})  (compile {row['compile_s']:.2f} s)"
                )
    return rows


def nuts_point(chains: int, warmup: int, samples: int, seed: int = 0) -> dict:
    """NUTS on the Lotka-Volterra posterior with `chains` vmapped chains, one device."""
    import jax

    from jaxsci import inference

    problem = inference.lotka_volterra_problem()
    ref = inference.posteriordb_reference()
    # every chain starts at posteriordb's posterior mean (no L-BFGS multi-start in the timing)
    init = {
        "theta": np.array([ref[f"theta[{i}]"]["mean"] for i in range(1, 5)]),
        "z_init": np.array([ref[f"z_init[{i}]"]["mean"] for i in (1, 2)]),
        "sigma": np.array([ref[f"sigma[{i}]"]["mean"] for i in (1, 2)]),
    }
    t = time.perf_counter()
    res = inference.posterior(
        problem.target,
        key=jax.random.key(seed),
        sampler="nuts",
        num_chains=chains,
        num_warmup=warmup,
        num_samples=samples,
        init=init,
        progress_bar=False,
        chunk_size=max(warmup, samples),
        devices=jax.devices()[:1],
    )
    wall = time.perf_counter() - t
    slowest = np.asarray(res.sample_stats["n_steps"]).max(axis=0)  # per iteration
    per_iter = res.sampling_seconds / samples
    return dict(
        chains=chains,
        warmup=warmup,
        samples=samples,
        compile_s=float(res.compile_seconds),
        warmup_s=float(res.warmup_seconds),
        sampling_s=float(res.sampling_seconds),
        wall_s=wall,
        s_per_iteration=per_iter,
        s_per_draw=per_iter / chains,
        slowest_leapfrogs_per_iteration=float(slowest.mean()),
        ms_per_slowest_leapfrog=1e3 * res.sampling_seconds / max(int(slowest.sum()), 1),
        divergences=int(res.divergences),
    )


def chains_sweep(values, warmup, samples, *, max_seconds: float, log=print) -> list[dict]:
    rows, last = [], None
    for c in values:
        if last is not None:
            # the sampling and warmup time grows with the chains, the compile time hardly does
            work = last["warmup_s"] + last["sampling_s"]
            predicted = last["compile_s"] + work * c / last["chains"]
            if predicted > max_seconds:
                rows.append(
                    dict(chains=c, skipped=f"time: ~{predicted:.3g} s predicted > {max_seconds} s")
                )
                log(f"  chains={c:4d} skipped ({rows[-1]['skipped']})")
                continue
        try:
            row = nuts_point(c, warmup, samples)
            last = row
        except Exception as e:  # noqa: BLE001 -- recorded, not fatal
            row = dict(chains=c, skipped=f"error: {type(e).__name__}: {str(e)[:200]}")
        rows.append(row)
        if "skipped" in row:
            log(f"  chains={c:4d} skipped ({row['skipped']})")
        else:
            log(
                f"  chains={c:4d}  {1e3 * row['s_per_iteration']:9.2f} ms/iteration"
                f"  {1e3 * row['s_per_draw']:8.3f} ms/draw  slowest leapfrogs/iter "
                f"{row['slowest_leapfrogs_per_iteration']:.1f}  (compile {row['compile_s']:.1f} s,"
                f" wall {row['wall_s']:.1f} s)"
            )
    return rows


def exponent(xs, ys) -> float:
    """Least-squares slope of log y against log x (nan with fewer than two points)."""
    xs, ys = np.asarray(xs, float), np.asarray(ys, float)
    ok = (xs > 0) & (ys > 0) & np.isfinite(ys)
    if ok.sum() < 2:
        return float("nan")
    return float(np.polyfit(np.log(xs[ok]), np.log(ys[ok]), 1)[0])


def fits(out: dict) -> dict:
    """Empirical exponents of every curve, next to the theoretical ones."""
    res = {}
    for axis, key, theory in (("ensemble", "N", THEORY_N), ("dimension", "d", THEORY_D)):
        for name in FILTERS:
            pts = [r for r in out.get(axis, []) if r["filter"] == name and "skipped" not in r]
            if pts:
                xs, ys = [r[key] for r in pts], [r["min_s"] for r in pts]
                res[f"{axis}:{name}"] = dict(
                    fitted=exponent(xs, ys),
                    last_two=exponent(xs[-2:], ys[-2:]),
                    theory=theory[name],
                    points=len(pts),
                    range=[pts[0][key], pts[-1][key]],
                )
    pts = [r for r in out.get("chains", []) if "skipped" not in r]
    if pts:
        x = [r["chains"] for r in pts]
        y = [r["s_per_iteration"] for r in pts]
        res["chains:per_iteration"] = dict(
            fitted=exponent(x, y),
            last_two=exponent(x[-2:], y[-2:]),
            theory="1 (CPU, cores saturated); 0 (GPU, unsaturated)",
            points=len(pts),
            range=[x[0], x[-1]],
        )
        y = [r["ms_per_slowest_leapfrog"] for r in pts]
        res["chains:per_leapfrog"] = dict(
            fitted=exponent(x, y),
            last_two=exponent(x[-2:], y[-2:]),
            theory="1 (CPU, cores saturated); 0 (GPU, unsaturated)",
            points=len(pts),
            range=[x[0], x[-1]],
        )
        y = [r["s_per_draw"] for r in pts]
        res["chains:per_draw"] = dict(
            fitted=exponent(x, y),
            last_two=exponent(x[-2:], y[-2:]),
            theory="0 (CPU, cores saturated); -1 (GPU, unsaturated)",
            points=len(pts),
            range=[x[0], x[-1]],
        )
    return res


def plot(out: dict, path: str, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [p for p in ("ensemble", "dimension", "chains") if out.get(p)]
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 4.2), squeeze=False)
    for ax, panel in zip(axes[0], panels, strict=True):
        if panel in ("ensemble", "dimension"):
            key = "N" if panel == "ensemble" else "d"
            for name in FILTERS:
                pts = [r for r in out[panel] if r["filter"] == name and "skipped" not in r]
                if not pts:
                    continue
                x = [r[key] for r in pts]
                y = [1e3 * r["min_s"] for r in pts]
                a = exponent(x, y)
                ax.loglog(x, y, "o-", label=f"{name} (a = {a:.2f})")
                skipped = [r for r in out[panel] if r["filter"] == name and "skipped" in r]
                if skipped:
                    ax.annotate(
                        f"{name} stops: {skipped[0]['skipped'].split(':')[0]}",
                        (x[-1], y[-1]),
                        fontsize=7,
                        xytext=(4, -10),
                        textcoords="offset points",
                    )
            fixed = out[panel][0]["d"] if panel == "ensemble" else out[panel][0]["N"]
            ax.set_xlabel("ensemble size N" if panel == "ensemble" else "state dimension d")
            ax.set_ylabel("ms per analysis (min over calls)")
            ax.set_title(
                f"L96 analysis vs N (d = {fixed})"
                if panel == "ensemble"
                else f"L96 analysis vs d (N = {fixed})"
            )
        else:
            pts = [r for r in out[panel] if "skipped" not in r]
            x = [r["chains"] for r in pts]
            for field, label in (
                ("s_per_iteration", "per iteration"),
                ("s_per_draw", "per draw"),
                ("ms_per_slowest_leapfrog", "per leapfrog (slowest chain)"),
            ):
                y = [(1.0 if field.startswith("ms") else 1e3) * r[field] for r in pts]
                ax.loglog(x, y, "o-", label=f"{label} (a = {exponent(x, y):.2f})")
            ax.set_xlabel("chains")
            ax.set_ylabel("ms")
            ax.set_title("NUTS on the LV posterior")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run(
    only=("ensemble", "dimension", "chains"),
    *,
    sizes,
    letkf_sizes=None,
    dims,
    dim_members,
    chains,
    warmup,
    samples,
    max_seconds=60.0,
    max_gib=6.0,
    repeats=3,
    log=print,
) -> dict:
    """Run the chosen sweeps; returns {sweep: rows, 'fits': exponents}."""
    out = {}
    if "ensemble" in only:
        log(f"time per analysis vs N (L96 d = 40), N = {sizes}")
        out["ensemble"] = []
        for names, values in ((FILTERS[:3], sizes), (FILTERS[3:], letkf_sizes or sizes)):
            out["ensemble"] += analysis_sweep(
                "N",
                names,
                values,
                40,
                max_seconds=max_seconds,
                max_gib=max_gib,
                repeats=repeats,
                log=log,
            )
    if "dimension" in only:
        log(f"time per analysis vs d (N = {dim_members}), d = {dims}")
        out["dimension"] = analysis_sweep(
            "d",
            FILTERS,
            dims,
            dim_members,
            max_seconds=max_seconds,
            max_gib=max_gib,
            repeats=repeats,
            log=log,
        )
    if "chains" in only:
        log(f"NUTS on the LV posterior, {warmup} warmup + {samples} draws, chains = {chains}")
        out["chains"] = chains_sweep(chains, warmup, samples, max_seconds=max_seconds, log=log)
    out["fits"] = fits(out)
    return out


def print_fits(res: dict, log=print) -> None:
    log("empirical exponent a of time ~ x^a (least squares in log-log) vs theory:")
    for name, f in res.items():
        log(
            f"  {name:24s} a = {f['fitted']:6.2f} (last two points {f['last_two']:5.2f})"
            f"   theory {f['theory']}   "
            f"({f['points']} points, {f['range'][0]}..{f['range'][1]})"
        )


def pin_one_core() -> None:
    """Run the timings on one CPU core, before JAX is imported.

    On a 2-core machine shared with other jobs, XLA:CPU's parallel tasks (it splits large
    fusions, threefry random numbers among them, into as many tasks as the process may use
    cores, and runs Eigen products on a thread pool) wait for descheduled threads: single
    calls then take 15-30 ms whatever their size (measured here at load 11 for the EnKF at
    N = 100..10^4), which hides the cost curve. One pinned core measures the algorithm's cost.
    """
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = "1"
    flags = "--xla_cpu_multi_thread_eigen=false"
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + flags).strip()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})


def replot(path: str, png: str | None, json_out: str | None) -> int:
    """Recompute the fits and the plot of a saved run (`--reuse PATH --replot`)."""
    with open(path) as f:
        out = json.load(f)
    out["fits"] = fits(out)
    print_fits(out["fits"])
    m = out["machine"]
    png = png or os.path.join(HERE, "scaling_cpu.png")
    plot(
        out,
        png,
        f"{out['device']}, jax {m['jax']}, {'--quick' if out['quick'] else 'full'}, "
        f"{out['threads'] or 'all'} core(s); load average at start {m['load_average']}",
    )
    print("plot:", png)
    if json_out:
        with open(json_out, "w") as f:
            json.dump(out, f, indent=1, default=str)
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="a subset (see the docstring)")
    p.add_argument(
        "--only",
        nargs="+",
        default=["ensemble", "dimension", "chains"],
        choices=["ensemble", "dimension", "chains"],
    )
    p.add_argument("--max-seconds", type=float, default=60.0, help="per point (predicted)")
    p.add_argument("--max-gib", type=float, default=6.0, help="per point (estimated)")
    p.add_argument("--json", default=None)
    p.add_argument(
        "--reuse",
        default=None,
        help="a previous --json output: its sweeps not in --only are kept (and plotted)",
    )
    p.add_argument("--png", default=None)
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="CPU cores (default 1: pinned, see pin_one_core; 0: leave as is)",
    )
    p.add_argument(
        "--replot",
        action="store_true",
        help="run nothing: recompute the fits and the plot of the --reuse JSON",
    )
    args = p.parse_args(argv)
    if args.replot:
        return replot(args.reuse, args.png, args.json)
    if args.threads == 1:
        pin_one_core()

    import jax
    from _timing import finish, machine_summary

    cfg = dict(QUICK if args.quick else FULL)
    machine = machine_summary()
    print(machine)
    t = time.perf_counter()
    out = run(tuple(args.only), max_seconds=args.max_seconds, max_gib=args.max_gib, **cfg)
    if args.reuse:
        with open(args.reuse) as f:
            old = json.load(f)
        for sweep in ("ensemble", "dimension", "chains"):
            if sweep not in args.only and sweep in old:
                out[sweep] = old[sweep]
        out["fits"] = fits(out)
        out["reused"] = dict(
            path=args.reuse,
            command=old.get("command"),
            sweeps=[
                s for s in ("ensemble", "dimension", "chains") if s not in args.only and s in old
            ],
        )
    print_fits(out["fits"])
    total = time.perf_counter() - t
    print(f"total {total:.0f} s")
    device = jax.devices()[0].device_kind
    stem = "scaling_gpu" if jax.default_backend() == "gpu" else "scaling_cpu"
    # a --quick run (run_all.py --quick) must not overwrite the recorded figure
    png = args.png or (
        os.path.join(HERE, "_out", stem + "_quick.png")
        if args.quick
        else os.path.join(HERE, stem + ".png")
    )
    os.makedirs(os.path.dirname(png), exist_ok=True)
    plot(
        out,
        png,
        f"{device}, jax {jax.__version__}, {'--quick' if args.quick else 'full'}, "
        f"{args.threads or 'all'} core(s); "
        f"load average at start {machine['load_average']}",
    )
    print("plot:", png)
    out.update(
        machine=machine,
        config=cfg,
        quick=args.quick,
        total_s=total,
        device=device,
        threads=args.threads,
    )
    out["command"] = " ".join(["python", "benchmarks/bench_scaling.py", *(argv or sys.argv[1:])])
    finish(out, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
