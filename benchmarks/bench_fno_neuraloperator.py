r"""FNO training on the Burgers operator benchmark: jaxsci (`nn.FNO1d` + `train.fit`) against
neuraloperator's `FNO` (PyTorch, CPU), same data, architecture, optimiser and epochs.

Data. `jaxsci.data.burgers_dataset`: u(0) ~ N(0, 625 (-Laplacian + 25 I)^{-2}) with zero
mean on [0, 1), nu = 0.1, u(0) -> u(1) (Li et al. 2021's setting), simulated at
`--sim-points` and subsampled to `--points`; the first `--num-train` pairs train, the next
`--num-test` test. The defaults are those of `configs/burgers_fno.yaml` (1000/200 pairs,
1024 -> 256 points, 40 epochs, batch 20, peak learning rate 1e-3).

Architecture (Li et al.'s FNO1d): input (u, x) with the grid coordinate x_j = j / n,
lifting 2 -> width (one pointwise layer), `depth` Fourier layers v <- gelu(K v + W v + b)
(no activation after the last), projection width -> 128 -> 1, GELU (tanh form).
  jaxsci:  `nn.FNO1d(1, 1, width, modes, depth)` (appends x itself).
  neuralop: `FNO(n_modes=(2 * modes - 2,), in_channels=2, hidden_channels=width,
           n_layers=depth, lifting_channel_ratio=0, projection_channel_ratio=128 / width,
           positional_embedding=None, use_channel_mlp=False, fno_skip="linear",
           non_linearity=gelu(tanh))`, fed the same (u, x) channels. neuraloperator 2.0 keeps
           n_modes // 2 + 1 real-FFT modes, so 2 * modes - 2 keeps `modes` (30 -> 16).
The parameter counts of both are printed and compared (real scalars; a complex weight
counts twice); the script explains any difference it finds.

Training, identical on both sides: relative L2 loss (per example, batch mean), Adam with
peak lr `--lr` and a per-step cosine decay to 0 over all steps (optax `cosine_decay_schedule`,
torch `CosineAnnealingLR`), batch 20, shuffled every epoch, float32.

Interleaving and timing. The epochs run in chunks of `--chunk` epochs, alternating jaxsci
and torch, so a change of machine load hits both. jaxsci resumes each chunk from `fit`'s
checkpoint (bit-for-bit the same as one run); its time is `history["train_seconds"]`
(the jitted update loop; compilation, checkpoint I/O apart). Torch's time is its epoch
loop (batch gather, forward, backward, step). Throughput is training samples per second
over all chunks after the first (the first holds jaxsci's compilation and torch's warm-up,
both reported apart). torch runs with `torch.set_num_threads(1)`; JAX with one intra-op
thread (`--jax-threads 1`, the default, via XLA_FLAGS) so that both use one core.

Run: `python benchmarks/bench_fno_neuraloperator.py` (width 64, 16 modes, depth 4 and the
data/training of configs/burgers_fno.yaml), `--quick` (a smoke test).
"""

import argparse
import os
import sys

# One intra-op thread for XLA:CPU, set before JAX is imported (see the module docstring).
if "--jax-threads" not in sys.argv or sys.argv[sys.argv.index("--jax-threads") + 1] == "1":
    os.environ["XLA_FLAGS"] = (
        os.environ.get("XLA_FLAGS", "")
        + " --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
    )

import functools
import math
import statistics
import tempfile
import time

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _timing import finish, machine_summary  # noqa: E402

from jaxsci import data, losses, nn, train  # noqa: E402


def jaxsci_params(model) -> int:
    leaves = jax.tree.leaves(eqx.filter(model, eqx.is_inexact_array))
    return int(sum(x.size * (2 if jnp.iscomplexobj(x) else 1) for x in leaves))


def torch_params(model) -> int:
    return int(sum(p.numel() * (2 if p.is_complex() else 1) for p in model.parameters()))


def expected_params(width, modes, depth, proj=128) -> int:
    """Li et al.'s FNO1d count: lifting 2w + w; per layer 2 w^2 m + w^2 + w; projection."""
    return (
        3 * width
        + depth * (2 * width * width * modes + width * width + width)
        + (width * proj + proj + proj + 1)
    )


