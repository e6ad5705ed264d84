"""A/B helper: jaxsci's sampler time alone, d = 1024, batch 128, for two source trees.

`bench_diffusion_diffusers.py` times jaxsci and diffusers side by side, so its ratios carry
the load of the moment. To check whether a change to the library made the samplers slower,
run this helper alternately on two checkouts in the same minutes:

    PYTHONPATH=<old tree> python benchmarks/ab_diffusion_sampler_time.py <old tree>
    python benchmarks/ab_diffusion_sampler_time.py .

It imports the given tree's `benchmarks/bench_diffusion_diffusers.py` (same mixture, grids and
jitted `jd.sample` as that script) and prints the median and minimum of 15 timed calls per
(sampler, NFE) after one compiling call. jaxsci only; XLA runs with one intra-op thread, as in
the benchmark. Not run by `run_all.py`.
"""

import importlib
import os
import sys
import time

root = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else ".")
sys.path.insert(0, os.path.join(root, "benchmarks"))
sys.argv = sys.argv[:1]
bench = importlib.import_module("bench_diffusion_diffusers")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

mix = bench.make_mixture(1024, 0)
abar = bench.train_abar()
x_T = jnp.asarray(np.random.default_rng(1).standard_normal((128, 1024)))
out = []
for name in ("ddim", "dpmpp_2m", "dpmpp_3m"):
    make_j, make_d = bench.PAIRS[name]
    for nfe in (10, 20):
        grid = bench.jaxsci_grid(abar, bench.diffusers_grid(make_d(), nfe))
        fn = bench.jaxsci_sampler_fn(make_j(), mix, grid)
        jax.block_until_ready(fn(x_T))
        times = []
        for _ in range(15):
            t = time.perf_counter()
            jax.block_until_ready(fn(x_T))
            times.append(time.perf_counter() - t)
        med, best = 1e3 * np.median(times), 1e3 * min(times)
        out.append(f"{name}@{nfe}: median {med:.1f} min {best:.1f} ms")
print(root, os.getloadavg(), " | ".join(out), flush=True)
