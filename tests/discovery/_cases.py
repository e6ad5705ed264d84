"""Shared Kuramoto-Sivashinsky model-error cases (hand-derived true coefficients).

KS in jaxsci: u_t = -lam u u_x - alpha u_xx - nu u_xxxx - dispersion u_xxx + growth u, so a
truth with changed parameters differs from the standard model (all 1, no extras) by
-(alpha - 1) u_xx, -dispersion u_xxx, +growth u, -(lam - 1) u u_x, -(nu - 1) u_xxxx.
"""

import equinox as eqx
import numpy as np

from jaxsci.dynamics import KuramotoSivashinsky
from jaxsci.integrate import Flow, rollout

# L = 16 pi: chaotic for every case below (leading Lyapunov exponents ~0.02-0.1), where at
# L = 22 a u_xxx or damping term of this size makes the dynamics (nearly) periodic and the
# library columns (nearly) collinear on the attractor.
L, N, DT = 16 * np.pi, 64, 0.25

CASES = {
    "uxx": ({"alpha": 1.1}, {"u_xx": -0.1}),
    "dispersion": ({"dispersion": 0.1}, {"u_xxx": -0.1}),
    "growth": ({"growth": -0.05}, {"u": -0.05}),
    "nonlinear": ({"lam": 1.1}, {"u*u_x": -0.1}),
}


@eqx.filter_jit
def _run(flow, x, interval, n_spin, count):
    """`count` states every `interval` after `n_spin` intervals from x (`integrate.rollout`)."""
    if n_spin:
        x = rollout(flow, x, n_spin, dt=interval)[-1]
    return rollout(flow, x, count - 1, dt=interval, include_initial=True)


def truth_states(changes, interval, count, spinup=100.0):
    """`count` states of the changed KS every `interval`, after `spinup` time units (one
    compiled function per (interval, spin-up steps, count), shared by every case)."""
    truth = KuramotoSivashinsky(L, N, **changes)
    n_spin = int(round(spinup / interval))
    return _run(Flow(truth, DT), truth.default_initial_state(), interval, n_spin, count)
