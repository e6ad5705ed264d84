"""Timing helpers shared by the benchmark scripts (not part of the jaxsci package).

Every benchmark times a set of *variants* (one per library or code path) that compute the
same thing. Each variant is called once to compile (the first call's time minus the median
steady-state time is reported as the compile time), then the variants are called in turn,
`repeats` rounds, so that a change of machine load during the run hits all of them alike.
The figure reported is the median over rounds.
"""

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

import jax


def block(x):
    """Wait for every array in `x` (JAX or NumPy) to be computed."""
    return jax.block_until_ready(x)


def load_average() -> str:
    """The 1/5/15-minute load averages, or 'n/a' where the OS has none."""
    try:
        return "{:.2f} {:.2f} {:.2f}".format(*os.getloadavg())
    except OSError:
        return "n/a"


def source_revision() -> str:
    """The git commit of this checkout, with '+dirty' when jaxsci/ has uncommitted changes."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=20,
            check=True,
        ).stdout
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "jaxsci"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=20,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return rev.strip() + ("+dirty" if dirty.strip() else "")


def machine_summary() -> dict:
    """What the numbers were measured on: CPU count, load, JAX backend and devices."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
        if names:
            cpu = names[0]
    except OSError:
        pass
    gpu = ""
    try:
        gpu = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return dict(
        python=sys.version.split()[0],
        cpu=cpu,
        cpu_count=os.cpu_count(),
        load_average=load_average(),
        jax=jax.__version__,
        backend=jax.default_backend(),
        devices=[str(d) for d in jax.devices()],
        gpu=gpu,
        x64=bool(jax.config.read("jax_enable_x64")),
        jaxsci_revision=source_revision(),
    )


def time_variants(variants: dict[str, Callable[[], object]], repeats: int) -> dict[str, dict]:
    """Time zero-argument callables; returns {name: {first, median, min, times}} in seconds."""
    first = {}
    for name, fn in variants.items():
        t = time.perf_counter()
        block(fn())
        first[name] = time.perf_counter() - t
    times = {name: [] for name in variants}
    for _ in range(repeats):
        for name, fn in variants.items():
            t = time.perf_counter()
            block(fn())
            times[name].append(time.perf_counter() - t)
    out = {}
    for name in variants:
        med = statistics.median(times[name])
        out[name] = dict(
            first=first[name],
            median=med,
            min=min(times[name]),
            compile=max(first[name] - med, 0.0),
            times=times[name],
        )
    return out


def finish(out: dict, json_path: str | None) -> None:
    """Record and print the closing load average; write `out` as JSON to `json_path` if set."""
    out["machine"]["load_average_end"] = machine_summary()["load_average"]
    print("load average at the end:", out["machine"]["load_average_end"])
    if json_path:
        os.makedirs(os.path.dirname(os.path.abspath(json_path)), exist_ok=True)
        with open(json_path, "w") as f:
            json.dump(out, f, indent=1, default=str)
