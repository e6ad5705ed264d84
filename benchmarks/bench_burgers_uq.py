"""Uncertainty for an FNO surrogate of Burgers (pipeline `burgers_uq`) at full size: the
table of the five methods in and out of distribution, and the wall time of every stage.

End to end: `configs/burgers_uq.yaml` as shipped (500 training pairs at 64 points, 100 ID
and 100 OOD test pairs, FNO width 32 / 12 modes / depth 3, 100 epochs per network, 10
deep-ensemble members, 2 x 300 NUTS draws, 100 predictive draws per input), run once through
the `jaxsci` command (a fresh process: the stage times include XLA compilation, as a user
sees them; the persistent compilation cache is switched off so that a second run is not
faster for that reason).

Peer of the one step that has an established implementation: the evidence-optimal
Bayesian linear regression of the last-layer Laplace (`inference.last_layer_laplace`, MacKay
fixed point) against scikit-learn's `BayesianRidge` (the same fixed point, with its Gamma
hyperpriors made flat) on a design of the pipeline's shape (32000 rows x 65 features,
correlated GELU features), timed interleaved; the fitted prior precision and noise std
must agree.

    .venv/bin/python benchmarks/bench_burgers_uq.py [--quick] [--json out.json]

`--quick` runs the pipeline at the CI size of tests/pipelines/test_burgers_uq.py instead.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
METRICS = ("rel_l2", "crps", "coverage90", "spread_skill")


def _pipeline(quick: bool) -> tuple[dict, dict, float]:
    sets = []
    if quick:
        sys.path.insert(0, str(ROOT / "tests" / "pipelines"))
        from test_burgers_uq import CI

        sets = [a for s in CI for a in ("--set", s)]
    env = dict(os.environ, JAXSCI_NO_COMPILE_CACHE="1", PYTHONPATH=str(ROOT))
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run"
        cmd = [sys.executable, "-m", "jaxsci.cli", "run", str(ROOT / "configs/burgers_uq.yaml")]
        t = time.perf_counter()
        subprocess.run([*cmd, "--out", str(out), "--quiet", *sets], env=env, check=True)
        wall = time.perf_counter() - t
        metrics = json.loads((out / "metrics.json").read_text())
        diagnostics = json.loads((out / "diagnostics.json").read_text())
    return metrics, diagnostics, wall


def _peer(repeats: int) -> dict:
    import jax
    import numpy as np
    from sklearn.linear_model import BayesianRidge

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from _timing import time_variants

    from jaxsci import inference

    rng = np.random.default_rng(0)
    rows, p = 32000, 64
    z = rng.normal(size=(rows, 8)) @ rng.normal(size=(8, p)) + 0.1 * rng.normal(size=(rows, p))
    gelu = 0.5 * z * (1 + np.tanh(0.7978845608 * (z + 0.044715 * z**3)))
    phi = np.concatenate([gelu, np.ones((rows, 1))], axis=1)
    y = phi @ rng.normal(size=p + 1) * 1e-2 + 5e-3 * rng.normal(size=rows)
    with jax.enable_x64(True):
        fit = jax.jit(lambda a, b: inference.last_layer_laplace(a, b, iterations=300))
        ours = fit(phi, y)
        ridge = BayesianRidge(
            max_iter=300,
            tol=1e-12,
            alpha_1=0.0,
            alpha_2=0.0,
            lambda_1=0.0,
            lambda_2=0.0,
            fit_intercept=False,
            compute_score=False,
        )
        ridge.fit(phi, y)
        timing = time_variants(
            {"jaxsci": lambda: fit(phi, y), "sklearn": lambda: ridge.fit(phi, y).coef_},
            repeats,
        )
    return {
        "alpha": [float(ours.prior_precision), float(ridge.lambda_)],
        "sigma": [float(ours.noise_std), float(ridge.alpha_**-0.5)],
        "mean_max_abs_diff": float(np.max(np.abs(np.asarray(ours.mean) - ridge.coef_))),
        # both stop on their own rule (jaxsci: relative change of alpha, beta < 1e-10;
        # sklearn: coefficient change < tol), so the work per fit is reported
        "iterations": [int(ours.iterations), int(ridge.n_iter_)],
        "seconds": {k: v["median"] for k, v in timing.items()},
        "compile": timing["jaxsci"]["compile"],
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the CI-size pipeline")
    parser.add_argument("--repeats", type=int, default=5, help="rounds of the peer timing")
    parser.add_argument("--json", default=None, help="write the results as JSON here")
    args = parser.parse_args()

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from _timing import finish, machine_summary

    out: dict = {"machine": machine_summary(), "quick": args.quick}
    print("machine:", out["machine"])
    metrics, diagnostics, wall = _pipeline(args.quick)
    out.update(table=metrics["table"], nuts=metrics["nuts"], laplace=metrics["laplace"])
    out.update(seconds=diagnostics["seconds"], process_wall=wall)
    print(f"\n| method | split | {' | '.join(METRICS)} |")
    print("| --- | --- |" + " ---: |" * len(METRICS))
    for method, row in metrics["table"].items():
        for split, cell in row.items():
            vals = " | ".join(f"{cell[k]:.3g}" for k in METRICS)
            print(f"| {method} | {split.upper()} | {vals} |")
    print("\nNUTS:", metrics["nuts"])
    print("Laplace:", metrics["laplace"])
    print("\n| stage | seconds |\n| --- | ---: |")
    for stage, s in diagnostics["seconds"].items():
        print(f"| {stage} | {s:.1f} |")
    print(f"| process (imports, validation, writing included) | {wall:.1f} |")

    peer = _peer(args.repeats)
    out["peer"] = peer
    ratio = peer["seconds"]["sklearn"] / peer["seconds"]["jaxsci"]
    print(
        f"\nlast-layer evidence fit, 32000 x 65: jaxsci {peer['seconds']['jaxsci']:.3f} s, "
        f"sklearn BayesianRidge {peer['seconds']['sklearn']:.3f} s (ratio sklearn/jaxsci "
        f"{ratio:.2f}); alpha {peer['alpha']}, sigma {peer['sigma']}, max |mean diff| "
        f"{peer['mean_max_abs_diff']:.2e}; iterations (jaxsci, sklearn) {peer['iterations']}"
    )
    finish(out, args.json)


if __name__ == "__main__":
    main()
