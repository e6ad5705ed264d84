"""Runs over several processes (hosts) on JAX's multi-controller runtime.

Every process runs the same script. After `initialize()`, `jax.devices()` lists the devices
of all processes, and the library's sharded paths spread their batch axis over all of them
with no change to the calling code: `jaxsci.integrate.ensemble` (members),
`jaxsci.inference.posterior` (chains), `jaxsci.filters.run_filter` / `assimilate` with
`devices=` (ensemble members; the analysis means and anomaly products become collectives)
and `jaxsci.train.fit` with `devices=` (data parallel). Their results come back whole on
every process (`gather`), so every process gets the same return values as a
single-process run over the same number of devices.
"""

from .._sharding import gather as gather
from ._runtime import initialize as initialize, is_initialized as is_initialized
