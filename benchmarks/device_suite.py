r"""Every benchmark with a GPU row, in one run on one device, as one table.

Rows (full sizes are the GPU sizes; `--dry-run` runs the same code at tiny sizes on any
backend, in CI, so that the script cannot rot):

  l96_ensemble      Lorenz-96 (d = 40, F = 8) ensemble, RK4 dt = 0.05: `jaxsci.ensemble` of a
                    `Flow` (bench_l96_numpy.py's fastest path), 10^6 members x 1,000 steps.
  ks_batch          Kuramoto-Sivashinsky ETDRK4 (exponax's chaotic setup: domain 60, dt 0.1;
                    bench_ks_exponax.py), a vmapped batch of 1,024 trajectories, n = 512.
  filters_etkf      L96 twin experiment (`filters.assimilate`, DAPPER's sakov2008 setup:
                    d = 40, all observed, dt = 0.05) with the ETKF at N = 10^4 members
                    (DAPPER's N = 20-40 scaled up; bench_filters_dapper.py / _sweep.py).
  filters_letkf     the same with the LETKF (loc_rad 4) on L96 d = 1,000 (25 x DAPPER's),
                    N = 40.
  diffusion_dpmpp2m DPM-Solver++(2M), 20 NFE, on the exact eps of an 8-component Gaussian
                    mixture in d = 3072 (a 32 x 32 x 3 image's size), batch 256
                    (bench_diffusion_diffusers.py's setup at its GPU size).
  diffusion_ddim    DDIM, the same.
  nuts_lv           NUTS (blackjax, `inference.posterior`) on posteriordb's Lotka-Volterra
                    posterior, 128 chains vmapped (bench_posterior_lv.py's problem).
  fno_ns2d          FNO training (Adam) on 2-D Navier-Stokes vorticity pairs w(t) -> w(t + 1)
                    from `data.navier_stokes_trajectories` at 64 x 64 (bench_nn_fno_step.py's
                    2-D network: width 32, 12 modes, depth 4).
  qg_256, qg_512    two-layer QG (`dynamics.TwoLayerQG`, pyqg's defaults), AB3 + filter,
                    time per step at 256^2 and 512^2 (bench_qg.py --sizes 256 512).
  scaling           bench_scaling.py's time-per-analysis sweep against N (L96 d = 40), reduced
                    (N = 10^2..10^5): the fitted exponents.

Each row reports compile seconds apart from run seconds (the steady-state call, median of a
few) and a throughput. Only jaxsci runs: the peers (exponax, DAPPER, diffusers, torch,
neuraloperator, pyqg-jax, numpyro's own ODE example) may be absent on the device machine; the
row's note names the script that runs the peer side by side. The DAPPER figures (CPU) are in
RESULTS.md.

Budgets. Every row has a wall-time budget (the full ones sum to under 8 minutes). Without
`--dry-run` (or with `--isolate`) each row runs in its own subprocess, killed at its budget;
a row that fails, times out or runs out of memory is recorded as failed with its error, and
the suite goes on. Rows that would start past `--total-budget` are skipped. With `--dry-run`
the rows run in this process (no subprocess start-up per row), compiled with XLA:CPU's backend
optimisations off (`DRY_XLA_FLAGS`; the dry run's timings mean nothing), and a row over its
budget is recorded as failed.

Output: `DIR/device_suite.json` and `DIR/device_suite.md` (one markdown table, headed by the
device kind, `jax.devices()[0].device_kind`, and the jax version).

Run: `python benchmarks/device_suite.py` (on the GPU machine, < 8 min), `--dry-run` (tiny
sizes, CPU, < 1 min), `--only ROW [ROW ...]`, `--out DIR` (default benchmarks/_out/device_suite).
"""

import argparse
import dataclasses
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)


