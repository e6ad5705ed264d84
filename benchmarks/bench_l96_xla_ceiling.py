"""Lorenz-96 RK4 written as a bare `lax.fori_loop` on the whole ensemble array (no jaxsci).

An upper bound for what XLA makes of the Lorenz-96 stencil on this machine, to compare with
the library paths in bench_l96_numpy.py: the same RK4 on (members, 40) (the layout `vmap`
gives) and on the transposed (40, members) layout.

    .venv/bin/python benchmarks/bench_l96_xla_ceiling.py [--members 10000] [--steps 1000]
"""

import argparse
import time

import jax
import jax.numpy as jnp

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--members", type=int, default=10_000)
parser.add_argument("--steps", type=int, default=1_000)
parser.add_argument("--repeats", type=int, default=3)
ARGS = parser.parse_args()
FORCING, DT = 8.0, 0.05


def tendency_last_axis(y):
    p = jnp.concatenate([y[..., -2:], y, y[..., :1]], axis=-1)
    return (p[..., 3:] - p[..., :-3]) * p[..., 1:-2] - y + FORCING


def tendency_first_axis(y):
    p = jnp.concatenate([y[-2:], y, y[:1]], axis=0)
    return (p[3:] - p[:-3]) * p[1:-2] - y + FORCING


def rk4_loop(f):
    def step(_, y):
        k1 = f(y)
        k2 = f(y + 0.5 * DT * k1)
        k3 = f(y + 0.5 * DT * k2)
        k4 = f(y + DT * k3)
        return y + DT / 6 * (k1 + 2 * k2 + 2 * k3 + k4)

    return jax.jit(lambda y: jax.lax.fori_loop(0, ARGS.steps, step, y))


def main():
    y0 = FORCING + jax.random.normal(jax.random.key(0), (ARGS.members, 40))
    cases = [
        ("(members, 40)", rk4_loop(tendency_last_axis), y0),
        ("(40, members)", rk4_loop(tendency_first_axis), y0.T),
    ]
    for name, fn, y in cases:
        jax.block_until_ready(fn(y))
        times = []
        for _ in range(ARGS.repeats):
            start = time.perf_counter()
            jax.block_until_ready(fn(y))
            times.append(time.perf_counter() - start)
        rate = ARGS.members * ARGS.steps / min(times)
        print(f"bare fori_loop RK4, layout {name:14s} {rate:.3e} member-steps/s")


if __name__ == "__main__":
    main()
