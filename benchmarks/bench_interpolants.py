"""Stochastic interpolants with the exact drift on the shipped `gmm_samplers` mixture: how many
evaluations each path / latent-noise variant needs, next to DDIM with the exact eps.

Target: the 2-D two-component mixture of `configs/gmm_samplers.yaml`; base N(0, I)
(one-sided interpolants). The drift b (and score s) come in closed form from
`jaxsci.diffusion.ExactMixtureInterpolant`, so what is measured is discretisation error only.
Variants: {linear, trig} paths x {gamma = 0, gamma = sqrt(t (1 - t))}.

For each NFE (evaluations of b) this prints, float64, n samples from common base draws:

* `rms`: the per-sample ODE error against the variant's own adaptive solve (Tsit5,
  rtol = atol = 1e-10), the `error_rms` of the gmm_samplers pipeline; Euler (1 NFE/step) and
  Heun (2 NFE/step);
* `mmd`: 1e3 x unbiased MMD^2 (`jaxsci.metrics.mmd2`, Gaussian kernels of bandwidths
  0.2, 0.5, 1, 2) between the samples and an exact mixture sample of the same size,
  for the ODEs and the Euler-Maruyama SDE (eps = 0.5); the `floor` row is the same statistic
  for exact mixture draws (its spread is the metric's Monte-Carlo noise);
* DDIM (VP-linear schedule, logSNR-uniform grid, x_T from the exact noised marginal, exact
  eps of the same mixture), its `rms` against a Dopri8 solve of the VP probability-flow ODE
  (rtol 1e-10), as in the pipeline;
* the NFE each ODE variant needs to reach DDIM@100's `rms` (log-log interpolation between
  the measured budgets);
* compile and run time of one jitted, vmapped call (the first call minus the steady-state
  median is the compile time).

    .venv/bin/python benchmarks/bench_interpolants.py [--n 2000] [--nfe 5 10 20 50 100]
"""

import argparse
import time
from pathlib import Path

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
import yaml

import jaxsci.diffusion as jd
from jaxsci.metrics import mmd2

ROOT = Path(__file__).resolve().parents[1]
BANDWIDTHS = [0.2, 0.5, 1.0, 2.0]
SDE_EPS = 0.5


def _timed(fn, *args):
    """(result, compile seconds, run seconds): one cold call, then the median of 3 warm ones."""
    t0 = time.perf_counter()
    out = jax.block_until_ready(fn(*args))
    first = time.perf_counter() - t0
    runs = []
    for _ in range(3):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(*args))
        runs.append(time.perf_counter() - t0)
    run = float(np.median(runs))
    return out, max(first - run, 0.0), run