# ----------------------------------------------------------------------------- timing
def timed(fn: Callable, *args, repeats: int = 3) -> tuple[float, float, object]:
    """(compile seconds, run seconds, output) of `jax.jit(fn)(*args)`.

    Compile: `jit(fn).lower(*args).compile()`. Run: the median of `repeats` calls after one
    warm call (at least one call; the output is the last one's).
    """
    import jax

    t = time.perf_counter()
    compiled = jax.jit(fn).lower(*args).compile()
    compile_s = time.perf_counter() - t
    out = jax.block_until_ready(compiled(*args))
    times = []
    for _ in range(max(repeats, 1)):
        t = time.perf_counter()
        out = jax.block_until_ready(compiled(*args))
        times.append(time.perf_counter() - t)
    return compile_s, statistics.median(times), out


def _finite(x) -> bool:
    import jax
    import jax.numpy as jnp

    return all(bool(jnp.all(jnp.isfinite(leaf))) for leaf in jax.tree.leaves(x))


def _require_finite(x, what: str) -> None:
    if not _finite(x):
        raise FloatingPointError(f"{what}: non-finite output")


# ----------------------------------------------------------------------------- rows
def row_l96_ensemble(members: int, steps: int) -> dict:
    import jax

    import jaxsci
    from jaxsci.dynamics import Lorenz96
    from jaxsci.integrate import RK4, Flow

    dt = 0.05
    flow = Flow(Lorenz96(40, 8.0), dt, RK4(), max_steps=steps + 8)
    run = jaxsci.ensemble(lambda y: flow(y, 0.0, steps * dt))
    # F + N(0, 1): an unspun start costs the same per step as one on the attractor
    x0 = jax.jit(lambda k: 8.0 + jax.random.normal(k, (members, 40)))(jax.random.key(0))
    t = time.perf_counter()
    jax.block_until_ready(run(x0))
    first = time.perf_counter() - t
    times = []
    for _ in range(2):
        t = time.perf_counter()
        out = jax.block_until_ready(run(x0))
        times.append(time.perf_counter() - t)
    _require_finite(out, "L96 ensemble")
    run_s = statistics.median(times)
    return dict(
        size=f"M={members}, d=40, {steps} RK4 steps",
        compile_s=max(first - run_s, 0.0),
        run_s=run_s,
        throughput=members * steps / run_s,
        unit="member-steps/s",
        note="NumPy side: bench_l96_numpy.py",
    )


def row_ks_batch(n: int, batch: int, steps: int) -> dict:
    import jax
    import jax.numpy as jnp

    from jaxsci.dynamics import KuramotoSivashinsky
    from jaxsci.integrate import ETDRK4, Flow

    domain, dt = 60.0, 0.1  # bench_ks_exponax.py's DOMAIN, DT (exponax's chaotic KS)
    model = KuramotoSivashinsky(domain, n, nu=1.0, alpha=1.0, lam=1.0, dealias=True)
    flow = Flow(model, dt, ETDRK4(), max_steps=steps + 8)
    x = jnp.arange(n) * domain / n
    k = jax.random.split(jax.random.key(0), 2)
    amp = jax.random.normal(k[0], (batch, 5)) / jnp.arange(1, 6)
    phase = jax.random.uniform(k[1], (batch, 5), maxval=2 * jnp.pi)
    m = jnp.arange(1, 6)
    u0 = jnp.einsum(
        "bm,bmx->bx", amp, jnp.cos(2 * jnp.pi * m[None, :, None] * x / domain + phase[..., None])
    )
    compile_s, run_s, out = timed(jax.vmap(lambda u: flow(u, 0.0, steps * dt)), u0, repeats=2)
    _require_finite(out, "KS")
    return dict(
        size=f"n={n}, batch {batch}, {steps} ETDRK4 steps",
        compile_s=compile_s,
        run_s=run_s,
        throughput=batch * steps / run_s,
        unit="trajectory-steps/s",
        note="exponax side: bench_ks_exponax.py",
    )


