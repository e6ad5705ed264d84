"""The divergence rule and the two twin-experiment start conventions, measured.

1. `rule`: rmse_a / climatological spread of the truth (`filters.climatological_spread`) for
   working and lost filters on Lorenz-63, Lorenz-96 and Kuramoto-Sivashinsky (3 seeds each,
   one vmapped `filters.assimilate` call per case), side by side with the verdict of the old
   rule (rmse_a > 2 x the RMS observation-noise std) and of the new one (rmse_a > 0.5 x the
   climatological spread). Working filters should sit far below 0.5, lost ones far above.
2. `centre`: every shipped `assimilate` config (DAPPER's settings) with the initial ensemble
   around the truth (`experiment.ensemble_centre: truth`, the default) and drawn
   independently of the truth from the same prior (`independent`, DAPPER's convention):
   median rmse_a over the config's seeds and the ratio independent / truth.
3. `dapper` (run with DAPPER's venv, /work/venvs/dapper312, PYTHONPATH at this tree): the
   initial ensemble mean's mean-square error against the truth's start in DAPPER's own
   `mods/Lorenz96/sakov2008.py` (x0 from `HMM.simulate`, E from `HMM.X0.sample(N)` as its
   EnKFs do) and in `filters.assimilate` with `ensemble_centre=mu0` and with the default,
   each over 20 seeds, divided by init_std^2 (1 + 1/N) (1 for independent draws; 1/(N + 1)
   around the truth).

    .venv/bin/python benchmarks/bench_divergence.py [--only rule centre] [--cycles-scale 1.0]
    PYTHONPATH=$PWD /work/venvs/dapper312/bin/python benchmarks/bench_divergence.py --only dapper
"""

import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

FRACTION = 0.5  # filters.DIVERGENCE_FRACTION (checked below)


