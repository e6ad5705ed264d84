"""NUTS on the posteriordb Lotka-Volterra posterior: jaxsci (blackjax and numpyro kernels) vs
plain numpyro NUTS with `jax.experimental.ode.odeint`, as numpyro's own Lotka-Volterra example
(`examples/ode.py`) writes the model.

Same data (posteriordb hudson_lynx_hare), priors and likelihood, same chains, warmup and draws,
a dense mass matrix for every sampler (corr(theta1, theta3) = -0.94), and the same starting
points for every run (jaxsci's multi-start MAP + Laplace draws, passed to numpyro as
`init_params`). The peer solves with odeint at the example's tolerances (rtol 1e-6, atol
1e-5, mxstep 1000) and, as a second row, at posteriordb's/Stan's rk45 tolerances (rtol 1e-5,
atol 1e-3) that jaxsci uses. Every variant first runs once to compile; the timed runs (fresh
keys, variants alternating round by round) report warmup + sampling wall time with compilation
excluded: jaxsci's timed runs hit its compilation cache (nothing is compiled, so all chunk
time counts, the slow first warmup chunk included), while numpyro's `MCMC.run` recompiles
its loop on every call, so the tracing and XLA compile time that `jax.monitoring` records
during the call is subtracted from its wall time.
ESS is the minimum over the 8 parameters of bulk (and tail) ESS from `jaxsci.inference`
(ArviZ's definitions); gradient evaluations are the leapfrog steps of warmup and sampling
summed over chains. The chain-scaling part runs jaxsci NUTS with 1, 4 and 16 vmapped chains.

`--grad-cost-only` times only one log-density value + gradient of every variant's target (the
cost of a leapfrog step), 1 and 4 vmapped lanes, calls interleaved: ESS per gradient is the same
for every variant (same NUTS, same posterior), so this is what sets the ESS-per-second ratios.
`--seed S` shifts every key of the run (starting-point draws, compiling run, timed rounds,
chain scaling) by 1000 * S, so that seeds give independent chains; S = 0 (the default) is the
unshifted run. `--variants` runs only the named variants (and no log-likelihood accuracy check):
ESS per 1,000 gradient evaluations of `jaxsci_dopri5` over seeds, with `--scaling` (no values)
to skip the chain scaling, measures the sampler's efficiency whatever the machine load.
Results: benchmarks/RESULTS_inference.md.

    .venv/bin/python benchmarks/bench_posterior_lv.py [--quick] [--repeats 2] [--json out.json]
    .venv/bin/python benchmarks/bench_posterior_lv.py --variants jaxsci_dopri5 --seed 3 --scaling
    .venv/bin/python benchmarks/bench_posterior_lv.py --grad-cost-only [--grad-calls 200]
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import numpyro  # noqa: E402
import numpyro.distributions as dist  # noqa: E402
from _timing import finish, machine_summary  # noqa: E402
from jax.experimental.ode import odeint  # noqa: E402
from numpyro.infer import MCMC, NUTS  # noqa: E402

from jaxsci import inference, integrate  # noqa: E402
from jaxsci.inference._init import initial_positions  # noqa: E402
from jaxsci.inference._problems import lv_solve  # noqa: E402

parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
parser.add_argument("--quick", action="store_true", help="short runs, for a smoke test")
parser.add_argument("--chains", type=int, default=4)
parser.add_argument("--warmup", type=int, default=None, help="default 1000 (quick: 100)")
parser.add_argument("--samples", type=int, default=None, help="default 1000 (quick: 100)")
parser.add_argument("--repeats", type=int, default=1, help="timed rounds per variant")
parser.add_argument("--scaling", type=int, nargs="*", default=None, help="default 1 4 16")
parser.add_argument("--json", default=None, help="write the results to this JSON file")
parser.add_argument(
    "--grad-cost-only",
    action="store_true",
    help="only time one log-density value+gradient per solver setting (1 and 4 vmapped lanes)",
)
parser.add_argument("--grad-calls", type=int, default=200, help="timed calls per variant")
parser.add_argument(
    "--seed", type=int, default=0, help="shift every PRNG key by 1000 * SEED (0: the default run)"
)
VARIANT_NAMES = {
    "jaxsci_dopri5": "jaxsci NUTS (blackjax)",
    "jaxsci_rk4": "jaxsci NUTS (blackjax), RK4 dt=0.25",
    "jaxsci_numpyro": "jaxsci NumpyroNUTS",
    "numpyro_example": "numpyro + odeint (example tol 1e-6/1e-5)",
    "numpyro_stan": "numpyro + odeint (Stan tol 1e-5/1e-3)",
}
parser.add_argument(
    "--variants",
    nargs="+",
    choices=list(VARIANT_NAMES),
    default=list(VARIANT_NAMES),
    help="run only these variants (default: all; a subset skips the log-likelihood check)",
)
ARGS = parser.parse_args()
KEY_SHIFT = 1000 * ARGS.seed


def shifted_key(n: int):
    """The PRNG key of the default run's integer seed `n`, shifted by `--seed`."""
    return jax.random.key(n + KEY_SHIFT)