def build_torch(width, modes, depth):
    import torch.nn.functional as F
    from neuralop.models import FNO

    return FNO(
        n_modes=(2 * modes - 2,),
        in_channels=2,
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


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--num-train", type=int, default=1000)
    p.add_argument("--num-test", type=int, default=200)
    p.add_argument("--points", type=int, default=256)
    p.add_argument("--sim-points", type=int, default=1024)
    p.add_argument("--width", type=int, default=64)
    p.add_argument("--modes", type=int, default=16)
    p.add_argument("--depth", type=int, default=4)
    p.add_argument("--epochs", type=int, default=40)
    p.add_argument("--lr", type=float, default=1e-3, help="peak learning rate (cosine decay)")
    p.add_argument("--batch-size", type=int, default=20)
    p.add_argument("--chunk", type=int, default=5, help="epochs per interleaved chunk")
    p.add_argument("--jax-threads", default="1", choices=("1", "default"))
    p.add_argument("--quick", action="store_true", help="smoke test: 100 pairs, 4 epochs")
    p.add_argument("--json", default="benchmarks/_out/bench_fno_neuraloperator.json")
    args = p.parse_args()
    if args.quick:
        args.num_train, args.num_test, args.epochs, args.chunk = 100, 40, 4, 2

    import torch

    torch.set_num_threads(1)
    torch.manual_seed(0)
    out = {"machine": machine_summary(), "args": vars(args), "torch": torch.__version__}
    print("machine:", out["machine"])
    print(
        "XLA_FLAGS:", os.environ.get("XLA_FLAGS", ""), "| torch threads:", torch.get_num_threads()
    )

    # ---- data
    t = time.perf_counter()
    total = args.num_train + args.num_test
    cache = os.path.join(
        tempfile.gettempdir(), f"jaxsci_bench_burgers_{args.sim_points}_{total}.npz"
    )
    u0, u1 = data.burgers_dataset(jax.random.key(0), total, num_points=args.sim_points, path=cache)
    stride = args.sim_points // args.points
    u0, u1 = u0[:, ::stride], u1[:, ::stride]
    print(f"data: {total} pairs at {args.points} points ({time.perf_counter() - t:.1f} s)")
    n = args.points
    grid = np.broadcast_to(np.arange(n, dtype=np.float32) / n, u0.shape)
    x_tr, y_tr = u0[: args.num_train, None], u1[: args.num_train, None]
    x_te, y_te = u0[args.num_train :, None], u1[args.num_train :, None]
    tx_tr = torch.from_numpy(np.stack([u0[: args.num_train], grid[: args.num_train]], 1).copy())
    ty_tr = torch.from_numpy(np.ascontiguousarray(y_tr))
    tx_te = torch.from_numpy(np.stack([u0[args.num_train :], grid[args.num_train :]], 1).copy())
    ty_te = torch.from_numpy(np.ascontiguousarray(y_te))

    # ---- models
    jmodel = nn.FNO1d(1, 1, args.width, args.modes, args.depth, key=jax.random.key(1))
    tmodel = build_torch(args.width, args.modes, args.depth)
    pj, pt = jaxsci_params(jmodel), torch_params(tmodel)
    pe = expected_params(args.width, args.modes, args.depth)
    print(f"parameters: jaxsci {pj}, neuraloperator {pt}, Li et al.'s formula {pe}")
    if pt != pj:
        names = {k: v.numel() * (2 if v.is_complex() else 1) for k, v in tmodel.named_parameters()}
        extra = {k: v for k, v in names.items() if "bias" in k and "convs" in k}
        print(
            "  difference",
            pt - pj,
            "; neuraloperator tensors:",
            ", ".join(f"{k}={v}" for k, v in names.items()),
        )
        if extra:
            print("  (SpectralConv biases, which Li et al.'s FNO does not have:", extra, ")")
    out["params"] = dict(jaxsci=pj, neuraloperator=pt, li_formula=pe)

    # ---- training set-up
    spe = args.num_train // args.batch_size
    total_steps = spe * args.epochs
    schedule = optax.cosine_decay_schedule(args.lr, total_steps)
    optimizer = optax.adam(schedule)
    loss = losses.RelativeL2Loss()
    topt = torch.optim.Adam(tmodel.parameters(), lr=args.lr)
    tsched = torch.optim.lr_scheduler.CosineAnnealingLR(topt, T_max=total_steps, eta_min=0.0)
    gen = torch.Generator().manual_seed(2)

    def torch_epoch():
        tmodel.train()
        perm = torch.randperm(args.num_train, generator=gen)
        for i in range(spe):
            idx = perm[i * args.batch_size : (i + 1) * args.batch_size]
            xb, yb = tx_tr[idx], ty_tr[idx]
            pred = tmodel(xb)
            diff = (pred - yb).reshape(len(idx), -1).norm(dim=1)
            lval = (diff / yb.reshape(len(idx), -1).norm(dim=1)).mean()
            topt.zero_grad(set_to_none=True)
            lval.backward()
            topt.step()
            tsched.step()
        return lval.item()

    ckpt = tempfile.mkdtemp(prefix="jaxsci_bench_fno_")
    rows = []
    trained = jmodel
    for c in range(math.ceil(args.epochs / args.chunk)):
        e1 = min(args.epochs, (c + 1) * args.chunk)
        e0 = c * args.chunk
        trained, hist = train.fit(
            jmodel,
            loss,
            (x_tr, y_tr),
            optimizer=optimizer,
            key=jax.random.key(2),
            batch_size=args.batch_size,
            num_steps=e1 * spe,
            checkpoint_dir=ckpt,
            progress=False,
        )
        j_secs = float(hist["train_seconds"])
        t = time.perf_counter()
        epoch_times = []
        for _ in range(e1 - e0):
            te = time.perf_counter()
            tloss = torch_epoch()
            epoch_times.append(time.perf_counter() - te)
        t_secs = time.perf_counter() - t
        samples = (e1 - e0) * spe * args.batch_size
        rows.append(
            dict(
                epochs=(e0, e1),
                jaxsci_seconds=j_secs,
                jaxsci_compile=float(hist["compile_seconds"]),
                torch_seconds=t_secs,
                torch_epoch_times=epoch_times,
                samples=samples,
                jaxsci_loss=float(hist["train_loss"][-1]),
                torch_loss=tloss,
            )
        )
        print(
            f"epochs {e0:3d}-{e1:3d}: jaxsci {samples / j_secs:7.0f} samples/s "
            f"(loss {hist['train_loss'][-1]:.3e}, compile {hist['compile_seconds']:.2f} s) | "
            f"neuraloperator {samples / t_secs:7.0f} samples/s (loss {tloss:.3e}) | "
            f"load {os.getloadavg()[0]:.2f}",
            flush=True,
        )

    # ---- evaluation
    def rel(pred, y):
        d = np.linalg.norm((pred - y).reshape(len(y), -1), axis=1)
        return float(np.mean(d / np.linalg.norm(y.reshape(len(y), -1), axis=1)))

    jpred = np.asarray(jax.jit(jax.vmap(trained))(jnp.asarray(x_te)))
    tmodel.eval()
    with torch.no_grad():
        tpred = tmodel(tx_te).numpy()
    err_j, err_t = rel(jpred, y_te), rel(tpred, ty_te.numpy())

    steady = rows[1:] if len(rows) > 1 else rows
    j_tp = sum(r["samples"] for r in steady) / sum(r["jaxsci_seconds"] for r in steady)
    t_tp = sum(r["samples"] for r in steady) / sum(r["torch_seconds"] for r in steady)
    t_med = statistics.median([x for r in steady for x in r["torch_epoch_times"]])
    t_warm = max(rows[0]["torch_epoch_times"][0] - t_med, 0.0)
    out.update(
        rows=rows,
        jaxsci=dict(
            samples_per_second=j_tp,
            compile_seconds=rows[0]["jaxsci_compile"],
            test_rel_l2=err_j,
            train_seconds_total=sum(r["jaxsci_seconds"] for r in rows),
        ),
        neuraloperator=dict(
            samples_per_second=t_tp,
            warmup_seconds=t_warm,
            test_rel_l2=err_t,
            train_seconds_total=sum(r["torch_seconds"] for r in rows),
        ),
        throughput_ratio=j_tp / t_tp,
    )
    print()
    print(f"{'':16s}{'samples/s':>12s}{'test rel L2':>14s}{'params':>10s}{'setup s':>10s}")
    print(f"{'jaxsci':16s}{j_tp:12.0f}{err_j:14.3e}{pj:10d}{rows[0]['jaxsci_compile']:10.2f}")
    print(f"{'neuraloperator':16s}{t_tp:12.0f}{err_t:14.3e}{pt:10d}{t_warm:10.2f}")
    print(f"throughput ratio jaxsci / neuraloperator: {j_tp / t_tp:.2f}x")
    print("(setup s: jaxsci compilation; neuraloperator first-epoch warm-up)")
    finish(out, args.json)


if __name__ == "__main__":
    main()
