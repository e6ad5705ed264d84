"""PFGM++ and the light Schroedinger bridge (issue 16).

PFGM++ (`jaxsci.diffusion.PFGMPPKernel`, `EmpiricalPFGMPPDenoiser`): the exact empirical
posterior-mean denoiser of 128 points of an 8-mode ring (no network, so only the sampler
and D matter), Heun on a Karras grid of the EDM noise levels [0.002, 80] from the PFGM++
prior, 512 samples, float64. Two errors against the data: the energy distance between the
samples and the empirical law of the data (a distribution distance; its Monte-Carlo floor
at 512 samples is ~1e-3), and the median distance of a sample to its nearest data point
(the discretisation error: the exact flow of the empirical denoiser ends on a data point
up to sigma_min). Baseline: EDM/DDIM@100 (DDIM on the same Karras grid, 100 steps, the
D = inf denoiser); we report the least NFE at which each D reaches its nearest-point error.

LightSB (`jaxsci.diffusion.LightSB`, `LightSBLoss`): between N(m0, A) and N(m1, B) in 2-D
(full covariances, epsilon = 0.5) against the closed form `gaussian_eot_plan`. Error: the
conditional BW2^2-UVP of Gushchin et al. (2023) (the paper's metric): 100 E_x BW2^2(pi*(.|x),
N(mean, cov of pi_theta(.|x))) / (tr(B)/2), over 2000 x ~ p0 (the
paper's metric, normalised by half the target's total variance).
Sweeps the number of components K and of Adam steps (batch 512, cosine-decayed rate 3e-2
-> 1e-3, 16384 samples of each marginal); train time reported apart from compile time
(`fit`'s history). Peer: the official PyTorch `LightSB` (github:ngushchin/LightSB,
`src/light_sb.py`, diagonal S; its `geotorch` import is stubbed since the diagonal model
never uses it) on a diagonal pair, where diagonal S is exact, same data, steps, batch and
rate, when torch and a snapshot of that repository are available (`--peer PATH` to its
`src/`; run with /work/venvs/bench's Python).

    PYTHONPATH=$PWD .venv/bin/python benchmarks/bench_pfgmpp_lightsb.py [--quick]
"""

import argparse
import math
import os
import sys
import time
import types

# torch's OpenMP threads spin after each op by default and starve XLA's threads when both
# run in one process (the jaxsci fit then took 10x longer); passive waiting avoids that.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)

import equinox as eqx  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

import jaxsci.diffusion as jd  # noqa: E402
from jaxsci.train import fit  # noqa: E402

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from _timing import machine_summary  # noqa: E402

EDM = jd.EDM()


def energy_distance(x, data):
    x, data = np.asarray(x), np.asarray(data)

    def md(a, b):
        return np.mean(np.linalg.norm(a[:, None] - b[None], axis=-1))

    m = x.shape[0]
    return 2 * md(x, data) - md(x, x) * m / (m - 1) - md(data, data)


def nn_distance(x, data):
    d = np.linalg.norm(np.asarray(x)[:, None] - np.asarray(data)[None], axis=-1)
    return float(np.median(d.min(1)))


def ring(n, seed):
    ang = jnp.arange(8) * 2 * jnp.pi / 8
    means = 2.0 * jnp.stack([jnp.cos(ang), jnp.sin(ang)], axis=1)
    return jd.GaussianMixture(jnp.ones(8), means, jnp.full((8, 2), 0.05)).sample(
        jax.random.key(seed), n
    )


@eqx.filter_jit
def pfgmpp_samples(sampler, d, data, ts, key, n):
    k = jd.PFGMPPKernel(D=d, N=2)
    den = jd.Denoiser(jd.EmpiricalPFGMPPDenoiser(k, data), EDM, jd.X0Prediction())
    x_t = jax.vmap(lambda kk: k.prior(kk, EDM.t_max, (2,), jnp.float64))(jax.random.split(key, n))
    res = jax.vmap(lambda x: jd.sample(sampler, den, EDM, ts, x))(x_t)
    return res.x, res.nfe[0]


