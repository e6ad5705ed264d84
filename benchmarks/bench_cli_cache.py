"""Start-up and compile time of the `jaxsci` command: `jaxsci --help`, and shipped configs run
without the persistent compilation cache, with a cold one and with a warm one.

Each run is a fresh process (`python -m jaxsci.cli ...`), timed from outside (wall clock,
JAX import included), as a user meets it:

- `--help`: the median of `--repeats` runs, beside the median of `python -c "import
  jaxsci.pipelines"`, the import the command did before parsing its arguments until the
  parser came first (so: what `--help` cost then).
- each config, in turn: `--no-compile-cache` (every program compiled, as before the cache),
  a fresh cache folder (cold: compiled and written), the same folder again (warm: loaded).
  Configs are shortened with `--set` (see `CONFIGS`) so that compilation dominates; the
  metrics of the three runs are checked to agree. The runs log JAX's compile events
  (`JAX_LOG_COMPILES=1`): the sum of "Finished XLA compilation" times is the time spent
  compiling (or, on a cache hit, loading) XLA programs, and the number of "Persistent
  compilation cache hit" lines says how many came from the cache; the rest of a run is
  Python start-up and imports, tracing and lowering (not cached by JAX) and the run itself.
  JAX never caches a program that holds a host callback (`JAX_EXPLAIN_CACHE_MISSES=1` says
  which); their number, compile seconds and names are reported too, and the number of
  programs JAX left out because they compiled faster than its minimum (cheaper to
  recompile than to load).

    .venv/bin/python benchmarks/bench_cli_cache.py [--configs l63 quickstart ...]
        [--repeats 5] [--json benchmarks/_out/bench_cli_cache.json] [--quick]
        [--env EQX_ON_ERROR=nan]
"""

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _timing import finish, machine_summary

ROOT = Path(__file__).resolve().parents[1]

# config stem -> --set overrides that shorten its run (compile time is unchanged: the
# programs are the same, only the loop lengths differ)
CONFIGS = {
    "l63": ["integrate.t1=4", "lyapunov.num_intervals=100"],
    "l96": ["integrate.t1=4", "lyapunov.num_intervals=100"],
    "ks": ["integrate.t1=50", "integrate.spinup=20", "lyapunov.num_intervals=100"],
    "quickstart": ["experiment.n_cycles=600", "experiment.spinup=10"],
    "l63_etkf": ["experiment.n_cycles=300"],
    "l63_pf": ["experiment.n_cycles=300"],
    "lorenz63_posterior": ["sampler.num_warmup=100", "sampler.num_samples=100"],
}
_METRIC_KEYS = ("state_mean", "state_std", "rmse_a", "rmse_f", "n_steps")


#: extra environment of the timed runs (`--env`, what-ifs such as EQX_ON_ERROR=nan)
_EXTRA_ENV: dict[str, str] = {}


def _env() -> dict[str, str]:
    """The caller's environment without any compilation-cache setting of its own."""
    drop = ("JAX_COMPILATION_CACHE_DIR", "JAXSCI_CACHE_DIR", "JAXSCI_NO_COMPILE_CACHE")
    env = {k: v for k, v in os.environ.items() if k not in drop} | _EXTRA_ENV
    env["JAX_LOG_COMPILES"] = "1"
    env["JAX_EXPLAIN_CACHE_MISSES"] = "1"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def _timed(argv: list[str]) -> tuple[float, subprocess.CompletedProcess]:
    t = time.perf_counter()
    proc = subprocess.run(argv, cwd=ROOT, env=_env(), capture_output=True, text=True)
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed:\n{proc.stderr[-2000:]}")
    return wall, proc


def time_help(repeats: int) -> dict:
    cli = [sys.executable, "-m", "jaxsci.cli", "--help"]
    old = [sys.executable, "-c", "import jaxsci.pipelines, jaxsci.cli"]
    help_times = [_timed(cli)[0] for _ in range(repeats)]
    import_times = [_timed(old)[0] for _ in range(repeats)]
    return dict(
        help=statistics.median(help_times),
        help_times=help_times,
        import_pipelines=statistics.median(import_times),
        import_pipelines_times=import_times,
    )


_COMPILED = re.compile(r"Finished XLA compilation of .* in ([0-9.]+) sec")
_CALLBACKS = re.compile(r"Not writing persistent cache entry for '([^']*)' because it uses host")


