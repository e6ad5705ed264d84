"""Generate `tests/data/diffusers_ddim_inverse.npz`: diffusers' DDIMInverseScheduler
trajectories, the reference of `tests/diffusion/test_inversion.py`.

CI has no torch, so the numbers are stored; regenerate them with diffusers 0.42.1 and torch
(CPU) installed (e.g. /work/venvs/bench):

    python tests/data/make_diffusers_ddim_inverse.py

What is stored (1000 training steps, DDPM's linear betas 1e-4 .. 0.02, the 2-D Gaussian
mixture of `tests/data/make_diffusers_ddpm.py`, whose exact eps is the model, called at the
integer timestep as a pretrained network is):

* `x_0`: the data point that is inverted;
* `traj_{spacing}_{n}` (float64, (n + 1, 2)): x_0 and the sample after each
  `DDIMInverseScheduler.step(eps(x, t), t, x)` over `scheduler.timesteps` (ascending), with
  `set_alpha_to_one=False` (the first step starts from abar_0, the data end of the training
  schedule), for spacing "leading" and "trailing" and n = 10, 50;
* `timesteps_{spacing}_{n}`: the scheduler's timesteps.

The scheduler's float32 `alphas_cumprod` is replaced by the float64 one after construction
(as the DDPM reference script does), so the trajectories carry float64 rounding; the step
logic and the update formula are diffusers' own.
"""

import pathlib

import numpy as np
import torch
from diffusers import DDIMInverseScheduler

N_TRAIN = 1000
NS = (10, 50)
SPACINGS = ("leading", "trailing")
MIX_WEIGHTS = np.array([0.3, 0.7])
MIX_MEANS = np.array([[-1.0, 0.5], [1.0, -0.5]])
MIX_VARIANCES = np.array([[0.25, 0.25], [0.3, 0.2]])
OUT = pathlib.Path(__file__).with_name("diffusers_ddim_inverse.npz")


def abar64() -> np.ndarray:
    return np.cumprod(1.0 - np.linspace(1e-4, 0.02, N_TRAIN, dtype=np.float64))


def mixture_eps(x: torch.Tensor, abar_t: float) -> torch.Tensor:
    """The exact eps(x) at noise level abar_t of the Gaussian mixture."""
    a, s = abar_t**0.5, (1.0 - abar_t) ** 0.5
    means = a * torch.from_numpy(MIX_MEANS)
    var = a**2 * torch.from_numpy(MIX_VARIANCES) + s**2
    diff = x[None, :] - means
    log_k = -0.5 * torch.sum(diff**2 / var + torch.log(2 * torch.pi * var), dim=-1)
    resp = torch.softmax(log_k + torch.log(torch.from_numpy(MIX_WEIGHTS)), dim=0)
    return s * torch.sum(resp[:, None] * diff / var, dim=0)


def run(spacing: str, n: int, x_0: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    sch = DDIMInverseScheduler(
        num_train_timesteps=N_TRAIN,
        timestep_spacing=spacing,
        set_alpha_to_one=False,
        clip_sample=False,
    )
    abar = abar64()
    sch.alphas_cumprod = torch.from_numpy(abar)
    sch.initial_alpha_cumprod = sch.alphas_cumprod[0]
    sch.set_timesteps(n)
    x = torch.from_numpy(x_0.copy())
    states = [x.numpy().copy()]
    for t in sch.timesteps:
        eps = mixture_eps(x, float(abar[int(t)]))
        x = sch.step(eps, int(t), x).prev_sample.to(torch.float64)
        states.append(x.numpy().copy())
    return np.stack(states), sch.timesteps.numpy().astype(np.int64)


def main():
    torch.set_default_dtype(torch.float64)
    x_0 = np.array([0.8, -0.35])
    data: dict[str, np.ndarray] = {"x_0": x_0}
    for spacing in SPACINGS:
        for n in NS:
            traj, ts = run(spacing, n, x_0)
            data[f"traj_{spacing}_{n}"] = traj
            data[f"timesteps_{spacing}_{n}"] = ts
    np.savez_compressed(OUT, **data)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
