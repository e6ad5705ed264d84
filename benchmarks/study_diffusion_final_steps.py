r"""The studies behind the issue-13 sampler defaults (DPM-Solver++(3M)'s D2 weight, UniPC's
final steps), on the exact-score mixtures of `bench_diffusion_diffusers.py` (its helpers).

Subcommands (figures in `RESULTS_diffusion.md`, section "Issue 13, re-measured"):

  weight DIM BATCH FAMILY NFES     3M error / diffusers' 3M error for the damping scales
                                   1/4, 1/2, 1 of the weight 1 + e^{-h/s} (on every grid:
                                   published_weight_below=0) and the library default.
  local3m DIM BATCH NFES           local errors of the last two 3M steps on diffusers'
                                   trailing grid, from exact states (Dopri8, rtol 1e-11):
                                   orders 1, 2, 3 with weight 1 and weight 2.
  unipc DIM BATCH ORDER NFES SEEDS UniPC-ORDER error / diffusers' on the logSNR grid:
                                   the default, the earlier rule (capped below 15 steps
                                   and on growing grids) and capped on every grid, with a 95% paired
                                   bootstrap interval; mixtures seeded SEEDS (d > 2).
  unipc-local DIM BATCH NFES       local error of UniPC's final predictor of order 1, 2, 3
                                   from exact states on the logSNR grid.
  unipc-order                      UniPC-2/3: default, below15, capped on the order test's mixture
                                   (tests/diffusion/test_order.py), 20-640 steps, slopes.

NFES and SEEDS are comma-separated. Run from the repository root with the bench venv:
`PYTHONPATH=. /work/venvs/bench/bin/python benchmarks/study_diffusion_final_steps.py weight 2
256 logsnr 5,8,10,20,50,100,500`. float64 throughout; no timings.
"""

import dataclasses
import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_diffusion_diffusers as B  # noqa: E402  (sets x64 and the one-thread flags)
import diffrax  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

import jaxsci.diffusion as jd  # noqa: E402


def _ints(text):
    return [int(v) for v in text.split(",")]


def _setup(dim, batch, seed=0):
    mix = B.make_mixture(dim, seed)
    abar = B.train_abar()
    x_T = np.random.default_rng(1).standard_normal((batch, dim))
    t_end = B.jaxsci_grid(abar, np.asarray([999, 0]))
    ref = B.reference(mix, jnp.asarray(x_T), t_end[0], t_end[1], 1e-10)
    return mix, abar, x_T, np.asarray(ref)


def _lams(abar, family, nfe, name):
    if family == "trailing":
        return B.step_lambdas(abar, B.diffusers_grid(B.PAIRS[name][1](), nfe)), None
    lam = B.logsnr_lambdas(abar, nfe)
    return lam, lam


def _per_sample(x, ref):
    return B.per_sample_errors(x, ref)


def weight(dim, batch, family, nfes):
    mix, abar, x_T, ref = _setup(dim, batch)
    eps_t = B.TorchMixtureEps(mix, abar)
    make_j, make_d = B.PAIRS["dpmpp_3m"]
    variants = {"default": ({}, {})}
    for scale in (0.25, 0.5, 1.0):
        variants[f"s={scale:g}"] = ({"_D2_DAMPING_SCALE": scale}, {"published_weight_below": 0})
    for nfe in nfes:
        lam, d_lam = _lams(abar, family, nfe, "dpmpp_3m")
        x_d = B.run_diffusers(make_d(), eps_t, torch.from_numpy(x_T.copy()), nfe, d_lam).numpy()
        rms_d = float(np.sqrt(np.mean(_per_sample(x_d, ref) ** 2)))
        out = [f"{family} NFE {nfe}: diffusers {rms_d:.3e}"]
        for tag, (constants, options) in variants.items():
            with B.patched(constants):
                sampler = dataclasses.replace(make_j(), **options)
                x = B.jaxsci_sampler_fn(sampler, mix, B.lambda_grid(lam))(jnp.asarray(x_T))
            out.append(f"{tag} {np.sqrt(np.mean(_per_sample(x, ref) ** 2)) / rms_d:.3f}")
        print(" | ".join(out), flush=True)