DATA = inference.hudson_lynx_hare()
TS_ALL = jnp.concatenate([jnp.zeros(1), jnp.asarray(DATA["ts"])])  # t = 0 (y_init), 1..20
Y_ALL = jnp.concatenate([jnp.asarray(DATA["y_init"])[None], jnp.asarray(DATA["y"])])


def dz_dt(z, t, theta):
    """numpyro example's Lotka-Volterra right-hand side (odeint's f(y, t, *args) order)."""
    u, v = z[0], z[1]
    alpha, beta, gamma, delta = theta[0], theta[1], theta[2], theta[3]
    return jnp.stack([(alpha - beta * v) * u, (-gamma + delta * u) * v])


def numpyro_example_model(rtol: float, atol: float):
    """numpyro's `examples/ode.py` model at odeint tolerances (rtol, atol): the same priors and
    likelihood as posteriordb (odeint takes tolerances as static arguments, so they are fixed
    per model function)."""

    def model(ts, y=None):
        z_init = numpyro.sample("z_init", dist.LogNormal(jnp.log(10.0), 1.0).expand([2]))
        theta = numpyro.sample(
            "theta",
            dist.TruncatedNormal(
                low=0.0,
                loc=jnp.array([1.0, 0.05, 1.0, 0.05]),
                scale=jnp.array([0.5, 0.05, 0.5, 0.05]),
            ),
        )
        z = odeint(dz_dt, z_init, ts, theta, rtol=rtol, atol=atol, mxstep=1000)
        sigma = numpyro.sample("sigma", dist.LogNormal(-1.0, 1.0).expand([2]))
        numpyro.sample("y", dist.LogNormal(jnp.log(z), sigma), obs=y)

    return model


JAXSCI_TARGET = inference.NumpyroModel(
    inference.lotka_volterra_model,
    (DATA["ts"], DATA["y_init"], DATA["y"]),
    {"rtol": 1e-5, "atol": 1e-3, "max_steps": 1000, "sensitivity": "forward"},
)
# the same posterior with classic RK4 at a fixed step of 0.25 (80 steps over 20 years)
JAXSCI_RK4 = inference.NumpyroModel(
    inference.lotka_volterra_model,
    (DATA["ts"], DATA["y_init"], DATA["y"]),
    {"max_steps": 1000, "sensitivity": "forward", "solver": integrate.RK4(), "dt0": 0.25},
)


