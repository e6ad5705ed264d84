"""Simulate: models, solvers and gradients through a solve

Every simulator in `jaxsci.dynamics` is an equinox module whose physical parameters are array
fields; `jaxsci.simulate` integrates it with diffrax (any diffrax solver, adjoint and step
size controller) and returns a `Trajectory` (`ts`, `ys`, step counts, `success`). Stiff
spectral PDEs are *semilinear* (a diagonal linear operator in Fourier space plus a
nonlinear term) and get exponential time differencing (`ETDRK4`); ODEs default to Tsit5.
Because models are pytrees, `jax.grad` differentiates through a solve and `jax.vmap` runs a
parameter sweep.

Run it as a script: `python examples/tutorial_simulate.py`.
"""

# %%
# ## An ODE: Lorenz-63
# `simulate(model, y0, ts)` saves the state at `ts`; the default solver for an ODE is
# adaptive Tsit5.
import equinox as eqx
import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt

import jaxsci
from jaxsci.dynamics import KuramotoSivashinsky, Lorenz63, Lorenz96
from jaxsci.integrate import ETDRK4, RK4, Flow

l63 = Lorenz63()  # sigma = 10, rho = 28, beta = 8/3
traj = jaxsci.simulate(l63, l63.default_initial_state(), jnp.linspace(0.0, 30.0, 3001))
print("ys", traj.ys.shape, "steps", int(traj.num_steps), "success", bool(traj.success))

fig = plt.figure(figsize=(5, 4))
ax = fig.add_subplot(projection="3d")
ax.plot(*traj.ys.T, lw=0.5)
ax.set_title("Lorenz-63")

# %%
# ## A stiff PDE: Kuramoto-Sivashinsky with ETDRK4
# u_t = -u u_x - u_xx - u_xxxx on a periodic domain of length 22 with 64 Fourier points
# (2/3 de-aliased). `ETDRK4` (Cox & Matthews 2002, in Kassam & Trefethen's form; the
# phi-functions by a Taylor series where their argument is small, in place of Kassam &
# Trefethen's contour integrals) takes fixed steps `dt0` and treats the stiff linear part
# exactly.
ks = KuramotoSivashinsky(length=22.0, num_points=64)
ts = jnp.arange(0.0, 150.0, 0.5)
ks_traj = jaxsci.simulate(ks, ks.default_initial_state(), ts, solver=ETDRK4(), dt0=0.25)

fig, ax = plt.subplots(figsize=(8, 3))
im = ax.imshow(
    ks_traj.ys.T,
    aspect="auto",
    origin="lower",
    extent=(0.0, float(ts[-1]), 0.0, ks.length),
    cmap="RdBu_r",
)
ax.set_xlabel("t")
ax.set_ylabel("x")
fig.colorbar(im, ax=ax, label="u")

# %%
# ## Gradients through a solve
# The parameters are array fields, so a loss of the trajectory differentiates with respect
# to them; here the mean energy of Lorenz-96 over one time unit against the forcing F, checked
# by a central finite difference.
y0 = Lorenz96(n=40, forcing=8.0).default_initial_state()
save = jnp.linspace(0.0, 1.0, 11)


@jax.jit
def energy(forcing):
    ys = jaxsci.simulate(Lorenz96(forcing=forcing), y0, save, solver=RK4(), dt0=0.01).ys
    return jnp.mean(ys**2)


grad = jax.jit(jax.grad(energy))(8.0)
fd = (energy(8.0 + 1e-2) - energy(8.0 - 1e-2)) / 2e-2
print(f"d energy / dF: autodiff {float(grad):.4f}, finite difference {float(fd):.4f}")

# %%
# ## A parameter sweep with vmap
# `eqx.filter_vmap` builds a batch of models, one per forcing; `jaxsci.ensemble` maps a
# function over that batch (sharded over the available devices). `Flow(model, dt)` is the
# model step `y(t0) -> y(t1)` that the filters use too.
forcings = jnp.linspace(2.0, 10.0, 33)
models = eqx.filter_vmap(lambda F: Lorenz96(forcing=F))(forcings)
finals = jaxsci.ensemble(
    lambda m: jaxsci.integrate.rollout(Flow(m, dt=0.05, solver=RK4()), y0, 200, dt=0.05)
)(models)  # (33, 200, 40): 10 time units per forcing

fig, ax = plt.subplots(figsize=(6, 3))
for i in range(forcings.shape[0]):
    ax.plot(jnp.full(100, forcings[i]), finals[i, 100:, 0], ",k", alpha=0.5)
ax.set_xlabel("forcing F")
ax.set_ylabel("$x_0$ (last 5 time units)")
ax.set_title("Lorenz-96: the states visited grow with the forcing")

# %%
# ## Lyapunov exponents
# `lyapunov_exponents` advances tangent vectors with the linearised flow and re-orthonormalises
# them (Benettin et al. 1980). Lorenz-63's leading exponent is about 0.9 (Sprott 2003); this
# short run is a rough estimate.
lyap = jaxsci.lyapunov_exponents(
    Flow(l63, dt=0.01, solver=RK4()),
    l63.default_initial_state(),
    num_exponents=3,
    interval=0.5,
    num_intervals=400,
    transient=10.0,
)
print("Lorenz-63 exponents:", [round(float(e), 3) for e in lyap.exponents])
