"""Interrupt `jaxsci run` with SIGINT at random times and check every exit and run folder.

Usage: `python benchmarks/bench_reliability.py [--runs 20] [--seed 0]
[--case short|long-scan|lyapunov] [--window S] [--json PATH]`.

A calibration run (not interrupted) measures how long a run lasts once its run folder
exists. Then each of `--runs` runs of the same short config (Lorenz-96 with spin-up,
integration and a Lyapunov run: several compiled programs) gets one SIGINT at a uniformly
random time between the moment its `run.log` appears and the calibrated end. A run is clean
when it exits 130 (interrupted: no `COMPLETE` marker, no `metrics.json` unless it says
`partial: true` (an interrupt in the Lyapunov run), the interruption in `run.log`) or 0 (it
finished first: `COMPLETE` and `metrics.json` present), with no signal
death (a negative return code, e.g. -11 for a segmentation fault) and no traceback of an
uncaught exception. It also reports how long each run took to exit after the signal.
The runs use `python -m jaxsci.cli`, i.e. the console script's entry point.

`--case long-scan` interrupts instead one long compiled call: the quickstart L96 LETKF twin
experiment with 400,000 cycles (one `filters.assimilate` scan of minutes), each run signalled
at a uniform time in its first `--window` seconds (start-up, compilation, mostly the scan).
There an interrupted run may also leave `metrics.json`, if it says `partial: true` (the
cycles that ran), and it must exit within seconds of the signal, not at the end of the scan.

`--case lyapunov` does the same with one long Lyapunov run: configs/l96.yaml (40 sites, 3
exponents) with a short trajectory and 1,000,000 re-orthonormalisation intervals (hours);
a signal inside it must give exit 130 within seconds and partial metrics over the intervals
that ran (`lyapunov_intervals` of `lyapunov_intervals_planned`).
"""

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: case -> (config, overrides)
CASES = {
    "short": (
        ROOT / "configs" / "l96.yaml",
        ["integrate.t1=20", "lyapunov.num_intervals=200", "plot.enabled=false"],
    ),
    "long-scan": (
        ROOT / "configs" / "quickstart.yaml",
        ["experiment.n_cycles=400000", "plot.enabled=false"],
    ),
    "lyapunov": (
        ROOT / "configs" / "l96.yaml",
        [
            "integrate.t1=1",
            "integrate.spinup=1",
            "lyapunov.num_intervals=1000000",
            "plot.enabled=false",
        ],
    ),
}
#: the count and the planned count in the partial metrics of each kind of long run
PARTIAL_COUNTS = (
    ("n_cycles", "n_cycles_planned"),
    ("lyapunov_intervals", "lyapunov_intervals_planned"),
)


def _command(out: Path, case: str) -> list[str]:
    config, sets = CASES[case]
    cmd = [sys.executable, "-m", "jaxsci.cli", "run", str(config), "--out", str(out), "--quiet"]
    for s in sets:
        cmd += ["--set", s]
    return cmd


def _start(out: Path, case: str) -> tuple[subprocess.Popen, float]:
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen(
        _command(out, case), cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    log = out / "run.log"
    while not log.exists():
        if proc.poll() is not None:
            break
        time.sleep(0.02)
    return proc, time.perf_counter()


def _check(out: Path, code: int, stderr: str) -> list[str]:
    """The ways in which a finished run's exit or folder is not clean."""
    problems = []
    if code not in (0, 130):
        problems.append(f"exit code {code}")
    if "Traceback" in stderr and code != 130:
        problems.append("uncaught traceback")
    complete = (out / "COMPLETE").is_file()
    metrics = (out / "metrics.json").is_file()
    log = (out / "run.log").read_text() if (out / "run.log").is_file() else ""
    if code == 0 and not (complete and metrics):
        problems.append("finished without COMPLETE/metrics.json")
    if code == 130:
        partial = metrics and json.loads((out / "metrics.json").read_text()).get("partial")
        if complete or (metrics and not partial):
            problems.append("interrupted run has COMPLETE or unmarked metrics.json")
        if "interrupted" not in log:
            problems.append("interruption not in run.log")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--case", choices=list(CASES), default="short")
    parser.add_argument(
        "--window",
        type=float,
        default=40.0,
        help="long-scan, lyapunov: signal within this many seconds",
    )
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    work = Path(tempfile.mkdtemp(prefix="jaxsci-reliability-"))
    config, sets = CASES[args.case]
    print(f"load average {os.getloadavg()}; config {config.name} --set {' '.join(sets)}")
    try:
        if args.case == "short":
            proc, started = _start(work / "calibration", args.case)
            _, err = proc.communicate(timeout=600)
            duration = time.perf_counter() - started
            if proc.returncode != 0:
                print(err.decode()[-2000:])
                print("calibration run failed")
                return 1
            print(f"calibration: {duration:.1f} s from run.log to exit")
        else:
            duration = args.window
        rows = []
        partial_runs = 0
        for i in range(args.runs):
            out = work / f"run{i:02d}"
            delay = rng.uniform(0.0, duration)
            proc, started = _start(out, args.case)
            time.sleep(max(0.0, delay - (time.perf_counter() - started)))
            sent = time.perf_counter()
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
            try:
                _, err = proc.communicate(timeout=120)
            except subprocess.TimeoutExpired:
                proc.kill()
                _, err = proc.communicate()
                rows.append((i, delay, None, -999, ["no exit within 120 s of SIGINT"]))
                continue
            to_exit = time.perf_counter() - sent
            problems = _check(out, proc.returncode, err.decode())
            rows.append((i, delay, to_exit, proc.returncode, problems))
            state = "clean" if not problems else "; ".join(problems)
            if proc.returncode == 130 and (out / "metrics.json").is_file():
                done = json.loads((out / "metrics.json").read_text())
                for count, planned in PARTIAL_COUNTS:
                    if count in done:
                        state += f" (partial metrics: {count} {done[count]} of {done[planned]})"
                partial_runs += 1
            if problems:
                tail = err.decode().strip().splitlines()[-12:]
                state += "\n      " + "\n      ".join(tail)
            print(
                f"run {i:2d}: SIGINT at {delay:5.1f} s, exit {proc.returncode:4d} after "
                f"{to_exit:5.2f} s: {state}",
                flush=True,
            )
        clean = sum(1 for r in rows if not r[4])
        exits = sorted(r[2] for r in rows if r[2] is not None)
        interrupted = sum(1 for r in rows if r[3] == 130)
        print(
            f"\n{clean}/{len(rows)} clean exits with consistent run folders ({interrupted} "
            f"interrupted, {partial_runs} of them with partial metrics, {len(rows) - interrupted} "
            f"finished first); time from SIGINT to exit: median {exits[len(exits) // 2]:.2f} s, "
            f"max {exits[-1]:.2f} s"
        )
        if args.json:
            Path(args.json).write_text(
                json.dumps(
                    {"calibration_seconds": duration, "runs": rows, "clean": clean}, indent=1
                )
            )
        return 0 if clean == len(rows) else 1
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