def bench_pfgmpp(quick):
    data = ring(128, 0)
    n = 256 if quick else 512
    key = jax.random.key(1)
    ds = [1.0, 4.0, 128.0, 2048.0, math.inf] if not quick else [4.0, math.inf]
    steps = [2, 3, 4, 6, 8, 12, 16, 24, 32] if not quick else [4, 16]
    ts100 = jd.time_grid(EDM, 100, jd.Karras())
    x, nfe = pfgmpp_samples(jd.DDIM(), jnp.asarray(math.inf), data, ts100, key, n)
    base_nn, base_ed = nn_distance(x, data), energy_distance(x, data)
    print(f"\n## PFGM++: exact empirical denoiser, 8-mode ring (128 points), {n} samples")
    print(f"EDM/DDIM@100 (NFE {int(nfe)}): nearest-point {base_nn:.2e}, energy dist {base_ed:.4f}")
    rows, nfes = [], []
    for d in ds:
        cells, reach = [], None
        for s in steps:
            ts = jd.time_grid(EDM, s, jd.Karras())
            x, nfe = pfgmpp_samples(jd.Heun(), jnp.asarray(d), data, ts, key, n)
            nn, ed = nn_distance(x, data), energy_distance(x, data)
            cells.append(f"{ed:.4f} / {nn:.1e}")
            if len(nfes) < len(steps):
                nfes.append(int(nfe))
            if reach is None and nn <= base_nn:
                reach = int(nfe)
        rows.append(f"| {d:g} | " + " | ".join(cells) + f" | {reach or '> ' + str(nfes[-1])} |")
    print("| D | " + " | ".join(f"NFE {v}" for v in nfes) + " | NFE to reach DDIM@100 |")
    print("|---" * (len(steps) + 2) + "|")
    print("\n".join(rows))
    print("(cells: energy distance / median nearest-point distance)")


M0, A = np.array([0.0, 1.0]), np.array([[1.0, 0.5], [0.5, 0.8]])
M1, B = np.array([2.0, -1.0]), np.array([[0.6, -0.2], [-0.2, 1.2]])
EPS = 0.5


def _sqrtm(m):
    w, v = np.linalg.eigh(m)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def bw2(m1, s1, m2, s2):
    r = _sqrtm(s1)
    return float(np.sum((m1 - m2) ** 2) + np.trace(s1 + s2 - 2 * _sqrtm(r @ s2 @ r)))


def cbw_uvp(cond_moments, m0, a, m1, b, eps, n_x=2000, seed=5):
    """100 E_x BW2^2(pi*(.|x), Gaussian with pi_theta(.|x)'s moments) / (tr(B)/2)."""
    _, cov = jd.gaussian_eot_plan(m0, a, m1, b, eps)
    c = cov[: len(m0), len(m0) :]
    reg = c.T @ np.linalg.inv(a)
    sig = b - reg @ c
    xs = np.random.default_rng(seed).multivariate_normal(m0, a, n_x)
    means, covs = cond_moments(xs)
    tot = sum(
        bw2(m1 + reg @ (x - m0), sig, mu, s) for x, mu, s in zip(xs, means, covs, strict=True)
    )
    return 100 * tot / n_x / (0.5 * np.trace(b))


def train_jaxsci(x, y, k, steps, eps):
    model = jd.LightSB(jnp.asarray(y[:k]), eps)
    trained, hist = fit(
        model,
        jd.LightSBLoss(),
        (jnp.asarray(x), jnp.asarray(y)),
        optimizer=optax.adam(optax.cosine_decay_schedule(3e-2, steps, 1e-3)),
        key=jax.random.key(0),
        batch_size=512,
        num_steps=steps,
        progress=False,
    )
    moments = jax.jit(jax.vmap(trained.conditional_moments))
    return (lambda xs: tuple(map(np.asarray, moments(jnp.asarray(xs))))), hist


def bench_lightsb(quick):
    rng = np.random.default_rng(0)
    n = 16384
    x, y = rng.multivariate_normal(M0, A, n), rng.multivariate_normal(M1, B, n)
    print("\n## LightSB: Gaussian pair in 2-D (full covariances), epsilon = 0.5")
    ks = [1, 4] if quick else [1, 2, 4, 8]
    steps_list = [100, 1000] if quick else [100, 300, 1000, 3000]
    train_jaxsci(x, y, 1, 100, EPS)  # warm-up: the first fit of a process runs slower
    print("| K | " + " | ".join(f"{s} steps" for s in steps_list) + " |")
    print("|---" * (len(steps_list) + 1) + "|")
    for k in ks:
        cells = []
        for steps in steps_list:
            moments, hist = train_jaxsci(x, y, k, steps, EPS)
            uvp = cbw_uvp(moments, M0, A, M1, B, EPS)
            t_train, t_comp = hist["train_seconds"], hist["compile_seconds"]
            cells.append(f"{uvp:.3f}% ({t_train:.2f} s + {t_comp:.1f} s compile)")
        print(f"| {k} | " + " | ".join(cells) + " |")
    print("(cells: cBW2^2-UVP; train time excluding compile + compile time)")


