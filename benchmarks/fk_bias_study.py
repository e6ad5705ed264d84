"""Finite-N, step and stiffness studies of FKCorrector / EnsemblePosterior (issue 16 review).

Each argument after --part is "N,steps,R" (particles, grid steps, independent runs with seeds
split from key 0). Prints variance / exact (both coordinates) +- its standard error over the
runs, or the log-normaliser's mean +- SE. float64, exact mixture scores, VPLinear.

  prod    : FKCorrector on the product of N((-1, .5), diag(.5, 2)) and N((1.5, 0), diag(1, .3))
  lognorm : FKCorrector on the product of two N(0, 1) in 1-D (exact log Z ratio 0)
  ens05   : EnsemblePosterior, the 4-component prior of the tests, y = x0 + x1 + N(0, .5^2) = .3

Example: PYTHONPATH=$PWD .venv/bin/python benchmarks/fk_bias_study.py --part prod 4000,100,16
"""

import argparse
import functools

import jax
import jax.numpy as jnp
import numpy as np

jax.config.update("jax_enable_x64", True)

import jaxsci.diffusion as jd  # noqa: E402
from jaxsci.observations import LinearObservation  # noqa: E402


def _fk(fkc, models, sch, grid, n, dim, key):
    return jd.fk_sample(fkc, models, sch, grid, n, key=key, dim=dim)


def _ens(ens, model, sch, grid, n, key):
    return jd.ensemble_posterior_sample(ens, model, sch, grid, n, key=key)


def _var_ratio(res, v_ex):
    x = np.asarray(res.particles)
    w = np.exp(np.asarray(res.log_weights))
    m = np.einsum("rn,rnd->rd", w, x)
    v = np.einsum("rn,rnd->rd", w, (x - m[:, None]) ** 2)
    return v.mean(0) / v_ex, v.std(0, ddof=1) / np.sqrt(v.shape[0]) / v_ex


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--part", choices=["prod", "lognorm", "ens05"], required=True)
    ap.add_argument("runs", nargs="+")
    args = ap.parse_args()
    sch = jd.VPLinear()
    for n, steps, reps in [tuple(map(int, a.split(","))) for a in args.runs]:
        grid = jd.time_grid(sch, steps)
        keys = jax.random.split(jax.random.key(0), reps)
        if args.part == "prod":
            m1, v1 = np.array([-1.0, 0.5]), np.array([0.5, 2.0])
            m2, v2 = np.array([1.5, 0.0]), np.array([1.0, 0.3])
            v_ex = 1.0 / (1.0 / v1 + 1.0 / v2)
            p1 = jd.GaussianMixture([1.0], [m1], [v1])
            p2 = jd.GaussianMixture([1.0], [m2], [v2])
            models = (p1.eps_model(sch), p2.eps_model(sch))
            fkc = jd.FKCorrector(jd.ProductTarget())
            res = jax.jit(jax.vmap(functools.partial(_fk, fkc, models, sch, grid, n, 2)))(keys)
            r, se = _var_ratio(res, v_ex)
            print(f"prod N={n} steps={steps} R={reps}: var/exact {r} +- {se}", flush=True)
        elif args.part == "lognorm":
            p = jd.GaussianMixture([1.0], [[0.0]], [[1.0]])
            models = (p.eps_model(sch), p.eps_model(sch))
            fkc = jd.FKCorrector(jd.ProductTarget())
            res = jax.jit(jax.vmap(functools.partial(_fk, fkc, models, sch, grid, n, 1)))(keys)
            lz = np.asarray(res.log_normalizer)
            se = lz.std(ddof=1) / np.sqrt(reps)
            print(f"lognorm N={n} steps={steps} R={reps}: {lz.mean():.3f} +- {se:.3f} (exact 0)")
        else:
            prior = jd.GaussianMixture(
                [0.4, 0.3, 0.2, 0.1],
                [[-2.0, -2.0], [2.0, 2.0], [-2.0, 2.0], [2.0, -2.0]],
                [[0.3, 0.3]] * 4,
            )
            obs = LinearObservation(jnp.asarray([[1.0, 1.0]]), noise_std=0.5)
            v_ex = np.diag(np.asarray(jd.exact_posterior(prior, obs, [0.3]).covariance()))
            ens = jd.EnsemblePosterior(obs, [0.3])
            model = prior.eps_model(sch)
            res = jax.jit(jax.vmap(functools.partial(_ens, ens, model, sch, grid, n)))(keys)
            r, se = _var_ratio(res, v_ex)
            stiff = float(ens.stiffness(sch, grid))
            print(
                f"ens05 N={n} steps={steps} R={reps} (stiffness {stiff:.2f}): var/exact {r} "
                f"+- {se}",
                flush=True,
            )


if __name__ == "__main__":
    main()
