"""Exact inversion: BDIA, EDICT, DDIM inversion on the exact-score Gaussian mixture.

Run (torch + diffusers for the timing comparison, e.g. /work/venvs/bench):

    PYTHONPATH=$PWD /work/venvs/bench/bin/python benchmarks/bench_inversion.py

1. Round-trip reconstruction error ||generate(invert(x_0)) - x_0|| / ||x_0|| (RMS over 4
   points, VP-linear, logSNR-uniform grids) vs NFE in {10, 20, 50, 100}, d = 2 and 1024,
   float32 and float64 (EDICT spends 2 NFE per step: NFE/2 steps).
2. Sampling error vs a DPM-Solver++(3M) 2000-step float64 reference of the PF-ODE (RMS
   over 8 noises, d = 2), and the NFE each generator needs to reach DDIM@100's error.
3. Time per inversion (d = 1024, 50 steps, float32): jaxsci DDIMInversion (jitted) vs
   diffusers' DDIMInverseScheduler loop with the same mixture eps in torch. diffusers
   ships no EDICT or BDIA scheduler (EDICT only as a community pipeline), so those have
   no peer.
"""

import time

import jax
import jax.numpy as jnp
import numpy as np

jax.config.update("jax_enable_x64", True)
import jaxsci.diffusion as jd  # noqa: E402

SCH = jd.VPLinear()
NFES = (10, 20, 50, 100)


def mixture(d):
    rng = np.random.default_rng(0)
    return jd.GaussianMixture([0.3, 0.7], rng.normal(size=(2, d)), 0.2 + 0.1 * rng.random((2, d)))


def methods():
    return {"ddim_inv": jd.DDIMInversion(), "bdia": jd.BDIA(), "edict": jd.EDICT()}


def roundtrip(d, dtype):
    mix = mixture(d)
    model = mix.eps_model(SCH)
    x0 = mix.sample(jax.random.key(1), 4).astype(dtype)
    rows = {}
    for name, m in methods().items():
        errs = []
        for nfe in NFES:
            n = nfe // m.nfe_per_step
            grid = jd.time_grid(SCH, n, jd.LogSNRUniform()).astype(dtype)

            def trip(x, m=m, grid=grid):
                inv = jd.invert(m, model, SCH, grid, x)
                return jd.generate(m, model, SCH, grid, inv.x, companion=inv.companion).x

            out = jax.vmap(trip)(x0)
            rel = jnp.linalg.norm(out - x0, axis=-1) / jnp.linalg.norm(x0, axis=-1)
            errs.append(float(jnp.sqrt(jnp.mean(rel**2))))
        rows[name] = errs
    return rows


def sampling():
    mix = mixture(2)
    model = mix.eps_model(SCH)
    x_T = jax.random.normal(jax.random.key(2), (8, 2))
    fine = jd.time_grid(SCH, 2000, jd.LogSNRUniform())
    ref = jax.vmap(lambda x: jd.sample(jd.DPMSolverPPMultistep(order=3), model, SCH, fine, x).x)(
        x_T
    )
    gens = {
        "ddim": jd.DDIMInversion(),
        "bdia": jd.BDIA(),
        "bdia_0.5": jd.BDIA(gamma=0.5),
        "edict": jd.EDICT(),
    }
    out = {}
    for name, m in gens.items():
        errs = {}
        for nfe in (10, 20, 30, 50, 70, 100, 140, 200):
            n = nfe // m.nfe_per_step
            grid = jd.time_grid(SCH, n, jd.LogSNRUniform())
            x = jax.vmap(lambda x, m=m, grid=grid: jd.generate(m, model, SCH, grid, x).x)(x_T)
            errs[nfe] = float(jnp.sqrt(jnp.mean((x - ref) ** 2)))
        out[name] = errs
    return out


def timing():
    import torch
    from diffusers import DDIMInverseScheduler

    d, n = 1024, 50
    mix = mixture(d)
    sch = jd.DiscreteDDPM()
    abar = np.cumprod(1.0 - jd.linear_betas())
    w, mu, var = (np.asarray(a, np.float32) for a in (mix.weights, mix.means, mix.variances))

    def jmodel(t, x):
        a2 = jnp.asarray(abar, x.dtype)[t.astype(jnp.int32)]
        return mix.eps(x, jnp.sqrt(a2), jnp.sqrt(1 - a2))

    grid = jd.ddpm_grid(sch, n, jd.Leading()).astype(jnp.float32)
    x0 = jnp.asarray(np.asarray(mix.sample(jax.random.key(3), 1)[0], np.float32))
    m = jd.DDIMInversion(eps_at_target=True)
    jd.invert(m, jmodel, sch, grid, x0).x.block_until_ready()
    reps = 20
    t0 = time.perf_counter()
    for _ in range(reps):
        jd.invert(m, jmodel, sch, grid, x0).x.block_until_ready()
    t_j = (time.perf_counter() - t0) / reps
    jd.invert(jd.BDIA(), jmodel, sch, grid, x0).x.block_until_ready()  # compile
    t0 = time.perf_counter()
    for _ in range(reps):
        jd.invert(jd.BDIA(), jmodel, sch, grid, x0).x.block_until_ready()
    t_b = (time.perf_counter() - t0) / reps
    tw, tmu, tvar = (torch.from_numpy(a) for a in (w, mu, var))

    def teps(x, ab):
        a, s = ab**0.5, (1 - ab) ** 0.5
        v = a**2 * tvar + s**2
        diff = x[None] - a * tmu
        lk = -0.5 * torch.sum(diff**2 / v + torch.log(2 * torch.pi * v), -1)
        r = torch.softmax(lk + torch.log(tw), 0)
        return s * torch.sum(r[:, None] * diff / v, 0)

    ds = DDIMInverseScheduler(timestep_spacing="leading", set_alpha_to_one=False, clip_sample=False)
    ds.set_timesteps(n)
    xt = torch.from_numpy(np.array(x0))
    t0 = time.perf_counter()
    with torch.no_grad():
        for _ in range(reps):
            x = xt.clone()
            for t in ds.timesteps:
                x = ds.step(teps(x, float(abar[int(t)])), int(t), x).prev_sample
    t_d = (time.perf_counter() - t0) / reps
    return t_j, t_b, t_d


def main():
    print("## round trip: relative error vs NFE", NFES)
    for d in (2, 1024):
        for dtype in (jnp.float32, jnp.float64):
            for name, errs in roundtrip(d, dtype).items():
                print(
                    f"d={d} {jnp.dtype(dtype).name} {name:9s}", " ".join(f"{e:.1e}" for e in errs)
                )
    print("## sampling RMS error vs PF-ODE reference (d=2)")
    s = sampling()
    for name, errs in s.items():
        print(f"{name:9s}", " ".join(f"{k}:{v:.2e}" for k, v in errs.items()))
    target = s["ddim"][100]
    for name, errs in s.items():
        reach = [k for k, v in errs.items() if v <= target]
        print(f"NFE to reach DDIM@100 ({target:.2e}): {name}: {reach[0] if reach else '>200'}")
    try:
        t_j, t_b, t_d = timing()
        print(
            f"## time per inversion (d=1024, 50 steps, f32): jaxsci DDIMInversion "
            f"{t_j * 1e3:.2f} ms, "
            f"jaxsci BDIA {t_b * 1e3:.2f} ms, diffusers DDIMInverseScheduler {t_d * 1e3:.2f} ms, "
            f"ratio diffusers/jaxsci {t_d / t_j:.1f}"
        )
    except ImportError as err:
        print("timing skipped:", err)


if __name__ == "__main__":
    main()
