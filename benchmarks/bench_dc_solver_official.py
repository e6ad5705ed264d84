r"""DC-Solver: jaxsci's `DCSolver` / `dc_calibrate` beside the official implementation.

The official code (github.com/wl-zhao/DC-Solver, `diffusers/src/diffusers/schedulers/
scheduling_dcsolver_multistep.py`, a diffusers scheduler) is loaded from a fetched snapshot
(`--official PATH`, never vendored) into diffusers 0.42.1 (CPU torch) and run on the same
exact-score model as jaxsci: the d = 2 mixture of `configs/gmm_samplers.yaml`, its noise
prediction written in torch (differentiable: the official search back-propagates through the
corrector's model call).

One discrete schedule on both sides: the official scheduler's defaults (1000 linear betas
1e-4 .. 0.02, "linspace" timesteps, the last step to training step 0). jaxsci samples the
same grid in lambda through the VP chart of `bench_diffusion_diffusers.py` (exact for VP
schedules). Settings shared: UniPC-3 (`solver_order=3`, bh2), `dc_order=2`, lower-order
final steps on every grid (`lower_order_final=True` there, `lower_order_final_below=inf`
here), the corrector on every step (`disable_corrector=[]`; the official script's default
[0] skips the first).

Ground truth for both searches: a jaxsci Dopri8 (rtol = atol = 1e-10) solve of the PF-ODE
from the 10 calibration noises, saved at every grid time (the official search compares the
corrected state after each step with the ground truth there; its own script uses a 200-step
DDIM trajectory). Official search: its `_step_search` (20 AdamW steps, lr 0.1, per step,
greedy). jaxsci: `dc_calibrate` (200 Adam steps, lr 0.02, all ratios jointly, final-sample
loss). Scored on 256 other noises against the same Dopri8 solve.

The official scheduler runs in float32 (its UniPC updates mix float32 coefficients into
the samples, which fails on float64 samples); jaxsci in float64. Rows: UniPC-3 on both sides
(official with all ratios 1); DC-Solver with each side's own search; jaxsci's `DCSolver`
run with the *official* ratios (checks that the two compensated samplers are the same
method: what differs is float32 rounding and the interpolation variable, the training step
there, the chart's t here, nearly affine in it). Calibration wall times are printed (the
official search runs eagerly in torch; jaxsci's compile is printed apart).

Run (the bench venv has torch + diffusers): `PYTHONPATH=$PWD /work/venvs/bench/bin/python
benchmarks/bench_dc_solver_official.py --official /tmp/scheduling_dcsolver_multistep.py`
after `git -C <snapshot> show HEAD:diffusers/src/diffusers/schedulers/
scheduling_dcsolver_multistep.py > /tmp/scheduling_dcsolver_multistep.py`.
"""

import argparse
import importlib.util
import math
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import torch

jax.config.update("jax_enable_x64", True)

import diffrax  # noqa: E402

import jaxsci.diffusion as jd  # noqa: E402

CHART = jd.VPLinear(t_min=1e-5, t_max=1.2)  # as bench_diffusion_diffusers.py
W, MU, VAR = [0.3, 0.7], [[-1.0, 0.5], [1.0, -0.5]], [[0.25, 0.25], [0.3, 0.2]]


def load_official(path):
    name = "diffusers.schedulers.scheduling_dcsolver_multistep"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod.DCSolverMultistepScheduler


def torch_eps(abar):
    """The mixture's exact eps at training step n (alpha^2 = abar_n), in torch float64."""
    w = torch.tensor(W, dtype=torch.float64)
    mu = torch.tensor(MU, dtype=torch.float64)
    var = torch.tensor(VAR, dtype=torch.float64)
    abar = torch.tensor(abar, dtype=torch.float64)

    def eps(x, n):
        a2 = abar[int(n)]
        a, s2 = torch.sqrt(a2), 1.0 - a2
        v = a2 * var + s2  # (K, d)
        diff = x.double()[:, None, :] - a * mu[None]  # (B, K, d)
        logk = -0.5 * torch.sum(diff**2 / v + torch.log(2 * math.pi * v), -1) + torch.log(w)
        resp = torch.softmax(logk, -1)  # (B, K)
        score = -torch.sum(resp[..., None] * diff / v, 1)
        return (-torch.sqrt(s2) * score).to(x.dtype)

    return eps


