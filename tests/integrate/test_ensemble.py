"""`ensemble` gives the same result on 1 and 4 (forced host) devices."""

import os
import subprocess
import sys
import textwrap

import jax.numpy as jnp
import numpy as np
import pytest

from jaxsci.dynamics import Lorenz96
from jaxsci.integrate import RK4, ensemble, simulate

_SCRIPT = textwrap.dedent(
    """
    import equinox as eqx
    import jax
    import jax.numpy as jnp
    import numpy as np

    from jaxsci.dynamics import Lorenz96
    from jaxsci.integrate import RK4, ensemble, simulate

    assert len(jax.devices()) == 4, jax.devices()
    ts = jnp.linspace(0.0, 1.0, 5)

    def run(model, y0):
        return simulate(model, y0, ts, solver=RK4(), dt0=0.05).ys

    base = Lorenz96(n=12)
    # 3 initial states and 6 models: neither divides the 4 devices (padded to 4 and 8).
    y0s = base.default_initial_state() + 0.1 * jax.random.normal(jax.random.key(0), (3, 12))
    models = eqx.filter_vmap(lambda f: Lorenz96(n=12, forcing=f))(jnp.linspace(6.0, 10.0, 6))
    one = [jax.devices()[0]]
    out = {}
    for ndev, devs in (("1", one), ("4", None)):
        out["states" + ndev] = ensemble(lambda y0: run(base, y0), devices=devs)(y0s)
        out["models" + ndev] = ensemble(run, in_axes=(0, None), devices=devs)(
            models, base.default_initial_state())
    sharded = ensemble(lambda y0: run(base, y0))(y0s)
    print("NUM_SHARD_DEVICES", len(sharded.sharding.device_set))
    assert out["states4"].shape == (3, 5, 12) and out["models4"].shape == (6, 5, 12)
    np.savez(__import__("sys").argv[1], **{k: np.asarray(v) for k, v in out.items()})
    """
)


@pytest.mark.slow
def test_ensemble_one_vs_four_devices(tmp_path):
    """Subprocess with XLA_FLAGS=--xla_force_host_platform_device_count=4 set before jax is
    imported; batches of initial states and of models, sizes not divisible by 4."""
    env = dict(os.environ)
    env["XLA_FLAGS"] = env.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=4"
    env["JAX_PLATFORMS"] = "cpu"
    out_file = tmp_path / "out.npz"
    proc = subprocess.run(
        [sys.executable, "-c", _SCRIPT, str(out_file)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "NUM_SHARD_DEVICES 4" in proc.stdout
    out = np.load(out_file)
    assert out["states1"].shape == (3, 5, 12)
    assert out["models1"].shape == (6, 5, 12)
    # Same float32 programme, different batch split: agreement to a few ulp.
    np.testing.assert_allclose(out["states4"], out["states1"], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(out["models4"], out["models1"], rtol=1e-5, atol=1e-5)
    # And the batch is really the member-wise result (member 3 of the models' batch).
    ref = simulate(
        Lorenz96(n=12, forcing=float(np.linspace(6.0, 10.0, 6)[3])),
        Lorenz96(n=12).default_initial_state(),
        jnp.linspace(0.0, 1.0, 5),
        solver=RK4(),
        dt0=0.05,
    ).ys
    np.testing.assert_allclose(out["models1"][3], np.asarray(ref), rtol=1e-5, atol=1e-5)


def test_ensemble_rejects_mismatched_batches():
    with pytest.raises(ValueError, match="batch size"):
        ensemble(lambda a, b: a + b)(jnp.ones((3, 2)), jnp.ones((4, 2)))
