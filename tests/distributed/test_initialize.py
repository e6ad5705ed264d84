"""`jaxsci.distributed.initialize`'s errors, and `jaxsci run --distributed`.

The working multi-process paths are in test_multiprocess.py. Here: bad arguments are named
before JAX is touched; a call after JAX's devices are in use says to call it first; with no
cluster environment the command stops with exit code 2 and says what to set; and (slow) the
command run as 2 processes on localhost writes one run folder, process 0's.
"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import jax
import pytest
from cli_helpers import L63_FAST

import jaxsci.distributed
from jaxsci import cli

ROOT = Path(__file__).resolve().parents[2]
#: Environment variables through which JAX (or jaxsci) would find a cluster.
CLUSTER_PREFIXES = ("SLURM_", "OMPI_", "PMI_", "TPU_", "JAX_COORDINATOR", "JAX_NUM_PROC")


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(CLUSTER_PREFIXES)}
    env.pop("JAX_PROCESS_ID", None)
    env.update(JAX_PLATFORMS="cpu", JAXSCI_NO_COMPILE_CACHE="1", **extra)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"num_processes": 0}, "`num_processes` must be at least 1, got 0"),
        ({"process_id": -1}, "`process_id` must be a non-negative int, got -1"),
        ({"num_processes": 2, "process_id": 2}, r"must be in 0\.\.num_processes-1 = 0\.\.1, got 2"),
    ],
)
def test_bad_arguments_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        jaxsci.distributed.initialize(**kwargs)


def test_bad_environment_variable_is_named(monkeypatch):
    monkeypatch.setenv("JAX_NUM_PROCESSES", "two")
    with pytest.raises(ValueError, match="JAX_NUM_PROCESSES must be an integer, got 'two'"):
        jaxsci.distributed.initialize()


def test_after_jax_is_in_use_says_to_call_it_first():
    jax.devices()  # the backend is up: too late to join a distributed run
    with pytest.raises(RuntimeError, match="must run before anything touches a JAX device"):
        jaxsci.distributed.initialize(
            coordinator_address="127.0.0.1:1", num_processes=1, process_id=0
        )
    assert not jaxsci.distributed.is_initialized()


def test_distributed_flag_parses():
    args = cli._parser().parse_args(["run", "configs/l63.yaml", "--distributed"])
    assert args.distributed
    assert not cli._parser().parse_args(["run", "configs/l63.yaml"]).distributed


def test_run_distributed_without_a_cluster_is_a_clear_error(tmp_path):
    out = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "-m", "jaxsci.cli", "run", "configs/l63.yaml", "--distributed"]
        + ["--out", str(out)],
        cwd=ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 2, proc.stderr
    assert "--distributed" in proc.stderr and "No cluster environment" in proc.stderr
    assert "srun" in proc.stderr and "JAX_COORDINATOR_ADDRESS" in proc.stderr
    assert not out.exists()


def _run_two_processes(out: Path, *extra: str, timeout: float = 300) -> list:
    """`jaxsci run configs/l63.yaml --distributed --out OUT` as 2 processes on localhost (the
    cluster given by the environment variables a launcher would set); every process waits
    within one shared `timeout` (the stragglers are killed). Returns `(proc, stdout, stderr)`
    per process."""
    from .test_multiprocess import _free_port

    address = f"127.0.0.1:{_free_port()}"
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "jaxsci.cli", "run", "configs/l63.yaml", "--distributed"]
            + ["--out", str(out), "--quiet", *L63_FAST, *extra],
            cwd=ROOT,
            env=_env(
                JAX_COORDINATOR_ADDRESS=address,
                JAX_NUM_PROCESSES="2",
                JAX_PROCESS_ID=str(i),
                XLA_FLAGS="--xla_force_host_platform_device_count=2",
            ),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    deadline = time.monotonic() + timeout
    results = []
    try:
        for proc in procs:
            try:
                stdout, stderr = proc.communicate(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                pytest.fail(f"jaxsci run --distributed: a process ran past {timeout} s")
            results.append((proc, stdout, stderr))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return results


@pytest.mark.slow
def test_run_distributed_two_processes_one_run_folder(tmp_path):
    """Process 0 writes the run folder and the table, process 1 runs the same pipeline into a
    temporary folder and prints nothing."""
    out = tmp_path / "run"
    results = _run_two_processes(out)
    for proc, _, stderr in results:
        assert proc.returncode == 0, stderr[-4000:]
    assert (out / "COMPLETE").exists()
    assert json.loads((out / "metrics.json").read_text())
    assert f"results in {out}" in results[0][1]
    # process 1 prints no table (only the CPU collectives' own "[Gloo] ... connected" lines,
    # written by the C++ runtime once the processes exchange data)
    assert [ln for ln in results[1][1].splitlines() if not ln.startswith("[Gloo]")] == []
    assert [p.name for p in tmp_path.iterdir()] == ["run"]


@pytest.mark.slow
def test_run_distributed_refused_run_folder_stops_every_process(tmp_path):
    """An existing `--out` without `--overwrite` is refused on process 0 only (the others
    write to temporary folders): process 0 tells the others, and all exit 2 with its message
    at once, instead of the others waiting in the pipeline's collectives for JAX's timeouts
    (100-300 s)."""
    out = tmp_path / "run"
    out.mkdir()
    (out / "mine.txt").write_text("not a run")
    t = time.monotonic()
    results = _run_two_processes(out, timeout=120)
    seconds = time.monotonic() - t
    for proc, stdout, stderr in results:
        assert proc.returncode == 2, stderr[-4000:]
        assert f"--out {out} already exists and holds files; pass --overwrite" in stderr
        assert "results in" not in stdout
    assert "process 0: --out" in results[1][2]
    assert seconds < 60, seconds  # JAX's collective timeouts are 100 s and more
    assert [p.name for p in out.iterdir()] == ["mine.txt"]


# 5-8 s (imports every module in a subprocess): CI runs the slow tier (fast-tier budget)
@pytest.mark.slow
def test_importing_every_module_leaves_the_backend_down():
    """`initialize` must run before anything starts JAX's backend, so no jaxsci module may
    touch a device at import (an array made at module level did: `import jaxsci.diffusion`
    then made `initialize` fail). With an unknown platform any backend start raises."""
    code = (
        "import importlib, pkgutil, jaxsci, jaxsci.pipelines\n"
        "for pkg in (jaxsci, jaxsci.pipelines):\n"
        "    for m in pkgutil.iter_modules(pkg.__path__):\n"
        "        importlib.import_module(pkg.__name__ + '.' + m.name)\n"
        "print('imported')\n"
    )
    env = _env()
    env["JAX_PLATFORMS"] = "no_such_platform"
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0 and "imported" in proc.stdout, proc.stderr[-3000:]
