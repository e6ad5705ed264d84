"""Sample: diffusion samplers on a model with an exact score

A diffusion model turns noise into data by integrating the probability-flow ODE (or the
reverse SDE) backwards from t_max to t_min; a *sampler* is the integrator and a *time grid*
says where it steps. To compare samplers without training noise, this page uses a
`jaxsci.diffusion.GaussianMixture`: every noised marginal of a Gaussian mixture is again a
Gaussian mixture, so its noise prediction eps(t, x) is exact (`eps_model`), and the only error
left is the sampler's. The same calls take a trained network (see `DenoisingScoreMatching`
and `jaxsci.train.fit`).

Run it as a script: `python examples/tutorial_sample.py`.
"""

# %%
# ## Target, schedule, grid
# A two-dimensional mixture of four components, the variance-preserving linear-beta schedule
# of DDPM / score SDEs (`VPLinear`) and a grid uniform in log-SNR (`time_grid`'s default).
import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt

from jaxsci.diffusion import (
    DDIM,
    DPMSolverPPMultistep,
    GaussianMixture,
    TimeUniform,
    UniPC,
    VPLinear,
    sample,
    time_grid,
)
from jaxsci.metrics import mmd2

mixture = GaussianMixture(
    weights=[0.3, 0.2, 0.3, 0.2],
    means=[[-2.0, -2.0], [-2.0, 2.0], [2.0, -2.0], [2.0, 2.0]],
    variances=[[0.3, 0.1], [0.1, 0.3], [0.2, 0.2], [0.4, 0.05]],
)
schedule = VPLinear()
eps_model = mixture.eps_model(schedule)
print("grid of 5 steps:", time_grid(schedule, 5))

# %%
# ## One call per sampler
# `sample(sampler, model, schedule, grid, x_T)` integrates one example; `jax.vmap` over the
# initial noise draws a batch. Stochastic samplers (`EulerMaruyama` on the reverse SDE, the
# SDE variant of DPM-Solver++) also take a key.
n = 1000
key_noise, key_sde, key_ref = jax.random.split(jax.random.key(0), 3)
x_T = jax.random.normal(key_noise, (n, 2))
reference = mixture.sample(key_ref, n)


_draws = {}


def draw(sampler, n_steps, spacing=None):
    """n draws of `sampler` on an n_steps grid (kept, as the plots below reuse them)."""
    memo = (repr(sampler), n_steps, repr(spacing))
    if memo not in _draws:
        _draws[memo] = _draw(sampler, n_steps, spacing)
    return _draws[memo]


def _draw(sampler, n_steps, spacing):
    grid = (
        time_grid(schedule, n_steps) if spacing is None else time_grid(schedule, n_steps, spacing)
    )
    if sampler.stochastic:
        keys = jax.random.split(key_sde, n)
        run = jax.vmap(lambda x, k: sample(sampler, eps_model, schedule, grid, x, key=k).x)
        return run(x_T, keys)
    return jax.vmap(lambda x: sample(sampler, eps_model, schedule, grid, x).x)(x_T)


samplers = {
    "DDIM": DDIM(),
    "DPM-Solver++(2M)": DPMSolverPPMultistep(),
    "UniPC-2": UniPC(),
}
fig, axes = plt.subplots(1, 4, figsize=(13, 3.3), sharex=True, sharey=True)
axes[0].scatter(*reference.T, s=2, alpha=0.4, color="k")
axes[0].set_title("exact draws")
for ax, (name, sampler) in zip(axes[1:], samplers.items(), strict=True):
    xs = draw(sampler, 5)
    ax.scatter(*xs.T, s=2, alpha=0.4)
    ax.set_title(f"{name}, 5 steps")
fig.tight_layout()

# %%
# ## Accuracy against the number of steps
# The squared maximum mean discrepancy (`jaxsci.metrics.mmd2`, Gaussian kernels) between each
# sampler's draws and exact draws from the mixture. The estimate is unbiased, so it can be
# negative; two independent exact samples give the noise floor of this sample size, and
# values below it (clipped at 1e-6 on the log axis) mean the sampler cannot be told from
# exact draws with 1000 points.
bandwidths = [0.2, 0.5, 1.0, 2.0]
floor = float(mmd2(mixture.sample(jax.random.key(7), n), reference, bandwidths))
steps = [5, 10, 20]
fig, ax = plt.subplots(figsize=(6, 3.5))
for name, sampler in samplers.items():
    errors = [float(mmd2(draw(sampler, k), reference, bandwidths)) for k in steps]
    ax.loglog(steps, jnp.maximum(jnp.asarray(errors), 1e-6), "o-", label=name)
    print(f"{name:22s}", " ".join(f"{e:.2e}" for e in errors))
ax.axhline(max(abs(floor), 1e-6), color="k", ls=":", label="exact vs exact")
ax.set_xlabel("steps")
ax.set_ylabel("MMD$^2$")
ax.legend(fontsize=8)

# %%
# ## Time grids
# The grid is the other half of the choice: DDIM with 10 steps uniform in t (`TimeUniform`)
# instead of uniform in log-SNR (compare with the 10-step DDIM error above).
xs = draw(DDIM(), 10, TimeUniform())
fig, ax = plt.subplots(figsize=(3.5, 3.3))
ax.scatter(*xs.T, s=2, alpha=0.4)
ax.set_title("DDIM, 10 steps, time-uniform grid")
print("MMD^2 DDIM time-uniform, 10 steps:", float(mmd2(xs, reference, bandwidths)))