def run_official(sched, eps, x, nfe, gt=None):
    sched.ddim_gt = gt
    sched.set_timesteps(nfe)
    sched.model_wrapper = eps
    for t in sched.timesteps:
        x = sched.step(eps(x, t), t, x).prev_sample
    return x


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--official", required=True, help="scheduling_dcsolver_multistep.py")
    p.add_argument("--nfe", type=int, nargs="+", default=[5, 10])
    p.add_argument("--batch", type=int, default=256)
    a = p.parse_args()
    DCS = load_official(a.official)
    torch.set_num_threads(1)

    mix = jd.GaussianMixture(W, MU, VAR)
    den = jd.Denoiser(mix.eps_model(CHART), CHART)
    probe = DCS(solver_order=3)
    abar = probe.alphas_cumprod.numpy().astype(np.float64)
    eps = torch_eps(abar)
    lam_of = lambda n: 0.5 * np.log(abar[n] / (1 - abar[n]))  # noqa: E731
    a_T, s_T = math.sqrt(abar[999]), math.sqrt(1 - abar[999])
    x_test = mix.sample(jax.random.key(0), a.batch, a_T, s_T)
    x_cal = mix.sample(jax.random.fold_in(jax.random.key(0), 1), 10, a_T, s_T)
    ref_sampler = jd.ProbabilityFlowODE(  # pyright: ignore[reportCallIssue]
        solver=diffrax.Dopri8(), rtol=1e-10, atol=1e-10, max_steps=100_000
    )

    def trajectories(grid, x):
        f = jax.vmap(lambda x: jd.sample(ref_sampler, den, CHART, grid, x, save_trajectory=True))
        return np.asarray(f(x).trajectory)  # (B, steps + 1, d)

    def jrun(s, grid, x):
        return np.asarray(jax.vmap(lambda x: jd.sample(s, den, CHART, grid, x).x)(x))

    def err(x, ref):
        e = np.sqrt(np.mean((np.asarray(x) - ref) ** 2, -1))
        return float(np.sqrt(np.mean(e**2)))

    kw = dict(
        solver_order=3,
        dc_order=2,
        lower_order_final=True,
        disable_corrector=[],
        timestep_spacing="linspace",
        num_iters=20,
    )
    unipc = jd.UniPC(order=3, lower_order_final_below=math.inf)
    for nfe in a.nfe:
        sched = DCS(**kw)
        sched.set_timesteps(nfe)
        steps = [int(t) for t in sched.timesteps] + [0]
        grid = jnp.asarray(np.asarray(CHART.t_from_lambda(jnp.asarray(lam_of(np.asarray(steps))))))
        ref_test = trajectories(grid, x_test)[:, -1]
        traj_cal = trajectories(grid, x_cal)
        gt = dict(
            ts=np.asarray(steps), intermediates=traj_cal.astype(np.float32)
        )  # as its __init__ stores it
        # float32: the official UniPC updates mix float32 coefficients into float64 samples.
        xt_t, xc_t = (torch.from_numpy(np.asarray(v, np.float32)) for v in (x_test, x_cal))

        # Official: UniPC-3 (ratios 1), then its search and DC sampling.
        sched.ddim_gt = None
        sched.dc_ratios = [1.0] * nfe
        off_unipc = run_official(sched, eps, xt_t.clone(), nfe).double().numpy()
        sched = DCS(**kw, ddim_gt=None)
        t0 = time.perf_counter()
        run_official(sched, eps, xc_t.clone(), nfe, gt=gt)
        t_off = time.perf_counter() - t0
        ratios_off = np.asarray(sched.dc_ratios, np.float64)
        sched.ddim_gt = None
        off_dc = run_official(sched, eps, xt_t.clone(), nfe).double().numpy()

        # jaxsci: the same grid, its own search (compile timed apart by a second call).
        t0 = time.perf_counter()
        dc, info = jd.dc_calibrate(jd.DCSolver(unipc), den, grid, x_cal, traj_cal[:, -1])
        jax.block_until_ready(dc.ratios)
        t_first = time.perf_counter() - t0
        t0 = time.perf_counter()
        jax.block_until_ready(
            jd.dc_calibrate(jd.DCSolver(unipc), den, grid, x_cal, traj_cal[:, -1])[0].ratios
        )
        t_j = time.perf_counter() - t0
        j_unipc = jrun(unipc, grid, x_test)
        j_dc = jrun(dc, grid, x_test)
        j_dc_off = jrun(jd.DCSolver(unipc, ratios_off), grid, x_test)
        print(f"NFE {nfe} (grid: training steps {steps})")
        print(
            f"  UniPC-3        official {err(off_unipc, ref_test):.3e}"
            f"   jaxsci {err(j_unipc, ref_test):.3e}"
            f"   |official - jaxsci| max {np.max(np.abs(off_unipc - j_unipc)):.1e}"
        )
        print(
            f"  DC-Solver      official search {err(off_dc, ref_test):.3e} ({t_off:.1f} s eager)"
            f"   jaxsci search {err(j_dc, ref_test):.3e}"
            f" ({t_j:.1f} s + {max(t_first - t_j, 0):.1f} s compile)"
        )
        print(
            f"  jaxsci DCSolver with the official ratios {err(j_dc_off, ref_test):.3e}"
            f"   |official - jaxsci| max {np.max(np.abs(off_dc - j_dc_off)):.1e}"
        )
        print(f"  ratios official {np.round(ratios_off, 3).tolist()}")
        print(
            f"  ratios jaxsci   {np.round(np.asarray(dc.ratios), 3).tolist()}"
            f"  (loss {float(info.initial_loss):.2e} -> {float(info.final_loss):.2e})"
        )


if __name__ == "__main__":
    main()
