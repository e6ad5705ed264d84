"""MEDIDA-QG with the library coefficients inside the filter (issue 18): joint state-parameter
estimation with the LETKF, an alternative to regressing the LETKF's increments.

Each member carries its own coefficients xi_i of the layered QG library and is forecast by
`CorrectedModel(model, library, xi_i)` (the drag-free model plus sum_j xi_ij theta_j). At each
analysis the field is updated by the LETKF (2-D periodic localisation over the grid columns,
RTPS) as in the `qg_model_error` pipeline, and the coefficients, which are global, by the
ETKF transform averaged over local domains: the LETKF's weights (w_b, T_b) of domain b,
averaged over the domains, applied to the parameter anomalies. This follows the ideas of the
augmented-state EnKF with spatially averaged parameter updates (Aksoy et al. 2006) and
LETKF parameter estimation (Kang et al. 2011); averaging (w_b, T_b) is this script's own rule.
The ensemble covariance between xi and the
forecast at the observed points is the sensitivity of the forecast to each term that the
integrated design computes, and the filter accounts for the analysis error that biases the
increment regression. The coefficients are carried in scaled units z_j = xi_j / s_j, with
s_j = (rms of layer l's q / 20 days) / rms(theta_j) over the climatological members: z_j = 1
is a tendency of 5% of the layer's std per day (the size of the drag: rek = 1 / 20 days).
Their spread is kept alive by a floor (`--floor`, in z units) after each analysis.

Stage 1 runs every term; the estimate is the time mean of the ensemble-mean z over the second
half of the cycles. Sparsity rule: a term is kept if |mean z_j| > `--keep` x max_j |mean z_j|
(the largest term's fraction); stage 2 runs again with the kept terms only (same
observations), and its time mean is the answer.

psi itself is scaled by the gravest mode instead (see `scale_all` below). Options add a
no-model-error control (`--perfect`), R inflation (`--obs-error-factor`), an AR(1) pull of
the mean coefficients to zero (`--decay-days`) and other parameter updates
(`--param-update`).

Finding (seed 0): the drag comes out within 0.4-4% with the other layer-2 terms small, but
the upper layer always gets a nearly cancelling lap(q)[1] / lap2(psi)[1] pair of 3-20x the
drag's contribution, which appears without model error too. Without lap2(psi) in the library
(`--terms`) the largest falls to 0.25x over 160 days. What remained was a transient: the first
coefficient updates, from a wide prior, kick the weakly observed upper-layer terms, which then
take hundreds of cycles to relax. A centred prior (the default now; `--no-center`), updates
from cycle 20 (`--param-start`), a prior std of 0.1 and 320 days bring the largest to 0.03x
with the drag 0.1% off. This prototype became `jaxsci.discovery.discover_in_filter` (the
`qg_model_error` pipeline's default estimator); it is kept for its variants (`--perfect`,
`--param-update`, `--decay-days`, stage 2) that the RESULTS rows name.

Usage: python benchmarks/bench_qg_model_error_augmented.py [--count 120] [--steps 6]
[--members 40] [--seed 0] (64^2, q of both layers at every 2nd point, noise 1% of each
layer's std). Results: benchmarks/RESULTS_discovery.md, MEDIDA-QG (augmented state).
"""

import argparse
import time
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from jaxsci import discovery, dynamics, filters, integrate, observations
from jaxsci.filters._ensemble_filters import symmetric_sqrt_transform
from jaxsci.filters._statistics import ensemble_stats

parser = argparse.ArgumentParser()
parser.add_argument("--n", type=int, default=64)
parser.add_argument("--count", type=int, default=120, help="observation times")
parser.add_argument("--steps", type=int, default=6, help="model steps between observations")
parser.add_argument("--members", type=int, default=40)
parser.add_argument("--every", type=int, default=2)
parser.add_argument("--noise", type=float, default=0.01)
parser.add_argument("--loc-rad", type=float, default=2.0)
parser.add_argument("--rtps", type=float, default=0.7)
parser.add_argument("--prior", type=float, default=1.0, help="prior std of z")
parser.add_argument("--floor", type=float, default=0.1, help="floor of the z spread")
parser.add_argument("--keep", type=float, default=0.1, help="sparsity: fraction of max |z|")
parser.add_argument("--terms", nargs="*", default=None, help="library terms (default QG_TERMS)")
parser.add_argument("--stage2", type=int, default=1)
parser.add_argument(
    "--param-update",
    choices=("local", "lowpass", "lowlocal"),
    default="local",
    help="local: the LETKF's weights averaged over the observed columns; lowpass: one global "
    "ETKF on the Fourier modes |m| <= --lowpass-modes of the observed subgrid per layer; "
    "lowlocal: as local, on the observation anomalies and innovation low-passed to those modes",
)
parser.add_argument("--lowpass-modes", type=float, default=8.0)
parser.add_argument(
    "--perfect",
    action="store_true",
    help="control: the filter's base model keeps the drag (no model error; every fitted "
    "term is then the filter's own doing; errors are still reported against the drag)",
)
parser.add_argument(
    "--decay-days",
    type=float,
    default=0.0,
    help="AR(1) parameter model: the mean z relaxes to 0 with this e-folding time in days "
    "(0: persistence), so that directions the observations do not constrain cannot drift",
)
parser.add_argument("--save", default=None, help="npz of the z trajectories and scales")
parser.add_argument(
    "--obs-error-factor",
    type=float,
    default=1.0,
    help="the filter's observation error std over the true noise std (R inflation)",
)
parser.add_argument("--seed", type=int, default=0)
parser.add_argument(
    "--param-start",
    type=int,
    default=0,
    help="cycles of field-only assimilation before the coefficients are updated",
)
parser.add_argument(
    "--no-center", action="store_true", help="keep the prior draws' sample mean (default: 0)"
)
parser.add_argument("--spinup-days", type=float, default=1000.0)
cli = parser.parse_args()

