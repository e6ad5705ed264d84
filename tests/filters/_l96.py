"""Lorenz-96 twin setup of Sakov & Oke (2008) as in DAPPER's `mods/Lorenz96/sakov2008.py`."""

import functools

import jax

from jaxsci import filters as F
from jaxsci.dynamics import Lorenz96
from jaxsci.integrate import Flow

DT = 0.05  # one RK4 step per cycle, every variable observed every step
BURN_IN = 20.0  # time units left out of rmse_a (400 cycles)
INIT_STD = 0.001**0.5  # initial ensemble N(x0, 0.001 I)


def l96(n=40, forcing=8.0):
    model = Lorenz96(n, forcing)
    return model, Flow(model, DT)


@functools.cache
def attractor_state(n=40):
    """A state on the attractor: 50 time units from the model's default start."""
    _, flow = l96(n)
    x = Lorenz96(n, 8.0).default_initial_state()
    run = jax.jit(lambda x: jax.lax.fori_loop(0, 1000, lambda i, x: flow(x, 0.0, DT), x))
    return run(x)


def seeded_starts(num_seeds, n=40, seed=0):
    """Per-seed truth starts: the attractor state perturbed by N(0, 0.001 I), like DAPPER's
    draw of x0 from X0 = N(mu0, 0.001 I)."""
    keys = jax.random.split(jax.random.key(seed), num_seeds)
    x = attractor_state(n)
    return keys, x + INIT_STD * jax.vmap(lambda k: jax.random.normal(k, (n,)))(keys)


def obs_all(n=40):
    return F.IndexObservation(n, noise_cov=1.0)