def _exact_states(mix, x_T, ts, ks):
    """Exact probability-flow states at the grid points ts[k], k in `ks` (increasing)."""
    model = mix.eps_model(B.CHART)
    ode = jd.ProbabilityFlowODE(diffrax.Dopri8(), rtol=1e-11, atol=1e-11, max_steps=100_000)

    def solve(x, t0, t1):
        return np.asarray(
            jax.vmap(lambda y: jd.sample(ode, model, B.CHART, jnp.asarray([t0, t1]), y).x)(x)
        )

    xs, x, t = {}, jnp.asarray(x_T), ts[0]
    for k in ks:
        x = solve(x, t, ts[k])
        xs[k], t = x, ts[k]
    return xs, model


def _x0(model, t, x):
    a, s = B.CHART.alpha(t), B.CHART.sigma(t)
    return np.asarray(jax.vmap(lambda y: (y - s * model(t, y)) / a)(jnp.asarray(x)))


def local3m(dim, batch, nfes):
    mix, abar, x_T, _ = _setup(dim, batch)
    for nfe in nfes:
        lam, _ = _lams(abar, "trailing", nfe, "dpmpp_3m")
        ts, n = B.lambda_grid(lam), nfe
        xs, model = _exact_states(mix, x_T, ts, range(n - 4, n + 1))
        m = {k: _x0(model, ts[k], xs[k]) for k in xs}
        out = [f"NFE {nfe} h_last {lam[n] - lam[n - 1]:.3f} h_prev {lam[n - 1] - lam[n - 2]:.3f}"]
        for k in (n - 2, n - 1):
            h = lam[k + 1] - lam[k]
            a_t, s_t = float(B.CHART.alpha(ts[k + 1])), float(B.CHART.sigma(ts[k + 1]))
            base = s_t / float(B.CHART.sigma(ts[k])) * xs[k]
            em = np.expm1(-h)
            r0, r1 = (lam[k] - lam[k - 1]) / h, (lam[k - 1] - lam[k - 2]) / h
            d10, d11 = (m[k] - m[k - 1]) / r0, (m[k - 1] - m[k - 2]) / r1
            d1, d2 = d10 + r0 / (r0 + r1) * (d10 - d11), (d10 - d11) / (r0 + r1)
            steps = {
                "q1": base - a_t * em * m[k],
                "q2": base - a_t * em * ((1 + 0.5 / r0) * m[k] - 0.5 / r0 * m[k - 1]),
            }
            for w in (1.0, 2.0):
                steps[f"q3 w{w:g}"] = (
                    base
                    - a_t * em * m[k]
                    + a_t * (em / h + 1) * d1
                    - w * a_t * ((em + h) / h**2 - 0.5) * d2
                )
            for tag, x in steps.items():
                e = np.sqrt(np.mean((x - xs[k + 1]) ** 2))
                out.append(f"step {k - n} {tag} {e:.2e}")
        print(" | ".join(out), flush=True)


def unipc(dim, batch, order, nfes, seeds):
    name = f"unipc_{order}"
    make_j, make_d = B.PAIRS[name]
    capped = dataclasses.replace(make_j(), lower_order_final_below=math.inf)
    below15 = dataclasses.replace(make_j(), lower_order_final_below=15)  # the stop-22 rule
    for seed in seeds:
        mix, abar, x_T, ref = _setup(dim, batch, seed)
        eps_t = B.TorchMixtureEps(mix, abar)
        for nfe in nfes:
            lam, d_lam = _lams(abar, "logsnr", nfe, name)
            x_d = B.run_diffusers(make_d(), eps_t, torch.from_numpy(x_T.copy()), nfe, d_lam)
            e_d = _per_sample(x_d.numpy(), ref)
            out = [f"seed {seed} {name} logsnr NFE {nfe}: diffusers {np.sqrt(np.mean(e_d**2)):.3e}"]
            for tag, sampler in (("default", make_j()), ("below15", below15), ("capped", capped)):
                x = B.jaxsci_sampler_fn(sampler, mix, B.lambda_grid(lam))(jnp.asarray(x_T))
                e = _per_sample(x, ref)
                lo, hi = B.ratio_interval(e, e_d)
                out.append(
                    f"{tag} {np.sqrt(np.mean(e**2) / np.mean(e_d**2)):.4f} [{lo:.3f}, {hi:.3f}]"
                )
            print(" | ".join(out), flush=True)


