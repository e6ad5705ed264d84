"""A small stochastic training problem shared by the trainer tests and the kill/resume child.

A noise-injected MLP (one sample per call) trained with the fair CRPS on a fixed random
regression set: it exercises every random stream of `fit` (data order, per-step loss keys,
validation keys), an optimiser schedule (optax's step count in the state), gradient
clipping and an EMA, all of which a checkpoint must carry for a bit-for-bit resume.
"""

import functools

import equinox as eqx
import jax
import jax.numpy as jnp
import optax

from jaxsci import losses


class NoisyMLP(eqx.Module):
    mlp: eqx.nn.MLP

    def __init__(self, key):
        self.mlp = eqx.nn.MLP(4 + 2, 3, 16, 2, key=key)

    def __call__(self, x, *, key):
        return self.mlp(jnp.concatenate([x, jax.random.normal(key, (2,), x.dtype)]))


@functools.cache
def problem():
    """(model, loss, data, val_data, optimizer), the same objects on every call (so repeated
    fits reuse compiled code)."""
    kx, ky, km = jax.random.split(jax.random.key(42), 3)
    x = jax.random.normal(kx, (96, 4))
    y = jnp.tanh(x[:, :3] * 1.5) + 0.1 * jax.random.normal(ky, (96, 3))
    model = NoisyMLP(km)
    loss = losses.CRPSLoss(ensemble_size=4)
    schedule = optax.exponential_decay(3e-3, transition_steps=7, decay_rate=0.9)
    return model, loss, (x[:80], y[:80]), (x[80:], y[80:]), optax.adam(schedule)


FIT_KWARGS = dict(batch_size=16, ema=0.9, clip_norm=1.0, progress=False)
RUN_KEY = 7
