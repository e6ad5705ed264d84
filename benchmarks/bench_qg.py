r"""Two-layer quasi-geostrophic model: jaxsci's `TwoLayerQG` against pyqg-jax, time per step.

The model. jaxsci's `dynamics.TwoLayerQG` and pyqg-jax's `qg_model.QGModel` (Otness et al.,
a JAX port of pyqg) solve Phillips' two-layer QG equations with pyqg's conventions; both are
built here with pyqg's defaults (L = 1e6 m, beta = 1.5e-11 1/(m s), r_d = 15 km,
delta = 0.25, H_1 = 500 m, U_1 = 0.025 m/s, U_2 = 0, r_ek = 5.787e-7 1/s, filterfac = 23.6)
on the same n x n grid, with pyqg's step dt = 7200 s.

The scheme. pyqg's: third-order Adams-Bashforth (AB1 and AB2 for the first two steps) with
the exponential spectral filter multiplied onto the spectral state after every step.
pyqg-jax: `SteppedModel(QGModel, AB3Stepper(dt))`, its state the spectral PV q_hat.
jaxsci: `integrate.AB3(filter=model.spectral_filter())` (a diffrax solver), its state the
grid PV q. Also timed: jaxsci's ETDRK4 with the same filter (`integrate.Filtered`), four
tendency evaluations per step instead of one, for reference.

What is timed (per step, after compilation; the compile time, of `jit(...).lower().compile()`,
reported apart): each variant advances S steps in one compiled program that returns the
final state --
  pyqg-jax AB3      `lax.fori_loop` of S `SteppedModel.step_model` calls;
  jaxsci AB3        `integrate.Flow(model, dt, AB3(filter), max_steps)(q, 0, S dt)`, one
                    `diffeqsolve` of S fixed steps (the history carried in the solver state);
  jaxsci ETDRK4     the same with `Filtered(ETDRK4(), filter)`.
The variants are called in turn for `--repeats` rounds (`_timing.time_variants`); the median
(and the minimum) over rounds / S is the time per step. The ratio printed is jaxsci /
pyqg-jax (below 1: jaxsci faster), the median over rounds of the two times of a round (on a
shared machine a burst of load hits both variants of a round alike).

Precision. float64 runs with JAX's x64 mode on. float32 runs with x64 off, so that both
models compute in float32 throughout. pyqg-jax's documented setup is different: it asks for
x64 mode and then solves its 2 x 2 PV inversion in float64 even for a float32 state; that
mixed variant is timed too (`pyqg-jax AB3 (f32 state, f64 inversion)`), against the same
jaxsci float32 run.

Agreement. Before timing, both AB3 runs start from the same PV field (pyqg-jax's random
initial state) and the maximum difference after `--check-steps` steps, relative to the
largest |q|, is printed (round-off when the schemes match).

Run: `python benchmarks/bench_qg.py` (CPU: n = 64 and 128, float32 and float64),
`--sizes 256 512` (the GPU sizes: the same command on a GPU machine uses it, JAX's default
backend), `--quick` (smoke test, n = 32, a few seconds), `--dtypes float64`, `--json PATH`.
"""

import argparse
import os
import sys

parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
parser.add_argument("--quick", action="store_true", help="tiny sizes, for a smoke test")
parser.add_argument("--sizes", type=int, nargs="+", default=None, help="grid sizes n (n x n)")
parser.add_argument(
    "--dtypes", nargs="+", default=["float32", "float64"], choices=["float32", "float64"]
)
parser.add_argument("--steps", type=int, default=None, help="steps per timed call (S)")
parser.add_argument("--repeats", type=int, default=None, help="timed rounds per variant")
parser.add_argument("--check-steps", type=int, default=None, help="steps of the agreement check")
parser.add_argument("--no-etdrk4", action="store_true", help="skip the ETDRK4 variant")
parser.add_argument("--json", default=None, help="write the results to this JSON file")
ARGS = parser.parse_args()