def official_lightsb(path):
    """The official LightSB module (diagonal S only; geotorch stubbed) or None."""
    try:
        import torch  # noqa: F401
    except ImportError:
        return None
    sys.modules.setdefault("geotorch", types.SimpleNamespace(orthogonal=lambda *a, **k: None))
    sys.path.insert(0, path)
    try:
        from light_sb import LightSB  # type: ignore
    except ImportError:
        return None
    return LightSB


def bench_peer(path, quick):
    peer = official_lightsb(path)
    if peer is None:
        print("\n(peer: torch or the official LightSB source not available; skipped)")
        return
    import torch

    torch.set_num_threads(2)
    torch.set_default_dtype(torch.float64)
    a, b = np.diag([1.0, 0.5]), np.diag([0.6, 1.5])
    rng = np.random.default_rng(1)
    n = 16384
    x, y = rng.multivariate_normal(M0, a, n), rng.multivariate_normal(M1, b, n)
    k, steps, batch = 4, (300 if quick else 1000), 512
    print(f"\n## LightSB vs the official PyTorch LightSB: diagonal pair, K = {k}, {steps} steps")
    t_j, t_p = [], []
    for _ in range(3):  # alternate rounds; medians
        moments, hist = train_jaxsci(x, y, k, steps, EPS)
        t_j.append(hist["train_seconds"])
        model, t = _train_peer(peer, torch, x, y, k, steps, batch)
        t_p.append(t)
    uvp_j = cbw_uvp(moments, M0, a, M1, b, EPS)
    t_peer, t_jax = float(np.median(t_p)), float(np.median(t_j))
    with torch.no_grad():
        s = torch.exp(model.S_log_diagonal_matrix).numpy()
        r = model.r.numpy()
        log_alpha = model.get_log_alpha().numpy()

    def peer_moments(xs):
        logits = log_alpha + (np.einsum("nd,kd->nk", xs**2, s) / 2 + xs @ r.T) / EPS
        w = np.exp(logits - logits.max(1, keepdims=True))
        w /= w.sum(1, keepdims=True)
        mu = r[None] + s[None] * xs[:, None]
        mean = np.einsum("nk,nkd->nd", w, mu)
        dev = mu - mean[:, None]
        cov = np.einsum("nk,kd->nd", w, EPS * s)[:, :, None] * np.eye(2)
        cov = cov + np.einsum("nk,nki,nkj->nij", w, dev, dev)
        return mean, cov

    uvp_p = cbw_uvp(peer_moments, M0, a, M1, b, EPS)
    print("| | cBW2^2-UVP | train s, median of 3 (compile apart) |\n|---|---|---|")
    print(
        f"| jaxsci LightSB (full S) | {uvp_j:.3f}% | {t_jax:.2f} (+{hist['compile_seconds']:.1f}) |"
    )
    print(f"| official LightSB (diagonal S, torch) | {uvp_p:.3f}% | {t_peer:.2f} |")
    print(f"train-time ratio official / jaxsci: {t_peer / t_jax:.2f}")


def _train_peer(peer, torch, x, y, k, steps, batch):
    n = x.shape[0]
    torch.manual_seed(0)
    model = peer(dim=2, n_potentials=k, epsilon=EPS, is_diagonal=True)
    model.init_r_by_samples(torch.tensor(y[:k]))
    opt = torch.optim.Adam(model.parameters(), lr=3e-2)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps, eta_min=1e-3)
    xt, yt = torch.tensor(x), torch.tensor(y)
    gen = torch.Generator().manual_seed(0)
    t0 = time.perf_counter()
    for _ in range(steps):
        ix = torch.randint(0, n, (batch,), generator=gen)
        iy = torch.randint(0, n, (batch,), generator=gen)
        loss = (model.get_log_C(xt[ix]) - model.get_log_potential(yt[iy])).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    return model, time.perf_counter() - t0


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--peer", default="/tmp/lightsb_src", help="path to the official src/")
    p.add_argument("--only", choices=["pfgmpp", "lightsb", "peer"], default=None)
    args = p.parse_args()
    print(machine_summary())
    if args.only in (None, "pfgmpp"):
        bench_pfgmpp(args.quick)
    if args.only in (None, "lightsb"):
        bench_lightsb(args.quick)
    if args.only in (None, "peer"):
        bench_peer(args.peer, args.quick)


if __name__ == "__main__":
    main()
