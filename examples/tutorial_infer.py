"""Infer: the posterior of ODE parameters with NUTS

A Bayesian fit of the Lotka-Volterra predator-prey model to noisy counts of both species.
The ODE is solved inside the likelihood (`jaxsci.inference.solve_ode`, diffrax underneath),
the parameters get a prior, and `jaxsci.inference.posterior` runs several NUTS chains
(blackjax) at once, vmapped over the chain axis. The result carries the draws, R-hat and ESS
(`summary()`), a list of failed checks with advice (`diagnose()`) and `to_arviz()`.

Run it as a script: `python examples/tutorial_infer.py`.
"""

# %%
# ## Synthetic data
# The truth is `LotkaVolterra` with its default parameters (alpha, beta, gamma, delta); we
# observe both populations every time unit with 10 % log-normal noise.
import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpyro.distributions as dist

from jaxsci.dynamics import LotkaVolterra
from jaxsci.inference import NUTS, LogDensity, log_likelihood, posterior, solve_ode
from jaxsci.integrate import RK4

truth = LotkaVolterra()
y0 = jnp.array([30.0, 4.0])
ts = jnp.arange(1.0, 21.0)
solve_kw = dict(t0=0.0, solver=RK4(), dt0=0.25)  # fixed RK4 steps: cheap, accurate enough
clean = solve_ode(truth, y0, ts, **solve_kw).ys
noise = 0.1
y_obs = clean * jnp.exp(noise * jax.random.normal(jax.random.key(0), clean.shape))

fig, ax = plt.subplots(figsize=(7, 3))
ax.plot(ts, y_obs[:, 0], "o", label="prey (observed)")
ax.plot(ts, y_obs[:, 1], "s", label="predator (observed)")
ax.set_xlabel("t")
ax.legend()

# %%
# ## The log-density
# `LogDensity` takes `params -> log p(params, data)` on a dict of constrained parameters and
# their constraints; the samplers work in unconstrained space with the log-Jacobian added.
# `log_likelihood` returns -inf when a proposal makes the solve fail, so NUTS rejects it
# instead of crashing.
names = ("alpha", "beta", "gamma", "delta")
prior = {
    "alpha": dist.LogNormal(jnp.log(0.5), 0.5),
    "beta": dist.LogNormal(jnp.log(0.03), 0.5),
    "gamma": dist.LogNormal(jnp.log(0.8), 0.5),
    "delta": dist.LogNormal(jnp.log(0.03), 0.5),
}


def logdensity(params):
    model = LotkaVolterra(**params)
    solution = solve_ode(model, y0, ts, **solve_kw)
    lp = sum(prior[k].log_prob(params[k]) for k in names)
    return lp + log_likelihood(solution, lambda ys: dist.LogNormal(jnp.log(ys), noise), y_obs)


target = LogDensity(logdensity, {k: "positive" for k in names}, prior=prior)

# %%
# ## Sampling
# Four chains of NUTS; `init="map"` (the default) starts them from a Laplace approximation at
# the best of several L-BFGS optima. The predator-prey parameters are strongly correlated, so
# the mass matrix is dense (`NUTS(dense_mass=True)`; the default diagonal one works too, and
# `diagnose()` then advises the dense one). The counts are small so that the page builds
# quickly; `diagnose()` lists every failed check (R-hat, ESS, divergences, ...) with what to
# change.
result = posterior(
    target,
    key=jax.random.key(1),
    sampler=NUTS(dense_mass=True),
    num_chains=4,
    num_warmup=200,
    num_samples=300,
    progress_bar=False,
)
for name, row in result.summary().items():
    print(f"{name:6s} mean {row['mean']:.4f}  sd {row['sd']:.4f}  rhat {row['rhat']:.3f}")
print("true  ", {k: round(float(getattr(truth, k)), 4) for k in names})
advice = result.diagnose()
print("failed checks:", [a.kind for a in advice] or "none")
for item in advice:
    print(f"[{item.kind}] {item}")

# %%
# ## Posterior and predictive
# Histograms of the draws (all chains) against the true values, and trajectories of 50
# posterior draws.
fig, axes = plt.subplots(1, 4, figsize=(11, 2.6))
for ax, k in zip(axes, names, strict=True):
    ax.hist(result.draws[k].ravel(), bins=30, color="C0", alpha=0.7)
    ax.axvline(float(getattr(truth, k)), color="k", lw=2)
    ax.set_title(k)
fig.tight_layout()

fig, ax = plt.subplots(figsize=(7, 3))
t_fine = jnp.linspace(0.5, 20.0, 200)
flat = {k: result.draws[k].reshape(-1) for k in names}
every = flat["alpha"].shape[0] // 50
subset = {k: v[::every][:50] for k, v in flat.items()}


@jax.jit
@jax.vmap
def predict(params):
    return solve_ode(LotkaVolterra(**params), y0, t_fine, **solve_kw).ys


curves = predict(subset)  # (50, 200, 2)
ax.plot(t_fine, curves[:, :, 0].T, color="C0", alpha=0.1)
ax.plot(t_fine, curves[:, :, 1].T, color="C1", alpha=0.1)
ax.plot(ts, y_obs[:, 0], "o", color="C0")
ax.plot(ts, y_obs[:, 1], "s", color="C1")
ax.set_xlabel("t")
ax.set_title("posterior predictive (50 draws)")
