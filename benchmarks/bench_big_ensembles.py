r"""Big ensembles within memory: a 10^6-member Lorenz-96 ensemble and a 10^4-member EnKF on a
2-D Navier-Stokes state of 128^2, run in chunks of members (issue 19).

Part `l96`: `integrate.streamed_ensemble` on M members of Lorenz-96 (40 variables, F = 8),
each integrated T time units with classic RK4, dt = 0.05 (`Flow.window`, a scan of T / dt
steps), C members per compiled chunk; the final states are written into a preallocated
(M, 40) float32 array and the ensemble mean / variance / min / max streamed.
Memory formula (float32, S = 160 bytes a member): 2 M S (members + outputs) + c W (the
compiled chunk program, XLA's `memory_analysis`) + 5 S.

Part `ns`: `filters.run_filter_chunked` with the perturbed-observation EnKF, N members of
`dynamics.NavierStokes2D` (128 x 128 vorticity, nu = 1e-3, linear drag 0.1, Kolmogorov
forcing amplitude 0.1 at wavenumber 4; ETDRK4, dt = 0.025), observed every 4th grid point
along each axis (P = 1,024 observations, noise std 0.1) every 0.05 time units (2 steps),
K cycles, chunks of C members. The truth starts from the model's default initial state; the
prior is centred on the truth plus one smooth Gaussian random field (std 0.5, Gaussian
spectrum of width 4 wavenumbers), and the members are that centre plus independent fields of
the same law (so the prior spread matches its error). Memory formula:
`filters.analysis_memory_terms` (N d b + 5 N P b + 2 P d b + 5 P^2 b + chunk) with the
chunk term the larger of the analysis chunk and the forecast's compiled chunk program, plus
the per-cycle statistics.

Peak memory is measured as the resident-set high-water mark (VmHWM, the `ru_maxrss` of a
process whose threads all live) above a baseline
(reset with /proc/self/clear_refs, Linux). For `l96` the baseline is taken before the members
are allocated (so the peak covers members, outputs and the blocks of random numbers that
build the members) and the chunk program is compiled before it. For `ns` it is taken after
the ensemble is built (the ensemble's N d b is resident in it and left out of the compared
formula); the forecast chunk program is compiled before it, the analysis programs inside the
first cycle (their time is reported apart: cycle 1 minus the median of the later cycles, and
their compilation memory is in the measured peak) unless `--warm-analysis` runs one analysis
before the baseline.

The C allocator: glibc raises its mmap threshold after a large buffer is freed (up to 32 MiB),
so later buffers of that size (the chunk programs' temporaries) come from per-thread heap
arenas, which keep them resident after they are freed: hundreds of MB on top of the formula
for the Navier-Stokes chunks. `--mmap-threshold 65536` fixes the threshold (mallopt; the same
as the environment variable MALLOC_MMAP_THRESHOLD_=65536), so freed buffers go back to the
kernel; the results give both.

Run: `python benchmarks/bench_big_ensembles.py` (both parts at full size),
`--part l96|ns`, `--quick` (tiny sizes, a smoke test), and the size options below.
"""

import argparse
import ctypes
import gc
import json
import resource
import sys
import time
from pathlib import Path

parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
parser.add_argument(
    "--part",
    choices=["l96", "ns", "both", "chunks"],
    default="both",
    help="chunks: chunked loop vs one jit(vmap), 10^5 L96 members x 40 RK4 steps",
)
parser.add_argument("--l96-members", type=int, default=1_000_000)
parser.add_argument("--l96-time", type=float, default=10.0, help="time units (dt 0.05)")
parser.add_argument("--l96-chunk", type=int, default=10_000)
parser.add_argument("--ns-members", type=int, default=10_000)
parser.add_argument("--ns-cycles", type=int, default=3)
parser.add_argument("--ns-chunk", type=int, default=100)
parser.add_argument("--ns-grid", type=int, default=128)
parser.add_argument(
    "--warm-analysis",
    action="store_true",
    help="run one analysis (into a new array, freed) before the baseline, so that the "
    "analysis programs' compilation is not in the measured peak",
)
parser.add_argument("--quick", action="store_true", help="tiny sizes (smoke test)")
parser.add_argument(
    "--mmap-threshold",
    type=int,
    default=0,
    help="if > 0, fix glibc's mmap threshold to this many bytes (mallopt) so that freed "
    "chunk buffers go back to the kernel (see the docstring); 0: the default allocator",
)
parser.add_argument("--json", type=Path, default=None, help="write the numbers here")
ARGS = parser.parse_args()
if ARGS.mmap_threshold > 0:
    # M_MMAP_THRESHOLD = -3 (malloc.h): a fixed threshold also turns off glibc's dynamic one,
    # which after freeing a large buffer raises the threshold (up to 32 MiB) so that later
    # buffers of that size come from the heap arenas and stay resident when freed
    ctypes.CDLL("libc.so.6").mallopt(-3, ARGS.mmap_threshold)
if ARGS.quick:
    ARGS.l96_members, ARGS.l96_time, ARGS.l96_chunk = 2_000, 0.5, 500
    ARGS.ns_members, ARGS.ns_cycles, ARGS.ns_chunk, ARGS.ns_grid = 64, 2, 16, 32

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from jaxsci import dynamics, filters, integrate  # noqa: E402
from jaxsci.observations import every_kth_grid  # noqa: E402

MB = 1e6


def rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


def reset_peak() -> int:
    """Release free memory, reset the high-water mark to the current RSS and return it."""
    gc.collect()
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        print("warning: cannot reset the peak RSS; peaks include earlier ones", file=sys.stderr)
    return rss()