def _twin(filter_name: str, dim: int, members: int, cycles: int):
    import jax

    from jaxsci import filters as F
    from jaxsci.dynamics import Lorenz96
    from jaxsci.integrate import Flow

    dt = 0.05
    model = Lorenz96(dim, 8.0)
    flow = Flow(model, dt)
    obs_op = F.IndexObservation(dim, noise_cov=1.0)
    if filter_name == "ETKF":
        filt = F.Inflation(F.ETKF(), 1.02)
    else:
        filt = F.Inflation(F.LETKF(4.0, obs_op), 1.02)
    spin = jax.jit(lambda x: jax.lax.fori_loop(0, 200, lambda i, x: flow(x, 0.0, dt), x))
    x0 = spin(model.default_initial_state())

    def run(key):
        res = F.assimilate(
            key,
            flow,
            obs_op,
            filt,
            x0,
            n_cycles=cycles,
            dt=dt,
            ensemble_size=members,
            init_std=0.001**0.5,
            compute_likelihood=False,
        )
        return res.rmse_a_mean, res.diverged

    compile_s, run_s, (rmse, diverged) = timed(run, jax.random.key(1), repeats=1)
    return compile_s, run_s, float(rmse), bool(diverged)


def _filters_row(filter_name: str, dim: int, members: int, cycles: int) -> dict:
    compile_s, run_s, rmse, diverged = _twin(filter_name, dim, members, cycles)
    if rmse != rmse:
        raise FloatingPointError(f"{filter_name}: rmse is NaN")
    return dict(
        size=f"L96 d={dim}, N={members}, {cycles} cycles",
        compile_s=compile_s,
        run_s=run_s,
        throughput=cycles / run_s,
        unit="cycles/s",
        note=f"rmse_a {rmse:.3f}{', diverged' if diverged else ''}; DAPPER (CPU): RESULTS.md",
    )


def row_filters_etkf(dim: int, members: int, cycles: int) -> dict:
    return _filters_row("ETKF", dim, members, cycles)


def row_filters_letkf(dim: int, members: int, cycles: int) -> dict:
    return _filters_row("LETKF", dim, members, cycles)


def _diffusion_row(sampler_name: str, dim: int, batch: int, nfe: int) -> dict:
    import jax
    import numpy as np

    import jaxsci.diffusion as jd

    rng = np.random.default_rng(0)  # bench_diffusion_diffusers.make_mixture's mixture
    k = 8
    mix = jd.GaussianMixture(
        rng.dirichlet(2.0 * np.ones(k)),
        0.5 * rng.standard_normal((k, dim)),
        rng.uniform(0.05, 0.5, (k, dim)),
    )
    chart = jd.VPLinear(t_min=1e-5, t_max=1.0)
    model = mix.eps_model(chart)
    grid = jd.time_grid(chart, nfe)
    sampler = jd.DPMSolverPPMultistep(2) if sampler_name == "dpmpp2m" else jd.DDIM()
    x_T = jax.random.normal(jax.random.key(0), (batch, dim))
    fn = jax.vmap(lambda x: jd.sample(sampler, model, chart, grid, x).x)
    compile_s, run_s, out = timed(fn, x_T, repeats=3)
    _require_finite(out, sampler_name)
    return dict(
        size=f"d={dim}, batch {batch}, {nfe} NFE, 8-component mixture",
        compile_s=compile_s,
        run_s=run_s,
        throughput=batch / run_s,
        unit="samples/s",
        note="diffusers side: bench_diffusion_diffusers.py",
    )


def row_diffusion_dpmpp2m(dim: int, batch: int, nfe: int) -> dict:
    return _diffusion_row("dpmpp2m", dim, batch, nfe)


def row_diffusion_ddim(dim: int, batch: int, nfe: int) -> dict:
    return _diffusion_row("ddim", dim, batch, nfe)


