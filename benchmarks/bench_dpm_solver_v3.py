r"""DPM-Solver-v3 (Zheng et al. 2023) on exact-score Gaussian mixtures: error vs NFE against
UniPC-3, DPM-Solver++(3M) and DDIM, and side by side with the official implementation.

Problems. The exact eps of a Gaussian mixture's noised marginals drives every sampler (no
network error): d = 2, the mixture of `configs/gmm_samplers.yaml`; d = `--dim` (default
1024), the 8-component mixture of `bench_diffusion_diffusers.py` (means N(0, 0.5^2) per
coordinate, variances U[0.05, 0.5], Dirichlet(2) weights, seed 0). VP-linear schedule
(beta 0.1..20, t in [1e-3, 1]), logSNR-uniform grids (the shipped config's), float64.
Reference: `ProbabilityFlowODE(Dopri8, rtol=atol=1e-10)` from the same x_T ~ p_{t_max}.
Per-sample error: RMS over coordinates; the table gives the RMS over samples.

Samplers (jaxsci, defaults): `DPMSolverV3(statistics)` (order 3, full corrector),
`UniPC(order=3)`, `DPMSolverPPMultistep(order=3)`, `DDIM()`. The statistics come from
`model_statistics` on 1024 draws of the mixture (201 lambdas, as the gmm_samplers
pipeline). "NFE to DDIM@100": the NFE each sampler needs to reach DDIM's error at NFE 100,
by log-log interpolation on the sweep (">" when not reached at the largest NFE).

Official implementation (`--official`, d = 2 only by default): `dpm_solver_v3.py` of
github:thu-ml/DPM-Solver-v3 (read from the fetched snapshot, run unmodified with PyTorch on
CPU: `.cuda()` is made the identity), `NoiseScheduleVP('linear')`, skip_type "logSNR",
t_start 1, t_end 1e-3, its README defaults (order 3, p_pseudo False, use_corrector True,
c_pseudo True, lower_order_final True, half False), model = the same exact eps computed in
torch float64 and returned in float32: the official code builds its time tensors with
`torch.FloatTensor` (float32) and mixes them with the sample, so it runs in float32 only
(jaxsci in float64; the float32 rounding is far below the errors compared). Both sides
use the SAME statistics (ours, 1201 lambdas, written to its l.npz / sb.npz format): its grid
rounds the time steps to the statistics' lambda nodes, so 1200 intervals (divisible by every
NFE of the sweep) make the two grids identical. jaxsci runs with the matching options
(`pseudo_corrector=True`, lower-order final steps on every grid).
Printed: both errors and their ratio jaxsci/official.

Run (bench venv, which has torch): `PYTHONPATH=$PWD /work/venvs/bench/bin/python
benchmarks/bench_dpm_solver_v3.py [--dim 1024] [--batch 128] [--official REPO_GIT_DIR]
[--quick] [--json PATH]`.
"""

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time

import diffrax
import jax
import numpy as np

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402

import jaxsci.diffusion as jd  # noqa: E402

NFES = (5, 6, 8, 10, 12, 15, 20, 25, 50)
STATS_SAMPLES = 1024


def make_mixture(dim: int, seed: int = 0) -> jd.GaussianMixture:
    if dim == 2:
        return jd.GaussianMixture(
            [0.3, 0.7], [[-1.0, 0.5], [1.0, -0.5]], [[0.25, 0.25], [0.3, 0.2]]
        )
    rng = np.random.default_rng(seed)
    k = 8
    return jd.GaussianMixture(
        rng.dirichlet(2.0 * np.ones(k)),
        0.5 * rng.standard_normal((k, dim)),
        rng.uniform(0.05, 0.5, (k, dim)),
    )


def runner(sampler, den):
    @jax.jit
    def run(grid, x_T):
        return jax.vmap(lambda x: jd.sample(sampler, den, den.schedule, grid, x).x)(x_T)

    return run


def rms(x, ref):
    e = np.sqrt(np.mean((np.asarray(x) - np.asarray(ref)) ** 2, axis=-1))
    return float(np.sqrt(np.mean(e**2)))


