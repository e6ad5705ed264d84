"""Compile time measured from JAX's own events, for code that compiles inside a call.

A host-chunked driver (`interruptible=True`) compiles its chunk program on the first call
of its loop, so compilation cannot be timed apart with `jit(...).lower().compile()`. JAX
reports each compilation step through `jax.monitoring`: `CompileClock` sums, while active,
the lowering to MLIR (`/jax/core/compile/jaxpr_to_mlir_module_duration`) and the XLA compile
(`/jax/core/compile/backend_compile_duration`, which times `compile_or_get_cached`, so a read
from the persistent cache is counted there, not added again from the cache's own event).
Tracing is left out: its events nest (an inner jit is traced inside its parent) and would be
counted twice.
"""

import threading

import jax

_EVENTS = (
    "/jax/core/compile/jaxpr_to_mlir_module_duration",
    "/jax/core/compile/backend_compile_duration",
)
_active: list["CompileClock"] = []
_lock = threading.Lock()
_registered = False


def _listener(event: str, duration_secs: float, **kwargs: str | int) -> None:
    if event in _EVENTS:
        with _lock:
            for clock in _active:
                clock.seconds += duration_secs


class CompileClock:
    """`with CompileClock() as clock: ...`; then `clock.seconds` is the time JAX spent
    lowering and compiling (or reading compiled programs from the cache) in the block."""

    def __init__(self):
        self.seconds = 0.0

    def __enter__(self) -> "CompileClock":
        global _registered
        with _lock:
            if not _registered:
                jax.monitoring.register_event_duration_secs_listener(_listener)
                _registered = True
            _active.append(self)
        return self

    def __exit__(self, *exc) -> None:
        with _lock:
            _active.remove(self)
