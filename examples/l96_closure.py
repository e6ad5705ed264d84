"""Learn the subgrid closure of Lorenz-96 from noisy, sparse observations, through an EnKF.

The truth is the two-scale Lorenz-96 model (K = 36 slow variables, J = 10 fast ones each,
F = 10, h = 1, c = b = 10); half of the slow variables are observed every 0.05 time units
with noise std 1. The model is one-scale Lorenz-96 plus a closure U(X_k) of the local slow
variable (a small MLP). Three ways to get the closure, from Python:

* through the filter, from the observations alone: `discovery.learn_closure` minimises the
  DEnKF log-likelihood of 20-cycle windows over the closure's weights and the inflation;
* regressing a cubic on the filter's analysis increments: `discovery.fit_closure_to_increments`;
* the oracle, fitted by MSE to the true subgrid tendencies (uses the truth).

Each hybrid is then scored by forecasts from the true slow state (valid time: RMS error below
half the climatological std, in Lyapunov times of one-scale Lorenz-96, lambda_max ~ 2.36).
The pipeline `jaxsci run configs/l96_closure.yaml` runs the same study at full size with the
filter scores, plots and timings.

    .venv/bin/python examples/l96_closure.py [--train 2000] [--steps 800] [--fast]

`--fast` is a smoke run (200 cycles, 15 Adam steps): it shows the calls, not the skill.
"""

import argparse
import time

import jax
import numpy as np
import optax

from jaxsci import discovery, filters as F, losses, metrics, nn, train
from jaxsci.dynamics import Lorenz96, Lorenz96TwoScale
from jaxsci.integrate import Flow, rollout

DT = 0.05
LYAPUNOV = 2.36  # lambda_max of one-scale Lorenz-96, K = 36, F = 10 (the pipeline estimates it)


def forecasts(flow: Flow, starts, horizon: int):
    """From each start: the start and `horizon` states every DT."""
    return jax.vmap(lambda x0: rollout(flow, x0, horizon, dt=DT, include_initial=True))(starts)


def main(n_train: int, n_steps: int, n_forecasts: int, seed: int = 0) -> dict[str, float]:
    t0 = time.perf_counter()
    truth = Lorenz96TwoScale(36, 10, forcing=10.0)
    flow = Flow(truth, 0.005, max_steps=11)
    x = rollout(flow, truth.default_initial_state(), 200, dt=DT)[-1]  # onto the attractor
    horizon = 120  # 6 time units, about 14 Lyapunov times
    states = rollout(flow, x, n_train + 50 * n_forecasts + horizon, dt=DT)
    slow = states[:, :36]
    subgrid = jax.vmap(truth.subgrid_tendency)(states)
    obs_op = F.IndexObservation(36, indices=np.arange(0, 36, 2), noise_cov=1.0)
    keys = jax.random.split(jax.random.key(seed), 6)
    ys = F.synthetic_observations(keys[0], obs_op, slow[:n_train])
    # statistics from the observations (their variance minus the noise's), not the truth
    mean, std = float(ys.mean()), float(np.sqrt(ys.var() - 1.0))
    ens0 = mean + std * jax.random.normal(keys[1], (30, 36))
    physics, denkf = Lorenz96(36, 10.0), F.Inflation(F.DEnKF(), 1.2)
    print(f"truth and observations: {time.perf_counter() - t0:.1f} s")

    def new_closure(output_scale: float):
        return nn.LocalMLP(
            0, 16, 2, mean=mean, scale=std, output_scale=output_scale, zero_init=True, key=keys[2]
        )

    t0 = time.perf_counter()
    learned = discovery.learn_closure(
        physics,
        new_closure(1.0),  # a tendency of order 1 (its scale is learned)
        obs_op,
        denkf,
        ys,
        ens0,
        DT,
        key=keys[3],
        optimizer=optax.adam(1e-2),
        num_steps=n_steps,
        batch_size=8,
        progress=False,
    )
    print(
        f"learned through the filter ({learned.num_windows} windows, {n_steps} steps): "
        f"{time.perf_counter() - t0:.1f} s; inflation 1.2 -> {float(learned.filter.factor):.3f}"
    )
    increments = discovery.fit_closure_to_increments(
        physics, obs_op, denkf, ys, ens0, DT, key=keys[4], degree=3, passes=4
    )
    oracle, _ = train.fit(
        new_closure(float(subgrid.std())),  # the oracle knows the truth's scale
        losses.MSELoss(),
        (slow[:n_train], subgrid[:n_train]),
        optimizer=optax.adam(3e-3),
        key=keys[5],
        batch_size=32,
        num_steps=1500 if n_steps > 100 else 100,  # full: converged; --fast: a smoke run
        progress=False,
    )
    models = {
        "none": physics,
        "learned": learned.model,
        "oracle": nn.HybridVectorField(physics, oracle),
        "cubic on increments": increments.model,
    }
    starts = n_train + 50 * np.arange(n_forecasts)
    truth_fc = np.stack([slow[s : s + horizon + 1] for s in starts])
    lead = DT * np.arange(horizon + 1) * LYAPUNOV
    valid = {}
    for name, model in models.items():
        fc = forecasts(Flow(model, DT), slow[starts], horizon)
        err = metrics.normalised_error(fc, truth_fc, float(slow.std()))
        valid[name] = float(np.mean(metrics.valid_time(err, lead, 0.5)))
        print(f"{name:>20s}: forecast valid time {valid[name]:.2f} Lyapunov times")
    return valid


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=int, default=2000, help="training cycles")
    parser.add_argument("--steps", type=int, default=800, help="Adam steps through the filter")
    parser.add_argument("--forecasts", type=int, default=20)
    parser.add_argument("--fast", action="store_true", help="a smoke run")
    args = parser.parse_args()
    if args.fast:
        args.train, args.steps, args.forecasts = 200, 15, 3
    main(args.train, args.steps, args.forecasts)