def nfe_to_reach(nfes, errs, target):
    """Smallest NFE with error <= target, log-log interpolated between sweep points."""
    for k, (n, e) in enumerate(zip(nfes, errs, strict=True)):
        if e <= target:
            if k == 0:
                return float(n)
            n0, e0 = nfes[k - 1], errs[k - 1]
            w = (math.log(e0) - math.log(target)) / (math.log(e0) - math.log(e))
            return math.exp(math.log(n0) + w * (math.log(n) - math.log(n0)))
    return math.inf


def official_errors(repo_git, mix, st, x_T, ref, nfes):
    """Errors of the official DPM_Solver_v3 (unmodified file, torch CPU, float64 model)."""
    import torch

    torch.Tensor.cuda = lambda self, *a, **k: self  # CPU run of the CUDA-only code
    src = subprocess.run(
        ["git", "--git-dir", repo_git, "show", "HEAD:dpm_solver_v3.py"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    tmp = tempfile.mkdtemp()
    with open(os.path.join(tmp, "dpm_solver_v3_official.py"), "w") as f:
        f.write(src)
    sys.path.insert(0, tmp)
    import dpm_solver_v3_official as off  # pyright: ignore[reportMissingImports]

    d = mix.dim
    stats_dir = os.path.join(tmp, "stats")
    os.makedirs(stats_dir)
    sh = (-1, d, 1, 1)
    f32 = np.float32  # the official code builds its time tensors in float32 throughout
    np.savez(os.path.join(stats_dir, "l.npz"), l=np.asarray(st.l, f32).reshape(sh))
    np.savez(
        os.path.join(stats_dir, "sb.npz"),
        s=np.asarray(st.s, f32).reshape(sh),
        b=np.asarray(st.b, f32).reshape(sh),
    )
    w = torch.tensor(np.asarray(mix.weights), dtype=torch.float64)
    mu = torch.tensor(np.asarray(mix.means), dtype=torch.float64)
    var = torch.tensor(np.asarray(mix.variances), dtype=torch.float64)
    ns = off.NoiseScheduleVP("linear", continuous_beta_0=0.1, continuous_beta_1=20.0)

    def model_fn(x, t):
        x2 = x.reshape(x.shape[0], d).to(torch.float64)
        t = t.to(torch.float64).reshape(-1, 1, 1)
        la = torch.exp(ns.marginal_log_mean_coeff(t))
        si = torch.sqrt(1 - la**2)
        v = la**2 * var[None] + si**2  # (B, K, d)
        diff = x2[:, None, :] - la * mu[None]
        logp = torch.log(w)[None] - 0.5 * torch.sum(diff**2 / v + torch.log(v), -1)
        r = torch.softmax(logp, dim=-1)[..., None]
        score = -torch.sum(r * diff / v, dim=1)
        return (-si[:, 0] * score).reshape(x.shape).to(torch.float32)

    xt = torch.tensor(np.asarray(x_T, f32)).reshape(sh)
    out = {}
    for n in nfes:
        solver = off.DPM_Solver_v3(
            stats_dir, ns, steps=n, t_start=1.0, t_end=1e-3, skip_type="logSNR", device="cpu"
        )
        x = solver.sample(
            xt.clone(), model_fn, order=3, p_pseudo=False, use_corrector=True, c_pseudo=True,
            lower_order_final=True, half=False,
        )  # fmt: skip
        out[n] = rms(x.reshape(-1, d).double().numpy(), ref)
    return out


def problem(dim, batch, seed=0):
    sch = jd.VPLinear()
    mix = make_mixture(dim)
    den = jd.Denoiser(mix.eps_model(sch), sch)
    x_T = mix.sample(jax.random.key(seed), batch, sch.alpha(sch.t_max), sch.sigma(sch.t_max))
    ref_s = jd.ProbabilityFlowODE(solver=diffrax.Dopri8(), rtol=1e-10, atol=1e-10)  # pyright: ignore[reportCallIssue]
    t0 = time.perf_counter()
    ref = runner(ref_s, den)(jnp.asarray([sch.t_max, sch.t_min]), x_T)
    ref = jax.block_until_ready(ref)
    print(f"  reference: {time.perf_counter() - t0:.1f} s")
    return sch, mix, den, x_T, ref


def stats_for(den, mix, num_lambdas, seed=1):
    k1, k2 = jax.random.split(jax.random.key(seed))
    x0 = mix.sample(k1, STATS_SAMPLES)
    t0 = time.perf_counter()
    st = jax.block_until_ready(jd.model_statistics(den, x0, k2, num_lambdas=num_lambdas))
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    jax.block_until_ready(jd.model_statistics(den, x0, k2, num_lambdas=num_lambdas))
    run = time.perf_counter() - t0
    print(f"  statistics ({num_lambdas} lambdas, {STATS_SAMPLES} draws): first call "
          f"{first:.1f} s, run {run:.1f} s (compile ~{first - run:.1f} s)")  # fmt: skip
    return st, {"first_s": first, "run_s": run}


def sweep(dim, batch, nfes, official_repo=None):
    print(f"d = {dim}, {batch} samples")
    sch, mix, den, x_T, ref = problem(dim, batch)
    st, st_time = stats_for(den, mix, 201)
    samplers = {
        "dpm_solver_v3": jd.DPMSolverV3(st),
        "unipc_3": jd.UniPC(order=3),
        "dpmpp_3m": jd.DPMSolverPPMultistep(order=3),
        "ddim": jd.DDIM(),
    }
    errs, timing = {}, {}
    for name, smp in samplers.items():
        run = runner(smp, den)
        errs[name] = {}
        for n in nfes:
            grid = jd.time_grid(sch, n, jd.LogSNRUniform())
            t0 = time.perf_counter()
            x = jax.block_until_ready(run(grid, x_T))
            first = time.perf_counter() - t0
            errs[name][n] = rms(x, ref)
            if n == 10:
                t0 = time.perf_counter()
                jax.block_until_ready(run(grid, x_T))
                again = time.perf_counter() - t0
                timing[name] = {"first_s": first, "run_s": again}
        print(f"  {name:14s}" + " ".join(f"{errs[name][n]:.2e}" for n in nfes))
    ddim100 = rms(runner(jd.DDIM(), den)(jd.time_grid(sch, 100, jd.LogSNRUniform()), x_T), ref)
    reach = {
        name: nfe_to_reach(list(nfes), [errs[name][n] for n in nfes], ddim100) for name in errs
    }
    print(f"  DDIM@100 error {ddim100:.2e}; NFE to reach it: "
          + ", ".join(f"{k} {v:.1f}" for k, v in reach.items()))  # fmt: skip
    times = ", ".join(f"{k} {v['first_s']:.2f}/{v['run_s']:.3f} s" for k, v in timing.items())
    print(f"  time per batch at NFE 10 (first call incl. compile / run): {times}")
    result = {"errors": errs, "ddim100": ddim100, "nfe_to_ddim100": reach, "timing": timing,
              "statistics_time": st_time}  # fmt: skip
    if official_repo is not None:
        st_off, _ = stats_for(den, mix, 1201)
        ours = jd.DPMSolverV3(st_off, pseudo_corrector=True, lower_order_final_below=math.inf)
        run = runner(ours, den)
        off = official_errors(official_repo, mix, st_off, x_T, ref, nfes)
        mine = {n: rms(run(jd.time_grid(sch, n, jd.LogSNRUniform()), x_T), ref) for n in nfes}
        print("  official settings, same statistics (1201 lambdas):")
        print("    NFE       " + " ".join(f"{n:>8d}" for n in nfes))
        print("    jaxsci    " + " ".join(f"{mine[n]:.2e}" for n in nfes))
        print("    official  " + " ".join(f"{off[n]:.2e}" for n in nfes))
        print("    ratio     " + " ".join(f"{mine[n] / off[n]:8.3f}" for n in nfes))
        result["official"] = {"jaxsci": mine, "official": off}
    return result


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dim", type=int, default=1024)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--official", default=None, help="git dir of thu-ml/DPM-Solver-v3")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    nfes = (5, 10) if args.quick else NFES
    print(f"load average {os.getloadavg()}")
    out = {"d2": sweep(2, 256 if not args.quick else 32, nfes, args.official)}
    out[f"d{args.dim}"] = sweep(args.dim, args.batch if not args.quick else 8, nfes)
    print(f"load average {os.getloadavg()}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1, default=str)


if __name__ == "__main__":
    main()
