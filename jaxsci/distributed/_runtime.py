"""`initialize`: join the processes of a run into one JAX distributed runtime."""

import logging
import os
from collections.abc import Sequence

import jax

logger = logging.getLogger("jaxsci.distributed")

#: The cross-process collectives on CPU: gloo (TCP), the one that needs no MPI installation.
#: It is JAX's default since 0.4.x; `initialize` sets it only where it has been unset (None),
#: with which collectives across processes fail on CPU.
CPU_COLLECTIVES = "gloo"

_SETTINGS: dict[str, object] = {}

#: Read by `initialize` when the argument is not given (JAX itself reads only
#: JAX_COORDINATOR_ADDRESS): with these three set, any launcher (ssh, a batch system JAX does
#: not detect, a test) can start the processes.
NUM_PROCESSES_ENV = "JAX_NUM_PROCESSES"
PROCESS_ID_ENV = "JAX_PROCESS_ID"


def _env_int(name: str) -> int | None:
    value = os.environ.get(name)
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError:
        raise ValueError(
            f"the environment variable {name} must be an integer, got {value!r}."
        ) from None


def is_initialized() -> bool:
    """Whether this process has joined a distributed runtime (`initialize`, or JAX's own
    `jax.distributed.initialize`)."""
    return jax.distributed.is_initialized()


def initialize(
    coordinator_address: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
    local_device_ids: int | Sequence[int] | None = None,
    cluster_detection_method: str | None = None,
    initialization_timeout: int = 300,
    heartbeat_timeout_seconds: int = 100,
    shutdown_timeout_seconds: int = 300,
    coordinator_bind_address: str | None = None,
    partition_index: int | None = None,
) -> None:
    """Join this process to a multi-process JAX run: `jax.distributed.initialize`, plus the
    CPU collectives and clearer errors.

    Call it once, first, in every process of the run (the same script everywhere), before
    anything that touches a JAX device (`jax.devices()`, creating an array, a computation).
    Afterwards `jax.devices()` lists the devices of all processes and `jax.process_index()`
    / `jax.process_count()` say which process this is; the library's sharded paths use all
    devices (see `jaxsci.distributed`).

    Arguments are those of `jax.distributed.initialize`, passed through. All may be left
    out on a cluster that JAX detects (SLURM's `srun`, Open MPI's `mpirun`, Cloud TPU; or
    `cluster_detection_method="mpi4py"`): `coordinator_address` ("host:port" of process
    0), `num_processes` and `process_id` then come from the environment
    (`SLURM_NTASKS`, `SLURM_PROCID`, the first node of `SLURM_STEP_NODELIST`, ...), as do
    `JAX_COORDINATOR_ADDRESS` (read by JAX) / `JAX_NUM_PROCESSES` / `JAX_PROCESS_ID`
    (read here) when set.
    `initialization_timeout` is how long (seconds) a process waits for the others.

    On CPU the processes exchange collectives through gloo (`CPU_COLLECTIVES`, JAX's
    default; set here only when the option `jax_cpu_collectives_implementation` is unset).

    Idempotent: a second call with no arguments, or the same ones, does nothing; one with
    different arguments is a ValueError.

    Raises:
        ValueError: no cluster environment was detected and the address, process count or
            process id is missing (the message says which and how to give it); a repeated
            call with other arguments.
        RuntimeError: JAX's devices are already in use in this process (call `initialize`
            earlier).
    """
    if num_processes is None:
        num_processes = _env_int(NUM_PROCESSES_ENV)
    if process_id is None:
        process_id = _env_int(PROCESS_ID_ENV)
    given = {
        "coordinator_address": coordinator_address,
        "num_processes": num_processes,
        "process_id": process_id,
        "local_device_ids": local_device_ids,
        "cluster_detection_method": cluster_detection_method,
        "coordinator_bind_address": coordinator_bind_address,
        "partition_index": partition_index,
    }
    given = {k: v for k, v in given.items() if v is not None}
    if jax.distributed.is_initialized():
        _check_same(given)
        return
    for name in ("num_processes", "process_id"):
        if name in given and (not isinstance(given[name], int) or given[name] < 0):
            raise ValueError(f"`{name}` must be a non-negative int, got {given[name]!r}.")
    if "num_processes" in given and given["num_processes"] < 1:
        raise ValueError(f"`num_processes` must be at least 1, got {num_processes!r}.")
    if num_processes is not None and process_id is not None and not process_id < num_processes:
        raise ValueError(
            f"`process_id` must be in 0..num_processes-1 = 0..{num_processes - 1}, got "
            f"{process_id}."
        )
    if jax.config.values.get("jax_cpu_collectives_implementation") is None:
        # Not a library-wide setting: `initialize` is the call that configures the runtime.
        jax.config.update("jax_cpu_collectives_implementation", CPU_COLLECTIVES)
    try:
        jax.distributed.initialize(
            coordinator_address=coordinator_address,
            num_processes=num_processes,
            process_id=process_id,
            local_device_ids=local_device_ids,
            cluster_detection_method=cluster_detection_method,
            initialization_timeout=initialization_timeout,
            heartbeat_timeout_seconds=heartbeat_timeout_seconds,
            shutdown_timeout_seconds=shutdown_timeout_seconds,
            coordinator_bind_address=coordinator_bind_address,
            partition_index=partition_index,
        )
    except ValueError as err:
        missing = [
            name
            for name, value in (
                ("coordinator_address", coordinator_address),
                ("num_processes", num_processes),
                ("process_id", process_id),
            )
            if value is None
        ]
        raise ValueError(
            f"jaxsci.distributed.initialize: {err} No cluster environment was detected "
            f"(SLURM, Open MPI, Cloud TPU; cluster_detection_method="
            f"{cluster_detection_method!r}) to supply {', '.join(missing) or 'the setup'}: "
            "launch the processes with `srun`/`mpirun`, or give coordinator_address "
            "('host:port' of process 0), num_processes and process_id (or the environment "
            "variables JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES, JAX_PROCESS_ID)."
        ) from err
    except RuntimeError as err:
        if "must be called before" in str(err):
            raise RuntimeError(
                "jaxsci.distributed.initialize() must run before anything touches a JAX "
                "device in this process (jax.devices(), creating an array, a computation): "
                "call it first, at the top of the script."
            ) from err
        raise
    _SETTINGS.clear()
    _SETTINGS.update(given)
    logger.info(
        "process %d of %d; %d local and %d global devices",
        jax.process_index(),
        jax.process_count(),
        jax.local_device_count(),
        jax.device_count(),
    )


def _check_same(given: dict[str, object]) -> None:
    """A repeated `initialize`: only the arguments of the first call (or none) are allowed."""
    for name, value in given.items():
        before = _SETTINGS.get(name)
        if name == "num_processes":
            before = jax.process_count()
        elif name == "process_id":
            before = jax.process_index()
        if before != value:
            raise ValueError(
                f"jaxsci.distributed.initialize was already called (process "
                f"{jax.process_index()} of {jax.process_count()}); a repeated call may "
                f"only repeat its arguments, got `{name}`={value!r} (before: {before!r})."
            )
