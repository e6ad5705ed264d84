r"""Lorenz-96 ensemble with RK4: jaxsci against a vectorised NumPy loop.

M members of the N = 40, F = 8 Lorenz-96 model, dx_i/dt = (x_{i+1} - x_{i-2}) x_{i-1} - x_i + F,
each advanced S classic RK4 steps of dt = 0.05 (the step DAPPER and most data-assimilation
papers use; 1,000 steps = 50 time units). The figure of merit is member-steps per second,
M * S / wall time, after compilation (reported apart).

NumPy baselines (written here, no library):
  numpy roll      the textbook vectorised form over the (M, N) array, np.roll along the
                  state axis (this is how DAPPER writes Lorenz-96), float64 and float32.
  numpy padded    a faster NumPy: state-major (N, M) layout so each shifted copy is one
                  contiguous block, a ghost-cell buffer of N + 3 rows instead of np.roll,
                  and in-place arithmetic into preallocated arrays. The ratio is quoted
                  against the faster NumPy variant of the same precision.
jaxsci paths (all jitted, float32 by default, float64 with --x64):
  ensemble(Flow)  `jaxsci.ensemble(lambda y: flow(y, 0, S dt))` with
                  `Flow(Lorenz96(40, 8.0), dt, RK4(), max_steps)`: vmap + jit (+ sharding
                  over devices) of one diffrax while-loop per member.
  vmap(simulate)  `jax.jit(jax.vmap(lambda y: simulate(model, y, [0, S dt], solver=RK4(),
                  dt0=dt).ys[-1]))`.
  scan(vmap(Flow)) `lax.scan` of S calls of `jax.vmap(lambda y: flow(y, 0, dt))`.

Agreement: the chaos of Lorenz-96 (leading Lyapunov exponent 1.69 per time unit) amplifies
any rounding difference by e^{1.69 * 50} ~ 1e36 over 1,000 steps, so final states of two
correct codes agree only statistically after that long. We therefore check (i) the max
difference after 20 steps (1 time unit, growth ~ 5x) between jaxsci and float64 NumPy,
which must be at the float32 (or float64) rounding level, and (ii) after the full run, the
ensemble mean and standard deviation of x agree within Monte-Carlo error, and every state is
finite.

Run: `python benchmarks/bench_l96_numpy.py` (10,000 members x 1,000 steps), `--quick`
(smoke test), `--x64`, `--members 1000000 --skip-numpy` (large GPU ensemble).
"""

import argparse
import json
import os
import sys

parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke test")
parser.add_argument("--x64", action="store_true", help="run jaxsci in float64")
parser.add_argument("--members", type=int, default=None, help="ensemble size M")
parser.add_argument("--steps", type=int, default=None, help="RK4 steps S")
parser.add_argument("--dt", type=float, default=0.05, help="step size")
parser.add_argument("--repeats", type=int, default=None, help="timed rounds per variant")
parser.add_argument(
    "--numpy-members",
    type=int,
    default=None,
    help="ensemble size for the NumPy runs (default: --members)",
)
parser.add_argument(
    "--numpy-repeats",
    type=int,
    default=None,
    help="timed rounds of each NumPy variant (default: min(repeats, 3))",
)
parser.add_argument("--skip-numpy", action="store_true", help="time jaxsci only")
parser.add_argument("--json", default=None, help="write the results to this JSON file")
ARGS = parser.parse_args()

import jax  # noqa: E402

if ARGS.x64:
    jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import jaxsci  # noqa: E402
from jaxsci.dynamics import Lorenz96  # noqa: E402
from jaxsci.integrate import RK4, Flow  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _timing import finish, machine_summary, time_variants  # noqa: E402

N_VARS = 40
FORCING = 8.0


# ----------------------------------------------------------------------------- NumPy
def l96_rhs_roll(x, forcing):
    """Lorenz-96 tendency over the last axis with np.roll (the textbook form)."""
    return (np.roll(x, -1, axis=-1) - np.roll(x, 2, axis=-1)) * np.roll(x, 1, axis=-1) - x + forcing


def rk4_roll(x, dt, steps, forcing=FORCING):
    """`steps` classic RK4 steps of the (M, N) array x, np.roll tendencies."""
    for _ in range(steps):
        k1 = l96_rhs_roll(x, forcing)
        k2 = l96_rhs_roll(x + 0.5 * dt * k1, forcing)
        k3 = l96_rhs_roll(x + 0.5 * dt * k2, forcing)
        k4 = l96_rhs_roll(x + dt * k3, forcing)
        x = x + (dt / 6) * (k1 + 2 * k2 + 2 * k3 + k4)
    return x


