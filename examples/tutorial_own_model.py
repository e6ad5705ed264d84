"""Write your own model

The library's functions take model objects: `simulate` integrates one, the filters of
`jaxsci.filters` forecast with it, `jaxsci.inference.posterior` samples its parameters and
`jaxsci.discovery` finds the terms it lacks. None of them knows the built-in models by name
(only the config files of `jaxsci run` do), so a model you write in a few lines works
wherever a built-in one does. This page writes
two models from scratch and uses each of them with those tools:

1. an epidemic ODE with four compartments (SEIR), for `simulate`, `assimilate` and
   `posterior`;
2. a one-dimensional periodic PDE, solved spectrally with an exponential integrator, checked
   against an exact solution, and then corrected by model-error discovery.

The page is a script, `examples/tutorial_own_model.py`; run it with
`python examples/tutorial_own_model.py` (about a minute on two CPU cores).
"""

# %%
# ## The model contract
#
# A model is an [equinox](https://docs.kidger.site/equinox/) module, a frozen dataclass
# that is also a JAX pytree, deriving from one of three abstract bases in
# `jaxsci.dynamics`:
#
# | base | the equation | what you implement |
# |---|---|---|
# | `AbstractDynamics` | dy/dt = f(t, y, args) | `state_shape`, `vector_field` |
# | `AbstractSDE` | dy = f dt + g dW, diagonal g | the above and `diffusion` |
# | `AbstractSemilinear` | u_t = L u + N(u), periodic | `grid`, `linear_operator`, `nonlinear` |
#
# What each piece means:
#
# - **Parameters are array fields.** Store every physical parameter as a JAX array
#   (annotated `Float[Array, ""]` for a scalar), not as a Python float and not as a static
#   field. A model is a pytree whose leaves are its parameters, so `eqx.filter_grad`
#   differentiates with respect to the model, `eqx.filter_vmap` batches over models, and a
#   log-density can build the model from traced parameter values. `float_parameter(name,
#   x)` (from `jaxsci.dynamics`) converts an argument to an array of the default float dtype
#   and rejects strings, None and complex numbers with an error naming the argument.
# - **`state_shape`** (a property): the shape of one state `y`. `simulate` checks the
#   initial state against it and names the argument when it differs.
# - **`vector_field(t, y, args)`**: the right-hand side for one state, written with
#   `jax.numpy`, no Python `if` on values (it runs under `jit`). Batching over ensemble
#   members is a `vmap` outside the model.
# - **`default_initial_state(key=None)`** (optional): a sensible initial state; the
#   base class raises `NotImplementedError` if you leave it out.
# - **`__check_init__`** (optional): equinox runs it after `__init__`; check your
#   parameters there. Use `check_positive(name, value)` from `jaxsci.dynamics` rather than
#   `if value <= 0: raise`: it raises a `ValueError` naming the parameter for concrete
#   values and lets traced values through, so the same class can be built inside `jit`,
#   `vmap` or a log-density.
#
# For a **semilinear PDE** the state is the real field on a uniform periodic grid, a
# `jaxsci.spectral.PeriodicGrid(num_points, length)` that the model declares as its `grid`
# (a field or a property; `state_shape` is then the grid's shape, derived for you). The
# model gives the Fourier symbol of its linear part, `linear_operator()`, an array on the
# grid's real-FFT layout (`grid.spectral_shape`, n // 2 + 1 modes in 1-D), and its
# nonlinear part in spectral space, `nonlinear(t, u_hat, args)`; `vector_field` is derived
# from them, so every diffrax solver works, and the exponential integrators
# (`jaxsci.integrate.ETDRK4`) treat the stiff linear part exactly. The grid provides the
# wavenumbers (`grid.wavenumbers()`, and `grid.odd_wavenumbers()` without the Nyquist mode,
# for odd derivatives), derivative symbols (`grid.derivative(order)`), the transforms
# (`grid.to_spectral`, `grid.from_spectral`) and Orszag's 2/3 de-aliasing rule for quadratic
# products (`grid.dealiased(u_hat)`, a no-op with `PeriodicGrid(..., dealias=False)`);
# de-aliasing is the model's job, the base class does not do it for you. The base class's
# own `__check_init__` rejects a linear operator that is not of `grid.spectral_shape` or
# that overflows the float dtype (a tiny `length`, or a huge coefficient), naming the cause.

