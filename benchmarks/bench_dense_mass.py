"""Dense vs diagonal mass-matrix adaptation for NUTS: ESS per gradient and per second.

Two posteriors: a 2-D Gaussian with correlation 0.95 (sds 1 and 2; tests/inference's
CORRELATED) and posteriordb's `hudson_lynx_hare-lotka_volterra` (8 parameters,
corr(theta[1], theta[3]) = -0.94; `inference.lotka_volterra_problem`, Stan's rk45
tolerances). Each is sampled with jaxsci's NUTS (blackjax kernel) and with numpyro's NUTS
kernel (`NumpyroNUTS`, the peer's own `dense_mass` adaptation) under the same driver, each with
a diagonal and a dense inverse mass matrix: same chains, warmup, draws, target acceptance 0.8
and, per seed, the same key and so the same starting points (U(-2, 2) for the Gaussian, the
multi-start MAP + Laplace draws for Lotka-Volterra). The figures are medians over seeds.

ESS = min over parameters of bulk ESS; gradient evaluations = leapfrog steps of warmup and
sampling over all chains (`PosteriorResult.grad_evals`); seconds = warmup + sampling wall time,
compilation excluded (`PosteriorResult.seconds`). The ratio printed is dense / diagonal. The
`advice` column lists the kinds of `PosteriorResult.diagnose()` of the run (empty: clean).
Results: benchmarks/RESULTS_inference.md.

    .venv/bin/python benchmarks/bench_dense_mass.py [--targets gaussian lv] [--seeds 3] [--quick]
"""

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from _timing import finish, machine_summary  # noqa: E402

from jaxsci import inference  # noqa: E402

parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
parser.add_argument("--targets", nargs="+", default=["gaussian", "lv"], choices=["gaussian", "lv"])
parser.add_argument("--seeds", type=int, default=3, help="runs per variant (keys 0, 1, ...)")
parser.add_argument("--chains", type=int, default=4)
parser.add_argument("--warmup", type=int, default=500)
parser.add_argument("--samples", type=int, default=1000)
parser.add_argument("--json", default=None, help="write the results to this JSON file")
parser.add_argument(
    "--quick", action="store_true", help="smoke test: the Gaussian, 1 seed, 100 + 200 steps"
)
args = parser.parse_args()
if args.quick:
    args.targets, args.seeds, args.warmup, args.samples = ["gaussian"], 1, 100, 200

MEAN = np.array([1.0, -2.0])
COV = np.outer([1.0, 2.0], [1.0, 2.0]) * np.array([[1.0, 0.95], [0.95, 1.0]])


def _gaussian(params):
    d = params["x"] - jnp.asarray(MEAN, params["x"].dtype)
    return -0.5 * d @ jnp.asarray(np.linalg.inv(COV), d.dtype) @ d


TARGETS = {
    "gaussian": lambda: (
        inference.LogDensity(_gaussian, {"x": "real"}, shapes={"x": (2,)}),
        "uniform",
    ),
    "lv": lambda: (inference.lotka_volterra_problem().target, "map"),
}
SAMPLERS = {"jaxsci NUTS (blackjax)": inference.NUTS, "NumpyroNUTS": inference.NumpyroNUTS}


def run(target, init, cls, dense, seed):
    result = inference.posterior(
        target,
        key=jax.random.key(seed),
        sampler=cls(dense_mass=dense),
        num_chains=args.chains,
        num_warmup=args.warmup,
        num_samples=args.samples,
        init=init,
        progress_bar=False,
    )
    summary = result.summary()
    ess = min(v["ess_bulk"] for v in summary.values())
    return dict(
        ess=ess,
        rhat=max(v["rhat"] for v in summary.values()),
        grads=result.grad_evals,
        sampling_grads=int(result.sample_stats["n_steps"].sum()),
        seconds=result.seconds,
        ess_per_kgrad=1000 * ess / result.grad_evals,
        ess_per_s=ess / max(result.seconds, 1e-9),
        divergences=result.divergences,
        advice=[a.kind for a in result.diagnose(summary)],
    )


out = {"machine": machine_summary(), "args": vars(args), "runs": {}}
print("machine:", out["machine"])
for tname in args.targets:
    target, init = TARGETS[tname]()
    print(f"\n## {tname}: {args.chains} chains x ({args.warmup} warmup + {args.samples} draws)")
    print(
        f"{'sampler':<24} {'metric':<5} {'ESS':>7} {'R-hat':>6} {'grads':>9} {'s':>7} "
        f"{'ESS/1k grad':>11} {'ESS/s':>8} {'div':>4}  advice (per seed)"
    )
    for sname, cls in SAMPLERS.items():
        med = {}
        for dense in (False, True):
            runs = [run(target, init, cls, dense, seed) for seed in range(args.seeds)]
            out["runs"][f"{tname} / {sname} / {'dense' if dense else 'diag'}"] = runs
            m = {k: statistics.median(r[k] for r in runs) for k in runs[0] if k != "advice"}
            med[dense] = m
            print(
                f"{sname:<24} {'dense' if dense else 'diag':<5} {m['ess']:>7.0f} "
                f"{m['rhat']:>6.3f} {m['grads']:>9.0f} {m['seconds']:>7.2f} "
                f"{m['ess_per_kgrad']:>11.1f} {m['ess_per_s']:>8.0f} {m['divergences']:>4.0f}  "
                f"{[r['advice'] for r in runs]}"
            )
        print(
            f"{sname:<24} ratio dense / diag: ESS per gradient "
            f"{med[True]['ess_per_kgrad'] / med[False]['ess_per_kgrad']:.2f}x, ESS per second "
            f"{med[True]['ess_per_s'] / med[False]['ess_per_s']:.2f}x"
        )
finish(out, args.json)
