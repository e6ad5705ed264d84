"""`filters.run_filter(devices=...)` and `filters.assimilate(devices=...)` in one process with
4 (virtual CPU) devices equal the unplaced run (`devices=None`) to float rounding.

The multi-process tests go through `assimilate` only; this is the in-process check of both
entry points. The test session may hold one CPU device only, so a subprocess with
`--xla_force_host_platform_device_count=4` runs it (one process; 10-16 s, so in the slow tier).
"""

import json
import subprocess
import sys

import pytest

from .test_multiprocess import ROOT, _env

#: float32 rounding (relative to 1 + |value|) of the members' mean and anomaly products when
#: they are reduced across devices instead of on one: a few ulps (as test_multiprocess.RTOL).
TOL = 1e-5

SCRIPT = """
import json
import jax
import numpy as np
from jaxsci import filters
from jaxsci.dynamics import Lorenz96
from jaxsci.integrate import Flow

assert jax.device_count() == 4, jax.devices()
model = Lorenz96(n=8)
x0 = model.default_initial_state()
flow = Flow(model, 0.05)
obs = filters.IndexObservation(8, noise_cov=1.0)
kw = dict(n_cycles=6, dt=0.05, ensemble_size=8, store_ensembles=True)
ref = filters.assimilate(jax.random.key(0), flow, obs, filters.EnKF(), x0, **kw)
got = filters.assimilate(
    jax.random.key(0), flow, obs, filters.EnKF(), x0, devices=jax.devices(), **kw
)
members = x0 + jax.random.normal(jax.random.key(1), (8, 8))
runs = [
    filters.run_filter(
        jax.random.key(2), flow, obs, filters.EnKF(), members, ref.observations, dt=0.05,
        store_ensembles=True, devices=devices,
    )
    for devices in (None, jax.devices())
]
def diff(a, b):  # relative to 1 + |b|: log-likelihoods are sums of ~10s
    a, b = np.asarray(a), np.asarray(b)
    return float(np.max(np.abs(a - b) / (1 + np.abs(b))))
print(json.dumps({
    "assimilate_ensembles": diff(ref.filter.ensembles, got.filter.ensembles),
    "assimilate_rmse_a": diff(ref.rmse_a, got.rmse_a),
    "assimilate_log_likelihood": diff(ref.filter.log_likelihood, got.filter.log_likelihood),
    "run_filter_ensembles": diff(runs[0].ensembles, runs[1].ensembles),
    "run_filter_mean_a": diff(runs[0].mean_a, runs[1].mean_a),
    "run_filter_log_likelihood": diff(runs[0].log_likelihood, runs[1].log_likelihood),
    "spread": float(np.ptp(np.asarray(runs[0].ensembles[-1]), axis=0).min()),
}))
"""


@pytest.mark.slow  # 10-16 s on the loaded 2-core VM (imports and compiles dominate)
def test_run_filter_and_assimilate_on_4_devices_equal_unplaced():
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        cwd=ROOT,
        env=_env(4),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    diffs = json.loads(proc.stdout.strip().splitlines()[-1])
    assert diffs.pop("spread") > 0  # the members differ: the filter did something
    print(diffs)
    assert all(v <= TOL for v in diffs.values()), diffs
