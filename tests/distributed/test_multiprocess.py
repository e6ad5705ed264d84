"""Multi-process runs for real, on one machine: 2 (and 4, slow) CPU processes on localhost,
each with 2 virtual devices, joined by `jaxsci.distributed.initialize` (gloo collectives),
run `_worker.py` (an L96 ensemble, EnKF and LETKF twin experiments with sharded members,
HMC (fast test) or NUTS (slow test) chains, data-parallel `fit` steps) and are compared
with one process holding as many virtual devices (and, in the slow test, with one device).

What must match, and how exactly:
- every process returns the same results, bit for bit (the drivers gather them);
- against one process with the same number of devices, the same SPMD programs run with the
  same per-device shards: the paths without a reduction across members (the ensemble
  integration, the chains) are bit-identical; those with one (the filters' ensemble means
  and anomaly products, the data-parallel gradient and loss) agree to float32 rounding,
  because the cross-process all-reduce (gloo: a local sum per process, then across
  processes) adds the per-device partial sums in another order than one process's
  all-reduce does;
- against one device (slow test): the per-device batch shape differs, so XLA may round
  differently: the same tolerance, except for the NUTS draws, where a rounding difference
  grows along a trajectory (see tests/inference/test_sharding.py) and only a gross error
  (a chain given another chain's key or start, an O(1) change) is caught.

Time: the workers and the reference run side by side; each starts Python and JAX, imports
jaxsci and compiles every path once, which is nearly all of the test's time (the runs are
tiny). Measured on the 2-core development VM while loaded by other jobs (load average 7-11):
the fast test (ensemble and EnKF only) 43-45 s wall, 31 s of CPU in its three processes; the
2-process test of every path 117-143 s, the 4-process one 176-214 s (slow tier).
"""

import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

WORKER = Path(__file__).with_name("_worker.py")
ROOT = Path(__file__).resolve().parents[2]
#: A hung coordinator or collective fails the test after this long, never hangs CI. Generous:
#: on a loaded 2-core machine the 2-process run takes about a minute.
TIMEOUT = 300

