"""The `jaxsci` command: `jaxsci run CONFIG.yaml [--out DIR] [--set key=value ...]
[--overwrite | --resume] [--cache-dir DIR | --no-compile-cache]`, `jaxsci list`.

JAX and the library are imported only after the arguments are parsed, so `--help`,
`--version` and usage errors answer at once.

`jaxsci run` keeps JAX's persistent compilation cache on: the XLA programs of a run are
stored on disk and a later run of the same (or a similar) config loads them instead of
compiling again. The folder is, first match wins: `--cache-dir DIR`, `$JAXSCI_CACHE_DIR`,
a folder already configured for JAX (`$JAX_COMPILATION_CACHE_DIR`; used with JAX's own
settings), `$XDG_CACHE_HOME/jaxsci/xla`, `~/.cache/jaxsci/xla`. `--no-compile-cache` (or
`JAXSCI_NO_COMPILE_CACHE=1`) turns it off. The folder may be deleted at any time. Only the
command does this; `import jaxsci` leaves JAX's configuration alone.

`jaxsci run --distributed` runs one process of a multi-process run (the same command in every
process, e.g. one per node or per GPU under SLURM's `srun`): it first joins the processes
with `jaxsci.distributed.initialize()` (the coordinator, process count and process id come
from the cluster environment that JAX detects: SLURM, Open MPI, Cloud TPU, or
`JAX_COORDINATOR_ADDRESS` / `JAX_NUM_PROCESSES` / `JAX_PROCESS_ID`), so that the sharded
parts of the pipeline (ensembles, chains) spread over the devices of all processes. Process
0 writes the run folder and prints the table; the others run the same pipeline (they must:
every process takes part in every sharded computation) into a temporary folder that is
removed afterwards, and print nothing. Without a detectable cluster the command stops with
exit code 2 and says what to set. `--resume` is refused with several processes (only
process 0 would find the run to resume). Process 0 prepares `--out` before the pipeline
starts and tells the others the outcome, so a refused folder (it exists, no `--overwrite`)
stops every process with exit code 2 and process 0's message. A failure of process 0 later,
mid-pipeline, is not relayed: the others then stop at JAX's collective timeouts.

A run folder gets a `COMPLETE` marker last; an existing `--out` is used only with
`--overwrite` (cleared first) or `--resume` (the unfinished run there continues).

Exit codes: 0 success, 1 the run failed, 2 bad usage, an invalid config (the message names
the full dotted key and what was expected) or an unusable run folder, 130 interrupted
(Ctrl-C; recorded in run.log).
"""

import argparse
import contextlib
import logging
import os
import signal
import sys
import threading
import traceback
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

from . import __version__

CACHE_DIR_ENV = "JAXSCI_CACHE_DIR"
NO_CACHE_ENV = "JAXSCI_NO_COMPILE_CACHE"

