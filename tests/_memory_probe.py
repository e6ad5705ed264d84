"""Peak-memory probe for tests/test_memory.py, run in a fresh process:
`python tests/_memory_probe.py {l96,enkf}` prints one JSON line.

Programs are compiled (and run once) before the measurement; then the kernel's resident-set
high-water mark is reset (`/proc/self/clear_refs` = 5) to the current RSS, the run is made,
and the high-water mark (VmHWM, what `ru_maxrss` reports for a process whose threads all
live) minus that baseline is the run's own peak. The
chunked run is measured first, then the unchunked control at the same size.
"""

import ctypes
import gc
import json
import resource
import sys

import jax
import jax.numpy as jnp
import numpy as np


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


def _reset_peak() -> int:
    """Free what can be freed (Python garbage, and malloc's free pages back to the kernel,
    so that memory left over from compiling and warming up is not reused unseen), then reset
    the high-water mark to the current RSS and return that."""
    gc.collect()
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    return _rss()


def _peak_since(base: int) -> int:
    """The peak RSS since the last `_reset_peak`, above `base`: the kernel's VmHWM, which
    clear_refs resets. (`ru_maxrss` is the same figure merged with the high-water marks
    that exited threads recorded, which clear_refs does not reset: a thread of the runtime
    that exits after the reset can bring an earlier peak back into it.)"""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024 - base
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - base


def l96(n=200_000, c=2_000):
    from jaxsci import dynamics, integrate

    step = integrate.Flow(dynamics.Lorenz96(40, 8.0), 0.05, integrate.RK4()).window(0.1)

    def fn(y):
        return step(y, 0.0)

    y0 = (8.0 + np.random.default_rng(0).standard_normal((n, 40))).astype(np.float32)
    warm = integrate.streamed_ensemble(fn, y0[:c], chunk_size=c)  # compiles the chunk program
    del warm
    s = 40 * 4
    base = _reset_peak()
    res = integrate.streamed_ensemble(fn, y0, chunk_size=c)
    chunked = _peak_since(base)
    formula = n * s + res.chunk_bytes + 5 * s  # kept outputs + chunk program + accumulators
    del res
    unchunked = jax.jit(jax.vmap(fn)).lower(y0).compile()  # after: nothing big ran before
    jax.block_until_ready(unchunked(y0))  # its first run's allocations
    base = _reset_peak()
    jax.block_until_ready(unchunked(y0))
    control = _peak_since(base)
    mem = unchunked.memory_analysis()
    return dict(
        chunked=chunked,
        control=control,
        formula=formula,
        control_compiled=int(mem.temp_size_in_bytes + mem.output_size_in_bytes),
    )


def enkf(n=4_000, dim=1_000, k=2, c=500, cycles=2):
    from jaxsci import dynamics, filters, integrate
    from jaxsci.observations import every_kth

    flow = integrate.Flow(dynamics.Lorenz96(dim, 8.0), 0.05, integrate.RK4())
    obs = every_kth(dim, k, noise_cov=1.0)
    rng = np.random.default_rng(0)
    ens = (8.0 + rng.standard_normal((n, dim))).astype(np.float32)
    ys = (8.0 + rng.standard_normal((cycles, obs.obs_dim))).astype(np.float32)
    key = jax.random.key(0)
    f = filters.EnKF()
    args = dict(dt=0.05, chunk_size=c, in_place=True)
    # compiles, and gives the forecast's chunk program bytes (its c W)
    fc_bytes = filters.run_filter_chunked(key, flow, obs, f, ens.copy(), ys, **args)
    fc_bytes = fc_bytes.forecast_chunk_bytes
    work = ens.copy()
    base = _reset_peak()
    filters.run_filter_chunked(key, flow, obs, f, work, ys, **args)
    chunked = _peak_since(base)
    del work
    terms = filters.analysis_memory_terms(n, dim, obs.obs_dim, c, 4)
    terms["chunk"] = max(terms["chunk"], fc_bytes)
    formula = sum(v for name, v in terms.items() if name != "ensemble")  # the ensemble: in base
    formula += cycles * (2 * dim + 2) * 8
    ens_j, ys_j = jnp.asarray(ens), jnp.asarray(ys)
    filters.run_filter(key, flow, obs, f, ens_j, ys_j, dt=0.05)  # compiles
    base = _reset_peak()
    jax.block_until_ready(filters.run_filter(key, flow, obs, f, ens_j, ys_j, dt=0.05))
    control = _peak_since(base)
    return dict(
        chunked=chunked,
        control=control,
        formula=formula,
        observation_space=terms["observation_space"],
    )


if __name__ == "__main__":
    kwargs = {k: int(v) for k, v in (a.split("=") for a in sys.argv[2:])}
    print(json.dumps({"l96": l96, "enkf": enkf}[sys.argv[1]](**kwargs)))