def row_nuts_lv(chains: int, warmup: int, samples: int) -> dict:
    import bench_scaling

    r = bench_scaling.nuts_point(chains, warmup, samples)
    return dict(
        size=f"{chains} chains x ({warmup} warmup + {samples} draws)",
        compile_s=r["compile_s"],
        run_s=r["warmup_s"] + r["sampling_s"],
        throughput=chains * samples / r["sampling_s"],
        unit="draws/s (sampling phase)",
        note=(
            f"{r['ms_per_slowest_leapfrog']:.3f} ms per leapfrog of the slowest chain;"
            f" {r['divergences']} divergences; numpyro side: bench_posterior_lv.py"
        ),
    )


def row_fno_ns2d(
    n: int,
    trajectories: int,
    saves: int,
    save_every: float,
    width: int,
    modes: int,
    depth: int,
    batch: int,
) -> dict:
    import equinox as eqx
    import jax
    import jax.numpy as jnp
    import optax

    from jaxsci import data, nn

    t = time.perf_counter()
    w = data.navier_stokes_trajectories(
        jax.random.key(0), trajectories, saves, save_every=save_every, num_points=n, dt=1e-3
    )
    gen_s = time.perf_counter() - t
    w = jnp.asarray(w)
    x = w[:, :-1].reshape(-1, 1, n, n)
    y = w[:, 1:].reshape(-1, 1, n, n)
    n_batches = x.shape[0] // batch
    if n_batches < 1:
        raise ValueError(f"{x.shape[0]} pairs < batch {batch}")
    xb = x[: n_batches * batch].reshape(n_batches, batch, 1, n, n)
    yb = y[: n_batches * batch].reshape(n_batches, batch, 1, n, n)
    model = nn.FNO(2, 1, 1, width, modes, depth, key=jax.random.key(1))
    opt = optax.adam(1e-3)
    params, static = eqx.partition(model, eqx.is_inexact_array)
    state = opt.init(params)

    def epoch(params, state, xb, yb):
        def step(carry, b):
            p, s = carry
            bx, by = b

            def loss(p):
                m = eqx.combine(p, static)
                return jnp.mean((jax.vmap(m)(bx) - by) ** 2)

            value, grads = jax.value_and_grad(loss)(p)
            updates, s = opt.update(grads, s, p)
            return (optax.apply_updates(p, updates), s), value

        (params, state), losses = jax.lax.scan(step, (params, state), (xb, yb))
        return params, state, losses

    compile_s, run_s, (_, _, losses) = timed(epoch, params, state, xb, yb, repeats=2)
    _require_finite(losses, "FNO training")
    return dict(
        size=f"{n}x{n}, {n_batches * batch} pairs/epoch, batch {batch}, width {width}, "
        f"{modes} modes, depth {depth}",
        compile_s=compile_s,
        run_s=run_s,
        throughput=n_batches * batch / run_s,
        unit="training samples/s",
        note=f"data generation {gen_s:.1f} s (ETDRK4, not in run_s); "
        "neuraloperator side: bench_nn_fno_step.py",
    )


def row_qg(n: int, steps: int) -> dict:
    import jax

    from jaxsci import dynamics, integrate

    dt = 7200.0  # pyqg's default step (bench_qg.py's DT)
    model = dynamics.TwoLayerQG(n)
    ab3 = integrate.AB3(filter=model.spectral_filter())
    flow = integrate.Flow(model, dt, ab3, max_steps=steps + 8)
    q0 = model.default_initial_state(jax.random.key(0))
    compile_s, run_s, out = timed(lambda q: flow(q, 0.0, steps * dt), q0, repeats=3)
    _require_finite(out, "QG")
    return dict(
        size=f"{n}^2 x 2 layers, {steps} AB3 steps",
        compile_s=compile_s,
        run_s=run_s,
        throughput=1e3 * run_s / steps,
        unit="ms/step",
        note="pyqg-jax side: bench_qg.py --sizes 256 512",
    )