import time  # noqa: E402
import warnings  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import pyqg_jax  # noqa: E402

from jaxsci import dynamics, integrate  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _timing import finish, machine_summary, time_variants  # noqa: E402

DT = 7200.0  # pyqg's default step, s

# pyqg-jax asks for float64 arrays in its inversion whatever the state's precision; with x64
# off (the float32 runs) JAX truncates them to float32 and warns on every trace.
warnings.filterwarnings("ignore", message="Explicitly requested dtype", category=UserWarning)


def pyqg_model(n: int, dtype: str, key) -> tuple:
    """pyqg-jax's stepped QG model with pyqg's defaults and its random initial state."""
    precision = pyqg_jax.state.Precision.DOUBLE if dtype == "float64" else None
    precision = precision or pyqg_jax.state.Precision.SINGLE
    model = pyqg_jax.steppers.SteppedModel(
        pyqg_jax.qg_model.QGModel(nx=n, precision=precision),
        pyqg_jax.steppers.AB3Stepper(dt=DT),
    )
    return model, model.create_initial_state(key)


def pyqg_run(model, steps: int):
    """S pyqg-jax steps from a grid PV field q; returns the final q (fresh AB3 history)."""

    def run(q):
        n = q.shape[-1]
        zeros = jnp.zeros((2, n, n // 2 + 1), jnp.result_type(q.dtype, jnp.complex64))
        inner = pyqg_jax.state.PseudoSpectralState(qh=zeros, _q_shape=(n, n)).update(q=q)
        state = model.initialize_stepper_state(inner)
        state = jax.lax.fori_loop(0, steps, lambda _, s: model.step_model(s), state)
        return state.state.q

    return run


def jaxsci_run(model, solver, steps: int):
    """S jaxsci steps of `solver` from q (one diffeqsolve); returns the final q."""
    # a few spare steps in case the rounding of the time grid adds a tiny last step
    flow = integrate.Flow(model, DT, solver, max_steps=steps + 8)
    return lambda q: flow(q, 0.0, steps * DT)


def aot(fn, x) -> tuple:
    """(compiled fn, compile seconds) of jit(fn) for the argument x."""
    t = time.perf_counter()
    compiled = jax.jit(fn).lower(x).compile()
    return compiled, time.perf_counter() - t


def bench(n: int, dtype: str, steps: int, repeats: int, check_steps: int, x64_pyqg=False):
    """One (size, dtype) row: agreement check, then compile and per-step times."""
    rows = {}
    key = jax.random.key(0)
    pyqg, state0 = pyqg_model(n, dtype, key)
    q0 = jnp.asarray(state0.state.q)
    model = dynamics.TwoLayerQG(n)
    ab3 = integrate.AB3(filter=model.spectral_filter())
    variants = {
        "pyqg-jax AB3": pyqg_run(pyqg, steps),
        "jaxsci AB3": jaxsci_run(model, ab3, steps),
    }
    if not ARGS.no_etdrk4:
        etd = integrate.Filtered(integrate.ETDRK4(), model.spectral_filter())
        variants["jaxsci ETDRK4"] = jaxsci_run(model, etd, steps)

    # agreement: both AB3 runs from the same q0 for check_steps steps
    ref = jax.jit(pyqg_run(pyqg, check_steps))(q0)
    ours = jax.jit(jaxsci_run(model, ab3, check_steps))(q0)
    scale = float(jnp.max(jnp.abs(ref)))
    rel = float(jnp.max(jnp.abs(ours - ref))) / scale
    print(
        f"  n={n} {dtype}: q dtype pyqg-jax {ref.dtype}, jaxsci {ours.dtype}; after "
        f"{check_steps} AB3 steps max|q| = {scale:.3e}, max|diff| / max|q| = {rel:.2e}"
    )

    compiled, compile_s = {}, {}
    for name, fn in variants.items():
        compiled[name], compile_s[name] = aot(fn, q0)
    res = time_variants({k: (lambda f=f: f(q0)) for k, f in compiled.items()}, repeats)
    for name, r in res.items():
        final = np.asarray(compiled[name](q0))
        rows[name] = dict(
            compile_seconds=compile_s[name],
            per_step_ms=1e3 * r["median"] / steps,
            per_step_ms_min=1e3 * r["min"] / steps,
            call_seconds=r["times"],
            finite=bool(np.all(np.isfinite(final))),
        )
    return dict(
        n=n, dtype=dtype, steps=steps, check_steps=check_steps, check_rel_diff=rel, variants=rows
    )


def bench_pyqg_mixed(n: int, steps: int, repeats: int) -> dict:
    """pyqg-jax's documented float32 setup: x64 mode on, float32 state, float64 inversion."""
    pyqg, state0 = pyqg_model(n, "float32", jax.random.key(0))
    q0 = jnp.asarray(state0.state.q)
    fn, compile_s = aot(pyqg_run(pyqg, steps), q0)
    r = time_variants({"mixed": lambda: fn(q0)}, repeats)["mixed"]
    return dict(
        compile_seconds=compile_s,
        per_step_ms=1e3 * r["median"] / steps,
        per_step_ms_min=1e3 * r["min"] / steps,
        call_seconds=r["times"],
        state_dtype=str(q0.dtype),
    )


def round_ratio(r: dict, base: dict) -> float:
    """The median over rounds of (variant time / pyqg-jax time in the same round): the
    variants of a round run back to back, so machine load shared by both cancels."""
    n = min(len(r["call_seconds"]), len(base["call_seconds"]))
    return float(np.median(np.divide(r["call_seconds"][:n], base["call_seconds"][:n])))


def report(row: dict, mixed: dict | None) -> None:
    base = row["variants"]["pyqg-jax AB3"]
    print(f"  n={row['n']} {row['dtype']}, {row['steps']} steps per call:")
    head = f"{'variant':44s} {'compile s':>9s} {'ms/step':>9s} {'min':>9s} {'ratio':>7s}"
    print(f"    {head}")
    entries = list(row["variants"].items())
    if mixed is not None:  # timed apart (x64 on), so its ratio is of medians
        entries.insert(1, ("pyqg-jax AB3 (f32 state, f64 inversion)", mixed))
    for name, r in entries:
        if name == "pyqg-jax AB3 (f32 state, f64 inversion)":
            ratio = r["per_step_ms"] / base["per_step_ms"]
        else:
            ratio = r["ratio"] = round_ratio(r, base)
        print(
            f"    {name:44s} {r['compile_seconds']:9.2f} {r['per_step_ms']:9.4f} "
            f"{r['per_step_ms_min']:9.4f} {ratio:7.2f}"
        )
    ours = row["variants"]["jaxsci AB3"]["ratio"]
    print(f"    jaxsci AB3 / pyqg-jax AB3 = {ours:.2f} (median over rounds of the ratio)")


def main():
    sizes = ARGS.sizes or ([32] if ARGS.quick else [64, 128])
    steps = ARGS.steps or (20 if ARGS.quick else 400)
    repeats = ARGS.repeats or (2 if ARGS.quick else 7)
    check_steps = ARGS.check_steps or (10 if ARGS.quick else 100)
    out = dict(machine=machine_summary(), args=vars(ARGS), rows=[])
    print("machine:", out["machine"])
    for dtype in ARGS.dtypes:
        for n in sizes:
            with jax.enable_x64(dtype == "float64"):
                row = bench(n, dtype, steps, repeats, check_steps)
            mixed = None
            if dtype == "float32":
                with jax.enable_x64(True):
                    mixed = bench_pyqg_mixed(n, steps, repeats)
                row["pyqg_jax_mixed_precision"] = mixed
            report(row, mixed)
            out["rows"].append(row)
    finish(out, ARGS.json)


if __name__ == "__main__":
    main()