def unipc_local(dim, batch, nfes):
    mix, abar, x_T, _ = _setup(dim, batch)
    u = jd.UniPC(order=3)
    for nfe in nfes:
        lam = B.logsnr_lambdas(abar, nfe)
        ts, n = B.lambda_grid(lam), nfe
        xs, model = _exact_states(mix, x_T, ts, range(n - 3, n + 1))
        ms = [jnp.asarray(_x0(model, ts[k], xs[k])) for k in (n - 1, n - 2, n - 3)]
        lams = [jnp.asarray(lam[k]) for k in (n - 1, n - 2, n - 3)]
        ratio = B.CHART.sigma(ts[n]) / B.CHART.sigma(ts[n - 1])
        a_t = B.CHART.alpha(ts[n])
        out = [f"NFE {nfe} h {lam[n] - lam[n - 1]:.3f}"]
        for q in (1, 2, 3):
            lam_t = jnp.asarray(lam[n])

            def step(x, a, b, c, q=q, lams=lams, lam_t=lam_t, ratio=ratio, a_t=a_t):
                return u._update(q, x, [a, b, c], lams, lam_t, ratio, a_t)

            x = jax.vmap(step)(jnp.asarray(xs[n - 1]), *ms)
            out.append(f"UniP-{q} {np.sqrt(np.mean((np.asarray(x) - xs[n]) ** 2)):.3e}")
        print(" | ".join(out), flush=True)


def unipc_order():
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
    from diffusion._exact import Mixture, reference_pf_ode, vp_alpha, vp_eps_model, vp_sigma

    mix = Mixture([0.3, 0.7], [[-1.0, 0.5], [1.0, -0.5]], [[0.25, 0.25], [0.3, 0.2]])
    x_T = mix.sample(jax.random.key(0), 16, vp_alpha(1.0), vp_sigma(1.0))
    ref = jax.jit(jax.vmap(lambda x: reference_pf_ode(mix, x, 1.0, 1e-3, rtol=1e-12)))(x_T)
    sch, model = jd.VPLinear(t_min=1e-3, t_max=1.0), vp_eps_model(mix)
    steps = (20, 40, 80, 160, 320, 640)
    ss = jd.SinglestepWarmup()
    for p in (2, 3):
        for tag, below in (("default", None), ("below15", 15), ("capped", math.inf)):
            sampler = jd.UniPC(p, warmup=ss, lower_order_final_below=below)
            errs = []
            for n in steps:
                grid = jd.time_grid(sch, n, jd.LogSNRUniform())
                out = jax.vmap(lambda x, g=grid, s=sampler: jd.sample(s, model, sch, g, x).x)(x_T)
                errs.append(float(jnp.sqrt(jnp.mean((out - ref) ** 2))))
            slopes = np.diff(np.log(errs)) / -np.diff(np.log(steps))
            print(
                f"unipc_{p} {tag}: "
                + " ".join(f"{e:.2e}" for e in errs)
                + " | slopes "
                + " ".join(f"{v:.2f}" for v in slopes),
                flush=True,
            )


def main():
    torch.set_num_threads(1)
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "weight":
        weight(int(args[0]), int(args[1]), args[2], _ints(args[3]))
    elif cmd == "local3m":
        local3m(int(args[0]), int(args[1]), _ints(args[2]))
    elif cmd == "unipc":
        unipc(int(args[0]), int(args[1]), int(args[2]), _ints(args[3]), _ints(args[4]))
    elif cmd == "unipc-local":
        unipc_local(int(args[0]), int(args[1]), _ints(args[2]))
    elif cmd == "unipc-order":
        unipc_order()
    else:
        raise SystemExit(f"unknown subcommand {cmd!r}; see the module docstring")


if __name__ == "__main__":
    main()
