"""Feynman-Kac correctors (annealed / product targets) and approximation-free ensemble
posterior sampling (issue 16), against exact references, next to the naive unweighted SDE,
DPS and TDS.

Part 1, FKC: p^beta of the 1-D mixture 0.7 N(-2, 0.5) + 0.3 N(2, 0.5) (beta = 2, 0.5; exact
moments, mode mass and CDF by quadrature on a 24001-point grid) and the product of two 2-D
Gaussians (exact Gaussian). Part 2, inverse problem: the 2-D four-component mixture prior of
`configs/inverse_gmm.yaml` with y = x0 + x1 + N(0, 1) = 0.3 (exact posterior from
`diffusion.exact_posterior`): `EnsemblePosterior` vs TDS (PiGDM twist) vs DPS (zeta' = 1).
All with exact mixture scores on VPLinear logSNR-uniform grids, float64. For each setting:
`repeats` independent runs in one vmapped, jitted call (compiled first and timed apart);
reported: error of the mean and of the variance (|mean over runs - exact|, with the
standard error over runs), marginal W1 (mean over runs and coordinates), mode-mass error,
mean minimum ESS, resampling steps, NFE per particle, run time.

    .venv/bin/python benchmarks/bench_fk_ensemble.py [--particles 500 2000] [--steps 50 200]
        [--repeats 8]
"""

import argparse
import math
import time

import jax
import jax.numpy as jnp
import numpy as np

import jaxsci.diffusion as jd
from jaxsci.observations import LinearObservation


def _se(a):
    a = np.asarray(a)
    return a.std(axis=0, ddof=1) / math.sqrt(a.shape[0])


def _stats(x, w):
    m = np.einsum("rn,rnd->rd", w, x)
    v = np.einsum("rn,rnd->rd", w, (x - m[:, None]) ** 2)
    return m, v


def _w1_1d(x, w, grid, cdf):
    """W1 of each run's weighted 1-D empirical law to the exact CDF on `grid`."""
    out = []
    for xr, wr in zip(x, w, strict=True):
        order = np.argsort(xr)
        cw = np.cumsum(wr[order])
        pos = np.searchsorted(xr[order], grid, side="right")
        fn = np.where(pos > 0, cw[np.maximum(pos - 1, 0)], 0.0)
        out.append(np.trapezoid(np.abs(fn - cdf), grid))
    return np.array(out)


def _timed(fn, *args):
    jax.block_until_ready(fn(*args))  # compile
    t0 = time.perf_counter()
    out = jax.block_until_ready(fn(*args))
    return out, time.perf_counter() - t0


def _row(name, n, steps, m_err, v_err, w1, mass_err, min_ess, nres, nfe, secs):
    print(
        f"| {name} | {n} | {steps} | {m_err} | {v_err} | {w1:.4f} | {mass_err} | "
        f"{min_ess} | {nres} | {nfe} | {secs:.2f} |"
    )


def _fmt(err, se):
    return f"{err:.4f} +- {se:.4f}"