#: float32 rounding of the reduced paths: states of size ~1-10 after a few cycles differ by a
#: few ulps (observed <= 4e-6 absolute); 1e-5 catches a wrong mean or a lost member (O(0.1)).
RTOL = ATOL = 1e-5
EXACT = ("ensemble", "draws")
REDUCED = (
    "enkf_ensembles",
    "enkf_rmse_a",
    "letkf_ensembles",
    "letkf_rmse_a",
    "fit_loss",
    "fit_val_loss",
    "fit_weight",
)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _env(devices: int) -> dict[str, str]:
    env = dict(os.environ)
    flags = re.sub(r"--xla_force_host_platform_device_count=\S+", "", env.get("XLA_FLAGS", ""))
    env["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count={devices}".strip()
    env["JAX_PLATFORMS"] = "cpu"
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


def _start(args: list[str], devices: int, log: Path) -> tuple[subprocess.Popen, Path]:
    proc = subprocess.Popen(
        [sys.executable, str(WORKER), *args],
        env=_env(devices),
        stdout=subprocess.DEVNULL,
        stderr=log.open("w"),
    )
    return proc, log


def _finish(runs: list[tuple[subprocess.Popen, Path]]) -> None:
    """Wait for every run, all within TIMEOUT; on a timeout or a failure kill the others and
    fail with the workers' stderr."""
    deadline = time.monotonic() + TIMEOUT
    failed = []
    for proc, log in runs:
        try:
            proc.wait(timeout=max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            failed.append(f"{log.name}: timed out after {TIMEOUT} s")
        else:
            if proc.returncode:
                failed.append(f"{log.name}: exit code {proc.returncode}")
    if failed:
        for proc, _ in runs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        logs = "\n".join(f"--- {log.name} ---\n{log.read_text()[-4000:]}" for _, log in runs)
        pytest.fail("; ".join(failed) + "\n" + logs)


def _run(
    tmp_path: Path, processes: int, sampler: str, with_one_device: bool, paths: str | None = None
):
    """The `processes`-process run (2 devices each) and the reference, side by side."""
    address = f"127.0.0.1:{_free_port()}"
    common = ["--sampler", sampler] + (["--paths", paths] if paths else [])
    runs = [
        _start(
            [
                str(tmp_path / f"p{i}.npz"),
                *common,
                *("--address", address, "--processes", str(processes), "--process-id", str(i)),
            ],
            2,
            tmp_path / f"p{i}.log",
        )
        for i in range(processes)
    ]
    ref_args = [str(tmp_path / "ref.npz"), *common] + (["--one-device"] if with_one_device else [])
    runs.append(_start(ref_args, 2 * processes, tmp_path / "ref.log"))
    _finish(runs)
    outs = [dict(np.load(tmp_path / f"p{i}.npz")) for i in range(processes)]
    return outs, dict(np.load(tmp_path / "ref.npz"))


def _compare(outs, ref, processes):
    first = outs[0]
    assert int(first["devices"]) == int(ref["devices"]) == 2 * processes
    assert "already called" in str(first["repeat_error"])
    assert f"7 members, which do not divide evenly over the {2 * processes} `devices`" in str(
        first["indivisible_error"]
    )
    # inputs that differ between processes (each adds its index): a ValueError naming the
    # processes, on every process (the loop below checks they all hold the same message)
    others = list(range(1, processes))
    assert f"differ between processes (process(es) {others} against process 0)" in str(
        first["mismatch_error"]
    )
    for i, out in enumerate(outs[1:], 1):
        for name, value in first.items():
            if not name.startswith(("seconds/", "repeat_error")):
                np.testing.assert_array_equal(out[name], value, err_msg=f"process {i}: {name}")
    ran = [name for name in EXACT + REDUCED if f"all/{name}" in first]
    assert ran and all(f"all/{name}" in ref for name in ran), (ran, sorted(ref))
    for name in ran:
        if name in EXACT:
            np.testing.assert_array_equal(first[f"all/{name}"], ref[f"all/{name}"], err_msg=name)
        else:
            np.testing.assert_allclose(
                first[f"all/{name}"], ref[f"all/{name}"], rtol=RTOL, atol=ATOL, err_msg=name
            )
    # not trivially equal: the runs did something (a filter moved its members, fit learned)
    if "all/enkf_ensembles" in first:
        assert np.ptp(first["all/enkf_ensembles"][-1], axis=0).min() > 0
    if "all/fit_weight" in first:
        assert np.abs(first["all/fit_weight"] - first["init_weight"]).max() > 1e-3
    return ran


def _report(outs, ref, label):
    print(
        f"{label}: worker wall {float(outs[0]['seconds/total']):.1f} s, reference "
        f"{float(ref['seconds/total']):.1f} s"
    )


def test_two_processes_ensemble_and_enkf_equal_one_process(tmp_path):
    """The fast-tier row: the two core sharded paths, an ensemble integration (no reduction:
    bit-identical) and an EnKF whose analysis reductions are cross-process collectives (to
    float rounding); the other paths run in the slow tests below."""
    outs, ref = _run(tmp_path, 2, "hmc", with_one_device=False, paths="ensemble,enkf")
    assert _compare(outs, ref, 2) == ["ensemble", "enkf_ensembles", "enkf_rmse_a"]
    _report(outs, ref, "2 processes x 2 devices vs 1 process x 4 (ensemble, EnKF)")


@pytest.mark.slow
def test_two_processes_fit_alone_with_early_stopping(tmp_path):
    """`--paths fit` runs fit alone (it was skipped without `chains`), data-parallel over 2
    processes with validation and early stopping: the restored best weights are brought
    whole to every process (they were combined after the gather) and equal 1 process's."""
    outs, ref = _run(tmp_path, 2, "hmc", with_one_device=False, paths="fit")
    assert _compare(outs, ref, 2) == ["fit_loss", "fit_val_loss", "fit_weight"]
    assert int(outs[0]["all/fit_best_step"]) == int(ref["all/fit_best_step"]) >= 0
    assert all(bool(out["all/fit_addressable"]) for out in outs)
    _report(outs, ref, "2 processes x 2 devices vs 1 process x 4 (fit)")


@pytest.mark.slow
def test_two_processes_equal_one_process(tmp_path):
    outs, ref = _run(tmp_path, 2, "hmc", with_one_device=False)
    _compare(outs, ref, 2)
    _report(outs, ref, "2 processes x 2 devices vs 1 process x 4")


@pytest.mark.slow
def test_four_processes_equal_one_process_and_one_device(tmp_path):
    outs, ref = _run(tmp_path, 4, "nuts", with_one_device=True)
    _compare(outs, ref, 4)
    _report(outs, ref, "4 processes x 2 devices vs 1 process x 8")
    for name in EXACT[:1] + REDUCED:
        np.testing.assert_allclose(
            ref[f"one/{name}"], ref[f"all/{name}"], rtol=RTOL, atol=ATOL, err_msg=name
        )
    # NUTS on one device: trajectories amplify rounding; a wrong chain would differ by O(1)
    np.testing.assert_allclose(ref["one/draws"], ref["all/draws"], atol=0.1)
