r"""One FNO training step (forward, backward, Adam update) on CPU: jaxsci's `nn.FNO` (1-D
and 2-D) against neuraloperator's `FNO` (PyTorch), same architecture, batch and optimiser.

This isolates the network's cost from data handling; `bench_fno_neuraloperator.py` times
whole training runs on Burgers data. Architecture on both sides: Li et al. (2021)'s FNO,
input (u, grid coordinates), one pointwise lifting layer, `depth` Fourier layers
v <- gelu(K v + W v + b) (no activation after the last), projection width -> 128 -> 1,
GELU in its tanh form. neuraloperator: `FNO(n_modes=(2 m - 2,)` in 1-D (it keeps
n_modes // 2 + 1 real-FFT modes, so this keeps m), `(2 mx, 2 my - 2)` in 2-D (2 mx rows of
the full-FFT axis), `lifting_channel_ratio=0, projection_channel_ratio=128 / width,
positional_embedding=None, use_channel_mlp=False, fno_skip="linear")`, fed the same
(u, grid) channels; the parameter counts are printed (equal: neuraloperator puts each
layer's bias on the spectral convolution, Li et al. and jaxsci on the pointwise skip).

Loss: mean squared error against a fixed target; Adam, lr 1e-3; float32; batch `--batch`.
Timing (see `_timing.py`): one compiling/warm-up step each, then `--repeats` rounds that
alternate the two libraries, each round `--steps` steps; the median round is reported as
milliseconds per step and samples per second, with process CPU time per step (less
sensitive to other jobs on a shared machine than wall time). torch runs with
`torch.set_num_threads(1)`, JAX with one intra-op thread (`--jax-threads 1`, the default,
set through XLA_FLAGS before JAX is imported), so both use one core.

`--ablation` adds two jaxsci variants that undo one CPU optimisation each, to measure
what it is worth: "merged pointwise" computes the 1x1 convolutions as one product over the
merged batch and grid axes (what `jax.vmap` of `W @ x` gives; jaxsci's `Pointwise` instead
makes the weight per-example, see its comment), and "FFT spectral" uses jnp.fft for every
spectral convolution instead of truncated-DFT matrix products. Each variant is traced
under its patch in its own jitted function, then timed in the same alternating rounds.

Run: `python benchmarks/bench_nn_fno_step.py` (1-D n = 256 and 1024 at width 64, 16 modes,
depth 4; 2-D 64 x 64 at width 32, 12 modes, depth 4), `--ablation`, `--quick` (smoke test).
"""

import argparse
import os
import sys

if "--jax-threads" not in sys.argv or sys.argv[sys.argv.index("--jax-threads") + 1] == "1":
    os.environ["XLA_FLAGS"] = (
        os.environ.get("XLA_FLAGS", "")
        + " --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
    )

import contextlib
import functools
import statistics
import time

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _timing import finish, machine_summary  # noqa: E402

from jaxsci import nn  # noqa: E402
from jaxsci.nn import _layers, _spectral  # noqa: E402


def _merged_pointwise(self, x):
    spatial = x.shape[1:]
    y = self.weight @ x.reshape(x.shape[0], -1) + self.bias[:, None]
    return y.reshape(self.weight.shape[0], *spatial)


@contextlib.contextmanager
def _patched(variant):
    """Trace jaxsci with one optimisation undone (see the module docstring)."""
    saved = (_layers.Pointwise.__call__, _spectral._use_dft)
    if variant == "merged pointwise":
        _layers.Pointwise.__call__ = _merged_pointwise
    elif variant == "FFT spectral":
        _spectral._use_dft = lambda transform, n, m: False
    try:
        yield
    finally:
        _layers.Pointwise.__call__, _spectral._use_dft = saved


def _count_torch(model) -> int:
    return int(sum(p.numel() * (2 if p.is_complex() else 1) for p in model.parameters()))


def _torch_fno(dims, width, modes, depth):
    import torch.nn.functional as F
    from neuralop.models import FNO

    n_modes = (2 * modes - 2,) if dims == 1 else (2 * modes, 2 * modes - 2)
    return FNO(
        n_modes=n_modes,
        in_channels=1 + dims,
        out_channels=1,
        hidden_channels=width,
        n_layers=depth,
        lifting_channel_ratio=0,
        projection_channel_ratio=128 / width,
        positional_embedding=None,
        use_channel_mlp=False,
        fno_skip="linear",
        non_linearity=functools.partial(F.gelu, approximate="tanh"),
    )


def _grid(shape):
    axes = [np.arange(n, dtype=np.float32) / n for n in shape]
    return np.stack(np.meshgrid(*axes, indexing="ij"))


