"""Discover a model's missing physics from noisy observations (MEDIDA with jaxsci).

    python examples/ks_model_error.py            # 500 observations, 2 passes (~1 min)
    python examples/ks_model_error.py --fast     # a small run, for the tests

The workflow of Mojgani, Chattopadhyay & Hassanzadeh (2022, Chaos 32, 061105): a model
(here the standard Kuramoto-Sivashinsky equation) misses a term that the real system has;
sporadic noisy observations are assimilated with a stochastic EnKF that uses the model;
model-error samples (next observation minus the model's one-step forecast from the analysis)
are regressed on a library of candidate terms with the relevance vector machine; the model
plus the discovered terms is then compared with the truth.

To use it on your own problem, change the four marked places:
  1. `model`: your imperfect model, any `jaxsci.dynamics.AbstractSemilinear` whose state is
     a field on a periodic 1-D grid (spectral state = its rfft), e.g. KS or Burgers;
  2. `TERMS`: the candidate terms ("u", "u_x", ..., "u*u_x", "u^2", "u_x^2", "1", ...);
  3. `observe()`: your observations every `INTERVAL` on the model's grid (here a synthetic
     truth with a changed u_xx coefficient stands in for reality) and their noise std;
  4. the EnKF settings (ensemble size, inflation) for your model's error growth.
`discovery.discover_model_error` runs the passes; see examples/compose_medida.py for a
model class of your own.
Writes `ks_model_error.png` (coefficients with error bars; forecast error) to --out.
"""

import argparse
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from matplotlib.figure import Figure

import jaxsci
from jaxsci import discovery, filters, metrics
from jaxsci.dynamics import KuramotoSivashinsky
from jaxsci.integrate import rollout

LENGTH, POINTS = 16 * np.pi, 64  # a chaotic KS domain (leading Lyapunov exponent ~0.1)
DT = 0.25  # ETDRK4 step
INTERVAL = 1.0  # time between observations: sporadic, 4 model steps
TERMS = ["u", "u_x", "u_xx", "u_xxx", "u_xxxx", "u^2", "u^3", "u*u_x"]  # (2) candidates


def observe(key, count: int, noise: float):
    """(3) Observations of the real system every INTERVAL, and their noise std.

    Here the "real system" is KS with a u_xx coefficient 10% larger than the model's:
    u_t = -u u_x - 1.1 u_xx - u_xxxx, i.e. the model misses -0.1 u_xx. Replace this with
    your data (shape (count, POINTS)). Also returns the truth, for the final comparison.
    """
    truth = KuramotoSivashinsky(LENGTH, POINTS, alpha=1.1)
    flow = jaxsci.Flow(truth, DT)
    x = truth.default_initial_state() + 0.01 * jax.random.normal(key, (POINTS,))
    x = jax.jit(lambda x: rollout(flow, x, 150, dt=INTERVAL)[-1])(x)  # spin-up
    states = jax.jit(lambda x: rollout(flow, x, count - 1, dt=INTERVAL, include_initial=True))(x)
    sigma = noise * float(jnp.std(states))
    ys = states + sigma * jax.random.normal(jax.random.fold_in(key, 1), states.shape)
    return ys, sigma, truth, states


