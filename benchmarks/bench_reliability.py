"""Interrupt `jaxsci run` with SIGINT at random times and check every exit and run folder.

Usage: `python benchmarks/bench_reliability.py [--runs 20] [--seed 0] [--json PATH]`.

A calibration run (not interrupted) measures how long a run lasts once its run folder
exists. Then each of `--runs` runs of the same short config (Lorenz-96 with spin-up,
integration and a Lyapunov run: several compiled programs) gets one SIGINT at a uniformly
random time between the moment its `run.log` appears and the calibrated end. A run is clean
when it exits 130 (interrupted: no `COMPLETE` marker, no `metrics.json`, the interruption in
`run.log`) or 0 (it finished first: `COMPLETE` and `metrics.json` present), with no signal
death (a negative return code, e.g. -11 for a segmentation fault) and no traceback of an
uncaught exception. It also reports how long each run took to exit after the signal.
The runs use `python -m jaxsci.cli`, i.e. the console script's entry point.
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
CONFIG = ROOT / "configs" / "l96.yaml"
SETS = ["integrate.t1=20", "lyapunov.num_intervals=200", "plot.enabled=false"]


def _command(out: Path) -> list[str]:
    cmd = [sys.executable, "-m", "jaxsci.cli", "run", str(CONFIG), "--out", str(out), "--quiet"]
    for s in SETS:
        cmd += ["--set", s]
    return cmd


def _start(out: Path) -> tuple[subprocess.Popen, float]:
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen(
        _command(out), cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
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
        if complete or metrics:
            problems.append("interrupted run has COMPLETE or metrics.json")
        if "interrupted" not in log:
            problems.append("interruption not in run.log")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    work = Path(tempfile.mkdtemp(prefix="jaxsci-reliability-"))
    print(f"load average {os.getloadavg()}; config {CONFIG.name} --set {' '.join(SETS)}")
    try:
        proc, started = _start(work / "calibration")
        _, err = proc.communicate(timeout=600)
        duration = time.perf_counter() - started
        if proc.returncode != 0:
            print(err.decode()[-2000:])
            print("calibration run failed")
            return 1
        print(f"calibration: {duration:.1f} s from run.log to exit")
        rows = []
        for i in range(args.runs):
            out = work / f"run{i:02d}"
            delay = rng.uniform(0.0, duration)
            proc, started = _start(out)
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
            f"interrupted, {len(rows) - interrupted} finished first); time from SIGINT to "
            f"exit: median {exits[len(exits) // 2]:.2f} s, max {exits[-1]:.2f} s"
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
