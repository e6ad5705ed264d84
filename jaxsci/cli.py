"""The `jaxsci` command: `jaxsci run CONFIG.yaml [--out DIR] [--set key=value ...]
[--overwrite | --resume]`, `jaxsci list`.

A run folder gets a `COMPLETE` marker last; an existing `--out` is used only with
`--overwrite` (cleared first) or `--resume` (the unfinished run there continues).

Exit codes: 0 success, 1 the run failed, 2 bad usage, an invalid config (the message names
the full dotted key and what was expected) or an unusable run folder, 130 interrupted
(Ctrl-C; recorded in run.log).
"""

import argparse
import logging
import os
import signal
import sys
import threading
import traceback
from pathlib import Path

import yaml

_EPILOG = """examples:
  jaxsci run configs/ks.yaml
  jaxsci run configs/l96.yaml --out runs/l96 --set integrate.t1=20 --set model.params.forcing=10
  jaxsci run configs/ks.yaml --set lyapunov=null        # switch the Lyapunov section off
  jaxsci run configs/ks.yaml --dry-run                  # print the resolved config only
  jaxsci run configs/l96.yaml --out runs/l96 --overwrite   # run again into the same folder
  jaxsci run configs/burgers_fno.yaml --out runs/b --set training.checkpoint=true --resume
  jaxsci list"""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="jaxsci",
        description="Run jaxsci experiment pipelines from YAML configs.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    from . import __version__

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


def _run(args) -> int:
    from .pipelines import load_config, metrics_table, resolved_dict, run_config
    from .pipelines._runner import interrupts_ignored

    if args.dry_run:
        pipeline, config = load_config(args.config, args.overrides)
        print(yaml.safe_dump(resolved_dict(pipeline, config), sort_keys=False), end="")
        return 0
    run_dir, metrics = run_config(
        args.config,
        args.out,
        args.overrides,
        echo=not args.quiet,
        overwrite=args.overwrite,
        resume=args.resume,
    )
    with interrupts_ignored():  # the run is complete; a late Ctrl-C changes nothing
        print(metrics_table(metrics))
        print(f"results in {run_dir}/")
    return 0


def _summary(err: Exception) -> str:
    """One line for a failed run: equinox runtime errors carry their message mid-text."""
    for line in str(err).splitlines():
        if line.startswith("equinox.EquinoxRuntimeError: "):
            return line.removeprefix("equinox.")
    first = str(err).strip().splitlines()
    return f"{type(err).__name__}: {first[0] if first else ''}"


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `jaxsci` console script; returns the exit code."""
    from .pipelines import ConfigError, RunFolderError

    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on bad usage, 0 on --help
        return int(exc.code or 0)
    try:
        return _list(args) if args.command == "list" else _run(args)
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
