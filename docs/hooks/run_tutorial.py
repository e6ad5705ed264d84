"""Execute one tutorial script cell by cell and write its page material (used by tutorials.py).

    python docs/hooks/run_tutorial.py examples/tutorial_x.py OUT_DIR

The script's cells (separated by `# %%` lines) run in order in one namespace, as
`__main__`, with argv holding only the script's path and matplotlib's Agg backend. After
each cell every open figure is saved to OUT_DIR/<stem>_<n>.png and closed. OUT_DIR/cells.json
lists, per cell, its markdown prose, its code, what it printed and its figures. An exception
in a cell is printed with the cell's number and exits with status 1 (a failed docs build).
"""

import contextlib
import io
import json
import os
import sys
import time
import traceback
from pathlib import Path

os.environ.setdefault("MPLBACKEND", "Agg")

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tutorial_cells import split_cells  # noqa: E402


def main(script: Path, out_dir: Path) -> int:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    title, intro, cells = split_cells(script.read_text())
    namespace = {"__name__": "__main__", "__file__": str(script)}
    sys.argv = [str(script)]
    records = []
    n_fig = 0
    for i, (prose, code) in enumerate(cells, start=1):
        buffer = io.StringIO()
        start = time.perf_counter()
        try:
            compiled = compile(code, f"{script} (cell {i})", "exec")
            with contextlib.redirect_stdout(buffer):
                exec(compiled, namespace)  # noqa: S102
        except Exception:
            sys.stdout.write(buffer.getvalue())
            print(f"{script}: cell {i} failed", file=sys.stderr)
            traceback.print_exc()
            return 1
        figures = []
        for num in plt.get_fignums():
            n_fig += 1
            name = f"{script.stem}_{n_fig}.png"
            plt.figure(num).savefig(out_dir / name, dpi=90, bbox_inches="tight")
            figures.append(name)
        plt.close("all")
        seconds = round(time.perf_counter() - start, 2)
        records.append(
            {
                "prose": prose,
                "code": code,
                "stdout": buffer.getvalue(),
                "figures": figures,
                "seconds": seconds,
            }
        )
    page = {"title": title, "intro": intro, "cells": records}
    (out_dir / "cells.json").write_text(json.dumps(page, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), Path(sys.argv[2])))
