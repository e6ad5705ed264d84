"""Interpolation of sparse samples of a periodic random field onto its grid: the random-
Fourier-feature network of `jaxsci.nn.interpolate_scattered` (Mojgani, Chattopadhyay &
Hassanzadeh 2024; Tancik et al. 2020) against a plain MLP of the same size and steps and
classical interpolants (scipy griddata linear / cubic on the 3 x 3 periodic tiling of the
samples; Fourier truncation from a regular subgrid, exact for fields band-limited below the
subgrid's Nyquist mode).

The field: a Gaussian random field on the 64^2 unit torus, `jaxsci.data.GaussianRandomField`
with alpha = 2, tau = 2 pi 2 (shell-summed power ~ k^-3 above mode 2), zero mean. Samples:
1 in 8, 16, 64 grid points, at random grid points (the paper's sensors) and on a regular
subgrid (strides (2, 4), (4, 4), (8, 8)). Reports the relative L2 error on the grid and
the fit wall time (compile apart).

    PYTHONPATH=$PWD .venv/bin/python benchmarks/bench_rff_interp.py [--seeds 2] [--steps 2000]
"""

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np
from scipy.interpolate import griddata

import jaxsci.nn as nn
from jaxsci.data import GaussianRandomField
from jaxsci.spectral import PeriodicGrid

N = 64
STRIDES = {8: (2, 4), 16: (4, 4), 64: (8, 8)}


def rel(g, f):
    return float(np.linalg.norm(np.asarray(g, np.float64) - f) / np.linalg.norm(f))


def tiled_griddata(points, values, grid, method):
    shifts = np.array([[a, b] for a in (-1, 0, 1) for b in (-1, 0, 1)], float) * grid.length
    tiled = (points[None] + shifts[:, None]).reshape(-1, 2)
    y, x = grid.coordinates()
    return griddata(tiled, np.tile(values, 9), (y, x), method=method)


def fourier_from_subgrid(f, stride):
    """Zero-pad the FFT of the regular subgrid f[::s0, ::s1] to the full grid (band-limited
    trigonometric interpolation; the subgrid's Nyquist modes split evenly)."""
    sub = f[:: stride[0], :: stride[1]]
    m0, m1 = sub.shape
    coef = np.fft.fft2(sub) / sub.size
    full = np.zeros((N, N), complex)
    k0, k1 = np.fft.fftfreq(m0, 1 / m0).astype(int), np.fft.fftfreq(m1, 1 / m1).astype(int)
    for i, a in enumerate(k0):
        for j, b in enumerate(k1):
            w = (0.5 if 2 * abs(a) == m0 else 1.0) * (0.5 if 2 * abs(b) == m1 else 1.0)
            for aa in {a, -a} if 2 * abs(a) == m0 else {a}:
                for bb in {b, -b} if 2 * abs(b) == m1 else {b}:
                    full[aa % N, bb % N] += w * coef[i, j]
    return np.real(np.fft.ifft2(full) * N * N)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--steps", type=int, default=2000)
    args = parser.parse_args()
    grid = PeriodicGrid((N, N), 1.0)
    y, x = grid.coordinates()
    grf = GaussianRandomField((N, N), length=1.0, alpha=2.0, tau=2 * np.pi * 2, zero_mean=True)
    rows = []
    for seed in range(args.seeds):
        f = np.asarray(grf(jax.random.key(seed)), np.float64)
        f = f / f.std()
        for frac in (8, 16, 64):
            rng = np.random.default_rng(1000 * seed + frac)
            patterns = {"random": rng.choice(N * N, N * N // frac, replace=False)}
            s0, s1 = STRIDES[frac]
            sub = np.zeros((N, N), bool)
            sub[::s0, ::s1] = True
            patterns["regular"] = np.flatnonzero(sub.ravel())
            for pattern, idx in patterns.items():
                pts = np.stack([y.ravel()[idx], x.ravel()[idx]], -1)
                vals = f.ravel()[idx]
                key = jax.random.key(100 + seed)
                out = {}
                for name in ("RFF-MLP", "MLP"):
                    network = None
                    if name == "MLP":
                        network = nn.MLP(2, 1, 128, 3, activation=jnp.tanh, key=key)
                    t = time.perf_counter()
                    g, info = nn.interpolate_scattered(
                        key,
                        pts,
                        vals,
                        grid,
                        network=network,
                        num_steps=args.steps,
                        learning_rate=3e-3,
                        progress=False,
                    )
                    g = np.asarray(jax.block_until_ready(g))
                    wall = time.perf_counter() - t
                    out[name] = (
                        rel(g, f),
                        info.compile_seconds,
                        wall - info.compile_seconds,
                        info.data_error,
                    )
                for method in ("linear", "cubic"):
                    t = time.perf_counter()
                    g = tiled_griddata(pts, vals, grid, method)
                    out[f"griddata {method}"] = (rel(g, f), 0.0, time.perf_counter() - t, 0.0)
                if pattern == "regular":
                    t = time.perf_counter()
                    g = fourier_from_subgrid(f, (s0, s1))
                    out["Fourier (subgrid)"] = (rel(g, f), 0.0, time.perf_counter() - t, 0.0)
                for name, (err, comp, run, derr) in out.items():
                    rows.append((seed, frac, pattern, name, err, comp, run, derr))
                    print(
                        f"seed {seed} 1/{frac:<3d} {pattern:8s} {name:18s} rel L2 {err:.3f} "
                        f"compile {comp:5.1f} s fit {run:6.2f} s data misfit {derr:.1e}",
                        flush=True,
                    )
    print("\n| samples | pattern | method | rel L2 (mean over seeds) | per seed | fit s |")
    print("| --- | --- | --- | ---: | --- | ---: |")
    keys = sorted({(r[1], r[2], r[3]) for r in rows}, key=lambda k: (k[0], k[1]))
    for frac, pattern, name in keys:
        sel = [r for r in rows if (r[1], r[2], r[3]) == (frac, pattern, name)]
        errs = [r[4] for r in sel]
        print(
            f"| 1/{frac} | {pattern} | {name} | {np.mean(errs):.3f} | "
            f"{', '.join(f'{e:.3f}' for e in errs)} | {np.mean([r[6] for r in sel]):.2f} |"
        )


if __name__ == "__main__":
    main()