def peak() -> int:
    """The resident-set high-water mark (VmHWM, reset by clear_refs; `ru_maxrss` also merges
    the marks of exited threads, which clear_refs does not reset), and `ru_maxrss`."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def part_l96() -> dict:
    m, c, span = ARGS.l96_members, min(ARGS.l96_chunk, ARGS.l96_members), ARGS.l96_time
    step = integrate.Flow(dynamics.Lorenz96(40, 8.0), 0.05, integrate.RK4()).window(span)

    def member(y):
        return step(y, 0.0)

    warm = integrate.streamed_ensemble(member, np.full((c, 40), 8.0, np.float32), chunk_size=c)
    compile_s, chunk_bytes = warm.compile_seconds, warm.chunk_bytes
    del warm
    base = reset_peak()
    members = np.empty((m, 40), np.float32)
    rng = np.random.default_rng(0)
    for lo in range(0, m, 10_000):  # x_i = F + N(0, 1), built in blocks of 1.6 MB
        hi = min(lo + 10_000, m)
        members[lo:hi] = 8.0 + rng.standard_normal((hi - lo, 40), dtype=np.float32)
    out = np.empty_like(members)
    res = integrate.streamed_ensemble(member, members, chunk_size=c, out=out)
    measured = peak() - base
    s = 40 * 4
    formula = 2 * m * s + res.chunk_bytes + 5 * s
    steps = round(span / 0.05)
    return dict(
        members=m,
        time_units=span,
        steps=steps,
        chunk=c,
        chunks=res.num_chunks,
        compile_s=compile_s,
        run_s=res.run_seconds,
        member_steps_per_s=m * steps / res.run_seconds,
        chunk_bytes=chunk_bytes,
        formula_mb=formula / MB,
        peak_mb=measured / MB,
        peak_absolute_mb=peak() / MB,
        finite=bool(np.isfinite(out).all()),
        mean_x=float(res.mean.mean()),
        std_x=float(np.sqrt(res.variance.mean())),
    )


def part_chunks() -> dict:
    """Wall time of `streamed_ensemble` at several chunk sizes against one `jit(vmap)` of the
    same member function (10^5 Lorenz-96 members, 2 time units = 40 RK4 steps)."""
    step = integrate.Flow(dynamics.Lorenz96(40, 8.0), 0.05, integrate.RK4()).window(2.0)

    def member(y):
        return step(y, 0.0)

    m = 100_000
    y0 = (8.0 + np.random.default_rng(0).standard_normal((m, 40))).astype(np.float32)
    out = {}
    for c in (1_000, 10_000, 100_000):
        integrate.streamed_ensemble(member, y0[:c], chunk_size=c)  # compile
        out[f"chunks of {c}"] = integrate.streamed_ensemble(member, y0, chunk_size=c).run_seconds
    whole = jax.jit(jax.vmap(member))
    jax.block_until_ready(whole(y0))
    start = time.perf_counter()
    jax.block_until_ready(whole(y0))
    out["one jit(vmap)"] = time.perf_counter() - start
    return out


def smooth_fields(rng, count, n, width, std):
    """`count` Gaussian random fields on an n x n periodic grid with a Gaussian spectrum
    exp(-|k|^2 / (2 width^2)) (|k| in wavenumbers of the domain), normalised to standard
    deviation `std` (float32)."""
    k = np.fft.fftfreq(n) * n
    kr = np.fft.rfftfreq(n) * n
    filt = np.exp(-(k[:, None] ** 2 + kr[None, :] ** 2) / (2 * width**2))
    white = np.fft.rfft2(rng.standard_normal((count, n, n)))
    f = np.fft.irfft2(white * filt, s=(n, n))
    f *= std / f.std(axis=(1, 2), keepdims=True)
    return f.reshape(count, n * n).astype(np.float32)


def part_ns() -> dict:
    n, g, c, k_cycles = ARGS.ns_members, ARGS.ns_grid, ARGS.ns_chunk, ARGS.ns_cycles
    d = g * g
    model = dynamics.NavierStokes2D(nu=1e-3, num_points=g, drag=0.1, forcing_amplitude=0.1)
    flow = integrate.FlattenedFlow(integrate.Flow(model, 0.025))
    window = 0.05
    obs = every_kth_grid((g, g), 4, noise_std=0.1)
    p = obs.obs_dim
    rng = np.random.default_rng(0)
    key_obs, key_filter = jax.random.split(jax.random.key(0))
    truth = [jnp.asarray(model.default_initial_state(), jnp.float32).ravel()]
    step = jax.jit(flow.window(window))
    for _ in range(k_cycles):
        truth.append(step(truth[-1], 0.0))
    keys = jax.random.split(key_obs, k_cycles)
    ys = np.stack([np.asarray(obs.sample(keys[i], truth[i + 1])) for i in range(k_cycles)])
    # compile the forecast's chunk program (cached per flow and dt) before the baseline, and
    # read its memory analysis, with a one-cycle run on one chunk of copies of the truth
    probe = filters.run_filter_chunked(
        key_filter,
        flow,
        obs,
        filters.EnKF(),
        np.repeat(np.asarray(truth[0])[None], c, 0),
        ys[:1],
        dt=window,
        chunk_size=c,
        in_place=True,
    )
    forecast_chunk = probe.forecast_chunk_bytes
    del probe
    ens = np.empty((n, d), np.float32)
    t0 = np.asarray(truth[0])
    centre = t0 + smooth_fields(rng, 1, g, 4, 0.5)[0]  # the prior mean errs by one field
    for lo in range(0, n, 500):
        hi = min(lo + 500, n)
        ens[lo:hi] = centre + smooth_fields(rng, hi - lo, g, 4, 0.5)
    prior_rmse = float(np.sqrt(np.mean((centre - t0) ** 2)))
    if ARGS.warm_analysis:  # compile the N-dependent analysis programs before the baseline
        start = time.perf_counter()
        filters.chunked_analysis(filters.EnKF(), key_filter, ens, ys[0], obs, chunk_size=c)
        warm_s = time.perf_counter() - start
    else:
        warm_s = float("nan")
    base = reset_peak()  # after building the ensemble (its N d b is then in the baseline)
    res = filters.run_filter_chunked(
        key_filter, flow, obs, filters.EnKF(), ens, ys, dt=window, chunk_size=c, in_place=True
    )
    measured = peak() - base
    terms = filters.analysis_memory_terms(n, d, p, c, 4)
    analysis_chunk = terms["chunk"]
    terms["chunk"] = max(analysis_chunk, forecast_chunk)
    # without the ensemble term: the ensemble is resident in the baseline
    formula = sum(v for k, v in terms.items() if k != "ensemble") + k_cycles * (2 * d + 2) * 8
    truth_arr = np.stack([np.asarray(t) for t in truth[1:]])
    rmse_f = np.sqrt(np.mean((res.mean_f - truth_arr) ** 2, axis=1))
    rmse_a = np.sqrt(np.mean((res.mean_a - truth_arr) ** 2, axis=1))
    fs, an = res.forecast_seconds, res.analysis_seconds
    steady_f = float(np.median(fs[1:])) if k_cycles > 1 else float(fs[0])
    steady_a = float(np.median(an[1:])) if k_cycles > 1 else float(an[0])
    return dict(
        members=n,
        dim=d,
        obs=p,
        cycles=k_cycles,
        chunk=c,
        forecast_s=fs.tolist(),
        analysis_s=an.tolist(),
        compile_s=max(fs[0] - steady_f, 0.0) + max(an[0] - steady_a, 0.0),
        warm_analysis_s=warm_s,
        mmap_threshold=ARGS.mmap_threshold,
        cycle_s=steady_f + steady_a,
        forecast_chunk_bytes=forecast_chunk,
        analysis_chunk_bytes=analysis_chunk,
        terms_mb={k: v / MB for k, v in terms.items()},
        formula_mb=formula / MB,
        peak_mb=measured / MB,
        peak_absolute_mb=peak() / MB,
        prior_rmse=prior_rmse,
        rmse_f=rmse_f.tolist(),
        rmse_a=rmse_a.tolist(),
        spread_a=res.spread_a.tolist(),
    )


def main():
    print(f"jax {jax.__version__}, {jax.devices()[0].platform}, {len(jax.devices())} device(s)")
    out = {}
    if ARGS.part in ("l96", "both"):
        r = out["l96"] = part_l96()
        print(
            f"L96: {r['members']:,} members x {r['steps']} RK4 steps ({r['time_units']} time "
            f"units), chunks of {r['chunk']:,}: compile {r['compile_s']:.2f} s, run "
            f"{r['run_s']:.1f} s ({r['member_steps_per_s']:.3g} member-steps/s); peak RSS "
            f"above baseline {r['peak_mb']:.0f} MB vs formula {r['formula_mb']:.0f} MB "
            f"(chunk program {r['chunk_bytes'] / MB:.1f} MB); absolute peak "
            f"{r['peak_absolute_mb']:.0f} MB; finite {r['finite']}, mean {r['mean_x']:.3f}, "
            f"std {r['std_x']:.3f}"
        )
    if ARGS.part in ("ns", "both"):
        r = out["ns"] = part_ns()
        print(
            f"NS EnKF: {r['members']:,} members x {r['dim']:,} state, {r['obs']} obs, "
            f"{r['cycles']} cycles, chunks of {r['chunk']}: forecast s/cycle "
            f"{[round(x, 1) for x in r['forecast_s']]}, analysis s/cycle "
            f"{[round(x, 1) for x in r['analysis_s']]} (compile ~{r['compile_s']:.1f} s); "
            f"peak RSS above baseline {r['peak_mb']:.0f} MB vs formula {r['formula_mb']:.0f} MB "
            f"{ {k: round(v) for k, v in r['terms_mb'].items()} }; absolute peak "
            f"{r['peak_absolute_mb']:.0f} MB; prior rmse {r['prior_rmse']:.3f}, rmse_f "
            f"{[round(x, 3) for x in r['rmse_f']]}, rmse_a {[round(x, 3) for x in r['rmse_a']]}, "
            f"spread_a {[round(x, 3) for x in r['spread_a']]}"
        )
    if ARGS.part == "chunks":
        out["chunks"] = part_chunks()
        for name, sec in out["chunks"].items():
            print(f"{name}: {sec:.2f} s ({100_000 * 40 / sec:.3g} member-steps/s)")
    if ARGS.json is not None:
        ARGS.json.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
