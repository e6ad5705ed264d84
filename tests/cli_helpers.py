"""Shared helpers for tests that drive the `jaxsci` CLI in-process."""

import re
from pathlib import Path

from jaxsci.cli import main
from jaxsci.pipelines._runner import COMPLETE

#: `--set` overrides that make configs/l63.yaml a run of a few RK4 steps: no spin-up, no
#: Lyapunov run (for tests of the run folder and the CLI, not of the pipeline).
L63_FAST = [
    "--set",
    "integrate.t1=0.08",
    "--set",
    "integrate.save_every=0.02",
    "--set",
    "integrate.spinup=0",
    "--set",
    "lyapunov=null",
]


def run_cli(capsys, *argv):
    """Run `jaxsci *argv` in-process; return (exit code, stdout, stderr)."""
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def assert_files_logged_once(run_dir):
    """Every file of a finished run folder is named by exactly one line of its run.log
    (the runner's closing `wrote ...` line), not again by a plot helper or the pipeline."""
    run_dir = Path(run_dir)
    lines = (run_dir / "run.log").read_text().splitlines()
    names = sorted(p.name for p in run_dir.iterdir() if p.name != COMPLETE)
    assert any(name.endswith(".png") for name in names), names
    for name in names:
        word = re.compile(rf"(?<![\w./-]){re.escape(name)}(?![\w.-])")
        hits = [line for line in lines if word.search(line)]
        assert len(hits) == 1, (name, hits)