def row_scaling(sizes: list, max_seconds: float) -> dict:
    import bench_scaling

    # the default filters only (not LETKF-ens, the forced ensemble-space LETKF: its cubic
    # curve is bench_scaling.py's comparison, not worth the suite's budget)
    filters = [f for f in bench_scaling.FILTERS if f != "LETKF-ens"]
    rows = bench_scaling.analysis_sweep(
        "N",
        filters,
        sizes,
        40,
        max_seconds=max_seconds,
        max_gib=8.0,
        repeats=3,
        log=lambda *a: None,
    )
    fits = bench_scaling.fits({"ensemble": rows})
    ran = [r for r in rows if "skipped" not in r]
    errors = [r["skipped"] for r in rows if r.get("skipped", "").startswith("error")]
    if errors:
        raise RuntimeError(errors[0])
    parts = []
    for name in filters:
        f = fits.get(f"ensemble:{name}")
        last = max((r["N"] for r in ran if r["filter"] == name), default=None)
        if f is not None:
            parts.append(f"{name} a={f['fitted']:.2f} (to N={last})")
    return dict(
        size=f"L96 d=40, N={sizes[0]}..{sizes[-1]}, {len(filters)} filters",
        compile_s=sum(r["compile_s"] for r in ran),
        run_s=sum(r["run_s"] for r in ran),
        throughput=fits["ensemble:ETKF"]["fitted"],
        unit="ETKF exponent a, time ~ N^a",
        note="; ".join(parts) + "; full curves: bench_scaling.py",
    )


@dataclasses.dataclass(frozen=True)
class Row:
    what: str
    fn: Callable[..., dict]
    full: dict
    dry: dict
    budget_s: float  # full-size wall budget, subprocess start-up included


# A dry row takes 1-13 s of CPU (NUTS the most: tracing and compiling its two chunks); the
# budget only catches a hang, with room for a 2-core machine shared with other jobs.
DRY_BUDGET_S = 120.0
DRY_XLA_FLAGS = "--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true"
ROWS = {
    "l96_ensemble": Row(
        "Lorenz-96 ensemble (RK4)",
        row_l96_ensemble,
        dict(members=1_000_000, steps=1000),
        dict(members=64, steps=10),
        55,
    ),
    "ks_batch": Row(
        "Kuramoto-Sivashinsky batch (ETDRK4)",
        row_ks_batch,
        dict(n=512, batch=1024, steps=1000),
        dict(n=32, batch=4, steps=10),
        35,
    ),
    "filters_etkf": Row(
        "L96 twin, ETKF (DAPPER setup, N scaled up)",
        row_filters_etkf,
        dict(dim=40, members=10_000, cycles=300),
        dict(dim=40, members=16, cycles=5),
        40,
    ),
    "filters_letkf": Row(
        "L96 twin, LETKF (DAPPER setup, d scaled up)",
        row_filters_letkf,
        dict(dim=1000, members=40, cycles=300),
        dict(dim=40, members=8, cycles=5),
        40,
    ),
    "diffusion_dpmpp2m": Row(
        "diffusion sampler DPM-Solver++(2M)",
        row_diffusion_dpmpp2m,
        dict(dim=3072, batch=256, nfe=20),
        dict(dim=8, batch=4, nfe=5),
        25,
    ),
    "diffusion_ddim": Row(
        "diffusion sampler DDIM",
        row_diffusion_ddim,
        dict(dim=3072, batch=256, nfe=20),
        dict(dim=8, batch=4, nfe=5),
        25,
    ),
    "nuts_lv": Row(
        "NUTS, Lotka-Volterra posterior",
        row_nuts_lv,
        dict(chains=128, warmup=150, samples=100),
        dict(chains=2, warmup=5, samples=5),
        80,
    ),
    "fno_ns2d": Row(
        "FNO training, 2-D Navier-Stokes",
        row_fno_ns2d,
        dict(
            n=64, trajectories=64, saves=20, save_every=0.05, width=32, modes=12, depth=4, batch=32
        ),
        dict(n=16, trajectories=2, saves=2, save_every=0.002, width=4, modes=3, depth=1, batch=2),
        55,
    ),
    "qg_256": Row("two-layer QG (AB3)", row_qg, dict(n=256, steps=400), dict(n=16, steps=4), 30),
    "qg_512": Row("two-layer QG (AB3)", row_qg, dict(n=512, steps=200), dict(n=32, steps=4), 30),
    "scaling": Row(
        "analysis time vs N (EnKF, ETKF, DEnKF, LETKF)",
        row_scaling,
        dict(sizes=[100, 1_000, 10_000, 100_000], max_seconds=8.0),
        dict(sizes=[16, 32], max_seconds=10.0),
        40,
    ),
}
TOTAL_BUDGET_S = 480.0  # 8 minutes