# %%
import tempfile
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import numpyro.distributions as dist
from jaxtyping import Array, ArrayLike, Complex, Float

import jaxsci
from jaxsci import discovery, filters, inference, integrate
from jaxsci.dynamics import AbstractDynamics, AbstractSemilinear, check_positive, float_parameter
from jaxsci.pipelines import run_config
from jaxsci.spectral import PeriodicGrid

# %%
# ## An epidemic ODE: SEIR
#
# Susceptible people become exposed at rate beta S I, exposed ones infectious at rate
# sigma, infectious ones recover at rate gamma (fractions of a population, so S + E + I + R
# stays 1):
#
#     S' = -beta S I,  E' = beta S I - sigma E,  I' = sigma E - gamma I,  R' = gamma I.
#
# Three parameters, three array fields, one `vector_field`:


class SEIR(AbstractDynamics):
    """The SEIR epidemic model on population fractions (S, E, I, R)."""

    beta: Float[Array, ""]
    sigma: Float[Array, ""]
    gamma: Float[Array, ""]

    def __init__(self, beta: ArrayLike = 0.5, sigma: ArrayLike = 0.25, gamma: ArrayLike = 0.2):
        self.beta = float_parameter("beta", beta)
        self.sigma = float_parameter("sigma", sigma)
        self.gamma = float_parameter("gamma", gamma)

    def __check_init__(self):
        check_positive("beta", self.beta)
        check_positive("sigma", self.sigma)
        check_positive("gamma", self.gamma)

    @property
    def state_shape(self) -> tuple[int, ...]:
        return (4,)

    def vector_field(self, t, y: Float[Array, "4"], args=None) -> Float[Array, "4"]:
        s, e, i, _ = y
        infection = self.beta * s * i
        incubation = self.sigma * e
        recovery = self.gamma * i
        return jnp.stack([-infection, infection - incubation, incubation - recovery, recovery])

    def default_initial_state(self, key=None) -> Float[Array, "4"]:
        return jnp.array([0.99, 0.005, 0.005, 0.0])


# %%
# `simulate` integrates it (Tsit5 with an adaptive step by default) and saves at `ts`:

seir_truth = {"beta": 0.5, "sigma": 0.25, "gamma": 0.2}  # R0 = beta / gamma = 2.5
seir = SEIR(**seir_truth)
y0 = seir.default_initial_state()
days = jnp.linspace(0.0, 120.0, 241)
trajectory = jaxsci.simulate(seir, y0, days)
peak = int(trajectory.ys[:, 2].argmax())
print(f"peak of I: {float(trajectory.ys[peak, 2]):.3f} on day {float(days[peak]):.0f}")

fig, ax = plt.subplots(figsize=(7, 3.5))
for idx, label in enumerate("SEIR"):
    ax.plot(days, trajectory.ys[:, idx], label=label)
ax.set(xlabel="day", ylabel="fraction of the population", title="SEIR with simulate")
ax.legend()

# %%
# Wrong parameters are errors that name them, and the model is a pytree of its parameters:
# `eqx.filter_grad` through `simulate` differentiates a result with respect to the model,
# giving a model-shaped gradient with one entry per parameter.

try:
    SEIR(beta=-0.5)
except ValueError as err:
    print("ValueError:", err)


@eqx.filter_grad
def peak_sensitivity(model: SEIR) -> Array:
    return jaxsci.simulate(model, y0, days).ys[:, 2].max()


grads = peak_sensitivity(seir)
print(f"d(peak I)/d beta = {float(grads.beta):.3f}, d(peak I)/d gamma = {float(grads.gamma):.3f}")

