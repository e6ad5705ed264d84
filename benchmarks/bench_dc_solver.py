r"""DC-Solver (Zhao et al. 2024) against UniPC-3 and DDIM on exact-score Gaussian mixtures.

Error vs NFE (5, 6, 8, 10, 12, 15, 20, 25) of
  ddim           DDIM()
  unipc_3        UniPC(order=3) at its defaults (lower-order final steps below 30 steps)
  unipc_3_nolof  UniPC(order=3, lower_order_final=False) (the gmm_samplers settings)
  dc_solver      DCSolver() (UniPC-3 at its defaults + compensation), ratios searched per
                 NFE by `dc_calibrate` on 10 calibration noises (the paper's count)
on two mixtures: the shipped `configs/gmm_samplers.yaml` one (d = 2) and a d = 1024 one (8
components, the construction of `bench_diffusion_diffusers.py`: means N(0, 0.5^2), variances
U[0.05, 0.5], Dirichlet(2) weights, seed 0). VPLinear schedule, logSNR-uniform grids,
float64. Errors: RMS over coordinates per sample, then RMS over `--batch` held-out noises
(none of them a calibration noise), against a Dopri8 rtol = atol = 1e-10 solve of the
probability-flow ODE from the same noise.

Also: DDIM at NFE 100 and, for each sampler, the NFE it needs to reach that error (the
smallest NFE of the sweep at or below it, and a log-log interpolation between sweep points).

Timing: calibration (one `dc_calibrate` call: 200 Adam steps through the sampler on 10
trajectories) with its compile apart (first call minus a second call on the same shapes),
and sampling per batch (jitted; compile apart, median of `--repeats` interleaved rounds) at
NFE 10.

Run: `python benchmarks/bench_dc_solver.py [--batch 256] [--batch-high 64] [--repeats 3]
[--json PATH]`. The machine is shared: timings carry the load average.
"""

import argparse
import json
import time

import diffrax
import jax
import jax.numpy as jnp
import numpy as np

jax.config.update("jax_enable_x64", True)

import _timing  # noqa: E402

import jaxsci.diffusion as jd  # noqa: E402

NFES = (5, 6, 8, 10, 12, 15, 20, 25)
SCH = jd.VPLinear()
SPACING = jd.LogSNRUniform()
N_CAL = 10


def make_mixture(dim: int, seed: int = 0) -> jd.GaussianMixture:
    if dim == 2:  # configs/gmm_samplers.yaml
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


def runner(sampler, den, grid):
    return jax.jit(jax.vmap(lambda x: jd.sample(sampler, den, SCH, grid, x).x))


def rms_error(x, ref):
    e = np.sqrt(np.mean((np.asarray(x) - np.asarray(ref)) ** 2, axis=-1))
    return float(np.sqrt(np.mean(e**2)))


def nfe_to_reach(errors: dict, target: float):
    """(smallest NFE of the sweep with error <= target, log-log interpolated NFE) or None."""
    nfes = sorted(errors)
    hit = next((n for n in nfes if errors[n] <= target), None)
    if hit is None:
        return None, None
    i = nfes.index(hit)
    if i == 0:
        return hit, float(hit)
    n0, n1 = nfes[i - 1], hit
    e0, e1 = np.log(errors[n0]), np.log(errors[n1])
    if e0 == e1:
        return hit, float(hit)
    f = (np.log(target) - e0) / (e1 - e0)
    return hit, float(np.exp(np.log(n0) + f * (np.log(n1) - np.log(n0))))