_EPILOG = """examples:
  jaxsci run configs/ks.yaml
  jaxsci run configs/l96.yaml --out runs/l96 --set integrate.t1=20 --set model.params.forcing=10
  jaxsci run configs/ks.yaml --set lyapunov=null        # switch the Lyapunov section off
  jaxsci run configs/ks.yaml --dry-run                  # print the resolved config only
  jaxsci run configs/l96.yaml --out runs/l96 --overwrite   # run again into the same folder
  jaxsci run configs/burgers_fno.yaml --out runs/b --set training.checkpoint=true --resume
  jaxsci run configs/l63.yaml --no-compile-cache        # compile everything afresh
  srun -N 2 --ntasks-per-node=1 jaxsci run configs/l96.yaml --distributed --out runs/l96
  jaxsci list
  jaxsci list --schema                                  # every config key, type and default

compiled XLA programs are kept in $JAXSCI_CACHE_DIR (default ~/.cache/jaxsci/xla, or
$XDG_CACHE_HOME/jaxsci/xla); --cache-dir DIR or --no-compile-cache change that"""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="jaxsci",
        description="Run jaxsci experiment pipelines from YAML configs.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"jaxsci {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = commands.add_parser(
        "run",
        help="validate a config and run its pipeline",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument("config", help="YAML config file (see `jaxsci list`)")
    run.add_argument(
        "--out", metavar="DIR", help="run folder (default: runs/<config-stem>-<timestamp>)"
    )
    run.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config key, e.g. --set integrate.dt=0.1 (value parsed as "
        "YAML; repeatable)",
    )
    run.add_argument(
        "--dry-run", action="store_true", help="validate and print the resolved config, run nothing"
    )
    run.add_argument("--quiet", action="store_true", help="log to run.log only")
    run.add_argument(
        "--distributed",
        action="store_true",
        help="one process of a multi-process run (e.g. under srun): join the others with "
        "jaxsci.distributed.initialize() (cluster detected from the environment) first; "
        "process 0 writes the run folder",
    )
    again = run.add_mutually_exclusive_group()
    again.add_argument(
        "--overwrite",
        action="store_true",
        help="clear an existing run folder --out first (only a jaxsci run folder is cleared)",
    )
    again.add_argument(
        "--resume",
        action="store_true",
        help="continue the unfinished run in --out (same config and --set overrides): "
        "pipelines with checkpoints (training with training.checkpoint: true) go on from "
        "the last one, the others run again from the start",
    )
    cache = run.add_mutually_exclusive_group()
    cache.add_argument(
        "--cache-dir",
        metavar="DIR",
        help=f"persistent XLA compilation cache folder (default: ${CACHE_DIR_ENV}, else "
        "$XDG_CACHE_HOME/jaxsci/xla or ~/.cache/jaxsci/xla)",
    )
    cache.add_argument(
        "--no-compile-cache",
        action="store_true",
        help=f"compile without the persistent cache (also {NO_CACHE_ENV}=1)",
    )
    lst = commands.add_parser("list", help="show the pipelines and the configs in configs/")
    lst.add_argument(
        "--configs",
        metavar="DIR",
        help="config folder (default: ./configs, else the one beside the package)",
    )
    lst.add_argument("--schema", action="store_true", help="also show each pipeline's keys")
    return parser


def _config_dir(given: str | None) -> Path:
    if given is not None:
        return Path(given)
    here = Path("configs")
    if here.is_dir():
        return here
    return Path(__file__).resolve().parent.parent / "configs"


def cache_dir(
    given: str | None, disabled: bool, environ: Mapping[str, str], jax_dir: str | None
) -> tuple[Path | None, bool]:
    """The compilation cache folder of a run (None: off) and whether jaxsci sets it up
    (False: a folder configured for JAX itself, `jax_dir`, kept with JAX's own settings).

    First match wins: `disabled` (`--no-compile-cache`) or `JAXSCI_NO_COMPILE_CACHE` set
    to anything but empty/0; `given` (`--cache-dir`); `JAXSCI_CACHE_DIR`; `jax_dir`;
    `XDG_CACHE_HOME/jaxsci/xla`; `~/.cache/jaxsci/xla`.
    """
    if disabled or environ.get(NO_CACHE_ENV, "") not in ("", "0"):
        return None, True
    if given:
        return Path(given).expanduser(), True
    if environ.get(CACHE_DIR_ENV):
        return Path(environ[CACHE_DIR_ENV]).expanduser(), True
    if jax_dir:
        return Path(jax_dir), False
    base = environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "jaxsci" / "xla", True


@contextlib.contextmanager
def _compilation_cache(args) -> Iterator[None]:
    """Point JAX's persistent compilation cache at the run's folder (see `cache_dir`) for
    the duration of a run, then restore JAX's settings (so an in-process caller, such as a
    test, keeps its own). The runner records the outcome in run.log."""
    import jax
    from jax.experimental.compilation_cache import compilation_cache

    names = (
        "jax_compilation_cache_dir",
        "jax_enable_compilation_cache",
        "jax_persistent_cache_min_compile_time_secs",
        "jax_persistent_cache_min_entry_size_bytes",
    )
    saved = {name: jax.config.values[name] for name in names}
    jax_dir = saved["jax_compilation_cache_dir"] if saved["jax_enable_compilation_cache"] else None
    folder, ours = cache_dir(args.cache_dir, args.no_compile_cache, os.environ, jax_dir)
    if folder is not None and ours:
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            print(f"jaxsci: compilation cache off: cannot create {folder}: {err}", file=sys.stderr)
            folder = None
    if not ours:  # JAX's own cache folder and settings, as configured
        yield
        return
    changed: dict[str, Any] = {"jax_enable_compilation_cache": folder is not None}
    if folder is not None:
        # Every program is worth keeping: a short run compiles many programs that take
        # well under JAX's default 1 s threshold each but most of the run's time together,
        # and loading one from disk takes milliseconds. -1: no minimum entry size.
        changed.update(
            jax_compilation_cache_dir=str(folder),
            jax_persistent_cache_min_compile_time_secs=0.0,
            jax_persistent_cache_min_entry_size_bytes=-1,
        )
    for name, value in changed.items():
        jax.config.update(name, value)
    compilation_cache.reset_cache()  # JAX opens its cache once; reopen it with these settings
    try:
        yield
    finally:
        for name in changed:
            jax.config.update(name, saved[name])
        compilation_cache.reset_cache()


def _list(args) -> int:
    from .pipelines import PIPELINES, describe, description
    from .pipelines._models import MODELS

    print("pipelines:")
    width = max(len(n) for n in PIPELINES)
    for name, pipeline in PIPELINES.items():
        print(f"  {name:<{width}}  {pipeline.description}")
        if args.schema:
            print("    " + describe(pipeline.schema, 0).replace("\n", "\n    "))
    folder = _config_dir(args.configs)
    files = sorted(folder.glob("*.yaml")) + sorted(folder.glob("*.yml"))
    print(f"\nconfigs in {folder}:")
    if not files:
        print("  (none)")
    width = max((len(str(f)) for f in files), default=0)
    for path in files:
        print(f"  {str(path):<{width}}  {description(path)}")
    print("\nmodels (model.name):\n  " + ", ".join(MODELS))
    return 0


def _run(args, lead: bool = True) -> int:
    from .pipelines import load_config, metrics_table, resolved_dict, run_config
    from .pipelines._runner import interrupts_ignored

    if args.dry_run:
        pipeline, config = load_config(args.config, args.overrides)
        print(yaml.safe_dump(resolved_dict(pipeline, config), sort_keys=False), end="")
        return 0
    with _compilation_cache(args), _run_folder(args, lead) as out:
        if args.distributed:
            out = _prepared_together(args, out, lead)
        run_dir, metrics = run_config(
            args.config,
            out,
            args.overrides,
            echo=lead and not args.quiet,
            overwrite=args.overwrite,
            resume=args.resume,
        )
    if not lead:
        return 0
    with interrupts_ignored():  # the run is complete; a late Ctrl-C changes nothing
        print(metrics_table(metrics))
        print(f"results in {run_dir}/")
    return 0


class DistributedError(Exception):
    """`jaxsci run --distributed` could not join a multi-process run (exit code 2)."""


def _join(args) -> bool:
    """Join the processes of a `--distributed` run; return whether this is process 0.
    Called before the pipelines are imported: importing some of them creates arrays, which
    starts JAX's backend, after which no process can join."""
    import jax

    from .distributed import initialize

    try:
        initialize()
    except (ValueError, RuntimeError) as err:
        raise DistributedError(f"--distributed: {err}") from err
    if jax.process_count() > 1 and args.resume:
        raise DistributedError(
            "--distributed: --resume is not supported with several processes (only process 0 "
            "holds the run folder to resume); run again with --overwrite."
        )
    return jax.process_index() == 0


@contextlib.contextmanager
def _run_folder(args, lead: bool) -> Iterator[str | None]:
    """The run folder: `--out` for process 0 (and single-process runs), a temporary folder,
    removed afterwards, for the other processes of a `--distributed` run."""
    if lead:
        yield args.out
        return
    import tempfile

    with tempfile.TemporaryDirectory(prefix="jaxsci-process-") as folder:
        yield str(Path(folder) / "run")


#: Bytes of process 0's error message sent to the other processes (longer ones are cut).
_MESSAGE_BYTES = 2048


def _prepared_together(args, out: str | None, lead: bool) -> str | None:
    """Process 0 prepares the run folder `--out` (a missing default folder is named here), then
    tells every process the outcome: on a `RunFolderError` (an existing `--out` without
    `--overwrite`, ...) or a failed write, every process raises a `RunFolderError` with process
    0's message, so all exit 2 together. Without it only process 0 failed, and the others
    waited in the pipeline's first collective until JAX's timeouts (minutes). Single-process
    runs skip the exchange. Returns the folder for `run_config` (already prepared there: empty,
    so `run_config`'s own preparation passes)."""
    import jax

    if jax.process_count() == 1:
        return out
    import numpy as np
    from jax.experimental import multihost_utils

    from .pipelines import RunFolderError, load_config, prepare_run_folder, resolved_dict
    from .pipelines._runner import default_run_dir

    pipeline, config = load_config(args.config, args.overrides)  # a ConfigError: everywhere
    message = b""
    if lead:
        try:
            run_dir = Path(out) if out is not None else default_run_dir(args.config)
            prepare_run_folder(run_dir, resolved_dict(pipeline, config), overwrite=args.overwrite)
            out = str(run_dir)
        except (RunFolderError, OSError) as err:
            message = (str(err) or type(err).__name__).encode()[:_MESSAGE_BYTES] or b"?"
    sent = np.zeros(_MESSAGE_BYTES + 1, np.int32)  # [length (0: ready), the bytes...]
    sent[0], sent[1 : 1 + len(message)] = len(message), list(message)
    sent = np.asarray(multihost_utils.broadcast_one_to_all(sent))
    if sent[0]:
        text = bytes(sent[1 : 1 + sent[0]].astype(np.uint8)).decode(errors="replace")
        raise RunFolderError(text if lead else f"process 0: {text}")
    return out


def _summary(err: Exception) -> str:
    """One line for a failed run: equinox runtime errors carry their message mid-text."""
    for line in str(err).splitlines():
        if line.startswith("equinox.EquinoxRuntimeError: "):
            return line.removeprefix("equinox.")
    first = str(err).strip().splitlines()
    return f"{type(err).__name__}: {first[0] if first else ''}"


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `jaxsci` console script; returns the exit code."""
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on bad usage, 0 on --help
        return int(exc.code or 0)
    lead = True
    if args.command == "run" and args.distributed and not args.dry_run:
        try:
            lead = _join(args)
        except DistributedError as err:
            print(f"jaxsci: {err}", file=sys.stderr)
            return 2
    from .pipelines import ConfigError, RunFolderError  # imports JAX: after parsing

    try:
        return _list(args) if args.command == "list" else _run(args, lead)
    except ConfigError as err:
        print(f"jaxsci: invalid config: {err}", file=sys.stderr)
        return 2
    except RunFolderError as err:
        print(f"jaxsci: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("jaxsci: interrupted", file=sys.stderr)
        return 130
    except Exception as err:  # a failed run; its traceback is in run.log (and was echoed)
        if args.command == "run" and args.quiet:
            traceback.print_exc(file=sys.stderr)
        print(f"jaxsci: run failed: {_summary(err)}", file=sys.stderr)
        return 1


def console_main() -> None:
    """The console script: `main()`, then exit with its code. After an interrupt (130) the
    process ends at once once its output and logs are flushed (`os._exit`): finalising the
    interpreter while XLA may still be compiling or running on other threads could crash
    (a segmentation fault at exit instead of 130)."""
    try:
        code = main()
    except KeyboardInterrupt:  # before main's own handler (e.g. while importing)
        print("jaxsci: interrupted", file=sys.stderr)
        code = 130
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the outcome is decided
    if code == 130:
        sys.stdout.flush()
        sys.stderr.flush()
        logging.shutdown()
        os._exit(130)
    sys.exit(code)


if __name__ == "__main__":
    console_main()