n, dt, rek = cli.n, 7200.0, 5.787e-7
DAY = 86400.0
interval = cli.steps * dt
truth_m, model = dynamics.TwoLayerQG(n), dynamics.TwoLayerQG(n, rek=0.0)
solver = integrate.Filtered(integrate.ETDRK4(), truth_m.spectral_filter())
ft = integrate.Flow(truth_m, dt, solver)
terms = list(discovery.QG_TERMS) if cli.terms is None else cli.terms
library = discovery.LayeredLibrary(terms, truth_m.length, n, streamfunction=truth_m.streamfunction)
names = library.names
inj = names.index("lap(psi)[2]")

# --- truth: spin-up, climatological members 10 days apart, the window --------------------
t0 = time.perf_counter()
key = jax.random.key(cli.seed)
k_init, k_obs, k_run = jax.random.split(key, 3)
cache = Path(f"/tmp/qg_aug_truth_{n}_{cli.seed}_{cli.steps}_{cli.count}_{cli.members}.npz")
if cache.exists():
    z = np.load(cache)
    members, truth = jnp.asarray(z["members"]), jnp.asarray(z["truth"])
else:
    q0 = truth_m.default_initial_state(k_init)
    q0 = integrate.rollout(ft, q0, int(cli.spinup_days), dt=DAY)[-1]
    states = integrate.rollout(ft, q0, cli.members + 1, dt=10 * DAY)
    members = states[:-1]
    truth = integrate.rollout(ft, states[-1], cli.count, dt=interval, include_initial=True)
    np.savez(cache, members=np.asarray(members), truth=np.asarray(truth))
truth = jax.block_until_ready(truth)
sim_s = time.perf_counter() - t0
layer_std = np.asarray(jnp.std(truth, axis=(0, 2, 3)))

