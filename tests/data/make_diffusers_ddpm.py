"""Generate `tests/data/diffusers_ddpm.npz`: diffusers' DDPM timesteps and sampler trajectories.

The reference numbers of `tests/diffusion/test_discrete_vs_diffusers.py`, which compares
`jaxsci.diffusion.DiscreteDDPM` with its timestep spacings and samplers against diffusers'
own schedulers step by step. CI has no torch, so the numbers are stored; regenerate them
with diffusers 0.42.1 and torch (CPU) installed (e.g. /work/venvs/bench):

    python tests/data/make_diffusers_ddpm.py

What is stored (1000 training steps, DDPM's linear betas 1e-4 .. 0.02):

* `timesteps_{sched}_{spacing}` (int16): `scheduler.timesteps` after `set_timesteps(n)`
  for every n in `timestep_ns` (`TIMESTEP_NS`), concatenated (their lengths in
  `timesteps_{sched}_{spacing}_len`), for sched in "ddim" (`DDIMScheduler`) and "dpm"
  (`DPMSolverMultistepScheduler`), spacing in "trailing", "leading", "linspace".
* `traj_{case}_{spacing}_{n}` (float64, (len(timesteps) + 1, 2)): x_T and the sample after
  each `scheduler.step`, for n in `TRAJ_NS`, with the exact eps of a 2-D Gaussian mixture
  (`mix_weights`, `mix_means`, `mix_variances`; the model is called at the integer
  timestep, as a pretrained network is) from the noise `x_T`. The cases:

  - "ddim": `DDIMScheduler(set_alpha_to_one=False, clip_sample=False)`, `eta=0`;
  - "ddim_one": the same with `set_alpha_to_one=True` (its last step goes to alpha = 1);
  - "dpm1", "dpm2": `DPMSolverMultistepScheduler(algorithm_type="dpmsolver++",
    solver_order=1 or 2, final_sigmas_type="sigma_min")` (the last step goes to training
    step 0; `lower_order_final=True`, the default);
  - "dpm2_zero": solver_order=2 with `final_sigmas_type="zero"` (its last step goes to
    sigma = 0, alpha = 1).

The schedulers' coefficient tables are float32 in diffusers (betas from a float32
linspace, float32 `alphas_cumprod` and `sigmas`), which alone moves abar_999 by about 3e-5
relative. To store reference numbers at float64 rounding, the tables are replaced by the
same quantities in float64 after construction (DDIM: `alphas_cumprod` and
`final_alpha_cumprod`; DPM-Solver: `sigmas` = sqrt((1 - abar)/abar) at the timesteps
followed by the final sigma, as `set_timesteps` builds them); the timestep logic and the
update formulas are diffusers' own. DPMSolverMultistepScheduler.step still casts the
sample to float32 at every step, so its trajectories carry float32 rounding (about 1e-7
relative per step); DDIM's are float64 throughout. The script prints the largest
difference to the unmodified float32 schedulers as a check.
"""

import pathlib

import numpy as np
import torch
from diffusers import DDIMScheduler, DPMSolverMultistepScheduler

N_TRAIN = 1000
SPACINGS = ("trailing", "leading", "linspace")
# 1..64 (61: numpy's float arange gives "trailing" one timestep too many, a -1) and a few
# large ones (103, 122: the same; 333, 500, 999, 1000: near the ends of the range).
TIMESTEP_NS = (*range(1, 65), 103, 122, 333, 500, 999, 1000)
# 10 divides 1000; 7, 30 and 333 do not.
TRAJ_NS = (7, 10, 30, 333)
MIX_WEIGHTS = np.array([0.3, 0.7])
MIX_MEANS = np.array([[-1.0, 0.5], [1.0, -0.5]])
MIX_VARIANCES = np.array([[0.25, 0.25], [0.3, 0.2]])
OUT = pathlib.Path(__file__).with_name("diffusers_ddpm.npz")


def abar64() -> np.ndarray:
    """DDPM's linear betas and their cumulative product, in float64."""
    return np.cumprod(1.0 - np.linspace(1e-4, 0.02, N_TRAIN, dtype=np.float64))