def run_case(dims, n, width, modes, depth, batch, steps, repeats, ablation=()):
    import torch

    shape = (n,) * dims
    rng = np.random.default_rng(0)
    u = rng.normal(size=(batch, 1, *shape)).astype(np.float32)
    target = np.roll(u, 3, axis=-1)

    # jaxsci
    model = nn.FNO(dims, 1, 1, width, modes, depth, key=jax.random.key(0))
    opt = optax.adam(1e-3)
    state = opt.init(eqx.filter(model, eqx.is_inexact_array))

    def make_jstep():
        @eqx.filter_jit
        def jstep(model, state, x, y):
            def loss(m):
                return jnp.mean((jax.vmap(m)(x) - y) ** 2)

            value, grads = eqx.filter_value_and_grad(loss)(model)
            updates, state = opt.update(grads, state, model)
            return eqx.apply_updates(model, updates), state, value

        return jstep

    x, y = jnp.asarray(u), jnp.asarray(target)

    def jax_side(variant):
        jstep, carry = make_jstep(), [model, state]

        def run(k):
            with _patched(variant) if carry[0] is model else contextlib.nullcontext():
                for _ in range(k):
                    carry[0], carry[1], value = jstep(carry[0], carry[1], x, y)
            jax.block_until_ready(value)

        return run

    # neuraloperator
    tmodel = _torch_fno(dims, width, modes, depth)
    topt = torch.optim.Adam(tmodel.parameters(), lr=1e-3)
    tx = torch.from_numpy(
        np.concatenate([u, np.broadcast_to(_grid(shape), (batch, dims, *shape))], 1)
    )
    ty = torch.from_numpy(target)

    def torch_steps(k):
        for _ in range(k):
            topt.zero_grad(set_to_none=True)
            value = ((tmodel(tx) - ty) ** 2).mean()
            value.backward()
            topt.step()

    params = dict(
        jaxsci=int(sum(v.size for v in jax.tree.leaves(eqx.filter(model, eqx.is_inexact_array)))),
        neuraloperator=_count_torch(tmodel),
    )
    sides = {"jaxsci": jax_side(None), "neuraloperator": torch_steps}
    for variant in ablation:
        sides[f"jaxsci, {variant}"] = jax_side(variant)
    first = {}
    for name, fn in sides.items():
        t = time.perf_counter()
        fn(1)
        first[name] = time.perf_counter() - t
    wall = {name: [] for name in sides}
    cpu = {name: [] for name in sides}
    for _ in range(repeats):
        for name, fn in sides.items():
            t, c = time.perf_counter(), time.process_time()
            fn(steps)
            wall[name].append((time.perf_counter() - t) / steps)
            cpu[name].append((time.process_time() - c) / steps)
    res = {}
    for name in sides:
        med = statistics.median(wall[name])
        res[name] = dict(
            ms_per_step=1e3 * med,
            cpu_ms_per_step=1e3 * statistics.median(cpu[name]),
            samples_per_s=batch / med,
            first_step_s=first[name],
        )
    for name in sides:
        if name.startswith("jaxsci, "):
            res[name]["cpu_vs_jaxsci"] = (
                res[name]["cpu_ms_per_step"] / res["jaxsci"]["cpu_ms_per_step"]
            )
    res["ratio_wall"] = res["neuraloperator"]["ms_per_step"] / res["jaxsci"]["ms_per_step"]
    res["ratio_cpu"] = res["neuraloperator"]["cpu_ms_per_step"] / res["jaxsci"]["cpu_ms_per_step"]
    res["params"] = params
    return res


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=20)
    p.add_argument("--steps", type=int, default=10, help="steps per timed round")
    p.add_argument("--repeats", type=int, default=5, help="alternating rounds")
    p.add_argument("--jax-threads", default="1", choices=("1", "default"))
    p.add_argument("--quick", action="store_true", help="smoke test: small sizes, 2 rounds")
    p.add_argument(
        "--ablation", action="store_true", help="also time jaxsci with each CPU optimisation undone"
    )
    p.add_argument("--json", default="benchmarks/_out/bench_nn_fno_step.json")
    args = p.parse_args()

    import torch

    torch.set_num_threads(1)
    torch.manual_seed(0)
    cases = [  # (dims, n, width, modes, depth)
        (1, 256, 64, 16, 4),
        (1, 1024, 64, 16, 4),
        (2, 64, 32, 12, 4),
    ]
    if args.quick:
        cases = [(1, 128, 32, 8, 2), (2, 32, 16, 6, 2)]
        args.steps, args.repeats = 2, 2
    out = {
        "machine": machine_summary(),
        "args": vars(args),
        "torch": torch.__version__,
        "cases": [],
    }
    print("machine:", out["machine"])
    print(
        "XLA_FLAGS:", os.environ.get("XLA_FLAGS", ""), "| torch threads:", torch.get_num_threads()
    )
    print(
        f"{'case':32s} {'jaxsci ms':>10s} {'neuralop ms':>12s} {'ratio':>6s} "
        f"{'jaxsci cpu':>10s} {'neuralop cpu':>12s} {'cpu ratio':>9s} {'first step s (jx/no)':>21s}"
    )
    for dims, n, width, modes, depth in cases:
        ablation = ("merged pointwise", "FFT spectral") if args.ablation else ()
        res = run_case(dims, n, width, modes, depth, args.batch, args.steps, args.repeats, ablation)
        name = f"{dims}-D n={n} w={width} m={modes} L={depth}"
        j, t = res["jaxsci"], res["neuraloperator"]
        print(
            f"{name:32s} {j['ms_per_step']:10.1f} {t['ms_per_step']:12.1f} "
            f"{res['ratio_wall']:6.2f} "
            f"{j['cpu_ms_per_step']:10.1f} {t['cpu_ms_per_step']:12.1f} {res['ratio_cpu']:9.2f} "
            f"{j['first_step_s']:10.2f} / {t['first_step_s']:.2f}"
        )
        print(
            f"{'':32s} parameters: jaxsci {res['params']['jaxsci']}, neuraloperator "
            f"{res['params']['neuraloperator']}"
        )
        for variant in ablation:
            v = res[f"jaxsci, {variant}"]
            print(
                f"{'':32s} jaxsci, {variant}: {v['ms_per_step']:.1f} ms, cpu "
                f"{v['cpu_ms_per_step']:.1f} ms ({v['cpu_vs_jaxsci']:.2f}x jaxsci's cpu time)"
            )
        out["cases"].append(dict(dims=dims, n=n, width=width, modes=modes, depth=depth, **res))
    finish(out, args.json)


if __name__ == "__main__":
    main()
