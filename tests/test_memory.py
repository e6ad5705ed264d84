"""The memory test of issue 19: big ensembles run within a stated memory formula.

Fast: XLA's own accounting of the compiled chunk program (`memory_analysis`: argument +
output + temporary bytes) is the per-chunk term c W of `integrate.streamed_ensemble`'s
formula, W <= 12 states per member for RK4, and it grows linearly with the chunk (not with
the ensemble). Slow: a fresh process's measured peak resident memory (VmHWM: `ru_maxrss`
without exited threads' marks, above a baseline reset after compiling,
tests/_memory_probe.py) stays under the formula plus a stated
slack, for a chunked Lorenz-96 ensemble and a chunked EnKF, while the unchunked runs at the
same sizes exceed it (so the bound can fail). The probe runs with
MALLOC_MMAP_THRESHOLD_=65536, so the slack is a few MiB (see SLACK), small enough that the
EnKF test also checks that the formula's observation-space term is needed.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from jaxsci import dynamics, integrate

ROOT = Path(__file__).resolve().parents[1]

#: What the formulas leave out and the measurement sees: the host copies of one chunk and
#: Python objects. The probe runs with MALLOC_MMAP_THRESHOLD_=65536 (see `_probe`), so glibc
#: returns freed chunk buffers instead of keeping them in per-thread arenas (without it one
#: EnKF run in three measured 82 MB against a 74.5 MB limit). Measured on the 2-core VM
#: loaded by other jobs, 10 runs of the Lorenz-96 probe: 35.9-39.9 MB against the formula's
#: 35.6 MB (at most 4.25 MB = 4.05 MiB over, typically 0.3-1.7 MB); 3 runs of the EnKF probe
#: (P = 500): 66.6, 66.8, 69.9 MB against 75.1 MB, of which 40.0 MB is the observation-space
#: term 5 N P b (the formula without it, 35.1 MB, plus SLACK is exceeded by >= 23 MB, and the
#: EnKF test asserts that it is: the term is needed). 8 MiB is twice the worst L96 excess.
SLACK = 8 * 2**20


def test_chunk_program_memory_is_the_per_chunk_term():
    # the program of tests/integrate/test_streaming.py at c = 50 (one compile per session)
    step = integrate.Flow(dynamics.Lorenz96(40, 8.0), 0.05, integrate.RK4()).window(0.2)
    state = 40 * 4  # S: one float32 member
    sizes = {}
    for c in (50, 100):
        y0 = np.full((c, 40), 8.0, np.float32)
        sizes[c] = integrate.streamed_ensemble(
            lambda y: step(y, 0.0), y0, chunk_size=c, keep=False
        ).chunk_bytes
        # W <= S_in + S_out + 2 (stages + 1) S = 12 S for RK4, plus the accumulators
        assert sizes[c] <= c * 12 * state + 16 * state, (c, sizes[c])
    per_member = (sizes[100] - sizes[50]) / 50
    assert 8 * state <= per_member <= 12 * state  # linear in c: a per-member workspace
    assert sizes[100] == pytest.approx(2 * sizes[50], rel=0.02)


def _probe(*args: str) -> dict:
    # glibc's dynamic mmap threshold would keep freed chunk buffers resident in heap arenas
    # (the K of `streamed_ensemble`'s formula): the remedy its docstring names
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MALLOC_MMAP_THRESHOLD_": "65536"}
    out = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "_memory_probe.py"), *args],
        capture_output=True,
        text=True,
        env=env,
        check=True,
        timeout=300,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def _clear_refs_works() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


needs_clear_refs = pytest.mark.skipif(
    not _clear_refs_works(), reason="needs Linux /proc/self/clear_refs to reset the peak RSS"
)


@pytest.mark.slow
@needs_clear_refs
def test_streamed_l96_peak_rss_within_formula_and_unchunked_exceeds_it():
    r = _probe("l96")  # 200,000 members x 40, chunks of 2,000; formula ~ 35.6 MB
    assert r["chunked"] <= r["formula"] + SLACK, r
    assert r["control"] > r["formula"] + SLACK, r  # the one-vmap run: ~300 MB


@pytest.mark.slow
@needs_clear_refs
def test_chunked_enkf_peak_rss_within_formula_and_unchunked_exceeds_it():
    r = _probe("enkf")  # 4,000 members x 1,000 (Lorenz-96), 500 obs, chunks of 500: ~75.1 MB
    assert r["chunked"] <= r["formula"] + SLACK, r
    assert r["chunked"] > r["formula"] - r["observation_space"] + SLACK, r  # 5 N P b needed
    assert r["control"] > r["formula"] + SLACK, r  # run_filter: ~243 MB