# ----------------------------------------------------------------------------- driver
def run_row(name: str, dry: bool) -> dict:
    """Run one row in this process; failures are returned as data."""
    row = ROWS[name]
    kwargs = row.dry if dry else row.full
    t, cpu = time.perf_counter(), time.process_time()
    try:
        res = row.fn(**kwargs)
        res["status"] = "ok"
    except Exception as e:  # noqa: BLE001 -- a failed row is recorded, not fatal
        res = dict(
            size=", ".join(f"{k}={v}" for k, v in kwargs.items()),
            status="failed",
            error=f"{type(e).__name__}: {e}"[:500],
            traceback=traceback.format_exc()[-2000:],
        )
    import jax

    res.update(
        row=name,
        what=row.what,
        wall_s=time.perf_counter() - t,
        cpu_s=time.process_time() - cpu,
        device_kind=jax.devices()[0].device_kind,
    )
    return res


def run_row_isolated(name: str, dry: bool, timeout: float, env: dict | None = None) -> dict:
    """Run one row in a subprocess (environment `env`) killed after `timeout` seconds."""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "row.json")
        cmd = [sys.executable, os.path.abspath(__file__), "--row", name, "--row-json", path]
        if dry:
            cmd.append("--dry-run")
        t = time.perf_counter()
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
        except subprocess.TimeoutExpired:
            return dict(
                row=name,
                what=ROWS[name].what,
                status="failed",
                error=f"timed out after its budget of {timeout:.0f} s",
                wall_s=time.perf_counter() - t,
            )
        if os.path.exists(path):
            with open(path) as f:
                return json.load(f)
        return dict(
            row=name,
            what=ROWS[name].what,
            status="failed",
            error=f"exit status {proc.returncode} without a result: {proc.stderr[-500:]}",
            wall_s=time.perf_counter() - t,
        )


def header() -> dict:
    import jax
    from _timing import machine_summary

    info = machine_summary()
    info.update(device_kind=jax.devices()[0].device_kind, jax_version=jax.__version__)
    return info


def _fmt(x, digits=3) -> str:
    if x is None:
        return ""
    if isinstance(x, float):
        return f"{x:.{digits}g}" if abs(x) < 1e5 else f"{x:.3e}"
    return str(x)