def _compile_log(stderr: str) -> dict:
    """From a run's compile log: seconds in XLA compilation (or cache loads) and the number
    of programs, persistent-cache hits, and the programs JAX will not cache because they
    hold host callbacks (error checks, progress meters) with their seconds and names, and
    the programs JAX left out as faster to compile than its minimum."""
    xla, programs, uncacheable, uncacheable_xla, pending = 0.0, 0, 0, 0.0, False
    names: list[str] = []
    for line in stderr.splitlines():
        callbacks = _CALLBACKS.search(line)
        if callbacks:
            pending = True  # JAX says so just before the program's compile-time line
            names.append(callbacks.group(1))
        found = _COMPILED.search(line)
        if found:
            seconds = float(found.group(1))
            xla, programs = xla + seconds, programs + 1
            if pending:
                uncacheable, uncacheable_xla = uncacheable + 1, uncacheable_xla + seconds
                pending = False
    return dict(
        xla=xla,
        programs=programs,
        hits=stderr.count("Persistent compilation cache hit"),
        uncacheable=uncacheable,
        uncacheable_xla=uncacheable_xla,
        uncacheable_names=sorted(set(names)),
        too_fast=stderr.count("because it took <"),
    )


def _folder_size(path: Path) -> tuple[int, int]:
    files = [p for p in path.rglob("*") if p.is_file()]
    return len(files), sum(p.stat().st_size for p in files)


def time_config(stem: str, overrides: list[str], work: Path) -> dict:
    sets = [a for s in overrides for a in ("--set", s)]
    cache = work / f"{stem}-cache"
    out: dict = dict(overrides=overrides)
    metrics = {}
    for mode, flags in (
        ("no_cache", ["--no-compile-cache"]),
        ("cold", ["--cache-dir", str(cache)]),
        ("warm", ["--cache-dir", str(cache)]),
    ):
        run_dir = work / f"{stem}-{mode}"
        argv = [sys.executable, "-m", "jaxsci.cli", "run", f"configs/{stem}.yaml"]
        argv += ["--out", str(run_dir), "--quiet", *sets, *flags]
        out[mode], proc = _timed(argv)
        out.update({f"{mode}_{k}": v for k, v in _compile_log(proc.stderr).items()})
        found = json.loads((run_dir / "metrics.json").read_text())
        metrics[mode] = {k: found[k] for k in _METRIC_KEYS if k in found}
        if mode == "cold":
            out["cache_files"], out["cache_bytes"] = _folder_size(cache)
    out["same_metrics"] = metrics["no_cache"] == metrics["cold"] == metrics["warm"]
    out["command"] = " ".join(["jaxsci run", f"configs/{stem}.yaml", *sets])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--repeats", type=int, default=5, help="runs of --help (median)")
    parser.add_argument("--json", help="write the results here")
    parser.add_argument("--quick", action="store_true", help="l63 only, --help 3 times")
    parser.add_argument(
        "--env",
        nargs="+",
        default=[],
        metavar="KEY=VALUE",
        help="what-if: extra environment of the runs (e.g. EQX_ON_ERROR=nan: equinox's "
        "runtime checks give NaN instead of a host callback that raises)",
    )
    args = parser.parse_args()
    _EXTRA_ENV.update(item.split("=", 1) for item in args.env)
    if args.quick:
        args.configs, args.repeats = ["l63"], 3

    result: dict = dict(machine=machine_summary(), env=dict(_EXTRA_ENV))
    print("load average at the start:", result["machine"]["load_average"])
    result["help"] = h = time_help(args.repeats)
    print(
        f"jaxsci --help: {h['help']:.2f} s (median of {args.repeats}); "
        f"import jaxsci.pipelines (what --help imported before): {h['import_pipelines']:.2f} s"
    )
    print(
        f"\n{'config':<20} {'no cache':>9} {'cold':>7} {'warm':>7} {'warm/none':>9}  "
        "XLA compile none/cold/warm (programs, warm hits; uncacheable: n, s)  cache"
    )
    result["configs"] = {}
    with tempfile.TemporaryDirectory(prefix="jaxsci-bench-cache-") as tmp:
        for stem in args.configs:
            r = result["configs"][stem] = time_config(stem, CONFIGS[stem], Path(tmp))
            flag = "" if r["same_metrics"] else "  METRICS DIFFER"
            print(
                f"{stem:<20} {r['no_cache']:>8.1f}s {r['cold']:>6.1f}s {r['warm']:>6.1f}s "
                f"{r['warm'] / r['no_cache']:>9.2f}  {r['no_cache_xla']:.1f}/{r['cold_xla']:.1f}/"
                f"{r['warm_xla']:.1f}s ({r['warm_programs']}, {r['warm_hits']}; "
                f"{r['cold_uncacheable']}, {r['cold_uncacheable_xla']:.1f}s)  "
                f"{r['cache_files']} files, "
                f"{r['cache_bytes'] / 2**20:.1f} MiB{flag}",
                flush=True,
            )
            print(
                f"{'':<20} uncacheable (host callbacks): {r['cold_uncacheable_names']}; "
                f"too fast to cache: {r['cold_too_fast']}; load {os.getloadavg()}",
                flush=True,
            )
    finish(result, args.json)


if __name__ == "__main__":
    main()
