"""Twisted SMC (`jaxsci.diffusion.TDS`) at large particle counts: where does the base chain's
discretisation floor sit?

TDS is asymptotically exact for the law of its base reverse chain (DDIM eta = 1 on the
chosen grid), so at large N what remains against the exact posterior is that chain's own
discretisation error. On the `inverse_gmm` problem (2-D four-component mixture prior,
y = x0 + x1 + N(0, 0.5^2) = 0.3; exact posterior from `diffusion.exact_posterior`), for each
(steps, N) this runs `repeats` independent SMC runs (one vmapped, jitted call, compiled
first and timed apart) and prints: the RMSE of the weighted posterior mean (with its
delta-method standard error), the norm of (mean over runs - exact mean) with its standard
error (the bias), the posterior mass P(x0 < 0) against the exact one, and the log-normaliser
minus the exact log-evidence.

    .venv/bin/python benchmarks/bench_diffusion_posterior.py [--steps 25 100 400]
        [--particles 4096 16384] [--repeats 16]
"""

import argparse
import math
import time

import jax
import jax.numpy as jnp
import numpy as np

import jaxsci.diffusion as jd
from jaxsci.observations import LinearObservation


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, nargs="+", default=[25, 100, 400])
    parser.add_argument("--particles", type=int, nargs="+", default=[4096, 16384])
    parser.add_argument("--repeats", type=int, default=16)
    parser.add_argument("--seed", type=int, default=123)
    args = parser.parse_args(argv)

    prior = jd.GaussianMixture(
        [0.4, 0.3, 0.2, 0.1], [[-2, -2], [2, 2], [-2, 2], [2, -2]], [[0.3, 0.3]] * 4
    )
    obs, y = LinearObservation(jnp.array([[1.0, 1.0]]), noise_std=0.5), jnp.array([0.3])
    post = jd.exact_posterior(prior, obs, y)
    exact_mean = np.asarray(post.mean())
    p_left = float(post.marginal_cdf(0, jnp.array([0.0]))[0])
    sch = jd.VPLinear()
    model = prior.eps_model(sch)
    tds = jd.TDS(obs, y, twist=jd.PiGDMTwist(data_std=2.0))
    r = args.repeats
    print(
        f"exact: mean {exact_mean.round(4)}, P(x0<0) {p_left:.4f}, log p(y) "
        f"{float(post.log_evidence):.4f}; {r} runs per row"
    )
    print(
        "| steps | N | RMSE of mean | mean of runs - exact | P(x0 < 0) | log Z - log p(y) "
        "| compile s | run s |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for steps in args.steps:
        grid = jd.time_grid(sch, steps)
        for n in args.particles:
            fn = jax.jit(
                jax.vmap(lambda k, n=n, grid=grid: jd.smc_sample(tds, model, sch, grid, n, key=k))
            )
            keys = jax.random.split(jax.random.key(args.seed), r)
            t0 = time.perf_counter()
            compiled = fn.lower(keys).compile()
            t1 = time.perf_counter()
            res = jax.block_until_ready(compiled(keys))
            t2 = time.perf_counter()
            w = np.exp(np.asarray(res.log_weights))
            x = np.asarray(res.particles)
            means = np.einsum("rn,rnd->rd", w, x)
            sq = np.sum((means - exact_mean) ** 2, -1)
            rmse = math.sqrt(sq.mean())
            rmse_se = sq.std(ddof=1) / math.sqrt(r) / (2 * rmse)
            bias = float(np.linalg.norm(means.mean(0) - exact_mean))
            bias_se = math.sqrt(np.sum(means.var(0, ddof=1)) / r)
            left = np.sum(w * (x[..., 0] < 0), -1)
            lz = np.asarray(res.log_normalizer) - float(post.log_evidence)
            print(
                f"| {steps} | {n} | {rmse:.4f} +- {rmse_se:.4f} | {bias:.4f} (se {bias_se:.4f}) "
                f"| {left.mean():.4f} +- {left.std(ddof=1) / math.sqrt(r):.4f} "
                f"| {lz.mean():+.4f} +- {lz.std(ddof=1) / math.sqrt(r):.4f} "
                f"| {t1 - t0:.1f} | {t2 - t1:.1f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