def markdown(out: dict) -> str:
    m = out["machine"]
    lines = [
        f"Device: **{m['device_kind']}** ({m['backend']}), jax {m['jax_version']}, "
        f"{'dry run (tiny sizes)' if out['dry_run'] else 'full sizes'}; jaxsci "
        f"{m['jaxsci_revision']}; host {m['cpu']} x {m['cpu_count']}, load average "
        f"{m['load_average']}; total {out['total_s']:.0f} s.",
        "",
        "| row | what | size | compile s | run s | throughput | unit | status | note |",
        "| --- | --- | --- | ---: | ---: | ---: | --- | --- | --- |",
    ]
    for r in out["rows"]:
        status = r["status"] if r["status"] == "ok" else f"{r['status']}: {r.get('error', '')}"
        lines.append(
            "| "
            + " | ".join(
                [
                    r["row"],
                    r["what"],
                    r.get("size", ""),
                    _fmt(r.get("compile_s")),
                    _fmt(r.get("run_s")),
                    _fmt(r.get("throughput")),
                    r.get("unit", ""),
                    status.replace("|", "/").replace("\n", " "),
                    r.get("note", "").replace("|", "/"),
                ]
            )
            + " |"
        )
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dry-run", action="store_true", help="tiny sizes, in-process, < 1 min")
    p.add_argument("--only", nargs="+", choices=list(ROWS), default=None, help="rows to run")
    p.add_argument("--out", default=os.path.join(HERE, "_out", "device_suite"))
    p.add_argument("--isolate", action="store_true", help="subprocess per row also in --dry-run")
    p.add_argument("--total-budget", type=float, default=TOTAL_BUDGET_S)
    p.add_argument("--row", default=None, help=argparse.SUPPRESS)  # internal: one row
    p.add_argument("--row-json", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    if args.row is not None:  # the subprocess of run_row_isolated
        res = run_row(args.row, args.dry_run)
        with open(args.row_json, "w") as f:
            json.dump(res, f, default=str)
        return 0

    if args.dry_run and "jax" not in sys.modules:
        # the dry run checks that every row runs, not how fast: compile with XLA:CPU's
        # backend optimisations off (about half the compile time; row subprocesses inherit it)
        os.environ["XLA_FLAGS"] = (DRY_XLA_FLAGS + " " + os.environ.get("XLA_FLAGS", "")).strip()
    names = args.only or list(ROWS)
    isolate = args.isolate or not args.dry_run
    child_env = dict(os.environ)
    if isolate:
        # this process only reads the device's name: on a GPU, JAX would otherwise reserve 75 %
        # of its memory here, for the whole run, and leave the rows' subprocesses the rest
        os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    start = time.perf_counter()
    machine = header()
    print(f"device {machine['device_kind']}, jax {machine['jax_version']}", flush=True)
    rows = []
    for name in names:
        budget = DRY_BUDGET_S if args.dry_run else ROWS[name].budget_s
        elapsed = time.perf_counter() - start
        if elapsed + budget > args.total_budget:
            res = dict(
                row=name,
                what=ROWS[name].what,
                status="skipped",
                error=f"suite budget: {elapsed:.0f} s used + {budget:.0f} s > "
                f"{args.total_budget:.0f} s",
            )
        elif isolate:
            res = run_row_isolated(name, args.dry_run, budget, env=child_env)
        else:
            res = run_row(name, args.dry_run)
            if res["status"] == "ok" and res["wall_s"] > budget:
                res.update(
                    status="failed", error=f"over its budget: {res['wall_s']:.1f} s > {budget} s"
                )
        res["budget_s"] = budget
        rows.append(res)
        print(
            f"  {name:18s} {res['status']:8s} compile {_fmt(res.get('compile_s')):>7s} s  run "
            f"{_fmt(res.get('run_s')):>7s} s  {_fmt(res.get('throughput'))} {res.get('unit', '')}"
            f"  (wall {_fmt(res.get('wall_s'))} s, process CPU {_fmt(res.get('cpu_s'))} s)"
            + (f"  [{res.get('error')}]" if res["status"] != "ok" else ""),
            flush=True,
        )
    out = dict(
        machine=machine,
        dry_run=args.dry_run,
        command=" ".join(["python", "benchmarks/device_suite.py", *(argv or sys.argv[1:])]),
        total_s=time.perf_counter() - start,
        rows=rows,
    )
    out["machine"]["load_average_end"] = header()["load_average"]
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "device_suite.json"), "w") as f:
        json.dump(out, f, indent=1, default=str)
    md = markdown(out)
    with open(os.path.join(args.out, "device_suite.md"), "w") as f:
        f.write(md)
    print(md)
    return 0 if all(r["status"] == "ok" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
