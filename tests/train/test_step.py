"""`train_init` / `train_step`: the pure step that `fit` drives, against `fit` itself, SGD's
closed form, jit == no-jit, a vmap over the EMA decay == a loop, and typed info."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxsci.train import TrainInfo, TrainState, fit, train_init, train_step


class Line(eqx.Module):
    a: jax.Array
    b: jax.Array

    def __call__(self, x):
        return self.a * x + self.b


def loss(model, batch, *, key=None):
    x, y = batch
    residual = model(x) - y
    return jnp.mean(residual**2), {"bias": jnp.mean(residual), "nested": {"max": residual.max()}}


OPT = optax.sgd(0.1)


def _problem():
    """(model, data) in the default float dtype at call time (float64 under `x64`)."""
    x = jnp.linspace(-1.0, 1.0, 8)
    return Line(jnp.asarray(0.0), jnp.asarray(0.0)), (x, 2.0 * x - 0.5)


MODEL, DATA = _problem()


def _steps(state, data, n, **kwargs):
    infos = []
    for _ in range(n):
        state, info = train_step(state, data, loss=loss, optimizer=OPT, **kwargs)
        infos.append(info)
    return state, infos


def test_steps_equal_fit_and_sgd(x64):
    # One batch of all 8 examples per step: each step is exact gradient descent on the mean
    # squared error whatever fit's data order (which only changes the summation order).
    model, data = _problem()
    state = train_init(model, OPT, key=jax.random.key(0), ema=True)
    assert isinstance(state, TrainState) and int(state.step) == 0
    state, infos = _steps(state, data, 5, ema=0.9)
    fitted, hist = fit(
        model,
        loss,
        data,
        optimizer=OPT,
        key=jax.random.key(0),
        batch_size=8,
        num_steps=5,
        ema=0.9,
        progress=False,
    )
    assert int(state.step) == 5
    # the same steps up to the summation order of fit's shuffled batches
    assert float(state.ema_model.a) == pytest.approx(float(fitted.a), rel=1e-12)  # the EMA
    np.testing.assert_allclose([float(i.loss) for i in infos], hist["loss"], rtol=1e-12)
    maxima = [float(i.aux["nested/max"]) for i in infos]
    np.testing.assert_allclose(maxima, hist["aux/nested/max"], rtol=1e-12)
    # gradient descent by hand: d/da mean((a x + b - y)^2) = 2 mean(r x), d/db = 2 mean(r)
    a = b = 0.0
    x, y = np.asarray(data[0]), np.asarray(data[1])
    for _ in range(5):
        r = a * x + b - y
        a, b = a - 0.1 * 2 * np.mean(r * x), b - 0.1 * 2 * np.mean(r)
    assert float(state.model.a) == pytest.approx(a, rel=1e-12)
    assert float(state.model.b) == pytest.approx(b, rel=1e-12)
    info = infos[0]
    assert isinstance(info, TrainInfo) and set(info.aux) == {"bias", "nested/max"}
    assert float(info.grad_norm) == pytest.approx(np.hypot(2 * np.mean(-y * x), 2 * np.mean(-y)))


def test_jit_equals_no_jit_and_vmap_over_ema_equals_loop():
    state = train_init(MODEL, OPT, key=jax.random.key(1), ema=True)
    jitted, info = train_step(state, DATA, loss=loss, optimizer=OPT, ema=0.5)
    plain, info_plain = train_step.__wrapped__(state, DATA, loss=loss, optimizer=OPT, ema=0.5)
    numbers = lambda tree: jax.tree.leaves(eqx.filter(tree, eqx.is_inexact_array))  # noqa: E731
    for u, v in zip(numbers((jitted, info)), numbers((plain, info_plain)), strict=True):
        np.testing.assert_allclose(np.asarray(u), np.asarray(v), rtol=1e-6)
    assert int(jitted.step) == int(plain.step) == 1
    # the decay is an array: one compiled step serves a sweep over it
    decays = jnp.asarray([0.1, 0.5, 0.9])
    state, _ = _steps(state, DATA, 12, ema=0.5)

    def one(d):
        return train_step(state, DATA, loss=loss, optimizer=OPT, ema=d)[0].ema_model

    swept = eqx.filter_vmap(one)(decays)
    for i, d in enumerate(decays):
        np.testing.assert_allclose(np.asarray(swept.a[i]), np.asarray(one(d).a), rtol=1e-6)
    assert len(set(np.asarray(swept.a).tolist())) == 3


def test_bad_arguments_are_named():
    # ours, or the jaxtyping import hook's type-check error when the test run enables it
    with pytest.raises(TypeError, match="`optimizer` must be an optax|parameter 'optimizer'"):
        train_init(MODEL, "sgd", key=jax.random.key(0))
    with pytest.raises(TypeError, match="`key` must be a PRNG key|parameter 'key'"):
        train_init(MODEL, OPT, key=0)
    state = train_init(MODEL, OPT, key=jax.random.key(0))
    with pytest.raises(ValueError, match="`ema` needs a state made by train_init"):
        train_step(state, DATA, loss=loss, optimizer=OPT, ema=0.9)