def loglik_errors(theta, z_init, sigma) -> dict:
    """|log-likelihood - reference| over posterior draws for each solver setting, the
    reference a float64 Dormand-Prince solve at rtol = atol = 1e-12."""
    y = jnp.asarray(DATA["y"])

    def loglik(solve, th, z, s):
        ys = solve(th, z)
        return jnp.sum(dist.LogNormal(jnp.log(ys), s).log_prob(y))

    def diffrax_solve(**kw):
        return lambda th, z: lv_solve(th, z, jnp.asarray(DATA["ts"]), **kw).ys

    def odeint_solve(rtol, atol):
        return lambda th, z: odeint(dz_dt, z, TS_ALL, th, rtol=rtol, atol=atol, mxstep=1000)[1:]

    def evaluate(solve, dtype):
        args = (jnp.asarray(a, dtype) for a in (theta, z_init, sigma))
        return np.asarray(jax.jit(jax.vmap(lambda *a: loglik(solve, *a)))(*args), float)

    with jax.enable_x64(True):
        ref = evaluate(diffrax_solve(rtol=1e-12, atol=1e-12, max_steps=100_000), jnp.float64)
    out = {}
    for name, solve in {
        "jaxsci Dopri5 at Stan tol 1e-5/1e-3": diffrax_solve(),
        "jaxsci RK4 dt=0.25": diffrax_solve(solver=integrate.RK4(), dt0=0.25),
        "odeint at example tol 1e-6/1e-5": odeint_solve(1e-6, 1e-5),
        "odeint at Stan tol 1e-5/1e-3": odeint_solve(1e-5, 1e-3),
    }.items():
        err = np.abs(evaluate(solve, jnp.float32) - ref)
        out[name] = dict(median=float(np.median(err)), p99=float(np.percentile(err, 99)))
        out[name]["max"] = float(err.max())
    return out


def grad_costs(points: dict, calls: int) -> dict:
    """Milliseconds per log-density value+gradient (what one leapfrog step costs) of every
    variant's target, at posterior draws, for 1 and 4 vmapped lanes (4 = the vmapped chains of
    the sampler runs). Each variant's target is the sampled one: jaxsci's `NumpyroModel`s and
    the numpyro example model through numpyro's `potential_energy`; variants alternate call by
    call so that machine load hits all alike; the median is reported."""
    from jaxsci.inference._target import NumpyroModel

    targets = {
        "jaxsci Dopri5 Stan tol, forward sens.": JAXSCI_TARGET,
        "jaxsci Dopri5 Stan tol, recursive checkpoint adjoint": inference.NumpyroModel(
            inference.lotka_volterra_model,
            (DATA["ts"], DATA["y_init"], DATA["y"]),
            {"rtol": 1e-5, "atol": 1e-3, "max_steps": 1000, "sensitivity": _rca()},
        ),
        "jaxsci RK4 dt=0.25, forward sens.": JAXSCI_RK4,
        "odeint example tol 1e-6/1e-5": NumpyroModel(
            numpyro_example_model(1e-6, 1e-5), (TS_ALL, Y_ALL)
        ),
        "odeint Stan tol 1e-5/1e-3": NumpyroModel(
            numpyro_example_model(1e-5, 1e-3), (TS_ALL, Y_ALL)
        ),
    }
    fns, args = {}, {}
    for name, target in targets.items():
        u = jax.vmap(target.unconstrain)(points)
        vg = jax.jit(jax.vmap(jax.value_and_grad(target.logdensity)))
        for lanes in (1, 4):
            key = f"{name} | {lanes} lane{'s' if lanes > 1 else ''}"
            fns[key], args[key] = vg, u[:lanes]
            jax.block_until_ready(vg(u[:lanes]))  # compile
    times = {key: [] for key in fns}
    for _ in range(calls):
        for key, fn in fns.items():
            t = time.perf_counter()
            jax.block_until_ready(fn(args[key]))
            times[key].append(time.perf_counter() - t)
    return {key: 1000 * statistics.median(v) for key, v in times.items()}


def _rca():
    import diffrax

    return diffrax.RecursiveCheckpointAdjoint()


class CompileClock:
    """Seconds JAX spends tracing, lowering and compiling while active (jax.monitoring events).
    Nested jit traces are counted inside their parents too, so this over-estimates compile
    time; subtracting it from a wall time under-estimates run time (conservative for the
    peer, whose `MCMC.run` re-traces and recompiles its whole loop on every call)."""

    seconds = 0.0
    active = False

    @classmethod
    def listener(cls, event: str, duration: float, **kwargs) -> None:
        if cls.active and event.startswith("/jax/core/compile/"):
            cls.seconds += duration

    def __enter__(self):
        CompileClock.seconds, CompileClock.active = 0.0, True
        return self

    def __exit__(self, *exc):
        CompileClock.active = False