class PaddedRK4:
    """RK4 for Lorenz-96 on a state-major (N, M) array with a ghost-cell buffer, in place.

    Rows 0, 1 of the (N + 3, M) buffer hold x_{N-2}, x_{N-1}, rows 2..N+1 hold x_0..x_{N-1}
    and row N + 2 holds x_0, so x_{i+1}, x_{i-2}, x_{i-1} and x_i are the contiguous slices
    [3:], [:-3], [1:-2] and [2:-1]. No temporaries are allocated inside the loop.
    """

    def __init__(self, n, members, dtype, forcing=FORCING):
        self.n, self.forcing = n, forcing
        self.buf = np.empty((n + 3, members), dtype)
        self.k = [np.empty((n, members), dtype) for _ in range(4)]
        self.acc = np.empty((n, members), dtype)

    def _rhs(self, out):
        b, n = self.buf, self.n
        b[:2] = b[n : n + 2]
        b[n + 2] = b[2]
        np.subtract(b[3:], b[:-3], out=out)
        out *= b[1:-2]
        out -= b[2:-1]
        out += self.forcing

    def run(self, x_t, dt, steps):
        """Advance the (N, M) state `x_t` (not modified) and return the new state."""
        x = np.array(x_t, dtype=self.buf.dtype, copy=True)
        inner = self.buf[2:-1]
        k1, k2, k3, k4 = self.k
        acc = self.acc
        dt = self.buf.dtype.type(dt)
        half, sixth = dt * self.buf.dtype.type(0.5), dt / self.buf.dtype.type(6)
        for _ in range(steps):
            inner[...] = x
            self._rhs(k1)
            np.multiply(k1, half, out=inner)
            inner += x
            self._rhs(k2)
            np.multiply(k2, half, out=inner)
            inner += x
            self._rhs(k3)
            np.multiply(k3, dt, out=inner)
            inner += x
            self._rhs(k4)
            np.add(k2, k3, out=acc)
            acc *= 2
            acc += k1
            acc += k4
            acc *= sixth
            x += acc
        return x


# ----------------------------------------------------------------------------- jaxsci
def jaxsci_paths(steps, dt, model):
    t_end = steps * dt
    flow = Flow(model, dt, RK4(), max_steps=steps + 8)
    step = Flow(model, dt, RK4())
    ts = jnp.array([0.0, t_end])

    def scan_flow(x):
        one = jax.vmap(lambda y: step(y, 0.0, dt))
        return jax.lax.scan(lambda c, _: (one(c), None), x, None, length=steps)[0]

    return {
        "jaxsci ensemble(Flow)": jaxsci.ensemble(lambda y: flow(y, 0.0, t_end)),
        "jaxsci vmap(simulate)": jax.jit(
            jax.vmap(lambda y: jaxsci.simulate(model, y, ts, solver=RK4(), dt0=dt).ys[-1])
        ),
        "jaxsci scan(vmap(Flow))": jax.jit(scan_flow),
    }