def run_dim(dim: int, batch: int, repeats: int) -> dict:
    mix = make_mixture(dim)
    den = jd.Denoiser(mix.eps_model(SCH), SCH)
    a_T, s_T = float(SCH.alpha(SCH.t_max)), float(SCH.sigma(SCH.t_max))
    x_test = mix.sample(jax.random.key(0), batch, a_T, s_T)
    x_cal = mix.sample(jax.random.fold_in(jax.random.key(0), 1), N_CAL, a_T, s_T)
    ref_sampler = jd.ProbabilityFlowODE(  # pyright: ignore[reportCallIssue]
        solver=diffrax.Dopri8(), rtol=1e-10, atol=1e-10, max_steps=100_000
    )
    span = jnp.asarray([SCH.t_max, SCH.t_min])
    t0 = time.perf_counter()
    ref_all = _timing.block(runner(ref_sampler, den, span)(jnp.concatenate([x_test, x_cal])))
    ref_test, ref_cal = ref_all[:batch], ref_all[batch:]
    print(
        f"d={dim}: reference Dopri8 rtol 1e-10 ({batch + N_CAL} samples)"
        f" {time.perf_counter() - t0:.1f} s"
    )

    samplers = {
        "ddim": jd.DDIM(),
        "unipc_3": jd.UniPC(order=3),
        "unipc_3_nolof": jd.UniPC(order=3, lower_order_final=False),
    }
    errors = {name: {} for name in [*samplers, "dc_solver"]}
    calib = {}
    dc_by_nfe = {}
    for nfe in NFES:
        grid = jd.time_grid(SCH, nfe, SPACING)
        for name, s in samplers.items():
            errors[name][nfe] = rms_error(runner(s, den, grid)(x_test), ref_test)
        t = time.perf_counter()
        dc, info = jd.dc_calibrate(jd.DCSolver(), den, grid, x_cal, ref_cal)
        _timing.block(dc.ratios)
        first = time.perf_counter() - t
        t = time.perf_counter()
        dc2, _ = jd.dc_calibrate(jd.DCSolver(), den, grid, x_cal, ref_cal)
        _timing.block(dc2.ratios)
        second = time.perf_counter() - t
        dc_by_nfe[nfe] = dc
        errors["dc_solver"][nfe] = rms_error(runner(dc, den, grid)(x_test), ref_test)
        calib[nfe] = dict(
            run_s=second,
            compile_s=max(first - second, 0.0),
            initial_loss=float(info.initial_loss),
            final_loss=float(info.final_loss),
            iterations=int(info.iterations),
            ratios=[round(float(r), 4) for r in np.asarray(dc.ratios)],
        )
        print(
            f"  NFE {nfe:3d}: "
            + "  ".join(f"{n} {errors[n][nfe]:.3e}" for n in errors)
            + f"  | calib {second:.2f} s (+{calib[nfe]['compile_s']:.1f} s compile),"
            f" loss {info.initial_loss:.2e} -> {info.final_loss:.2e}"
        )
    ddim100 = rms_error(runner(jd.DDIM(), den, jd.time_grid(SCH, 100, SPACING))(x_test), ref_test)
    reach = {n: nfe_to_reach(errors[n], ddim100) for n in errors}
    print(f"  DDIM@100 error {ddim100:.3e}; NFE to reach it (sweep, log-log): {reach}")

    grid10 = jd.time_grid(SCH, 10, SPACING)
    variants = {n: runner(s, den, grid10) for n, s in samplers.items()}
    variants["dc_solver"] = runner(dc_by_nfe[10], den, grid10)
    timing = _timing.time_variants(
        {n: (lambda f=f: f(x_test)) for n, f in variants.items()}, repeats
    )
    for n, tm in timing.items():
        print(
            f"  sampling NFE 10, batch {batch}: {n} {tm['median'] * 1e3:.1f} ms"
            f" (compile {tm['compile']:.2f} s)"
        )
    return dict(
        dim=dim,
        batch=batch,
        errors=errors,
        ddim100=ddim100,
        nfe_to_reach_ddim100=reach,
        calibration=calib,
        sampling_nfe10={
            n: dict(median_s=t["median"], compile_s=t["compile"]) for n, t in timing.items()
        },
    )


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--batch", type=int, default=256, help="held-out noises, d = 2")
    p.add_argument("--batch-high", type=int, default=64, help="held-out noises, d = 1024")
    p.add_argument("--dims", default="both", choices=("both", "2", "high"))
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--json", default=None)
    a = p.parse_args()
    machine = _timing.machine_summary()
    print("machine:", machine)
    out = {"machine": machine, "results": []}
    if a.dims in ("both", "2"):
        out["results"].append(run_dim(2, a.batch, a.repeats))
    if a.dims in ("both", "high"):
        out["results"].append(run_dim(1024, a.batch_high, a.repeats))
    out["load_average_end"] = _timing.load_average()
    print("load average at the end:", out["load_average_end"])
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=1, default=str)


if __name__ == "__main__":
    main()
