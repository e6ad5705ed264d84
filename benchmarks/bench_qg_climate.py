r"""Two-layer QG turbulence: jaxsci's `TwoLayerQG` and pyqg-jax reach the same steady state.

Both models run pyqg's default setup (64^2, L = 1e6 m, r_d = 15 km, delta = 0.25,
U_1 = 0.025 m/s, beta = 1.5e-11, r_ek = 5.787e-7 1/s, the exponential filter, AB3 with
dt = 7200 s) from the same random start (pyqg-jax's `create_initial_state(key(0))`) for
`--years` model years of 360 days, saving every 10 days. Chaos makes the two trajectories
part after a few months (float rounding differs), so what is compared is the climate: the
depth-weighted kinetic energy sum_i (H_i / H) KE_i (pyqg-jax's `diagnostics.total_ke`,
jaxsci's `layer_weights @ kinetic_energy(q)`) averaged over years `--start`..`--years`, with
its standard error from the integral correlation time of each series (the autocorrelation
summed to its first zero crossing).

With `--members M`, M runs of each model from pyqg-jax's starts for keys 0..M-1 (vmapped);
the standard error of the mean over members is then the spread of the M independent means.
Also printed: the yearly means (the growth from the start and the plateau), and wall times.

Run: `python benchmarks/bench_qg_climate.py` (20 years, float64, a few minutes on 2 cores),
`--quick` (6 years, start 3), `--json PATH`. Both run in float64 (JAX's x64 mode, which
pyqg-jax asks for); the float32 run of jaxsci is `configs/qg_turbulence.yaml`.
"""

import argparse
import os
import sys

parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
parser.add_argument("--quick", action="store_true", help="6 years, statistics from year 3")
parser.add_argument("--years", type=float, default=None, help="model years (360 days)")
parser.add_argument("--start", type=float, default=None, help="first year of the statistics")
parser.add_argument(
    "--members", type=int, default=1, help="runs from pyqg-jax's start with keys 0..M-1 (vmapped)"
)
parser.add_argument("--json", default=None, help="write the results to this JSON file")
ARGS = parser.parse_args()

import time  # noqa: E402

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)  # pyqg-jax's inversion asks for float64

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import pyqg_jax  # noqa: E402

from jaxsci import dynamics, integrate  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _timing import finish, machine_summary  # noqa: E402

DT = 7200.0
DAY = 86400.0
YEAR = 360 * DAY
SAVE = 120  # steps between saves: 10 days


def correlation_time(x: np.ndarray) -> float:
    """Integral correlation time in samples: 1 + 2 sum of the autocorrelation up to its
    first zero crossing."""
    x = x - x.mean()
    ac = np.correlate(x, x, "full")[len(x) - 1 :] / (x.var() * len(x))
    first = int(np.argmax(ac < 0)) or len(ac)
    return float(1 + 2 * ac[1:first].sum())


def summary(series: np.ndarray, start: int) -> dict:
    w = series[start:]
    tau = correlation_time(w)
    return dict(
        mean=float(w.mean()),
        rel_std=float(w.std() / w.mean()),
        correlation_saves=tau,
        rel_standard_error=float(w.std() / w.mean() * np.sqrt(tau / len(w))),
    )


def run_pyqg(q0, n_saves):
    model = pyqg_jax.steppers.SteppedModel(
        pyqg_jax.qg_model.QGModel(precision=pyqg_jax.state.Precision.DOUBLE),
        pyqg_jax.steppers.AB3Stepper(dt=DT),
    )
    grid = model.model.get_grid()
    inner = model.create_initial_state(jax.random.key(0)).state

    def save(s, _):
        s = jax.lax.fori_loop(0, SAVE, lambda _, s: model.step_model(s), s)
        return s, pyqg_jax.diagnostics.total_ke(model.get_full_state(s), grid)

    def run(q):
        state = model.initialize_stepper_state(inner.update(q=q))
        return jax.lax.scan(save, state, None, n_saves)[1]

    t = time.perf_counter()
    ke = jax.block_until_ready(jax.jit(jax.vmap(run))(q0))
    return np.asarray(ke, dtype=float), time.perf_counter() - t


def run_jaxsci(q0, n_saves):
    model = dynamics.TwoLayerQG(64)
    ts = DT * SAVE * jnp.arange(n_saves + 1)
    solver = integrate.AB3(filter=model.spectral_filter())
    weights = model.layer_weights

    @jax.jit
    def run(q):
        ys = integrate.simulate(model, q, ts, solver=solver, dt0=DT, max_steps=SAVE * n_saves + 8)
        return jax.vmap(lambda y: weights @ model.kinetic_energy(y))(ys.ys[1:])

    t = time.perf_counter()
    ke = jax.block_until_ready(jax.vmap(run)(q0))
    return np.asarray(ke, dtype=float), time.perf_counter() - t


def main():
    years = ARGS.years or (6.0 if ARGS.quick else 20.0)
    start_year = ARGS.start or (3.0 if ARGS.quick else 5.0)
    n_saves = round(years * YEAR / (DT * SAVE))
    start = round(start_year * YEAR / (DT * SAVE))
    out = dict(machine=machine_summary(), args=vars(ARGS), years=years, start_year=start_year)
    print("machine:", out["machine"])
    qg = pyqg_jax.qg_model.QGModel(precision=pyqg_jax.state.Precision.DOUBLE)
    q0 = jnp.stack([qg.create_initial_state(jax.random.key(i)).q for i in range(ARGS.members)])
    rows = {}
    for name, fn in (
        ("pyqg-jax", lambda: run_pyqg(q0, n_saves)),
        ("jaxsci", lambda: run_jaxsci(q0, n_saves)),
    ):
        ke, seconds = fn()  # (members, saves)
        members = [summary(k, start) for k in ke]
        means = np.array([m["mean"] for m in members])
        if len(means) > 1:  # independent runs: the spread of their means
            se = float(means.std(ddof=1) / np.sqrt(len(means)) / means.mean())
        else:
            se = members[0]["rel_standard_error"]
        yearly = ke[:, : int(years) * 36].reshape(len(ke), -1, 36).mean(axis=2)
        rows[name] = dict(
            mean=float(means.mean()),
            rel_standard_error=se,
            members=members,
            seconds=seconds,
            steps=n_saves * SAVE,
            yearly_mean=yearly.tolist(),
        )
        print(
            f"  {name} (float64): {len(ke)} x {n_saves * SAVE} steps in {seconds:.1f} s "
            "(with compile)"
        )
        for i, (m, y) in enumerate(zip(members, yearly, strict=True)):
            print(f"    member {i} yearly mean KE:", " ".join(f"{v:.3e}" for v in y))
            std, mse = 100 * m["rel_std"], 100 * m["rel_standard_error"]
            print(
                f"      years {start_year:g}-{years:g}: mean {m['mean']:.4e}, std {std:.1f}%, "
                f"correlation {m['correlation_saves']:.0f} saves, SE {mse:.1f}%"
            )
        print(f"    mean over members {means.mean():.4e}, SE {100 * se:.1f}%")
    a, b = rows["jaxsci"], rows["pyqg-jax"]
    diff = a["mean"] / b["mean"] - 1
    se = np.hypot(a["rel_standard_error"], b["rel_standard_error"])
    print(f"  jaxsci / pyqg-jax - 1 = {100 * diff:+.2f}% (combined SE {100 * se:.1f}%)")
    out.update(rows=rows, relative_difference=diff, combined_standard_error=se)
    finish(out, ARGS.json)


if __name__ == "__main__":
    main()