def main(fast: bool, out: Path) -> dict:
    key = jax.random.key(0)
    model = KuramotoSivashinsky(LENGTH, POINTS)  # (1) the imperfect model
    library = discovery.SpectralLibrary(TERMS, LENGTH, POINTS)
    count, passes = (120, 2) if fast else (500, 2)
    ys, sigma, truth, true_states = observe(key, count, noise=0.05)
    obs_op = filters.IndexObservation(POINTS, noise_cov=sigma**2)

    # (4) the EnKF of each pass runs the model corrected by the previous pass (the plain
    # model at first). The imperfect model needs heavy inflation (a high gain, so the
    # analyses do not lag the truth); the corrected one runs with moderate inflation and
    # gives an accurate background (forecast) mean. Samples: next observation minus the
    # model's one-step forecast, regressed on the sensitivities of a model step to each
    # term; pass 1 forecasts from the analyses, later passes from the observations with the
    # regressors at the background mean (no errors-in-variables bias): InstrumentalPairs.
    assimilation = discovery.EnKFPasses(
        obs_op,
        filters.Inflation(filters.RTPS(filters.EnKF(), 0.5), 1.2),
        ys[0] + sigma * jax.random.normal(jax.random.fold_in(key, 2), (32, POINTS)),
        first_filter=filters.Inflation(filters.RTPS(filters.EnKF(), 0.9), 1.1),
        passes=passes,
        burn_in=20,  # EnKF spin-up cycles left out of the samples
        samples=discovery.InstrumentalPairs(),
    )
    result = discovery.discover_model_error(
        model,
        library,
        discovery.RVM(),
        ys,
        INTERVAL,
        dt=DT,
        refinements=1,
        assimilation=assimilation,
        key=jax.random.fold_in(key, 3),
    )
    fit = result.fit
    for p, xi in enumerate(np.asarray(result.coefficients)):
        print(f"pass {p + 1}: {dict(zip(library.names, np.round(xi, 5), strict=True))}")

    found = fit.terms()
    std = dict(zip(library.names, np.asarray(fit.std), strict=True))
    for name, value in found.items():
        print(f"  {name:8s} {value:+.5f} +- {2 * std[name]:.5f} (2 std)   true: -0.1 u_xx")

    # forecasts of the truth, the model and the corrected model from the same true states
    lam = 0.10  # leading Lyapunov exponent of the truth (jaxsci.lyapunov_exponents)
    steps = int(8 / lam / INTERVAL) + 1
    starts = true_states[-1:] if fast else true_states[-200::50]

    @eqx.filter_jit
    def forecast(dynamics):  # one compiled function per model structure
        flow = jaxsci.Flow(dynamics, DT)
        return jax.vmap(lambda x: rollout(flow, x, steps, dt=INTERVAL))(starts)

    reference = forecast(truth)
    lead = lam * INTERVAL * np.arange(1, steps + 1)
    errors, valid = {}, {}
    for name, dyn in (("model", model), ("corrected", fit.corrected(model, library))):
        errors[name] = np.asarray(metrics.normalised_error(forecast(dyn), reference))
        valid[name] = float(np.mean(metrics.valid_time(errors[name], lead, 0.5)))
    print(
        f"valid time (Lyapunov times): model {valid['model']:.2f}, "
        f"corrected {valid['corrected']:.2f}"
    )

    fig = Figure(figsize=(11, 4), layout="constrained")
    ax1, ax2 = fig.subplots(1, 2, width_ratios=(1, 1.3))
    pos = np.arange(library.num_terms)
    ax1.bar(pos, np.asarray(fit.coefficients), yerr=2 * np.asarray(fit.std), capsize=3)
    ax1.plot(pos[library.names.index("u_xx")], -0.1, "k_", ms=20, mew=2, label="true -0.1")
    ax1.set_xticks(pos, library.names, rotation=45)
    ax1.set(ylabel="coefficient", title="discovered model error (± 2 std)")
    ax1.legend(fontsize=8)
    for name, color in (("model", "tab:red"), ("corrected", "tab:blue")):
        ax2.plot(lead, errors[name].mean(axis=0), color=color, label=f"{name}: {valid[name]:.2f}")
    ax2.axhline(0.5, color="k", ls="--", lw=0.8)
    ax2.set(xlabel="lead time (Lyapunov times)", ylabel="normalised error", title="forecasts")
    ax2.legend(title="valid time", fontsize=8)
    out.mkdir(parents=True, exist_ok=True)
    fig.savefig(out / "ks_model_error.png", dpi=120)
    print(f"wrote {out / 'ks_model_error.png'}")
    return {"found": found, "valid": valid}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fast", action="store_true", help="short run (for tests)")
    parser.add_argument("--out", type=Path, default=Path("runs/examples"), help="output folder")
    args = parser.parse_args()
    main(args.fast, args.out)
