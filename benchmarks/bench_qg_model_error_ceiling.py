"""MEDIDA-QG's perfect-analysis ceiling (issue 18): the increments D_k = x^t_k - M(x^t_{k-1})
(the model without drag run from the TRUE state over Delta: no filter, no noise, full grid)
regressed with `discovery.regress_increments` (RVM, |m| <= 8 of 32) on three designs: D / Delta
on the library at the background M(x^t_{k-1}) or at the midpoint (x^t_{k-1} + M(x^t_{k-1})) / 2
(the one-state design), and on the integrated design (the sensitivity of the forecast from
x^t_{k-1} to each term, `discovery.integrated_design`) after one linearisation and after one
Gauss-Newton refinement; 60 intervals after a 1000-day spin-up. What the increments can give at
a given Delta when the filter is perfect. Usage:
python benchmarks/bench_qg_model_error_ceiling.py 1 12 24 48 [--intervals 60]
[--designs state integrated] (Delta in model steps of 2 h).
Results: benchmarks/RESULTS_discovery.md, MEDIDA-QG."""

import argparse
import time

import jax
import numpy as np

from jaxsci import discovery, dynamics, integrate

parser = argparse.ArgumentParser()
parser.add_argument("steps", type=int, nargs="+", help="Delta in model steps")
parser.add_argument("--intervals", type=int, default=60, help="regressed intervals")
parser.add_argument("--designs", nargs="+", default=["state", "integrated"])
cli = parser.parse_args()
n, dt, rek = 64, 7200.0, 5.787e-7
truth_m, model = dynamics.TwoLayerQG(n), dynamics.TwoLayerQG(n, rek=0.0)
solver = integrate.Filtered(integrate.ETDRK4(), truth_m.spectral_filter())
ft, fm = integrate.Flow(truth_m, dt, solver), integrate.Flow(model, dt, solver)
q0 = truth_m.default_initial_state(jax.random.key(0))
q0 = integrate.rollout(ft, q0, 1000, dt=86400.0)[-1]
lib = discovery.LayeredLibrary(
    list(discovery.QG_TERMS), truth_m.length, n, streamfunction=truth_m.streamfunction
)
names = lib.names
i = names.index("lap(psi)[2]")
for steps in cli.steps:
    D = steps * dt
    tr = integrate.rollout(ft, q0, cli.intervals, dt=D, include_initial=True)
    bg = jax.vmap(lambda q, d=D: fm(q, 0.0, d))(tr[:-1])
    inc = tr[1:] - bg
    rows = (
        ("background", bg, "state", 0),
        ("midpoint", 0.5 * (bg + tr[:-1]), "state", 0),
        ("integrated", tr[:-1], "integrated", 0),
        ("integrated+1 refinement", tr[:-1], "integrated", 1),
    )
    for lab, where, design, refinements in rows:
        if design not in cli.designs:
            continue
        t0 = time.perf_counter()
        fit = discovery.regress_increments(
            lib,
            discovery.RVM(),
            where,
            inc,
            D,
            design=design,
            flow=fm,
            lowpass=0.25,
            refinements=refinements,
        )
        xi = np.asarray(fit.coefficients)
        rms = np.asarray(fit.column_rms)
        sp = [j for j in np.flatnonzero(np.asarray(fit.active)) if j != i]
        big = max((abs(xi[j]) * rms[j] for j in sp), default=0) / (rek * rms[i])
        err = abs(xi[i] / -rek - 1)
        print(
            f"{steps} steps {lab}: lap(psi)[2] {xi[i]:.4g} (err {err:.2%}), spurious {len(sp)}"
            f" largest {big:.3f} [{time.perf_counter() - t0:.0f} s]",
            flush=True,
        )
