"""Load a YAML config, apply `--set` overrides, validate it and run it into a run folder."""

import contextlib
import datetime
import json
import logging
import math
import shutil
import signal
import sys
import threading
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import jax
import numpy as np
import yaml

from .._interrupts import remembered_interrupts
from .._progress import progress_silenced
from ._files import PartialRun, write_atomically
from ._registry import PIPELINES, Pipeline
from ._schema import ConfigError, did_you_mean, to_dict, validate

logger = logging.getLogger("jaxsci")

#: The file a run writes last, once its metrics (and arrays, plots) are all written: a run
#: folder without it holds a failed, interrupted or running run.
COMPLETE = "COMPLETE"


class RunFolderError(Exception):
    """The run folder (`--out`) cannot be used as asked: it exists without `--overwrite` or
    `--resume`, it is not a jaxsci run folder, or it holds another config than the resumed
    run."""


@contextlib.contextmanager
def interrupts_ignored() -> Iterator[None]:
    """Ignore Ctrl-C (SIGINT) inside the block (main thread only; elsewhere a no-op): for
    the last steps of a run that has finished, so that a late interrupt cannot leave a
    complete run half written or reported as interrupted."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def is_complete(run_dir: str | Path) -> bool:
    """Whether `run_dir` holds a finished run (its `COMPLETE` marker)."""
    return (Path(run_dir) / COMPLETE).is_file()


def _is_run_folder(path: Path) -> bool:
    return (path / "config.yaml").is_file() or (path / "run.log").is_file()


def _config_differences(saved: Any, new: Any, prefix: str = "") -> list[str]:
    """The dotted keys at which two resolved configs differ."""
    if isinstance(saved, dict) and isinstance(new, dict):
        out = []
        for key in sorted(set(saved) | set(new), key=str):
            out += _config_differences(saved.get(key), new.get(key), f"{prefix}{key}.")
        return out
    return [] if saved == new else [prefix.rstrip(".")]


def prepare_run_folder(
    run_dir: Path, resolved: dict, *, overwrite: bool = False, resume: bool = False
) -> bool:
    """Make `run_dir` ready for a run of the `resolved` config; return whether it resumes.

    A missing or empty folder is used as is. An existing non-empty one is refused (a
    `RunFolderError`) unless `overwrite` (it is cleared; only a jaxsci run folder, one with
    `config.yaml` or `run.log`, is ever cleared) or `resume` (an unfinished run of the same
    config continues there: pipelines with checkpoints pick them up, the others run again
    from the start). So the files of two different runs never sit side by side.
    """
    if overwrite and resume:
        raise RunFolderError("--overwrite and --resume exclude each other; pass one")
    exists = run_dir.exists()
    if exists and not run_dir.is_dir():
        raise RunFolderError(f"--out {run_dir} exists and is not a folder")
    has_files = exists and any(run_dir.iterdir())
    if resume:
        if not (exists and (run_dir / "config.yaml").is_file()):
            raise RunFolderError(f"--resume: {run_dir} holds no run to resume (no config.yaml)")
        if is_complete(run_dir):
            raise RunFolderError(
                f"--resume: the run in {run_dir} is complete; pass --overwrite to run it again"
            )
        saved = yaml.safe_load((run_dir / "config.yaml").read_text())
        differ = _config_differences(saved, resolved)
        if differ:
            raise RunFolderError(
                f"--resume: the config differs from the one of the run in {run_dir} at "
                f"{', '.join(differ)}; resume with the same config and overrides, or pass "
                "--overwrite"
            )
        return True
    if has_files:
        if not overwrite:
            state = "a complete run" if is_complete(run_dir) else "an unfinished run"
            what = state if _is_run_folder(run_dir) else "files"
            raise RunFolderError(
                f"--out {run_dir} already exists and holds {what}; pass --overwrite to clear "
                "it, or --resume to continue an interrupted run (checkpointed pipelines go on "
                "from their last checkpoint)"
            )
        if not _is_run_folder(run_dir):
            raise RunFolderError(
                f"--overwrite: {run_dir} is not a jaxsci run folder (no config.yaml or "
                "run.log); refusing to clear it"
            )
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    return False


def read_yaml(path: str | Path) -> dict:
    """Parse a YAML config file into a mapping (a ConfigError if it is not one)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError("", f"config file {str(path)!r} does not exist")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ConfigError("", f"{path} is not valid YAML: {err}") from err
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError("", f"{path} must contain a mapping of keys, got {type(raw).__name__}")
    return raw


def description(path: str | Path) -> str:
    """The config's one-line description: its first comment line."""
    for line in Path(path).read_text().splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            return stripped.lstrip("#").strip()
        if stripped:
            break
    return ""


def _set_key(raw: dict, key: str, value: Any) -> None:
    """Set the dotted `key` of the nested mapping `raw` to `value` (sections made as needed)."""
    parts = key.split(".")
    node = raw
    for depth, part in enumerate(parts[:-1]):
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            where = ".".join(parts[: depth + 1])
            raise ConfigError(key, f"cannot set a sub-key: {where!r} is {child!r}, not a section")
        node = child
    node[parts[-1]] = value