jax.monitoring.register_event_duration_secs_listener(CompileClock.listener)


def summarise(draws: dict, grad_evals: int, seconds: float) -> dict:
    summary = inference.summary({k: draws[k] for k in ("theta", "z_init", "sigma")})
    bulk = min(v["ess_bulk"] for v in summary.values())
    tail = min(v["ess_tail"] for v in summary.values())
    return dict(
        seed=ARGS.seed,
        ess_bulk_min=bulk,
        ess_tail_min=tail,
        rhat_max=max(v["rhat"] for v in summary.values()),
        seconds=seconds,
        grad_evals=grad_evals,
        ess_per_second=bulk / seconds,
        ess_per_1k_grad=1000 * bulk / grad_evals,
        ess_tail_per_1k_grad=1000 * tail / grad_evals,
        mean_theta1=summary["theta[1]"]["mean"],
    )


LAST_DRAWS = [None]


def jaxsci_variant(sampler, chains, warmup, samples, init, target=JAXSCI_TARGET):
    def run(key):
        clock = CompileClock().__enter__()
        t = time.perf_counter()
        res = inference.posterior(
            target,
            key=key,
            sampler=sampler,
            num_chains=chains,
            num_warmup=warmup,
            num_samples=samples,
            init=init,
            progress_bar=False,
        )
        wall = time.perf_counter() - t
        clock.__exit__()
        # A run that compiled nothing (a cache hit: every timed run) counts all its chunks:
        # `res.compile_seconds` is then not compilation but the first chunk's extra cost (the
        # start of warmup, step size 1, long trees and stiff proposals), which is real work.
        compiled = clock.seconds > 0.05
        seconds = res.seconds if compiled else res.seconds + res.compile_seconds
        out = summarise(res.draws, res.grad_evals, seconds)
        # vmapped chains advance together: a NUTS step costs its slowest chain's leapfrogs
        slowest_warm = int(res.warmup_stats["n_steps"].max(axis=0).sum())
        slowest_samp = int(res.sample_stats["n_steps"].max(axis=0).sum())
        out.update(
            compile=res.compile_seconds,
            compile_clock=clock.seconds,
            wall_incl_init=wall,
            divergences=res.divergences,
            warmup_ms_per_slowest_grad=1000
            * (seconds - res.sampling_seconds)
            / max(slowest_warm, 1),
            sampling_ms_per_slowest_grad=1000 * res.sampling_seconds / max(slowest_samp, 1),
        )
        LAST_DRAWS[0] = res.draws
        return out

    return run


def numpyro_variant(chains, warmup, samples, init_params, rtol, atol):
    """numpyro MCMC (vectorized chains): a warmup call collecting its leapfrog counts, then the
    sampling call, timed together. `MCMC.run` re-traces and recompiles its loop on every call
    (~45 s per run here, `jit_model_args=True` or not), so the compile time measured by
    `CompileClock` during the call is subtracted."""
    mcmc = MCMC(
        NUTS(numpyro_example_model(rtol, atol), dense_mass=True),
        num_warmup=warmup,
        num_samples=samples,
        num_chains=chains,
        chain_method="vectorized",
        progress_bar=False,
    )

    def run(key):
        key_warm, key_run = jax.random.split(key)
        clock = CompileClock().__enter__()
        t = time.perf_counter()
        mcmc.warmup(
            key_warm,
            TS_ALL,
            Y_ALL,
            init_params=init_params,
            extra_fields=("num_steps",),
            collect_warmup=True,
        )
        warm_steps = int(np.sum(mcmc.get_extra_fields()["num_steps"]))
        mcmc.run(key_run, TS_ALL, Y_ALL, extra_fields=("num_steps", "diverging"))
        draws = jax.block_until_ready(mcmc.get_samples(group_by_chain=True))
        wall = time.perf_counter() - t
        clock.__exit__()
        fields = mcmc.get_extra_fields()
        seconds = wall - clock.seconds
        out = summarise(draws, warm_steps + int(np.sum(fields["num_steps"])), seconds)
        out.update(
            divergences=int(np.sum(fields["diverging"])),
            wall_incl_init=wall,
            compile=clock.seconds,
        )
        return out

    return run


