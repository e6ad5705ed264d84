"""Run every benchmark script in this folder, one subprocess each, and summarise.

Usage: `python benchmarks/run_all.py [--quick] [--only NAME ...]`. Each `bench_*.py` runs with
the current interpreter, with `--quick` passed on to scripts that take it, and scripts that
take `--json` write their results to `benchmarks/_out/NAME.json` (git-ignored);
the KS benchmark also runs its float64 agreement check (`--x64 --check-only`). The exit
status is non-zero if any script failed. Copy the printed figures into RESULTS.md together
with the command and the machine load they were taken under.
"""

import argparse
import glob
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
# Extra invocations besides the default one: {script stem: [extra argument lists]}.
EXTRA_RUNS = {"bench_ks_exponax": [["--x64", "--check-only"]]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="pass --quick to every script")
    parser.add_argument("--only", nargs="+", default=None, help="script stems to run")
    args = parser.parse_args()
    scripts = sorted(glob.glob(os.path.join(HERE, "bench_*.py")))
    if args.only:
        scripts = [s for s in scripts if os.path.basename(s)[:-3] in args.only]
    out_dir = os.path.join(HERE, "_out")
    os.makedirs(out_dir, exist_ok=True)
    failed, summary = [], []
    for script in scripts:
        stem = os.path.basename(script)[:-3]
        for extra in [[], *EXTRA_RUNS.get(stem, [])]:
            tag = stem + "".join(a.replace("--", "_").replace("-", "_") for a in extra)
            with open(script) as f:
                source = f.read()
            cmd = [sys.executable, script, *extra]
            # Not every script takes these flags; pass them to those that do.
            if '"--json"' in source:
                cmd += ["--json", os.path.join(out_dir, tag + ".json")]
            if args.quick and '"--quick"' in source:
                cmd.append("--quick")
            print(f"\n=== {' '.join(cmd)}", flush=True)
            t = time.perf_counter()
            rc = subprocess.call(cmd)
            summary.append((tag, rc, time.perf_counter() - t))
            if rc:
                failed.append(tag)
    print("\n=== summary")
    for tag, rc, sec in summary:
        print(f"  {tag:40s} {'ok' if rc == 0 else f'FAILED (rc={rc})':14s} {sec:7.1f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