# %%
# ## Data assimilation: track the epidemic from noisy counts
#
# `jaxsci.assimilate` (also `jaxsci.filters.assimilate`) runs a twin experiment: it
# integrates the truth from `x0` with a model step `flow(y, t0, t1)`, observes it every `dt`
# through an observation model, and runs a filter over the observations.
# `jaxsci.Flow(model, step)` is the model step (fixed RK4 steps for an ODE, ETDRK4 for a
# semilinear PDE). Here I and R are observed (indices 2 and 3: the infectious and the
# recovered), with noise of standard deviation `obs_std`, every two days, by an EnKF of 20
# members with 5% multiplicative inflation; the ensemble starts around a wrong guess of the
# initial state. (With I alone, R is seen by nothing, and inflation lets its spread grow
# without bound: try `indices=[2]`.) `jaxsci.run_filter` runs a filter over observations
# you already have.

obs_std = 0.005
obs_op = filters.IndexObservation(4, indices=[2, 3], noise_std=obs_std)
result = jaxsci.assimilate(
    jax.random.key(1),
    jaxsci.Flow(seir, 0.5),
    obs_op,
    filters.Inflation(filters.EnKF(), 1.05),
    y0,
    n_cycles=60,
    dt=2.0,
    ensemble_size=20,
    init_std=0.01,
    ensemble_centre=jnp.array([0.98, 0.01, 0.01, 0.0]),
    burn_in=20.0,
)
analysis_rmse = float(result.rmse_a_mean)
print(f"analysis rmse (all four compartments, after day 20): {analysis_rmse:.4f}")
print(f"observation noise std: {obs_std}")

fig, axes = plt.subplots(1, 4, figsize=(11, 3), sharex=True)
for idx, (ax, label) in enumerate(zip(axes, "SEIR", strict=True)):
    ax.plot(result.times, result.truth[:, idx], "k", label="truth")
    ax.plot(result.times, result.filter.mean_a[:, idx], "C1--", label="analysis mean")
    if idx >= 2:
        ax.plot(result.times, result.observations[:, idx - 2], "C0.", ms=3, label="observed")
    ax.set(title=label, xlabel="day")
axes[2].legend(fontsize=7)
fig.suptitle("EnKF observing I and R")
fig.tight_layout()

# %%
# ## Bayesian inference of beta, sigma and gamma
#
# `jaxsci.inference.posterior` samples a log-density over a dict of named parameters (or a
# numpyro model). Inside it, build your model from the parameter values and solve it with
# `inference.solve_ode`, which never raises: a failed solve (a proposal in a blow-up region)
# becomes log-density -inf, a rejected proposal. `inference.log_likelihood` scores the
# solution against data with any numpyro distribution. `LogDensity` attaches constraints
# (here all positive; the sampler works in unconstrained space) and the prior, which the
# default initialisation uses.
#
# The data: I and R observed every 6 days with noise of standard deviation 0.01.

obs_days = jnp.arange(6.0, 121.0, 6.0)
clean = jaxsci.simulate(seir, y0, jnp.concatenate([jnp.zeros(1), obs_days])).ys[1:, 2:]
data = clean + 0.01 * jax.random.normal(jax.random.key(2), clean.shape)
prior = {name: dist.LogNormal(jnp.log(0.3), 0.75) for name in seir_truth}


def log_posterior(params: dict[str, Array]) -> Array:
    log_prior = sum(prior[name].log_prob(params[name]) for name in prior)
    model = SEIR(params["beta"], params["sigma"], params["gamma"])
    solution = inference.solve_ode(model, y0, obs_days, t0=0.0, solver=integrate.RK4(), dt0=1.0)
    return log_prior + inference.log_likelihood(
        solution, lambda ys: dist.Normal(ys[:, 2:], 0.01), data
    )


target = inference.LogDensity(log_posterior, {name: "positive" for name in prior}, prior=prior)

# %%
# Four chains of NUTS with a short warmup. The data pin down the growth and decay of the
# epidemic curve, which depend on beta, sigma and gamma together, so the three rates are
# strongly correlated in the posterior; a dense mass matrix (`NUTS(dense_mass=True)`)
# adapts to that correlation. With the default diagonal one, these settings give R-hat
# near 1.06, a fifth of the effective sample size and five times the sampling time, and
# `fit.diagnose()` names the correlation and suggests `dense_mass=True`.