def apply_overrides(raw: dict, overrides: Iterable[str]) -> dict:
    """Apply `a.b.c=value` overrides to the nested mapping `raw` (value parsed as YAML)."""
    for item in overrides:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key or any(not part for part in key.split(".")):
            raise ConfigError(
                key or item, f"--set expects key=value with a dotted key, got {item!r}"
            )
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError as err:
            raise ConfigError(key, f"--set value {text!r} is not valid YAML: {err}") from err
        _set_key(raw, key, value)
    return raw


def apply_objects(raw: dict, objects: Mapping[str, Any]) -> dict:
    """Put Python objects into the nested mapping `raw` at their dotted keys (`model`,
    `filter.method`, ...); `validate` then checks that each key takes objects of that kind."""
    for key, value in objects.items():
        if not isinstance(key, str) or not key or any(not p for p in key.split(".")):
            raise ConfigError(str(key), f"objects: expected a dotted config key, got {key!r}")
        _set_key(raw, key, value)
    return raw


def resolve(raw: Mapping[str, Any]) -> tuple[Pipeline, Any]:
    """Pick the pipeline named by `raw['pipeline']` and validate the rest against its schema."""
    raw = dict(raw)
    if "pipeline" not in raw:
        raise ConfigError("pipeline", f"required key is missing; one of {list(PIPELINES)}")
    name = raw.pop("pipeline")
    if not isinstance(name, str) or name not in PIPELINES:
        raise ConfigError(
            "pipeline",
            f"expected one of {list(PIPELINES)}, got {name!r}{did_you_mean(str(name), PIPELINES)}",
        )
    pipeline = PIPELINES[name]
    return pipeline, validate(pipeline.schema, raw)


def _copied(raw: Mapping[str, Any]) -> dict:
    """The nested mappings of `raw` copied (overrides must not change the caller's); other
    values, objects included, shared."""
    return {k: _copied(v) if isinstance(v, Mapping) else v for k, v in raw.items()}


def load_config(
    path: str | Path | Mapping[str, Any],
    overrides: Iterable[str] = (),
    objects: Mapping[str, Any] | None = None,
) -> tuple[Pipeline, Any]:
    """Read (or take, when `path` is a mapping as the YAML would parse, `pipeline:` key
    included), override and validate a config, with Python `objects` in place of the values
    at their dotted keys. Raises ConfigError on any problem."""
    raw = _copied(path) if isinstance(path, Mapping) else read_yaml(path)
    return resolve(apply_objects(apply_overrides(raw, overrides), objects or {}))


def resolved_dict(pipeline: Pipeline, config: Any) -> dict:
    """The validated config with every default filled in, as written to `config.yaml`."""
    return {"pipeline": pipeline.name, **to_dict(config)}


def default_run_dir(config_path: str | Path, root: str | Path = "runs") -> Path:
    """`runs/<config-stem>-<timestamp>` (the stem: the pipeline's name for a config given
    as a mapping), made unique with a suffix if it exists."""
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    base = Path(root) / f"{Path(config_path).stem}-{stamp}"
    out, i = base, 1
    while out.exists():
        out, i = Path(f"{base}-{i}"), i + 1
    return out


@contextlib.contextmanager
def run_logging(
    run_dir: Path, *, echo: bool = True, append: bool = False
) -> Iterator[logging.Logger]:
    """Send the `jaxsci` logger to `run_dir/run.log` (and the terminal) for one run;
    `append` keeps the log of an earlier attempt (a resumed run)."""
    handlers: list[logging.Handler] = [
        logging.FileHandler(run_dir / "run.log", mode="a" if append else "w")
    ]
    handlers[0].setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    if echo:
        handlers.append(logging.StreamHandler(sys.stderr))
        handlers[1].setFormatter(logging.Formatter("%(message)s"))
    old_level, old_propagate = logger.level, logger.propagate
    logger.setLevel(logging.INFO)
    logger.propagate = False
    for handler in handlers:
        logger.addHandler(handler)
    try:
        yield logger
    finally:
        for handler in handlers:
            logger.removeHandler(handler)
            handler.close()
        logger.setLevel(old_level)
        logger.propagate = old_propagate


def _format(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}" if math.isfinite(value) else str(value)
    if isinstance(value, list):
        more = ", ..." if len(value) > 6 else ""
        return "[" + ", ".join(_format(v) for v in value[:6]) + more + "]"
    if isinstance(value, Mapping):
        items = list(value.items())
        more = ", ..." if len(items) > 8 else ""
        return "{" + ", ".join(f"{k}: {_format(v)}" for k, v in items[:8]) + more + "}"
    return str(value)


