"""Chains sharded over devices with `jax.sharding`: four forced host devices in a subprocess.

The chain axis of the sampler state is placed on a 1-D mesh of 4 CPU devices, each device
holds one chain. The sharded run is the same computation as the single-device run (every
chain's key depends only on the run key and its index): their first transitions agree to float
rounding (a different per-device batch shape changes XLA's rounding, and MCMC trajectories
amplify rounding differences over many steps, so later draws agree only in distribution), it
repeats exactly, and its draws have the target's mean. 3 and 6 chains, which do not divide
the 4 devices, still use all 4 (padded with copies of the last chain, dropped from the
result) and give the single-device numbers.
"""

import json
import os
import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent(
    """
    import json
    import jax, jax.numpy as jnp, numpy as np
    from jaxsci import inference
    from jaxsci.inference import _posterior

    assert len(jax.devices()) == 4, jax.devices()
    target = inference.LogDensity(
        lambda p: -0.5 * jnp.sum((p["x"] - jnp.array([1.0, -2.0])) ** 2 / jnp.array([1.0, 4.0])),
        {"x": "real"},
        shapes={"x": (2,)},
    )
    placements = []
    original = _posterior._run_chunk

    def spy(sampler, tgt, nw, states, chain_keys, *rest):
        placements.append(len(states.hmc.position.sharding.device_set))
        return original(sampler, tgt, nw, states, chain_keys, *rest)

    _posterior._run_chunk = spy
    kwargs = dict(key=jax.random.key(7), init={"x": [0.0, 0.0]}, num_chains=4,
                  num_warmup=100, num_samples=200, progress_bar=False)
    sharded = inference.posterior(target, **kwargs)
    single = inference.posterior(target, devices=jax.devices()[:1], **kwargs)
    again = inference.posterior(target, **kwargs)
    first = lambda r: r.warmup_stats["lp"][:, :5]
    placements_first = list(placements)
    # chains that do not divide the devices: padded to 4 and 8 over all 4 devices
    uneven = {}
    for n in (3, 6):
        short = {**kwargs, "num_chains": n, "num_warmup": 10, "num_samples": 10}
        del placements[:]
        padded = inference.posterior(target, **short)
        devices_used = sorted(set(placements))
        alone = inference.posterior(target, devices=jax.devices()[:1], **short)
        uneven[n] = {
            "devices": devices_used,
            "shapes": [list(padded.draws["x"].shape), list(padded.step_size.shape),
                       list(padded.warmup_stats["lp"].shape)],
            "vs_single": float(np.max(np.abs(first(padded) - first(alone)))),
        }
    print(json.dumps({
        "placements": placements_first,
        "first_vs_single": float(np.max(np.abs(first(sharded) - first(single)))),
        "uneven": uneven,
        "repeat": float(np.max(np.abs(again.draws["x"] - sharded.draws["x"]))),
        "mean": sharded.draws["x"].mean(axis=(0, 1)).tolist(),
        "mcse": [v["mcse_mean"] for v in sharded.summary().values()],
    }))
    """
)


@pytest.mark.slow
def test_chains_sharded_over_four_host_devices():
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4")
    env.pop("JAX_ENABLE_X64", None)
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=600
    )
    assert out.returncode == 0, out.stderr[-3000:]
    res = json.loads(out.stdout.strip().splitlines()[-1])
    n_chunks = len(res["placements"]) // 3
    # 4 chains over 4 devices, then a single-device run, then the sharded run again
    assert res["placements"][:n_chunks] == [4] * n_chunks
    assert res["placements"][n_chunks : 2 * n_chunks] == [1] * n_chunks
    assert res["first_vs_single"] < 1e-4
    for n, run in res["uneven"].items():
        chains = int(n)  # padded to 4 and 8 chains, every device used, none dropped
        assert run["devices"] == [4], (n, run)
        assert run["shapes"] == [[chains, 10, 2], [chains], [chains, 10]], (n, run)
        assert run["vs_single"] < 1e-4, (n, run)
    assert res["repeat"] == 0.0
    for m, ref, se in zip(res["mean"], [1.0, -2.0], res["mcse"], strict=True):
        assert abs(m - ref) < 4 * se