fit = inference.posterior(
    target,
    key=jax.random.key(3),
    sampler=inference.NUTS(dense_mass=True),
    num_chains=4,
    num_warmup=300,
    num_samples=250,
    progress_bar=False,
)
table = fit.summary()
print(inference.format_summary(table))
names = list(seir_truth)
seir_posterior_mean = {name: table[name]["mean"] for name in names}
seir_posterior_sd = {name: table[name]["sd"] for name in names}
rhat_max = max(table[name]["rhat"] for name in names)
ess_min = min(table[name]["ess_bulk"] for name in names)
print(f"max R-hat {rhat_max:.3f}, min bulk ESS {ess_min:.0f}, divergences {fit.divergences}")
print(
    f"warmup and sampling took {fit.seconds:.1f} s after {fit.compile_seconds:.1f} s of compilation"
)

# %%
# How far is the truth from the posterior? Marginally, each rate is about two posterior
# standard deviations off, which for three strongly correlated parameters is not a
# surprise: the joint distance that matters is the Mahalanobis distance d^2 = (x - m)^T
# C^{-1} (x - m) under the posterior mean m and covariance C (in log space, where the
# sampler works), which is chi-squared with 3 degrees of freedom if the posterior is right
# (its 99% quantile is 11.3).

log_draws = np.stack([np.log(fit.draws[name].ravel()) for name in names], axis=1)
offset = np.log([seir_truth[name] for name in names]) - log_draws.mean(axis=0)
seir_mahalanobis2 = float(offset @ np.linalg.solve(np.cov(log_draws.T), offset))
print(f"Mahalanobis distance^2 of the truth: {seir_mahalanobis2:.2f}")
print(np.corrcoef(log_draws.T).round(2))

fig, axes = plt.subplots(1, 3, figsize=(11, 3.3))
for ax, (a, b) in zip(axes[:2], [("beta", "gamma"), ("beta", "sigma")], strict=True):
    ax.plot(fit.draws[a].ravel(), fit.draws[b].ravel(), ".", ms=2, alpha=0.4)
    ax.plot(seir_truth[a], seir_truth[b], "k*", ms=12, label="truth")
    ax.set(xlabel=a, ylabel=b)
axes[0].legend()
r0 = (fit.draws["beta"] / fit.draws["gamma"]).ravel()
axes[2].hist(r0, bins=30, alpha=0.7)
axes[2].axvline(seir_truth["beta"] / seir_truth["gamma"], color="k", label="truth")
axes[2].set(xlabel="R0 = beta / gamma")
fig.suptitle(f"posterior draws, {fit.num_chains} chains x {fit.num_samples}")
fig.tight_layout()

# %%
# ## A periodic PDE: the Kawahara equation
#
# The Kawahara (dispersive Kuramoto-Sivashinsky) equation models thin films flowing down
# an inclined plane:
#
#     u_t = -u u_x - u_xx - delta u_xxx - u_xxxx    on [0, length), periodic.
#
# Its linear part is diagonal in Fourier space, L(k) = k^2 - k^4 + i delta k^3 (from
# (ik)^2 = -k^2, (ik)^3 = -i k^3, (ik)^4 = k^4); the nonlinear part is -u u_x =
# -(1/2)(u^2)_x, computed as -(i k / 2) FFT(u^2) with the product de-aliased. The
# dispersion delta is the parameter, an array field; the grid is declared once in
# `__init__`.

LENGTH, POINTS = 16 * np.pi, 64


class Kawahara(AbstractSemilinear):
    """u_t = -u u_x - u_xx - delta u_xxx - u_xxxx on a periodic grid."""

    delta: Float[Array, ""]
    grid: PeriodicGrid

    def __init__(self, delta: ArrayLike = 0.5, length: float = LENGTH, num_points: int = POINTS):
        self.delta = float_parameter("delta", delta)
        self.grid = PeriodicGrid(num_points, length)  # dealias=True: the 2/3 rule

    def linear_operator(self) -> Complex[Array, " mode"]:
        (k,) = self.grid.wavenumbers()
        (k_odd,) = self.grid.odd_wavenumbers()  # no sign at the Nyquist mode
        return jnp.asarray(k**2 - k**4) + 1j * self.delta * jnp.asarray(k_odd**3)

    def nonlinear(self, t, u_hat: Complex[Array, " mode"], args=None) -> Complex[Array, " mode"]:
        u = self.grid.from_spectral(self.grid.dealiased(u_hat))
        (k_odd,) = self.grid.odd_wavenumbers()
        return self.grid.dealiased(-0.5j * k_odd * self.grid.to_spectral(u * u))

    def default_initial_state(self, key=None) -> Float[Array, " x"]:
        (x,) = self.grid.coordinates()
        return jnp.asarray(np.cos(x / 8) * (1 + np.sin(x / 8)))