def mixture_eps(x: torch.Tensor, abar_t: float) -> torch.Tensor:
    """The exact eps(x) at noise level abar_t for the Gaussian mixture: x_t = a x_0 + s eps
    with a = sqrt(abar_t), s = sqrt(1 - abar_t); eps = -s grad log p_t(x)."""
    a, s = abar_t**0.5, (1.0 - abar_t) ** 0.5
    means = a * torch.from_numpy(MIX_MEANS)
    var = a**2 * torch.from_numpy(MIX_VARIANCES) + s**2
    diff = x[None, :] - means
    log_k = -0.5 * torch.sum(diff**2 / var + torch.log(2 * torch.pi * var), dim=-1)
    resp = torch.softmax(log_k + torch.log(torch.from_numpy(MIX_WEIGHTS)), dim=0)
    score = -torch.sum(resp[:, None] * diff / var, dim=0)
    return -s * score


def make_scheduler(case: str, spacing: str, float64: bool):
    if case.startswith("ddim"):
        sch = DDIMScheduler(
            num_train_timesteps=N_TRAIN,
            timestep_spacing=spacing,
            set_alpha_to_one=case == "ddim_one",
            clip_sample=False,
        )
        if float64:
            sch.alphas_cumprod = torch.from_numpy(abar64())
            one = torch.tensor(1.0, dtype=torch.float64)
            sch.final_alpha_cumprod = one if case == "ddim_one" else sch.alphas_cumprod[0]
        return sch
    order = {"dpm1": 1, "dpm2": 2, "dpm2_zero": 2}[case]
    return DPMSolverMultistepScheduler(
        num_train_timesteps=N_TRAIN,
        timestep_spacing=spacing,
        algorithm_type="dpmsolver++",
        solver_order=order,
        final_sigmas_type="zero" if case == "dpm2_zero" else "sigma_min",
    )


def run(case: str, spacing: str, n: int, x_T: np.ndarray, float64: bool) -> np.ndarray:
    sch = make_scheduler(case, spacing, float64)
    sch.set_timesteps(n)
    ts = sch.timesteps.numpy()
    abar = abar64() if float64 else sch.alphas_cumprod.numpy().astype(np.float64)
    if float64 and case.startswith("dpm"):
        sig = np.sqrt((1.0 - abar) / abar)
        last = 0.0 if case == "dpm2_zero" else sig[0]
        sch.sigmas = torch.from_numpy(
            np.concatenate([np.interp(ts, np.arange(N_TRAIN), sig), [last]])
        )
    x = torch.from_numpy(x_T.copy())
    states = [x.numpy().copy()]
    for t in sch.timesteps:
        eps = mixture_eps(x, float(abar[int(t)]))
        kwargs = {"eta": 0.0} if case.startswith("ddim") else {}
        x = sch.step(eps, t, x, **kwargs).prev_sample.to(torch.float64)
        states.append(x.numpy().copy())
    return np.stack(states)


def main():
    torch.set_default_dtype(torch.float64)
    data: dict[str, np.ndarray] = {
        "mix_weights": MIX_WEIGHTS,
        "mix_means": MIX_MEANS,
        "mix_variances": MIX_VARIANCES,
        "x_T": np.random.default_rng(0).standard_normal(2),
    }
    data["timestep_ns"] = np.asarray(TIMESTEP_NS)
    for spacing in SPACINGS:
        for name, cls in (("ddim", DDIMScheduler), ("dpm", DPMSolverMultistepScheduler)):
            sch = cls(num_train_timesteps=N_TRAIN, timestep_spacing=spacing)
            steps = []
            for n in TIMESTEP_NS:
                sch.set_timesteps(n)
                steps.append(sch.timesteps.numpy().astype(np.int16))
            data[f"timesteps_{name}_{spacing}"] = np.concatenate(steps)
            data[f"timesteps_{name}_{spacing}_len"] = np.asarray([len(s) for s in steps])
    worst = 0.0
    for case in ("ddim", "ddim_one", "dpm1", "dpm2", "dpm2_zero"):
        for spacing in SPACINGS:
            for n in TRAJ_NS:
                traj = run(case, spacing, n, data["x_T"], float64=True)
                traj32 = run(case, spacing, n, data["x_T"], float64=False)
                worst = max(worst, float(np.max(np.abs(traj - traj32))))
                assert np.all(np.isfinite(traj)), (case, spacing, n)
                data[f"traj_{case}_{spacing}_{n}"] = traj
    print(f"largest difference, float64 tables vs diffusers' float32 tables: {worst:.2e}")
    np.savez_compressed(OUT, **data)
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes, {len(data)} arrays)")


if __name__ == "__main__":
    main()