def _rows(metrics: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(name, value) rows: a nested mapping gives one row per entry (`metric.key`), its own
    values formatted compactly on that row."""
    rows = []
    for key, value in metrics.items():
        if isinstance(value, Mapping) and value:
            rows += [(f"{key}.{sub}", _format(v)) for sub, v in value.items()]
        else:
            rows.append((str(key), _format(value)))
    return rows


def metrics_table(metrics: Mapping[str, Any]) -> str:
    """A two-column text table of the metrics (numbers to 4 significant digits; a nested
    mapping one row per entry)."""
    rows = _rows(metrics)
    width = max((len(k) for k, _ in rows), default=6)
    rule = "-" * (width + 26)
    lines = [f"{k:<{width}}  {v}" for k, v in rows]
    return "\n".join([rule, f"{'metric':<{width}}  value", rule, *lines, rule])


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray | np.generic | jax.Array):
        return _jsonable(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def run_config(
    config_path: str | Path | Mapping[str, Any],
    out: str | Path | None = None,
    overrides: Iterable[str] = (),
    *,
    objects: Mapping[str, Any] | None = None,
    echo: bool = True,
    overwrite: bool = False,
    resume: bool = False,
) -> tuple[Path, dict]:
    """Validate `config_path` (+ overrides) and run its pipeline into a run folder.

    `config_path` is a YAML file or the same content as a mapping (`{"pipeline": "simulate",
    "model": ..., ...}`). From Python, `objects` puts objects in place of config values at
    their dotted keys, so the whole experiment (metrics, arrays, plots, run folder) runs on a
    user's own class: `objects={"model": MyModel(...)}` (every pipeline with a model
    section), `{"filter.method": MyFilter(...)}` (assimilate), a posterior problem, a
    network or samplers (see each pipeline's schema: the keys whose help says "object").
    `config.yaml` records each object as its class and scalar fields.

    With `echo=False` (`jaxsci run --quiet`) the log goes to `run.log` only and no progress
    bar is shown.

    Writes `config.yaml` (resolved), `run.log`, `metrics.json`, whatever the pipeline writes
    (arrays, plots) and, last, the `COMPLETE` marker. An existing non-empty `out` is refused
    unless `overwrite` (cleared first) or `resume` (an unfinished run of the same config
    goes on there; see `prepare_run_folder`). A failed or interrupted run leaves no marker
    and says so in `run.log`. Returns the run folder and the metrics.

    Raises:
        ConfigError: before anything is written, if the config is invalid.
        RunFolderError: before anything is written, if `out` cannot be used as asked.
    """
    objects = dict(objects or {})
    pipeline, config = load_config(config_path, overrides, objects)
    if isinstance(config_path, Mapping):
        source, stem = "a mapping given in Python", pipeline.name
    else:
        source, stem = str(config_path), config_path
    run_dir = Path(out) if out is not None else default_run_dir(stem)
    resolved = resolved_dict(pipeline, config)
    resumed = prepare_run_folder(run_dir, resolved, overwrite=overwrite, resume=resume)
    if not resumed:
        header = f"# Resolved from {source}" + "".join(f"\n#   --set {o}" for o in overrides)
        header += "".join(
            f"\n#   object at {k}: {type(v).__qualname__}" for k, v in objects.items()
        )
        text = header + "\n" + yaml.safe_dump(resolved, sort_keys=False)
        (run_dir / "config.yaml").write_text(text)
    with run_logging(run_dir, echo=echo, append=resumed) as log:
        verb = "resuming" if resumed else "running"
        log.info("jaxsci %s, %s: %s -> %s", pipeline.name, verb, source, run_dir)
        cache = jax.config.values["jax_compilation_cache_dir"]
        on = cache and jax.config.values["jax_enable_compilation_cache"]
        log.info("XLA compilation cache: %s", cache if on else "off")
        try:
            quiet = contextlib.nullcontext() if echo else progress_silenced()
            with remembered_interrupts(), quiet:  # a Ctrl-C swallowed by jax is raised later
                metrics = _jsonable(pipeline.run(config, run_dir))
        except PartialRun as stop:
            with interrupts_ignored():
                text = json.dumps(_jsonable(stop.metrics), indent=2) + "\n"
                write_atomically(run_dir / "metrics.json", lambda tmp: tmp.write_text(text))
                log.error(
                    "interrupted; partial metrics (marked `partial: true`) in %s; the run is "
                    "incomplete (no %s marker); --resume runs it again",
                    run_dir / "metrics.json",
                    COMPLETE,
                )
            raise
        except KeyboardInterrupt:
            log.error(
                "interrupted; the run is incomplete (no %s marker); --resume continues it",
                COMPLETE,
            )
            raise
        except Exception:
            log.exception("run failed; the config is in %s", run_dir / "config.yaml")
            raise
        with interrupts_ignored():  # the run has finished: write it out whole
            text = json.dumps(metrics, indent=2) + "\n"
            write_atomically(run_dir / "metrics.json", lambda tmp: tmp.write_text(text))
            # The one line that names the run's files (plot helpers and pipelines do not).
            log.info("wrote %s", ", ".join(sorted(p.name for p in run_dir.iterdir())))
            stamp = datetime.datetime.now().isoformat() + "\n"
            write_atomically(run_dir / COMPLETE, lambda tmp: tmp.write_text(stamp))
    return run_dir, metrics