def _crossing(nfes, errs, level):
    """The NFE at which the error falls to `level`, log-log interpolated between budgets."""
    for (n0, e0), (n1, e1) in zip(
        zip(nfes, errs, strict=True), zip(nfes[1:], errs[1:], strict=True), strict=False
    ):
        if e0 <= level:
            return float(n0)
        if e1 <= level < e0:
            s = np.log(level / e0) / np.log(e1 / e0)
            return float(np.exp(np.log(n0) + s * np.log(n1 / n0)))
    return float("nan") if errs[-1] > level else float(nfes[-1])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--nfe", type=int, nargs="+", default=[5, 10, 20, 50, 100])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    jax.config.update("jax_enable_x64", True)
    cfg = yaml.safe_load((ROOT / "configs" / "gmm_samplers.yaml").read_text())["mixture"]
    mix = jd.GaussianMixture(cfg["weights"], cfg["means"], cfg["variances"])
    n, nfes = args.n, args.nfe
    keys = jax.random.split(jax.random.key(args.seed), 4)
    x0 = jax.random.normal(keys[0], (n, 2))
    ref_sample = mix.sample(keys[1], n)
    sde_keys = jax.random.split(keys[2], n)

    def mmd(x):
        return 1e3 * float(mmd2(x, ref_sample, BANDWIDTHS))

    floors = [mmd(mix.sample(k, n)) for k in jax.random.split(keys[3], 5)]
    print(f"n = {n}; MMD floor (exact draws): mean {np.mean(floors):.3f}, sd {np.std(floors):.3f}")

    # --- DDIM with the exact eps ---
    sch = jd.VPLinear()
    den = jd.Denoiser(mix.eps_model(sch), sch)
    t_max = jnp.asarray(sch.t_max, jnp.float64)
    x_T = mix.sample(keys[0], n, float(sch.alpha(t_max)), float(sch.sigma(t_max)))
    pf = jd.ProbabilityFlowODE(solver=diffrax.Dopri8(), rtol=1e-10, atol=1e-10)  # pyright: ignore[reportCallIssue]

    def ddim_fn(sampler, grid):
        return jax.jit(jax.vmap(lambda x: jd.sample(sampler, den, sch, grid, x).x))

    timing = {}

    ddim_ref = ddim_fn(pf, jnp.asarray([sch.t_max, sch.t_min], jnp.float64))(x_T)
    rows = {}
    ddim_rms = []
    for nfe in nfes:
        grid = jd.time_grid(sch, nfe, jd.LogSNRUniform())
        x, c, r = _timed(ddim_fn(jd.DDIM(), grid), x_T)
        if nfe == 20:
            timing[("ddim", "ode")] = (c, r)
        e = float(jnp.sqrt(jnp.mean(jnp.sum((x - ddim_ref) ** 2, -1) / 2)))
        ddim_rms.append(e)
        rows[("ddim", "ode")] = rows.get(("ddim", "ode"), []) + [(nfe, e, mmd(x))]
    target = ddim_rms[nfes.index(100)] if 100 in nfes else ddim_rms[-1]

    # --- interpolants ---
    variants = {
        "linear": jd.StochasticInterpolant(jd.LinearInterpolant(), one_sided=True),
        "trig": jd.StochasticInterpolant(jd.TrigonometricInterpolant(), one_sided=True),
        "linear+gamma": jd.StochasticInterpolant(
            jd.LinearInterpolant(), jd.BrownianBridgeNoise(1.0), one_sided=True
        ),
        "trig+gamma": jd.StochasticInterpolant(
            jd.TrigonometricInterpolant(), jd.BrownianBridgeNoise(1.0), one_sided=True
        ),
    }
    for name, si in variants.items():
        ex = jd.ExactMixtureInterpolant(si, mix)
        ref = jax.jit(
            jax.vmap(lambda x, ex=ex: jd.interpolant_ode(ex.drift, x, rtol=1e-10, atol=1e-10).x)
        )(x0)
        for solver, per in (("euler", 1), ("heun", 2)):
            out = []
            for nfe in nfes:
                steps = max(nfe // per, 1)
                slv = diffrax.Euler() if solver == "euler" else diffrax.Heun()
                f = jax.jit(
                    jax.vmap(
                        lambda x, s=steps, v=slv, ex=ex: (
                            jd.interpolant_ode(ex.drift, x, n_steps=s, solver=v).x
                        )
                    )
                )
                x, c, r = _timed(f, x0)
                if nfe == 20:
                    timing[(name, solver)] = (c, r)
                e = float(jnp.sqrt(jnp.mean(jnp.sum((x - ref) ** 2, -1) / 2)))
                out.append((steps * per, e, mmd(x)))
            rows[(name, solver)] = out
        out = []
        for nfe in nfes:
            f = jax.jit(
                jax.vmap(
                    lambda x, k, s=nfe, ex=ex: (
                        jd.interpolant_sde(ex.drift, ex.score, x, k, eps=SDE_EPS, n_steps=s).x
                    )
                )
            )
            x, c, r = _timed(f, x0, sde_keys)
            if nfe == 20:
                timing[(name, "sde")] = (c, r)
            out.append((nfe, float("nan"), mmd(x)))
        rows[(name, f"sde eps={SDE_EPS}")] = out

    print()
    print(
        "| variant | solver | " + " | ".join(f"NFE {k}" for k in nfes) + " | NFE to DDIM@100 rms |"
    )
    print("|---|---|" + "---|" * (len(nfes) + 1))
    for (name, solver), out in rows.items():
        cells = []
        for _, e, m in out:
            cells.append(f"rms {e:.2e}, mmd {m:.3f}" if np.isfinite(e) else f"mmd {m:.3f}")
        cross = ""
        if np.isfinite(out[0][1]):
            c = _crossing([o[0] for o in out], [o[1] for o in out], target)
            cross = f"{c:.0f}" if np.isfinite(c) else f"> {nfes[-1]}"
        print(f"| {name} | {solver} | " + " | ".join(cells) + f" | {cross} |")
    print(f"\nDDIM@100 rms = {target:.3e} (the level the last column reaches)")
    print("\ncompile / run seconds of one jitted vmapped call at NFE 20 (n samples):")
    for (name, solver), (c, r) in timing.items():
        print(f"  {name:13s} {solver:6s} compile {c:6.2f} s  run {r:7.4f} s")


if __name__ == "__main__":
    main()
