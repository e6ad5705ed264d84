"""One process of the multi-process tests: every sharded path of the library, small.

    python _worker.py OUT.npz [--one-device] [--sampler hmc] [--paths ensemble,enkf]  # one process
    python _worker.py OUT.npz --address HOST:PORT --processes N --process-id I  # process I of N

Runs, with the batch axis over `jax.devices()` (every device of every process): a Lorenz-96
ensemble integration (`integrate.ensemble`; 6 members over 4 devices: padded), EnKF and
LETKF twin experiments with sharded members (`filters.assimilate(devices=...)`), NUTS (or
HMC: a third of NUTS's compile time) chains of a small posterior (`inference.posterior`; 6
chains: padded) and data-parallel `train.fit` steps (2 epochs, validated, early stopping
with the best weights restored). With `--one-device` a single process also
runs every path on its first device only (`one/` keys), the reference without any
cross-device reduction. `--paths` picks a subset of ensemble, enkf, letkf, chains, fit
(default all). Writes the results (the same on every process
by design) to OUT.npz, and the wall time of each part to its `seconds/` keys.
"""

import argparse
import time

import numpy as np

PATHS = ("ensemble", "enkf", "letkf", "chains", "fit")


def main(
    out: str,
    address: str | None = None,
    n: int = 1,
    i: int = 0,
    one_device: bool = False,
    sampler: str = "nuts",
    paths: tuple[str, ...] = PATHS,
) -> None:
    t_start = time.perf_counter()
    results: dict[str, np.ndarray] = {}
    if address is not None:
        import jaxsci.distributed

        jaxsci.distributed.initialize(
            coordinator_address=address,
            num_processes=n,
            process_id=i,
            initialization_timeout=60,
        )
        # idempotent: a repeat with no or the same arguments is a no-op, others an error
        jaxsci.distributed.initialize()
        jaxsci.distributed.initialize(num_processes=n, process_id=i)
        try:
            jaxsci.distributed.initialize(num_processes=n + 1)
        except ValueError as err:
            results["repeat_error"] = np.asarray(str(err))
    import equinox as eqx
    import jax
    import jax.numpy as jnp
    import optax

    from jaxsci import filters, inference, train
    from jaxsci.dynamics import Lorenz96
    from jaxsci.integrate import Flow, ensemble, rollout

    assert jax.process_count() == n, (jax.process_count(), n)
    results["seconds/import"] = np.asarray(time.perf_counter() - t_start)
    model = Lorenz96(n=8)
    x0 = model.default_initial_state()
    flow = Flow(model, 0.05)
    obs = filters.IndexObservation(8, noise_cov=1.0)
    letkf = filters.LETKF(2.0, obs)
    key = jax.random.key(0)
    y0s = x0 + 0.1 * jax.random.normal(key, (6, 8))

    target = inference.LogDensity(
        lambda p: -0.5 * jnp.sum((p["x"] - jnp.array([1.0, -2.0])) ** 2 / jnp.array([1.0, 4.0])),
        {"x": "real"},
        shapes={"x": (2,)},
    )
    kx, ky, km = jax.random.split(jax.random.key(1), 3)
    data = (jax.random.normal(kx, (32, 3)), jax.random.normal(ky, (32, 1)))
    val_data = (jax.random.normal(ky, (16, 3)), jax.random.normal(kx, (16, 1)))
    net = eqx.nn.MLP(3, 1, 8, 1, key=km)
    results["init_weight"] = np.asarray(net.layers[0].weight)

    def mse(m, batch, *, key):
        x, y = batch
        return jnp.mean((jax.vmap(m)(x) - y) ** 2), {}

    def run(devices, tag):
        # one block per path, each run only when asked for (no early returns: any subset works)
        if "ensemble" in paths:
            t = time.perf_counter()
            traj = ensemble(lambda y0: rollout(flow, y0, 10, dt=0.05), devices=devices)(y0s)
            results[f"{tag}/ensemble"] = np.asarray(traj)
            results[f"seconds/{tag}/ensemble"] = np.asarray(time.perf_counter() - t)
        for name, filt in (("enkf", filters.EnKF()), ("letkf", letkf)):
            if name in paths:
                t = time.perf_counter()
                res = filters.assimilate(
                    jax.random.key(2),
                    flow,
                    obs,
                    filt,
                    x0,
                    n_cycles=5,
                    dt=0.05,
                    ensemble_size=8,
                    store_ensembles=True,
                    compute_likelihood=False,
                    devices=devices,
                )
                results[f"{tag}/{name}_ensembles"] = np.asarray(res.filter.ensembles)
                results[f"{tag}/{name}_rmse_a"] = np.asarray(res.rmse_a)
                results[f"seconds/{tag}/{name}"] = np.asarray(time.perf_counter() - t)
        if "chains" in paths:
            t = time.perf_counter()
            post = inference.posterior(
                target,
                key=jax.random.key(3),
                sampler=sampler,
                num_chains=6,
                num_warmup=30,
                num_samples=20,
                chunk_size=50,
                init="uniform",
                progress_bar=False,
                devices=devices,
            )
            results[f"{tag}/draws"] = np.asarray(post.draws["x"])
            results[f"seconds/{tag}/nuts"] = np.asarray(time.perf_counter() - t)
        if "fit" in paths:
            t = time.perf_counter()
            # with validation and early stopping: the returned model combines the best
            # weights with the final state, and must be whole on every process
            fitted, hist = train.fit(
                net,
                mse,
                data,
                optimizer=optax.adam(1e-2),
                key=jax.random.key(4),
                batch_size=8,
                num_steps=8,
                val_data=val_data,
                early_stopping=2,
                restore_best=True,
                progress=False,
                devices=devices,
            )
            results[f"{tag}/fit_loss"] = np.asarray(hist["loss"])
            results[f"{tag}/fit_val_loss"] = np.asarray(hist["val_loss"])
            results[f"{tag}/fit_best_step"] = np.asarray(hist["best_step"])
            results[f"{tag}/fit_weight"] = np.asarray(fitted.layers[0].weight)
            # whole on this process (usable with its local arrays), not a global array
            results[f"{tag}/fit_addressable"] = np.asarray(
                all(
                    a.is_fully_addressable
                    for a in jax.tree.leaves(eqx.filter(fitted, eqx.is_array))
                )
            )
            results[f"seconds/{tag}/fit"] = np.asarray(time.perf_counter() - t)

    try:  # members are coupled by the analysis: no padding, a clear error instead
        filters.assimilate(
            key, flow, obs, letkf, x0, n_cycles=1, dt=0.05, ensemble_size=7, devices=jax.devices()
        )
    except ValueError as err:
        results["indivisible_error"] = np.asarray(str(err))
    if n > 1:  # an input that differs between processes: an error on every process
        try:
            mine = y0s + jax.process_index()
            ensemble(lambda y0: rollout(flow, y0, 2, dt=0.05), devices=jax.devices())(mine)
        except ValueError as err:
            results["mismatch_error"] = np.asarray(str(err))
    run(jax.devices(), "all")
    if n == 1 and one_device:
        run(jax.devices()[:1], "one")
    results["seconds/total"] = np.asarray(time.perf_counter() - t_start)
    results["devices"] = np.asarray(jax.device_count())
    np.savez(out, **results)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--address")
    parser.add_argument("--processes", type=int, default=1)
    parser.add_argument("--process-id", type=int, default=0)
    parser.add_argument("--one-device", action="store_true")
    parser.add_argument("--sampler", default="nuts")
    parser.add_argument("--paths", default=",".join(PATHS))
    a = parser.parse_args()
    paths = tuple(a.paths.split(","))
    unknown = set(paths) - set(PATHS)
    if unknown:
        parser.error(f"--paths: unknown {sorted(unknown)}, expected some of {PATHS}")
    main(a.out, a.address, a.processes, a.process_id, a.one_device, a.sampler, paths)