# %%
# ### Check: one small Fourier mode evolves as exp(L t)
#
# A small wave u = eps cos(k x) hardly feels the quadratic term (its own amplitude changes
# at order eps^3), so it must follow the linear solution u = eps Re(exp(L(k) t) e^{ikx}):
# decay at rate k^4 - k^2 and travel to the left at speed delta k^2. ETDRK4 integrates the
# linear part exactly, so the match is tight. Mode m = 12 has k = 2 pi m / length = 1.5.

kawahara = Kawahara(delta=0.5)
x = jnp.asarray(kawahara.grid.coordinates()[0])
mode, eps, t_end = 12, 1e-3, 1.0
k_mode = 2 * np.pi * mode / LENGTH
wave = jaxsci.simulate(
    kawahara,
    eps * jnp.cos(k_mode * x),
    jnp.array([0.0, t_end]),
    solver=integrate.ETDRK4(),
    dt0=0.05,
)
symbol = complex(kawahara.linear_operator()[mode])
exact = eps * np.real(np.exp(symbol * t_end) * np.exp(1j * k_mode * np.asarray(x)))
mode_decay_error = float(np.max(np.abs(np.asarray(wave.ys[-1]) - exact)) / np.max(np.abs(exact)))
print(f"L(k) = {symbol:.4f}; max error relative to the exact wave: {mode_decay_error:.2e}")

# %%
# ### Chaos: a Hovmoller diagram
#
# From the default initial state the long waves grow (the real part of L(k) is positive for
# k < 1), steepen, and settle into the chaotic, drifting cells of the Kawahara equation.

spinup_ts = jnp.arange(0.0, 150.0, 0.5)
hovmoller = jaxsci.simulate(
    kawahara, kawahara.default_initial_state(), spinup_ts, solver=integrate.ETDRK4(), dt0=0.25
)
fig, ax = plt.subplots(figsize=(7, 4))
image = ax.pcolormesh(np.asarray(x), spinup_ts, hovmoller.ys, cmap="RdBu_r", shading="auto")
fig.colorbar(image, ax=ax, label="u")
ax.set(xlabel="x", ylabel="t", title="Kawahara equation, delta = 0.5 (ETDRK4)")

# %%
# ## Model-error discovery: what does the model lack?
#
# Suppose the real system also loses energy, u_t = ... - 0.1 u, and your model does not
# know it. `jaxsci.discovery.discover_model_error` (MEDIDA: Mojgani, Chattopadhyay &
# Hassanzadeh 2022) assimilates noisy observations of the real system with your model (an
# EnKF), collects model-error samples (the next observation minus the model's one-interval
# forecast) and regresses them on a library of candidate terms with a sparse regression
# (here the relevance vector machine, `discovery.RVM`). `EnKFPasses` sets up the
# assimilation: a first pass with your model, then a second with the corrected one, whose
# background means serve as instruments for the regressors (`InstrumentalPairs`). The
# observations here are the full field every time unit with 2% noise. The truth is written with
# `discovery.CorrectedModel`: your model plus library terms with given coefficients, the
# same class a discovery returns as its corrected model.

library = discovery.SpectralLibrary(["u", "u_x", "u_xx", "u_xxx", "u^2", "u*u_x"], LENGTH, POINTS)
true_coefficients = jnp.zeros(library.num_terms).at[library.names.index("u")].set(-0.1)
real_system = discovery.CorrectedModel(kawahara, library, true_coefficients)