def initial_ensemble(members, seed=0, base=10_000):
    """Members on the attractor: F plus unit Gaussian noise, spun up 200 steps of 0.05.

    Beyond `base` members the spun-up states are repeated with 1e-3 noise added (chaos
    separates the copies within a few time units), so that a 10^6-member GPU ensemble does
    not need minutes of NumPy spin-up.
    """
    rng = np.random.default_rng(seed)
    x = FORCING + rng.normal(size=(min(members, base), N_VARS))
    x = PaddedRK4(N_VARS, x.shape[0], np.float64).run(x.T, 0.05, 200).T
    if members > base:
        x = np.tile(x, (-(-members // base), 1))[:members]
        x = x + 1e-3 * rng.normal(size=x.shape)
    return x


def check_short(x0, dt, model, steps=20):
    """Max |difference| after `steps` steps, jaxsci (each path) vs float64 NumPy."""
    ref = rk4_roll(x0, dt, steps)
    ref_pad = PaddedRK4(N_VARS, x0.shape[0], np.float64).run(x0.T, dt, steps).T
    out = dict(steps=steps, numpy_padded_vs_roll=float(np.max(np.abs(ref_pad - ref))))
    x0j = jnp.asarray(x0, dtype=jnp.result_type(float))
    for name, fn in jaxsci_paths(steps, dt, model).items():
        out[name] = float(np.max(np.abs(np.asarray(fn(x0j), dtype=np.float64) - ref)))
    # The float32 floor: rounding the initial state to float32 and running NumPy float32.
    ref32 = rk4_roll(x0.astype(np.float32), np.float32(dt), steps)
    out["numpy float32 vs float64"] = float(np.max(np.abs(ref32.astype(np.float64) - ref)))
    return out


def stats(x):
    x = np.asarray(x, dtype=np.float64)
    return dict(
        mean=float(x.mean()),
        std=float(x.std()),
        mc_se_mean=float(x.mean(axis=1).std() / np.sqrt(x.shape[0])),
        finite=bool(np.all(np.isfinite(x))),
    )


def main():
    quick = ARGS.quick
    members = ARGS.members or (1_000 if quick else 10_000)
    steps = ARGS.steps or (100 if quick else 1_000)
    np_members = ARGS.numpy_members or members
    repeats = ARGS.repeats or 3
    dt = ARGS.dt
    info = machine_summary()
    info.update(numpy=np.__version__, jaxsci=jaxsci.__version__)
    print("Lorenz-96 RK4 ensemble, jaxsci vs NumPy:", json.dumps(info))
    dtype = jnp.result_type(float)
    print(
        f"N={N_VARS}, F={FORCING}, dt={dt}, steps={steps}, members={members} "
        f"(NumPy: {np_members}), jaxsci dtype {dtype}"
    )
    out = dict(
        machine=info,
        n=N_VARS,
        forcing=FORCING,
        dt=dt,
        steps=steps,
        members=members,
        numpy_members=np_members,
        dtype=str(dtype),
    )
    model = Lorenz96(N_VARS, FORCING)

    x0 = initial_ensemble(max(members, np_members) if not ARGS.skip_numpy else members)
    out["agreement_short"] = check_short(x0[: min(members, 1000)], dt, model)
    print("Agreement after 20 steps (max |x - x_numpy64|):", json.dumps(out["agreement_short"]))

    # jaxsci
    x0j = jnp.asarray(x0[:members], dtype=dtype)
    paths = jaxsci_paths(steps, dt, model)
    res_j = time_variants({k: (lambda f=f: f(x0j)) for k, f in paths.items()}, repeats)
    final_j = {k: f(x0j) for k, f in paths.items()}
    # NumPy
    res_np, final_np = {}, {}
    if not ARGS.skip_numpy:
        x0n = x0[:np_members]
        np_variants = {}
        for dt_name, npdt in (("float64", np.float64), ("float32", np.float32)):
            xr = x0n.astype(npdt)
            xt = np.ascontiguousarray(x0n.T.astype(npdt))
            pad = PaddedRK4(N_VARS, np_members, npdt)
            np_variants[f"numpy roll {dt_name}"] = lambda xr=xr, npdt=npdt: rk4_roll(
                xr, npdt(dt), steps
            )
            np_variants[f"numpy padded {dt_name}"] = lambda xt=xt, pad=pad: pad.run(xt, dt, steps)
        np_repeats = ARGS.numpy_repeats or max(1, min(repeats, 3))
        res_np = time_variants(np_variants, np_repeats)
        final_np = {k: (f() if "roll" in k else f().T) for k, f in np_variants.items()}

    rate = lambda r, m: m * steps / r["median"]
    print(f"{'variant':28s} {'member-steps/s':>15s} {'time (s)':>9s} {'compile (s)':>11s}")
    rows = {}
    for k, r in res_np.items():
        rows[k] = dict(rate=rate(r, np_members), **r)
        print(f"{k:28s} {rows[k]['rate']:15.3e} {r['median']:9.3f} {'-':>11s}")
    for k, r in res_j.items():
        rows[k] = dict(rate=rate(r, members), **r)
        print(f"{k:28s} {rows[k]['rate']:15.3e} {r['median']:9.3f} {r['compile']:11.2f}")
    out["rows"] = rows
    best_j = max(res_j, key=lambda k: rows[k]["rate"])
    out["best_jaxsci"] = best_j
    if res_np:
        prec = "float64" if ARGS.x64 else "float32"
        best_np = max((k for k in res_np if prec in k), key=lambda k: rows[k]["rate"])
        ratio = rows[best_j]["rate"] / rows[best_np]["rate"]
        best_np64 = max((k for k in res_np if "float64" in k), key=lambda k: rows[k]["rate"])
        ratio64 = rows[best_j]["rate"] / rows[best_np64]["rate"]
        out.update(best_numpy_same_precision=best_np, ratio=ratio, ratio_vs_numpy64=ratio64)
        print(
            f"fastest jaxsci ({best_j}) / fastest NumPy {prec} ({best_np}): {ratio:.2f}x "
            f"({'goal met' if ratio >= 2 else 'goal NOT met'}: >= 2x); "
            f"vs fastest NumPy float64: {ratio64:.2f}x"
        )
    # Statistical agreement after the full run.
    out["final_stats"] = {k: stats(v) for k, v in {**final_j, **final_np}.items()}
    print("Final-state statistics (mean, std, MC s.e. of the mean, finite):")
    for k, s in out["final_stats"].items():
        print(
            f"  {k:28s} mean {s['mean']:.4f} std {s['std']:.4f} se {s['mc_se_mean']:.4f}"
            f" finite {s['finite']}"
        )
    finish(out, ARGS.json)


if __name__ == "__main__":
    main()