# --- observations -------------------------------------------------------------------------
per_layer = (n // cli.every) ** 2
noise_std = np.repeat(cli.noise * layer_std, per_layer)
obs_op = observations.every_kth_grid((n, n), cli.every, n_layers=2, noise_std=noise_std)
ys = filters.synthetic_observations(k_obs, obs_op, truth[1:].reshape(cli.count, -1))
obs_op = observations.every_kth_grid(
    (n, n), cli.every, n_layers=2, noise_std=cli.obs_error_factor * noise_std
)
dom = filters.grid_domains((n, n), 2)
letkf = filters.LETKF(
    cli.loc_rad, obs_op, dom.state_locations, dom.domain_length, domains=dom.domains
)
field_filter = filters.RTPS(letkf, cli.rtps) if cli.rtps > 0 else letkf
# domains for the averaged parameter weights: the grid columns at the observed points
cols = np.arange(n * n).reshape(n, n)[:: cli.every, :: cli.every].ravel()
sel_obs = None if letkf.local_obs is None else letkf.local_obs[cols]
sel_taper = letkf.local_sqrt_taper[cols]

# orthonormal real Fourier modes |m| <= lowpass-modes of the observed (n/every)^2 subgrid,
# excluding the mean: white (whitened) noise stays white in these coordinates
m_sub = n // cli.every
ky = np.fft.fftfreq(m_sub, 1.0 / m_sub)[:, None]
kx = np.arange(m_sub // 2 + 1)[None, :]
keep_modes = (np.hypot(kx, ky) <= cli.lowpass_modes) & ((kx > 0) | (ky > 0))
keep_modes = jnp.asarray(keep_modes)


def project(v):
    """(obs,) whitened values of both layers -> real coordinates on the kept modes."""
    f = jnp.fft.rfft2(v.reshape(2, m_sub, m_sub), norm="ortho")[:, keep_modes]
    return jnp.sqrt(2.0) * jnp.concatenate([f.real, f.imag], axis=-1).reshape(-1)


def smooth(v):
    """(obs,) values of both layers low-passed to |m| <= lowpass-modes on the subgrid."""
    f = jnp.fft.rfft2(v.reshape(2, m_sub, m_sub))
    f = jnp.where(keep_modes | ((kx == 0) & (ky == 0)), f, 0.0)
    return jnp.fft.irfft2(f, s=(m_sub, m_sub)).reshape(-1)


# --- scales: z = 1 is a tendency of 5% of the layer's std per day --------------------------
theta = jax.vmap(library.term_fields)(members)  # (member, layer, y, x, term)
col_rms = np.sqrt(np.mean(np.asarray(theta) ** 2, axis=(0, 2, 3)))  # (layer, term)
layer_rms = np.sqrt(np.mean(np.asarray(members) ** 2, axis=(0, 2, 3)))
scale_all = ((layer_rms[:, None] / (20 * DAY)) / col_rms).ravel()  # (layer * term,)
# psi itself: a negative coefficient is an anti-damping whose rate is |xi| / k^2 at the
# gravest barotropic mode k = 2 pi / L, far above its rate at the rms scale: there z = 1 is
# the rate 1 / (20 days) at that mode (else members with z ~ -0.3 blow up within days)
for j, name in enumerate(names):
    if name.startswith("psi["):
        scale_all[j] = (2 * np.pi / float(truth_m.length)) ** 2 / (20 * DAY)
xi_true = np.zeros(len(names))
xi_true[inj] = -rek
z_true_inj = -rek / scale_all[inj]
corrected0 = discovery.CorrectedModel(truth_m if cli.perfect else model, library)
flow0 = integrate.Flow(corrected0, dt, solver)


def run_augmented(active: np.ndarray, key):
    """The augmented-state LETKF over all cycles with the terms `active` (bool per column)."""
    scale = jnp.asarray(scale_all)
    n_act = int(active.sum())
    k0, key = jax.random.split(key)
    z0 = cli.prior * jax.random.normal(k0, (cli.members, n_act))
    if not cli.no_center:
        # the prior's mean is 0 (no correction): the ensemble's is set to it exactly, else a
        # weakly observed coefficient keeps its sampling error (~ prior / sqrt(members))
        z0 = z0 - jnp.mean(z0, axis=0)
    x0 = members.reshape(cli.members, -1)

    def forecast(x, z):
        xi = jnp.zeros(len(names)).at[np.flatnonzero(active)].set(z) * scale
        flow = eqx.tree_at(lambda f: f.dynamics.coefficients, flow0, xi)
        return flow.window(interval)(x.reshape(2, n, n), 0.0).reshape(-1)

    def cycle(carry, inp):
        x, z = carry
        y, k, i = inp
        z_prior = z
        xf = jax.vmap(forecast)(x, z)
        xa = field_filter.update(k, xf, y, obs_op)
        s = ensemble_stats(xf, y, obs_op)

        def local(yw, dw, idx, sqrt_rho):
            if idx is not None:
                yw, dw = yw[:, idx], dw[idx]
            return symmetric_sqrt_transform(yw * sqrt_rho, dw * sqrt_rho)

        if cli.param_update in ("local", "lowlocal"):
            in_axes = (None, None, None if sel_obs is None else 0, 0)
            yw, dw = s.obs_anomalies, s.innovation
            if cli.param_update == "lowlocal":
                yw, dw = jax.vmap(smooth)(yw), smooth(dw)
            w, t = jax.vmap(local, in_axes=in_axes)(yw, dw, sel_obs, sel_taper)
            w, t = jnp.mean(w, axis=0), jnp.mean(t, axis=0)
        else:
            yw = jax.vmap(project)(s.obs_anomalies)
            w, t = symmetric_sqrt_transform(yw, project(s.innovation))
        zm = jnp.mean(z, axis=0)
        za = z - zm
        zm = zm + w @ za
        if cli.decay_days > 0:
            zm = zm * np.exp(-interval / (cli.decay_days * DAY))
        za = t @ za
        sd = jnp.std(za, axis=0, ddof=1)
        za = za * jnp.maximum(1.0, cli.floor / jnp.maximum(sd, 1e-12))
        z = zm + za
        # the coefficients are updated once the field's filter has spun up: before, the
        # innovations are the initial ensemble's climatological error, not the model's
        z = jnp.where(i >= cli.param_start, z, z_prior)
        return (xa, z), (jnp.mean(z, axis=0), sd, jnp.mean(xa, axis=0))

    keys = jax.random.split(key, cli.count)
    steps = jnp.arange(cli.count)
    run = jax.jit(lambda x, z: jax.lax.scan(cycle, (x, z), (ys, keys, steps)))
    _, (zm, sd, xa_mean) = jax.block_until_ready(run(x0, z0))
    return np.asarray(zm), np.asarray(sd), np.asarray(xa_mean)


def report(stage, active, zm, sd, xa_mean, seconds):
    half = zm.shape[0] // 2
    zbar = zm[half:].mean(0)
    xi = np.zeros(len(names))
    xi[np.flatnonzero(active)] = zbar * scale_all[active]
    err = abs(xi[inj] / -rek - 1)
    # contributions as the pipeline measures them: |xi_j| x RMS of column j, over the true
    # drag's rek x RMS of lap(psi)[2]
    rel = np.abs(xi) * col_rms.ravel() / (rek * col_rms.ravel()[inj])
    others = [j for j in np.flatnonzero(active) if j != inj]
    big = max((rel[j] for j in others), default=0.0)
    big2 = max((rel[j] for j in others if names[j].endswith("[2]")), default=0.0)
    n_big = sum(rel[j] > 0.05 for j in others)
    # the net correction of each layer without the drag column, sum_j xi_j theta_j on the
    # climatological members, RMS over the drag's: small when the fitted terms cancel
    xi_other = xi.copy()
    xi_other[inj] = 0.0
    net = np.einsum("mlyxj,lj->mlyx", np.asarray(theta), xi_other.reshape(2, -1))
    net = np.sqrt(np.mean(net**2, axis=(0, 2, 3))) / (rek * col_rms.ravel()[inj])
    print(f"  net correction without the drag, RMS per layer x the drag's: {net.round(3)}")
    ea = np.sqrt(np.mean((xa_mean - np.asarray(truth[1:]).reshape(cli.count, -1)) ** 2))
    rms_noise = cli.noise * np.sqrt(np.mean(layer_std**2))
    print(
        f"stage {stage}: terms {int(active.sum())}, lap(psi)[2] {xi[inj]:.4g} (true {-rek:.4g},"
        f" err {err:.1%}), others > 5%: {n_big}, largest other x injected {big:.3f}, "
        f"largest other in layer 2 {big2:.3f}, analysis rmse / noise {ea / rms_noise:.1f}, "
        f"wall {seconds:.0f} s",
        flush=True,
    )
    order = np.argsort(-rel)
    print(
        "  contributions (x the true drag's):",
        ", ".join(f"{names[j]} {np.sign(xi[j]) * rel[j]:+.3f}" for j in order[:8]),
    )
    act_idx = np.flatnonzero(active)
    for frac in (0.25, 0.5, 0.75, 1.0):
        k = max(0, int(frac * len(zm)) - 1)
        r = np.abs(zm[k]) * scale_all[act_idx] * col_rms.ravel()[act_idx]
        r = r / (rek * col_rms.ravel()[inj])
        top = np.argsort(-r)[:5]
        print(
            f"  cycle {k + 1}:",
            ", ".join(f"{names[act_idx[j]]} {np.sign(zm[k, j]) * r[j]:+.2f}" for j in top),
        )
    print(
        "  z_inj trajectory:",
        np.round(
            zm[:: max(1, len(zm) // 10), list(np.flatnonzero(active)).index(inj)] / abs(z_true_inj),
            3,
        )
        if active[inj]
        else "dropped",
    )
    return xi


print(
    f"{n}^2, Delta {cli.steps} steps, {cli.count} cycles, {cli.members} members, every "
    f"{cli.every}th point, noise {cli.noise:.0%}, loc_rad {cli.loc_rad}, RTPS {cli.rtps}, "
    f"prior {cli.prior}, floor {cli.floor}; z_true(inj) {z_true_inj:.3f}; sim {sim_s:.0f} s; "
    f"scales {np.array2string(scale_all, precision=2)}",
    flush=True,
)
k1, k2 = jax.random.split(k_run)
active = np.ones(len(names), bool)
t0 = time.perf_counter()
zm, sd, xa = run_augmented(active, k1)
xi1 = report(1, active, zm, sd, xa, time.perf_counter() - t0)
if cli.save:
    np.savez(cli.save, zm=zm, sd=sd, scale=scale_all, col_rms=col_rms, names=np.asarray(names))
if cli.stage2:
    z1 = np.abs(xi1) / scale_all
    active = z1 > cli.keep * z1.max()
    t0 = time.perf_counter()
    zm, sd, xa = run_augmented(active, k2)
    report(2, active, zm, sd, xa, time.perf_counter() - t0)