def part_fkc(args):
    mix = jd.GaussianMixture([0.7, 0.3], [[-2.0], [2.0]], [[0.5], [0.5]])
    sch = jd.VPLinear()
    model = mix.eps_model(sch)
    xs = np.linspace(-12, 12, 24001)
    lp = np.asarray(jax.vmap(mix.logpdf)(jnp.asarray(xs)[:, None]))
    print("\n### Annealed 1-D mixture p^beta\n")
    print("| sampler | N | steps | mean err | var err | W1 | P(x>0) err | min ESS | resamplings "
          "| NFE | time [s] |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    keys = jax.random.split(jax.random.key(args.seed), args.repeats)
    for beta in (2.0, 0.5):
        q = np.exp(beta * lp - (beta * lp).max())
        q /= np.trapezoid(q, xs)
        m_ex = np.trapezoid(q * xs, xs)
        v_ex = np.trapezoid(q * (xs - m_ex) ** 2, xs)
        p_ex = np.trapezoid(q * (xs > 0), xs)
        cdf = np.concatenate([[0.0], np.cumsum(0.5 * (q[1:] + q[:-1]) * np.diff(xs))])
        for steps in args.steps:
            grid = jd.time_grid(sch, steps)
            for n in args.particles:
                for thr, label in ((0.5, "FKC"), (0.0, "naive (unweighted)")):
                    fkc = jd.FKCorrector(jd.AnnealedTarget(beta), ess_threshold=thr)
                    run = jax.jit(
                        jax.vmap(
                            lambda k, fkc=fkc, grid=grid, n=n: jd.fk_sample(
                                fkc, model, sch, grid, n, key=k, dim=1
                            )
                        )
                    )
                    res, secs = _timed(run, keys)
                    x = np.asarray(res.particles)
                    w = np.exp(np.asarray(res.log_weights))
                    if thr == 0.0:
                        w = np.full_like(w, 1.0 / n)
                    m, v = _stats(x, w)
                    p = np.einsum("rn,rn->r", w, (x[..., 0] > 0).astype(float))
                    w1 = _w1_1d(x[..., 0], w, xs, cdf).mean()
                    _row(
                        f"{label}, beta = {beta}", n, steps,
                        _fmt(abs(m.mean() - m_ex), _se(m[:, 0])),
                        _fmt(abs(v.mean() - v_ex), _se(v[:, 0])), w1,
                        _fmt(abs(p.mean() - p_ex), _se(p)),
                        f"{float(np.mean(res.min_ess)):.0f}" if thr else "-",
                        f"{float(np.mean(res.num_resampled)):.1f}", int(res.nfe[0]), secs,
                    )  # fmt: skip

    print("\n### Product of two 2-D Gaussians\n")
    m1, v1 = np.array([-1.0, 0.5]), np.array([0.5, 2.0])
    m2, v2 = np.array([1.5, 0.0]), np.array([1.0, 0.3])
    v_ex = 1.0 / (1.0 / v1 + 1.0 / v2)
    m_ex = v_ex * (m1 / v1 + m2 / v2)
    models = (
        jd.GaussianMixture([1.0], [m1], [v1]).eps_model(sch),
        jd.GaussianMixture([1.0], [m2], [v2]).eps_model(sch),
    )
    print("| sampler | N | steps | max mean err | max var err | min ESS | resamplings | NFE "
          "| time [s] |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|")
    for steps in args.steps:
        grid = jd.time_grid(sch, steps)
        for n in args.particles:
            for thr, label in ((0.5, "FKC"), (0.0, "naive (sum of scores)")):
                fkc = jd.FKCorrector(jd.ProductTarget(), ess_threshold=thr)
                run = jax.jit(
                    jax.vmap(
                        lambda k, fkc=fkc, grid=grid, n=n: jd.fk_sample(
                            fkc, models, sch, grid, n, key=k, dim=2
                        )
                    )
                )
                res, secs = _timed(run, keys)
                x = np.asarray(res.particles)
                w = np.exp(np.asarray(res.log_weights))
                if thr == 0.0:
                    w = np.full_like(w, 1.0 / n)
                m, v = _stats(x, w)
                jm = np.argmax(np.abs(m.mean(0) - m_ex))
                jv = np.argmax(np.abs(v.mean(0) - v_ex))
                print(
                    f"| {label} | {n} | {steps} | "
                    f"{_fmt(abs(m.mean(0) - m_ex)[jm], _se(m)[jm])} | "
                    f"{_fmt(abs(v.mean(0) - v_ex)[jv], _se(v)[jv])} | "
                    f"{float(np.mean(res.min_ess)) if thr else float('nan'):.0f} | "
                    f"{float(np.mean(res.num_resampled)):.1f} | {int(res.nfe[0])} | {secs:.2f} |"
                )


def part_inverse(args):
    prior = jd.GaussianMixture(
        [0.4, 0.3, 0.2, 0.1], [[-2, -2], [2, 2], [-2, 2], [2, -2]], [[0.3, 0.3]] * 4
    )
    obs = LinearObservation(jnp.asarray([[1.0, 1.0]]), noise_std=args.noise)
    y = [0.3]
    post = jd.exact_posterior(prior, obs, y)
    m_ex = np.asarray(post.mean())
    v_ex = np.diag(np.asarray(post.covariance()))
    p_ex = float(np.asarray(post.marginal_cdf(0, jnp.zeros(1)))[0])
    sch = jd.VPLinear()
    model = prior.eps_model(sch)
    keys = jax.random.split(jax.random.key(args.seed), args.repeats)
    print(f"\n### Inverse problem, noise std {args.noise}\n")
    print(f"Exact: mean {np.round(m_ex, 4)}, variances {np.round(v_ex, 4)}, P(x0 < 0) "
          f"{p_ex:.4f}, log p(y) {float(post.log_evidence):.4f}.\n")  # fmt: skip
    print("| sampler | N | steps | max mean err | max var err | W1 | P(x0<0) err | min ESS "
          "| resamplings | NFE | time [s] |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for steps in args.steps:
        grid = jd.time_grid(sch, steps)
        for n in args.particles:
            samplers = {
                "ensemble (resample every step)": lambda k, g=grid, n=n: (
                    jd.ensemble_posterior_sample(
                        jd.EnsemblePosterior(obs, y), model, sch, g, n, key=k
                    )
                ),
                "ensemble (ESS < N/2)": lambda k, g=grid, n=n: jd.ensemble_posterior_sample(
                    jd.EnsemblePosterior(obs, y, ess_threshold=0.5), model, sch, g, n, key=k
                ),
                "TDS (PiGDM twist)": lambda k, g=grid, n=n: jd.smc_sample(
                    jd.TDS(obs, y, twist=jd.PiGDMTwist(2.0)), model, sch, g, n, key=k
                ),
            }  # fmt: skip
            for name, fn in samplers.items():
                res, secs = _timed(jax.jit(jax.vmap(fn)), keys)
                x = np.asarray(res.particles)
                w = np.exp(np.asarray(res.log_weights))
                m, v = _stats(x, w)
                p = np.einsum("rn,rn->r", w, (x[..., 0] < 0).astype(float))
                w1 = np.mean(
                    [
                        np.asarray(jd.marginal_wasserstein1(post, jnp.asarray(xr), jnp.log(wr)))
                        for xr, wr in zip(x, w, strict=True)
                    ]
                )
                nres = np.asarray(
                    res.num_resampled
                    if hasattr(res, "num_resampled")
                    else res.info.resampled.sum(-1)
                )
                jm = np.argmax(np.abs(m.mean(0) - m_ex))
                jv = np.argmax(np.abs(v.mean(0) - v_ex))
                _row(
                    name, n, steps, _fmt(abs(m.mean(0) - m_ex)[jm], _se(m)[jm]),
                    _fmt(abs(v.mean(0) - v_ex)[jv], _se(v)[jv]), w1,
                    _fmt(abs(p.mean() - p_ex), _se(p)), f"{float(np.mean(res.min_ess)):.0f}",
                    f"{float(nres.mean()):.1f}", int(res.nfe[0]), secs,
                )  # fmt: skip
            dps = jd.DPS(obs, y, zeta=1.0)
            nd = n * args.repeats

            def draws(key, dps=dps, g=grid, nd=nd):
                k1, k2 = jax.random.split(key)
                return jax.vmap(lambda k, xt: jd.sample(dps, model, sch, g, xt, key=k).x)(
                    jax.random.split(k1, nd), jax.random.normal(k2, (nd, 2))
                )

            xd, secs = _timed(jax.jit(draws), jax.random.key(args.seed + 1))
            xd = np.asarray(xd).reshape(args.repeats, n, 2)
            w = np.full((args.repeats, n), 1.0 / n)
            m, v = _stats(xd, w)
            p = np.einsum("rn,rn->r", w, (xd[..., 0] < 0).astype(float))
            w1 = np.mean([np.asarray(jd.marginal_wasserstein1(post, jnp.asarray(xr))) for xr in xd])
            jm = np.argmax(np.abs(m.mean(0) - m_ex))
            jv = np.argmax(np.abs(v.mean(0) - v_ex))
            _row(
                "DPS (zeta' = 1, independent draws)", n, steps,
                _fmt(abs(m.mean(0) - m_ex)[jm], _se(m)[jm]),
                _fmt(abs(v.mean(0) - v_ex)[jv], _se(v)[jv]), w1,
                _fmt(abs(p.mean() - p_ex), _se(p)), "-", "-", steps, secs / args.repeats,
            )  # fmt: skip


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--particles", type=int, nargs="+", default=[500, 2000])
    parser.add_argument("--steps", type=int, nargs="+", default=[50, 200])
    parser.add_argument("--repeats", type=int, default=8)
    parser.add_argument("--noise", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=123)
    parser.add_argument("--part", choices=["fkc", "inverse", "both"], default="both")
    args = parser.parse_args(argv)
    jax.config.update("jax_enable_x64", True)
    if args.part in ("fkc", "both"):
        part_fkc(args)
    if args.part in ("inverse", "both"):
        part_inverse(args)


if __name__ == "__main__":
    main()