def main():
    quick = ARGS.quick
    warmup = ARGS.warmup or (100 if quick else 1000)
    samples = ARGS.samples or (100 if quick else 1000)
    chains = ARGS.chains
    print(machine_summary())
    if ARGS.grad_cost_only:
        ref = inference.posteriordb_reference()
        # posteriordb's posterior means, then three points a reference sd away in turn
        base = {
            "theta": np.array([ref[f"theta[{i}]"]["mean"] for i in range(1, 5)]),
            "z_init": np.array([ref[f"z_init[{i}]"]["mean"] for i in (1, 2)]),
            "sigma": np.array([ref[f"sigma[{i}]"]["mean"] for i in (1, 2)]),
        }
        sd = {
            "theta": np.array([ref[f"theta[{i}]"]["sd"] for i in range(1, 5)]),
            "z_init": np.array([ref[f"z_init[{i}]"]["sd"] for i in (1, 2)]),
            "sigma": np.array([ref[f"sigma[{i}]"]["sd"] for i in (1, 2)]),
        }
        signs = np.array([0.0, 1.0, -1.0, 0.5])[:, None]
        points = {k: jnp.asarray(base[k] + signs * sd[k], jnp.float32) for k in base}
        costs = grad_costs(points, ARGS.grad_calls)
        print(f"ms per log-density value+gradient (median of {ARGS.grad_calls} calls):")
        for key, ms in costs.items():
            print(f"  {key:62s} {ms:8.3f}")
        finish(
            dict(machine=machine_summary(), grad_ms=costs, command=" ".join(sys.argv)), ARGS.json
        )
        return
    print(f"{chains} chains x ({warmup} warmup + {samples} draws), dense mass matrix")
    print(f"seed {ARGS.seed} (keys shifted by {KEY_SHIFT}), variants {ARGS.variants}")

    t = time.perf_counter()
    u0, _, _ = initial_positions(JAXSCI_TARGET, shifted_key(123), chains, "map")
    init_seconds = time.perf_counter() - t
    # the same starting points for every sampler: numpyro takes unconstrained init_params
    init_dict = {k: np.asarray(v) for k, v in jax.vmap(JAXSCI_TARGET._split)(u0).items()}
    print(f"starting points (multi-start MAP + Laplace): {init_seconds:.1f} s")

    all_variants = {
        "jaxsci NUTS (blackjax)": jaxsci_variant(
            inference.NUTS(dense_mass=True), chains, warmup, samples, u0
        ),
        "jaxsci NUTS (blackjax), RK4 dt=0.25": jaxsci_variant(
            inference.NUTS(dense_mass=True), chains, warmup, samples, u0, JAXSCI_RK4
        ),
        "jaxsci NumpyroNUTS": jaxsci_variant(
            inference.NumpyroNUTS(dense_mass=True), chains, warmup, samples, u0
        ),
    }
    for label, (rtol, atol) in {
        "numpyro + odeint (example tol 1e-6/1e-5)": (1e-6, 1e-5),
        "numpyro + odeint (Stan tol 1e-5/1e-3)": (1e-5, 1e-3),
    }.items():
        all_variants[label] = numpyro_variant(chains, warmup, samples, init_dict, rtol, atol)
    chosen = [VARIANT_NAMES[v] for v in ARGS.variants]
    variants = {name: fn for name, fn in all_variants.items() if name in chosen}

    results = {name: [] for name in variants}
    first = {}
    draws = None
    for name, fn in variants.items():  # compiling runs
        t = time.perf_counter()
        first[name] = fn(shifted_key(0))
        first[name]["first_wall"] = time.perf_counter() - t
        print(f"  compiled {name}: first run {first[name]['first_wall']:.1f} s", flush=True)
        if draws is None:
            draws = LAST_DRAWS[0]  # jaxsci NUTS's posterior draws, for the accuracy check
        print(f"  compiling run {name}: {first[name]}", flush=True)
    errors = {}
    if len(variants) == len(all_variants):
        flat = {k: np.asarray(draws[k]).reshape(-1, draws[k].shape[-1]) for k in draws}
        errors = loglik_errors(flat["theta"], flat["z_init"], flat["sigma"])
        print(f"log-likelihood error vs a 1e-12 float64 solve over {len(flat['theta'])} draws:")
    for name, e in errors.items():
        print(f"  {name:38s} median {e['median']:.1e}  p99 {e['p99']:.1e}  max {e['max']:.1e}")
    for r in range(ARGS.repeats):
        for name, fn in variants.items():
            results[name].append(fn(shifted_key(1 + r)))
            print(f"  round {r}: {name}: {results[name][-1]}", flush=True)

    table = {}
    for name, runs in results.items():
        row = {k: statistics.median([run[k] for run in runs]) for k in runs[0]}
        if "compile" not in row:  # numpyro: the first run's excess over the timed runs
            row["compile"] = max(first[name]["first_wall"] - row["seconds"], 0.0)
        table[name] = row
    print()
    header = (
        f"{'variant':44s} {'ESS bulk':>9s} {'ESS tail':>9s} {'R-hat':>6s} {'s':>7s} "
        f"{'compile':>8s} {'grad ev':>9s} {'ESS/s':>8s} {'ESS/1k grad':>11s} {'tail/1k':>8s} "
        f"{'div':>4s}"
    )
    print(header)
    for name, row in table.items():
        print(
            f"{name:44s} {row['ess_bulk_min']:9.0f} {row['ess_tail_min']:9.0f} "
            f"{row['rhat_max']:6.3f} {row['seconds']:7.1f} {row['compile']:8.1f} "
            f"{row['grad_evals']:9.0f} {row['ess_per_second']:8.1f} {row['ess_per_1k_grad']:11.2f} "
            f"{row['ess_tail_per_1k_grad']:8.2f} {row['divergences']:4.0f}"
        )
    peers = {
        "ess_per_second_vs_example": "numpyro + odeint (example tol 1e-6/1e-5)",
        "ess_per_second_vs_stan_tol": "numpyro + odeint (Stan tol 1e-5/1e-3)",
    }
    ratios = {
        name: {
            field: row["ess_per_second"] / table[peer]["ess_per_second"]
            for field, peer in peers.items()
            if peer in table
        }
        for name, row in table.items()
        if name.startswith("jaxsci")
    }
    for name, r in ratios.items():
        if len(r) == len(peers):
            print(
                f"ratio ESS/s {name} / numpyro+odeint: {r['ess_per_second_vs_example']:.2f}x "
                f"(example tolerances), {r['ess_per_second_vs_stan_tol']:.2f}x (Stan tolerances)"
            )
        else:
            for field, value in r.items():
                print(f"ratio ESS/s {name} / {peers[field]}: {value:.2f}x")

    scaling = {}
    for n in ARGS.scaling if ARGS.scaling is not None else ([1, 4] if quick else [1, 4, 16]):
        u, _, _ = initial_positions(JAXSCI_TARGET, shifted_key(321), n, "map")
        run = jaxsci_variant(inference.NUTS(dense_mass=True), n, warmup, samples, u)
        run(shifted_key(0))  # compile
        row = run(shifted_key(1))
        scaling[n] = row
        print(
            f"  {n:3d} chains: {row['seconds']:7.1f} s (warmup + sampling), min bulk ESS "
            f"{row['ess_bulk_min']:7.0f}, ESS/s {row['ess_per_second']:7.1f}, "
            f"{1000 * row['seconds'] / (warmup + samples):.1f} ms per step (all chains)",
            flush=True,
        )
    out = dict(
        machine=machine_summary(),
        settings=dict(
            chains=chains,
            warmup=warmup,
            samples=samples,
            repeats=ARGS.repeats,
            seed=ARGS.seed,
            variants=ARGS.variants,
        ),
        table=table,
        compiling_runs=first,
        ratios=ratios,
        loglik_errors=errors,
        scaling=scaling,
        command=" ".join(sys.argv),
    )
    finish(out, ARGS.json)


if __name__ == "__main__":
    main()
