"""The closure study of `configs/l96_closure.yaml` at full size (issue 15, part 1): the
table of filter rmse_a and forecast valid time for no closure, the closure learned through
the filter, the oracle and the polynomial fitted to increments, and the wall time per stage
(simulation, learned, oracle, polynomial, evaluation) with its compile part.

No peer library runs this experiment (a differentiable ensemble filter inside the training
loop); the references are the study's own bounds: no closure below, the oracle (trained on
the true subgrid tendencies) above.

    .venv/bin/python benchmarks/bench_l96_closure.py [--seeds 0 1 2] [--set KEY=VALUE ...]
"""

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--set", action="append", default=[], help="config override")
    parser.add_argument("--json", default=None, help="write the results as JSON here")
    args = parser.parse_args()
    from jaxsci.pipelines import run_config
    from jaxsci.pipelines._l96_closure import MODELS

    rows = []
    for seed in args.seeds:
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "run"
            t = time.perf_counter()
            _, metrics = run_config(
                ROOT / "configs" / "l96_closure.yaml",
                out,
                overrides=[f"seed={seed}", "plot.enabled=false", *args.set],
            )
            wall = time.perf_counter() - t
            diag = json.loads((out / "diagnostics.json").read_text())
        rows.append({"seed": seed, "wall": wall, "metrics": metrics, "diagnostics": diag})
        print(f"\nseed {seed}: {wall:.0f} s wall")
        print(
            f"| model | rmse_a | valid time (Lyapunov times, mean +- sem of "
            f"{len(diag['valid_time_per_forecast']['none'])}) |"
        )
        print("|---|---|---|")
        for name in MODELS:
            print(
                f"| {name} | {metrics[f'rmse_a_{name}']:.3f} | "
                f"{metrics[f'valid_time_{name}']:.2f} +- {diag['valid_time_sem'][name]:.2f} |"
            )
        print(
            f"learned beats none on both: {metrics['learned_beats_none']}; learned / oracle "
            f"valid time {metrics['learned_over_oracle_valid_time']:.2f} (must be >= 0.75); "
            f"learned inflation {diag['learned_inflation']:.3f} (its rmse_a there "
            f"{diag['rmse_a_learned_at_learned_inflation']:.3f}); lambda_max "
            f"{diag['lyapunov_exponent']:.3f}"
        )
        print("| stage | wall s | of which compile s | CPU s |")
        print("|---|---|---|---|")
        for stage, sec in diag["seconds"].items():
            comp = diag["compile_seconds"].get(stage, float("nan"))
            cpu = diag["cpu_seconds"].get(stage, float("nan"))
            print(f"| {stage} | {sec:.1f} | {comp:.1f} | {cpu:.1f} |")
    print(f"\n{platform.processor() or platform.machine()}, Python {sys.version.split()[0]}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2, default=str) + "\n")


if __name__ == "__main__":
    main()
