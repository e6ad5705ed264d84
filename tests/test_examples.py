"""Every script in examples/ runs as a script with --fast (the convention for examples).

Scripts that take `--out DIR` write into a temporary folder; those that make figures must
write at least one PNG there.
"""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "examples").glob("*.py"))


def test_there_are_examples():
    assert EXAMPLES


@pytest.mark.parametrize("script", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_runs(script, tmp_path):
    source = script.read_text()
    args = ["--fast"]
    if '"--out"' in source:
        args += ["--out", str(tmp_path)]
    proc = subprocess.run(
        [sys.executable, str(script), *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    if "savefig" in source and "--out" in args:
        assert list(tmp_path.glob("*.png")), f"{script.name} wrote no figure"
