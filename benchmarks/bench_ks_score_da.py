"""Score-based data assimilation on KS (pipeline `ks_score_da`) at full size: the table of
every method and the wall time split by stage.

`configs/ks_score_da.yaml` as shipped (2000 KS states, ScoreMLP 256x3 trained 12000 DSM steps,
40 analyses of every 4th point with noise 10% of the climatological std; DPS 32 draws, TDS
256 particles resampled to 32, LETKF N = 20 cycling with the true model), plots off. Times
per analysis are measured after compilation (the first analysis call, which compiles, is
reported apart in diagnostics.json's `timing`). No peer library runs this experiment (the
issue's premise); the ratio printed is each method's time per analysis against the LETKF's
time per cycle (forecast + analysis), on the same machine in the same process.

TDS - DPS: the difference of rmse and CRPS over the scored times with a standard error from a
paired moving-block bootstrap over the analysis times (blocks of `BLOCK` consecutive times:
the truth decorrelates over a few KS time units, so neighbouring analyses are not
independent; Kuensch 1989), one run, one seed.

    .venv/bin/python benchmarks/bench_ks_score_da.py [--quick] [--set key=value ...]
"""

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
BLOCK = 5  # time units (analyses 1 time unit apart)
BOOTSTRAP = 2000
QUICK = [
    "training.steps=1000",
    "experiment.n_analyses=15",
    "experiment.burn_in=5",
]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1000 steps, 15 analyses")
    parser.add_argument("--set", action="append", default=[], help="config overrides")
    parser.add_argument("--json", default=None, help="write the results as JSON here")
    args = parser.parse_args()

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from _timing import machine_summary

    from jaxsci.pipelines import load_config

    machine = machine_summary()
    print("machine:", json.dumps(machine))
    overrides = (QUICK if args.quick else []) + ["plot.enabled=false"] + args.set
    pipeline, config = load_config(ROOT / "configs/ks_score_da.yaml", overrides)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        metrics = pipeline.run(config, Path(tmp))
        wall = time.perf_counter() - t0
        diag = json.loads((Path(tmp) / "diagnostics.json").read_text())
        arrays = dict(np.load(Path(tmp) / "ks_score_da.npz"))
    table = metrics["table"]
    base = table["filter"]["seconds_per_analysis"]
    print(f"\nclimatological std {metrics['clim_std']:.4f}, noise std {metrics['noise_std']:.4f}")
    print(f"scored analysis times: {metrics['scored_times']}; overrides: {overrides}")
    print("| method | rmse | CRPS | spread | spread/skill | s per analysis | x filter |")
    print("|---|---|---|---|---|---|---|")
    for name, row in table.items():
        print(
            f"| {name} | {row['rmse']:.4f} | {row['crps']:.4f} | {row['spread']:.4f} | "
            f"{row['spread_skill']:.3f} | {row['seconds_per_analysis']:.4f} | "
            f"{row['seconds_per_analysis'] / base:.0f} |"
        )
    print("\n| stage | wall s |")
    print("|---|---|")
    for stage, s in diag["stage_seconds"].items():
        print(f"| {stage} | {s:.1f} |")
    print(f"| total | {wall:.1f} |")
    print("\ntiming (first call incl. compile):", json.dumps(diag["timing"]))
    print("training:", json.dumps(diag["training"]))
    print("tds ESS:", json.dumps(diag["tds_final_ess"]))
    burn = config.experiment.burn_in
    diffs = _block_bootstrap_diffs(arrays, burn)
    for key, (d, se) in diffs.items():
        print(f"TDS - DPS {key}: {d:+.4f} +- {se:.4f} (block bootstrap SE, block {BLOCK})")
    metrics["tds_minus_dps"] = {k: {"diff": d, "se": se} for k, (d, se) in diffs.items()}
    if args.json:
        Path(args.json).write_text(
            json.dumps({"machine": machine, "metrics": metrics, "diagnostics": diag}, indent=2)
        )


def _block_bootstrap_diffs(arrays, burn):
    """TDS - DPS rmse (sqrt of the mean squared per-time rmse) and CRPS (mean per-time CRPS)
    over the scored times, with moving-block bootstrap standard errors (paired: the same
    resampled times for both methods)."""
    series = {
        n: {"rmse": arrays[f"{n}_rmse"][burn:], "crps": arrays[f"{n}_crps"][burn:]}
        for n in ("tds", "dps")
    }
    t = len(series["tds"]["rmse"])
    block = min(BLOCK, t)
    rng = np.random.default_rng(0)
    starts = rng.integers(0, t - block + 1, size=(BOOTSTRAP, -(-t // block)))
    idx = (starts[:, :, None] + np.arange(block)).reshape(BOOTSTRAP, -1)[:, :t]

    def stat(key, n, i=slice(None)):
        v = series[n][key]
        return np.sqrt(np.mean(v[i] ** 2, -1)) if key == "rmse" else np.mean(v[i], -1)

    out = {}
    for key in ("rmse", "crps"):
        d = float(stat(key, "tds") - stat(key, "dps"))
        boot = stat(key, "tds", idx) - stat(key, "dps", idx)
        out[key] = (d, float(np.std(boot, ddof=1)))
    return out


if __name__ == "__main__":
    main()