DT, INTERVAL, COUNT = 0.25, 1.0, 100
flow = jaxsci.Flow(real_system, DT)
start = hovmoller.ys[-1]
states = jax.jit(
    lambda u: integrate.rollout(flow, u, COUNT - 1, dt=INTERVAL, include_initial=True)
)(integrate.rollout(flow, start, 50, dt=INTERVAL)[-1])
noise = 0.02 * float(jnp.std(states))
full_obs = filters.IndexObservation(POINTS, noise_std=noise)
observations = filters.synthetic_observations(jax.random.key(4), full_obs, states)

assimilation = discovery.EnKFPasses(
    full_obs,
    filters.Inflation(filters.RTPS(filters.EnKF(), 0.5), 1.2),
    observations[0] + noise * jax.random.normal(jax.random.key(5), (32, POINTS)),
    first_filter=filters.Inflation(filters.RTPS(filters.EnKF(), 0.9), 1.1),
    passes=2,
    burn_in=10,
    samples=discovery.InstrumentalPairs(),
)
found = discovery.discover_model_error(
    kawahara,
    library,
    discovery.RVM(),
    observations,
    INTERVAL,
    dt=DT,
    refinements=1,
    assimilation=assimilation,
    truth=states,
    key=jax.random.key(6),
)
discovered_terms = found.fit.terms()
print(f"{'term':8s} {'found':>9s} {'true':>9s}")
for name, value in zip(library.names, np.asarray(true_coefficients), strict=True):
    print(f"{name:8s} {discovered_terms.get(name, 0.0):+9.4f} {value:+9.4f}")

fig, ax = plt.subplots(figsize=(6, 3))
positions = np.arange(library.num_terms)
ax.bar(positions - 0.2, np.asarray(true_coefficients), 0.4, label="true", color="k")
ax.bar(
    positions + 0.2,
    [discovered_terms.get(n, 0.0) for n in library.names],
    0.4,
    label="discovered",
    color="C1",
)
ax.set_xticks(positions, library.names)
ax.set(ylabel="coefficient", title="model error found by MEDIDA")
ax.legend()

# %%
# ## Run a whole pipeline on your model
#
# Everything `jaxsci run CONFIG.yaml` does (validation, progress, `metrics.json`, arrays as
# `.npz` and netCDF, plots, `run.log`, the `COMPLETE` marker) is available on your own
# classes from Python: `jaxsci.pipelines.run_config` takes the config as a mapping (or a
# YAML path) and `objects={key: object}` puts your objects where the config would name a
# built-in one. The keys that take objects: `model` (simulate, assimilate, discover; also
# `truth` in discover), `filter.method` (assimilate: any filter, with its own inflation),
# `problem` (posterior: e.g. `inference.twin_problem(key, seir, ("beta", "gamma"),
# obs_times=..., prior_loc=...)`), `model` in train (a network), `network` and
# `sampling.sampler` in train_diffusion, items of `samplers` in gmm_samplers. Configs
# themselves never import code; `config.yaml` records each object's class and scalar fields.

runs = Path(tempfile.mkdtemp(prefix="jaxsci-tutorial-"))
simulate_config = {"pipeline": "simulate", "integrate": {"t1": 120.0, "dt": 0.1}}
run_dir, metrics = run_config(
    simulate_config, runs / "seir-simulate", objects={"model": seir}, echo=False
)
print(sorted(p.name for p in run_dir.iterdir()))
print({k: metrics[k] for k in ("model", "solver", "n_steps", "state_max")})

assimilate_config = {
    "pipeline": "assimilate",
    "flow": {"dt": 0.5},
    "observations": {"indices": [2, 3], "noise_std": obs_std},
    "experiment": {"n_cycles": 200, "initial_spread": 0.005},
    "filter": {"ensemble_size": 20},
}
objects = {"model": seir, "filter.method": filters.Inflation(filters.EnKF(), 1.05)}
run_dir, metrics = run_config(
    assimilate_config, runs / "seir-assimilate", objects=objects, echo=False
)
pipeline_rmse = metrics["rmse_a"]
print(f"assimilate pipeline: rmse_a {pipeline_rmse:.4f} (noise std {obs_std})")
print((run_dir / "config.yaml").read_text().split("seed:")[0])
