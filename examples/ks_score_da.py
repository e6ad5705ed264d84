"""Score-based data assimilation on Kuramoto-Sivashinsky with jaxsci.

    python examples/ks_score_da.py            # 2000 states, 4000 training steps (~1 min)
    python examples/ks_score_da.py --fast     # a small run, for the tests

1. Attractor states of KS (L = 22, 64 points) are the training data of a score network
   (`nn.ScoreMLP`, v-prediction, `diffusion.DenoisingScoreMatching`, `train.fit`).
2. A new trajectory is observed at every 4th grid point with noise std 10% of the
   climatological std. At each analysis time the posterior p(x | y) under the learned prior
   is sampled by DPS and by the twisted SMC sampler (`diffusion.posterior_draws`): no
   forecast, the learned climatology is the only prior.
3. A LETKF cycles on the same observations with the true model (`filters.run_filter`).
4. `metrics.ensemble_scores` scores all three: rmse of the mean, fair CRPS, spread-skill.

The pipeline `jaxsci run configs/ks_score_da.yaml` runs the same experiment with timings.
Writes `ks_score_da.png` (truth, observations and each method's mean +- 2 std) to --out.
"""

import argparse
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
from matplotlib.figure import Figure

from jaxsci import data, diffusion as jd, filters, integrate, metrics, train
from jaxsci.dynamics import KuramotoSivashinsky
from jaxsci.nn import ScoreMLP

POINTS, LENGTH, DT = 64, 22.0, 0.25


def main(fast: bool, out: Path) -> dict:
    n_traj, n_states, steps, width = (4, 50, 600, 64) if fast else (16, 125, 4000, 256)
    n_analyses, grid_steps, particles = (5, 20, 32) if fast else (30, 100, 256)

    # 1. the prior: a score network trained on attractor states 4 time units apart
    states = data.ks_trajectories(
        jax.random.key(0), n_traj, n_states - 1, save_every=4.0, spinup=50.0
    ).reshape(-1, POINTS)
    clim_std = float(np.std(states))
    sch, param = jd.VPLinear(), jd.VPrediction()
    net = ScoreMLP(POINTS, width, 2 if fast else 3, 32, key=jax.random.key(1))
    model, _ = train.fit(
        net,
        jd.DenoisingScoreMatching(sch, param),
        jnp.asarray(states),
        optimizer=optax.adam(optax.cosine_decay_schedule(1e-3, steps, alpha=0.05)),
        key=jax.random.key(2),
        batch_size=128,
        num_steps=steps,
        ema=0.999,
        progress=False,
    )

    # 2. a new trajectory, observed sparsely
    truth = data.ks_trajectories(jax.random.key(3), 1, n_analyses, spinup=50.0)[0, 1:]
    obs = filters.every_kth(POINTS, 4, noise_std=0.1 * clim_std)
    ys = filters.synthetic_observations(jax.random.key(4), obs, jnp.asarray(truth))

    # 3. score analyses (no forecast) and a cycling LETKF with the true model
    grid = jd.time_grid(sch, grid_steps)
    samplers = {
        "DPS": (jd.DPS(obs, ys[0], zeta=1.0), {}),  # pyright: ignore[reportCallIssue]
        "TDS": (jd.TDS(obs, ys[0], twist=jd.PiGDMTwist(clim_std)), {"num_particles": particles}),
    }
    ensembles = {}
    for i, (name, (sampler, kw)) in enumerate(samplers.items()):
        draws = jd.posterior_draws(
            sampler,
            model,
            sch,
            grid,
            ys,
            32,
            key=jax.random.key(10 + i),
            parameterization=param,
            **kw,
        )
        # the weighted particles (TDS) or draws (DPS, equal weights): TDS's resampled draws
        # repeat particles, which the scores would count as independent members
        ensembles[name] = (np.asarray(draws.particles), np.asarray(draws.weights))
    flow = integrate.Flow(KuramotoSivashinsky(LENGTH, POINTS), DT, integrate.ETDRK4())
    x0 = jnp.asarray(states[:20])  # climatological members: no knowledge of the truth
    letkf = filters.Inflation(filters.LETKF(4.0, obs), 1.05)
    res = filters.run_filter(
        jax.random.key(5), flow, obs, letkf, x0, ys, dt=1.0, store_ensembles=True
    )
    ensembles["LETKF (true model)"] = (np.asarray(res.ensembles), None)

    # 4. scores (after the filter's first analyses)
    burn = 2 if fast else 10
    table = {}
    print(f"climatological std {clim_std:.3f}, noise std {0.1 * clim_std:.3f}")
    for name, (ens, w) in ensembles.items():
        s = metrics.ensemble_scores(ens[burn:], truth[burn:], None if w is None else w[burn:])
        table[name] = {"rmse": float(s.rmse), "crps": float(s.crps), "ratio": float(s.spread_skill)}
        print(f"{name:20s} rmse {s.rmse:.4f}  CRPS {s.crps:.4f}  spread/skill {s.spread_skill:.2f}")

    xs = np.arange(POINTS) * LENGTH / POINTS
    fig = Figure(figsize=(12, 3.6), layout="constrained")
    for ax, (name, (ens, w)) in zip(
        fig.subplots(1, 3, sharey=True), ensembles.items(), strict=True
    ):
        w = np.full(ens.shape[1], 1 / ens.shape[1]) if w is None else w[-1]
        m = w @ ens[-1]
        sd = np.sqrt(w @ (ens[-1] - m) ** 2)
        ax.fill_between(xs, m - 2 * sd, m + 2 * sd, alpha=0.3)
        ax.plot(xs, m, label="mean")
        ax.plot(xs, truth[-1], "k--", label="truth")
        ax.plot(xs[np.asarray(obs.indices)], ys[-1], "r.", label="obs")
        ax.set_title(name)
    fig.axes[0].legend()
    out.mkdir(parents=True, exist_ok=True)
    fig.savefig(out / "ks_score_da.png", dpi=100)
    return table


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fast", action="store_true", help="short run (for tests)")
    parser.add_argument("--out", type=Path, default=Path("runs/examples"), help="output folder")
    args = parser.parse_args()
    main(args.fast, args.out)
