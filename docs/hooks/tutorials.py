"""MkDocs hook: execute `examples/tutorial_*.py` and add each as a page with its figures.

`examples/tutorial_<name>.py` becomes the page `tutorials/<name>.md`: the script's
docstring (title and introduction), then per cell its prose, its code, what it printed and
the figures it made (`run_tutorial.py` executes the script in a subprocess, cell by cell).
A script that raises fails the build. The scripts run two at a time (`JAXSCI_DOCS_JOBS`
changes that); a script's results are kept in `.cache/docs-tutorials/` under a hash of the
script and of the `jaxsci` sources, so `mkdocs serve` re-runs only what changed.
"""

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
CACHE = ROOT / ".cache" / "docs-tutorials"
RUNNER = Path(__file__).resolve().parent / "run_tutorial.py"
PREFIX = "tutorial_"


def _digest(script: Path) -> str:
    h = hashlib.sha256(script.read_bytes())
    for helper in sorted(RUNNER.parent.glob("*.py")):  # the runner and its cell splitter
        h.update(helper.read_bytes())
    for path in sorted((ROOT / "jaxsci").rglob("*.py")):
        h.update(path.as_posix().encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def _execute(script: Path) -> tuple[Path, float]:
    """Run `script` (or reuse its cached run); return the folder of cells.json and PNGs."""
    out = CACHE / f"{script.stem}-{_digest(script)}"
    if (out / "cells.json").exists():
        return out, 0.0
    for old in CACHE.glob(f"{script.stem}-*"):  # runs of earlier versions
        shutil.rmtree(old, ignore_errors=True)
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    env = dict(os.environ, MPLBACKEND="Agg", PYTHONPATH=path)
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, str(RUNNER), str(script), str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        shutil.rmtree(out, ignore_errors=True)
        raise PluginError(
            f"tutorial {script.relative_to(ROOT)} failed:\n"
            f"{proc.stdout[-2000:]}{proc.stderr[-4000:]}"
        )
    return out, time.perf_counter() - start


def _page(script: Path, folder: Path) -> str:
    page = json.loads((folder / "cells.json").read_text())
    parts = [
        f"# {page['title']}",
        page["intro"],
        f"*This page is the script `examples/{script.name}`, run when the documentation is "
        "built; the figures and printed output below are from that run.*",
    ]
    for cell in page["cells"]:
        if cell["prose"]:
            parts.append(cell["prose"])
        if cell["code"].strip():
            parts.append(f"```python\n{cell['code']}\n```")
        if cell["stdout"].strip():
            parts.append(f"```text\n{cell['stdout'].rstrip()}\n```")
        for name in cell["figures"]:
            parts.append(f"![a figure made by examples/{script.name}]({name})")
    return "\n\n".join(parts) + "\n"


def on_files(files: Files, config) -> Files:
    scripts = sorted(EXAMPLES.glob(f"{PREFIX}*.py"))
    jobs = int(os.environ.get("JAXSCI_DOCS_JOBS", "2"))
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        runs = list(pool.map(_execute, scripts))
    log = []
    for script, (folder, seconds) in zip(scripts, runs, strict=True):
        name = script.stem[len(PREFIX) :]
        files.append(File.generated(config, f"tutorials/{name}.md", content=_page(script, folder)))
        for png in sorted(folder.glob("*.png")):
            files.append(File.generated(config, f"tutorials/{png.name}", abs_src_path=str(png)))
        log.append(f"{script.name}: {'cached' if seconds == 0.0 else f'{seconds:.1f} s'}")
    print("tutorials executed: " + ", ".join(log), file=sys.stderr)
    return files