def _rule(scale: float) -> list[dict]:
    import jax
    import jax.numpy as jnp
    import numpy as np

    from jaxsci import filters as F, integrate
    from jaxsci.dynamics import KuramotoSivashinsky, Lorenz63, Lorenz96

    assert F.DIVERGENCE_FRACTION == FRACTION

    def spin(flow, x, n, dt):
        return jax.jit(lambda x: integrate.rollout(flow, x, n, dt=dt)[-1])(x)

    l63 = integrate.Flow(Lorenz63(), 0.01)
    x63 = jnp.array([1.509, -1.531, 25.46])
    l96 = integrate.Flow(Lorenz96(40, 8.0), 0.05)
    x96 = spin(l96, Lorenz96(40, 8.0).default_initial_state(), 1000, 0.05)
    ks = KuramotoSivashinsky(22.0, 32)
    fks = integrate.Flow(ks, 0.25, integrate.ETDRK4())
    xks = spin(fks, ks.default_initial_state(), 100, 1.0)
    obs63 = F.IndexObservation(3, noise_cov=2.0)
    obs63x = F.IndexObservation(3, [0], noise_cov=2.0)
    obs63n = F.IndexObservation(3, noise_cov=25.0)
    obs96 = F.IndexObservation(40, noise_cov=1.0)
    obs96k = F.every_kth(40, 4, noise_cov=1.0)
    obs96n = F.IndexObservation(40, noise_cov=9.0)
    obsks = F.every_kth(32, 2, noise_cov=1.0)
    obsks01 = F.every_kth(32, 2, noise_cov=0.01)
    s96 = 0.001**0.5
    # name, flow, obs, filter, N, init_std, x0, cycles, dt, burn-in, expected
    cases = [
        ("L63 ETKF N10 infl1.02 rot, R=2I", l63, obs63,
         F.Inflation(F.ETKF(rotate=True), 1.02), 10, 2**0.5, x63, 564, 0.25, 16.0, "works"),
        ("L63 PF N100 reg2.4 NER0.3, R=2I", l63, obs63,
         F.BootstrapPF(F.systematic, 0.3, reg=2.4), 100, 2**0.5, x63, 564, 0.25, 16.0, "works"),
        ("L63 ETKF N10 infl1.02, R=25I every 0.5", l63, obs63n,
         F.Inflation(F.ETKF(), 1.02), 10, 2**0.5, x63, 300, 0.5, 16.0, "struggles"),
        ("L63 ETKF N3, x only, R=2", l63, obs63x,
         F.ETKF(), 3, 2**0.5, x63, 564, 0.25, 16.0, "lost"),
        ("L96 ETKF N24 infl1.02 rot, R=I", l96, obs96,
         F.Inflation(F.ETKF(rotate=True), 1.02), 24, s96, x96, 1400, 0.05, 20.0, "works"),
        ("L96 LETKF N7 infl1.04 r4, R=I", l96, obs96,
         F.Inflation(F.LETKF(4.0, obs96), 1.04), 7, s96, x96, 1400, 0.05, 20.0, "works"),
        ("L96 ETKF N24 infl1.05, R=9I", l96, obs96n,
         F.Inflation(F.ETKF(), 1.05), 24, s96, x96, 1400, 0.05, 20.0, "works"),
        ("L96 LETKF N10 infl1.1 r4, every 4th", l96, obs96k,
         F.Inflation(F.LETKF(4.0, obs96k), 1.1), 10, s96, x96, 1400, 0.05, 20.0, "struggles"),
        ("L96 ETKF N5 no inflation, R=I", l96, obs96,
         F.ETKF(), 5, s96, x96, 1400, 0.05, 20.0, "lost"),
        ("KS32 ETKF N10 infl1.05, 16 obs, R=0.01I", fks, obsks01,
         F.Inflation(F.ETKF(), 1.05), 10, 0.1, xks, 200, 1.0, 100.0, "works"),
        ("KS32 ETKF N10 infl1.05, 16 obs, R=I", fks, obsks,
         F.Inflation(F.ETKF(), 1.05), 10, 0.1, xks, 200, 1.0, 100.0, "works"),
        ("KS32 LETKF N10 infl1.05 r4, 16 obs, R=I", fks, obsks,
         F.Inflation(F.LETKF(4.0, obsks), 1.05), 10, 0.1, xks, 200, 1.0, 100.0, "works"),
        ("KS32 ETKF N10 deflation 0.8, 16 obs, R=I", fks, obsks,
         F.Inflation(F.ETKF(), 0.8), 10, 0.1, xks, 200, 1.0, 100.0, "lost"),
        ("KS32 ETKF N2 no inflation, 16 obs, R=I", fks, obsks,
         F.ETKF(), 2, 0.1, xks, 200, 1.0, 100.0, "lost"),
        ("KS32 ETKF N10 infl1.05, 16 obs, R=100I", fks, F.every_kth(32, 2, noise_cov=100.0),
         F.Inflation(F.ETKF(), 1.05), 10, 0.1, xks, 200, 1.0, 100.0, "lost"),
    ]  # fmt: skip
    rows = []
    for name, flow, obs, filt, n, s, x, cycles, dt, burn, expected in cases:
        cycles = max(int(cycles * scale), int(burn / dt) + 20)
        keys = jax.vmap(jax.random.key)(jnp.arange(3))

        def one(key, flow=flow, obs=obs, filt=filt, n=n, s=s, x=x, cycles=cycles, dt=dt, b=burn):
            k0, k1 = jax.random.split(key)
            x0 = x + s * jax.random.normal(k0, x.shape)
            return F.assimilate(
                k1, flow, obs, filt, x0, n_cycles=cycles, dt=dt, ensemble_size=n,
                init_std=s, burn_in=b, compute_likelihood=False,
            )  # fmt: skip

        t = time.perf_counter()
        res = jax.jit(jax.vmap(one))(keys)
        rmse = np.asarray(res.rmse_a_mean, dtype=float)
        clim = np.asarray(res.climatological_spread, dtype=float)
        noise = float(np.sqrt(np.mean(np.diag(np.asarray(obs.noise_cov)))))
        row = {
            "case": name,
            "expected": expected,
            "cycles": cycles,
            "rmse_a": rmse.tolist(),
            "climatological_spread": clim.tolist(),
            "ratio": (rmse / clim).tolist(),
            "old_rule_diverged": (rmse > 2 * noise).tolist(),
            "new_rule_diverged": np.asarray(res.diverged).tolist(),
            "seconds": time.perf_counter() - t,
        }
        rows.append(row)
        print(
            f"{name:42s} {expected:9s} ratio {np.round(row['ratio'], 3).tolist()} "
            f"rmse_a {np.round(rmse, 3).tolist()} old {sum(row['old_rule_diverged'])}/3 "
            f"new {sum(row['new_rule_diverged'])}/3",
            flush=True,
        )
    print("\n| case | expected | rmse_a / clim. spread (3 seeds) | rmse_a | old rule | new rule |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        ratio = ", ".join(f"{v:.3f}" for v in r["ratio"])
        rmse = ", ".join(f"{v:.3g}" for v in r["rmse_a"])
        print(
            f"| {r['case']} | {r['expected']} | {ratio} | {rmse} | "
            f"{sum(r['old_rule_diverged'])}/3 | {sum(r['new_rule_diverged'])}/3 |"
        )
    return rows


def _centre(scale: float) -> list[dict]:
    from pathlib import Path

    import numpy as np
    import yaml

    from jaxsci.pipelines import run_config

    root = Path(__file__).resolve().parents[1]
    configs = sorted(
        p
        for p in (root / "configs").glob("*.yaml")
        if yaml.safe_load(p.read_text()).get("pipeline") == "assimilate"
    )
    rows = []
    for path in configs:
        raw = yaml.safe_load(path.read_text())
        cycles = int(raw["experiment"]["n_cycles"] * scale)
        sets = ["plot.enabled=false", f"experiment.n_cycles={cycles}"]
        out = {}
        for centre in ("truth", "independent"):
            with tempfile.TemporaryDirectory() as tmp:
                _, metrics = run_config(
                    path,
                    Path(tmp) / "run",
                    [*sets, f"experiment.ensemble_centre={centre}"],
                    echo=False,
                )
            seeds = metrics.get("rmse_a_seeds", [metrics["rmse_a"]])
            out[centre] = (metrics["rmse_a"], seeds, metrics.get("n_diverged", 0))
        row = {
            "config": path.stem,
            "cycles": cycles,
            "rmse_a_truth": out["truth"][0],
            "rmse_a_independent": out["independent"][0],
            "seeds_truth": out["truth"][1],
            "seeds_independent": out["independent"][1],
            "ratio": out["independent"][0] / out["truth"][0],
        }
        rows.append(row)
        print(
            f"{path.stem:12s} cycles {cycles:5d} rmse_a truth-centred "
            f"{np.round(row['seeds_truth'], 4).tolist()} independent "
            f"{np.round(row['seeds_independent'], 4).tolist()} ratio {row['ratio']:.3f}",
            flush=True,
        )
    print("\n| config | cycles | rmse_a truth-centred | rmse_a independent | ratio |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['config']} | {r['cycles']} | {r['rmse_a_truth']:.4f} | "
            f"{r['rmse_a_independent']:.4f} | {r['ratio']:.3f} |"
        )
    return rows


def _dapper() -> dict:
    import dapper as dpr
    import dapper.mods.Lorenz96.sakov2008 as mod
    import jax
    import jax.numpy as jnp
    import numpy as np

    from jaxsci import filters as F

    hmm = mod.HMM.copy()
    hmm.tseq.T = 1.0
    n, var, seeds = 24, 0.001, 20
    scale = var * (1 + 1 / n)
    ms = []
    for seed in range(seeds):
        dpr.set_seed(seed + 1)  # DAPPER refuses seed 0
        xx, _ = hmm.simulate()
        ens = hmm.X0.sample(n)  # the first line of DAPPER's EnKF.assimilate
        ms.append(np.mean((ens.mean(0) - xx[0]) ** 2))
    mu0 = jnp.asarray(hmm.X0.mu, dtype=jnp.float32)
    obs = F.IndexObservation(40, noise_cov=1.0)

    def identity(x, t0, t1):
        return x

    def ours(key, independent):
        k0, k1 = jax.random.split(key)
        x0 = mu0 + var**0.5 * jax.random.normal(k0, (40,))
        res = F.assimilate(
            k1, identity, obs, F.ETKF(), x0, n_cycles=1, dt=1.0, ensemble_size=n,
            init_std=var**0.5, ensemble_centre=mu0 if independent else None,
        )  # fmt: skip
        return res.rmse_f[0] ** 2  # the first forecast mean is the initial mean

    keys = jax.random.split(jax.random.key(0), seeds)
    out = {
        "dapper": float(np.mean(ms) / scale),
        "dapper_se": float(np.std(ms) / seeds**0.5 / scale),
    }
    for name, independent in (("jaxsci_independent", True), ("jaxsci_truth", False)):
        vals = np.asarray(jax.vmap(lambda k, i=independent: ours(k, i))(keys), dtype=float)
        out[name] = float(vals.mean() / scale)
        out[name + "_se"] = float(vals.std() / seeds**0.5 / scale)
    print(
        f"mean square of (initial mean - truth) / (init_std^2 (1 + 1/N)), N = {n}, {seeds} seeds:"
        f" DAPPER {out['dapper']:.3f} +- {out['dapper_se']:.3f}, jaxsci independent "
        f"{out['jaxsci_independent']:.3f} +- {out['jaxsci_independent_se']:.3f} (ratio "
        f"{out['jaxsci_independent'] / out['dapper']:.3f}), jaxsci around the truth "
        f"{out['jaxsci_truth']:.3f} +- {out['jaxsci_truth_se']:.3f} (1/(N+1) = {1 / (n + 1):.3f})"
    )
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", default=["rule", "centre"])
    parser.add_argument("--cycles-scale", type=float, default=1.0)
    args = parser.parse_args()
    from _timing import finish, machine_summary

    out = {"args": vars(args)}
    if "rule" in args.only:
        out["rule"] = _rule(args.cycles_scale)
    if "centre" in args.only:
        out["centre"] = _centre(args.cycles_scale)
    if "dapper" in args.only:
        out["dapper"] = _dapper()
    out.update(machine=machine_summary())
    out_dir = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_out")
    finish(out, os.path.join(out_dir, "bench_divergence.json"))


if __name__ == "__main__":
    main()
