"""Training part of a model (`fit(..., trainable=where)`, `train_init(..., trainable=where)`,
`trainable_mask`, `nn.FNO.last_layers`): the frozen arrays stay bit for bit the same while
the free ones move, the free ones follow gradient descent on the sub-problem (closed form),
the optimizer holds state for the free arrays only, fine-tuning the last layers of an FNO
stepper under the H^-1 loss lowers that loss, and bad `where`s are refused by name."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxsci import losses, nn
from jaxsci.train import fit, train_init, train_step, trainable_mask


class Line(eqx.Module):
    a: jax.Array
    b: jax.Array

    def __call__(self, x):
        return self.a * x + self.b


def mse(model, batch, *, key=None):
    x, y = batch
    return jnp.mean((model(x) - y) ** 2)


def _line_problem():
    x = jnp.linspace(-1.0, 1.0, 8)
    return Line(jnp.asarray(0.5), jnp.asarray(0.0)), (x, 2.0 * x - 0.5)


def test_only_the_free_array_follows_gradient_descent(x64):
    model, data = _line_problem()
    state = train_init(model, optax.sgd(0.1), key=jax.random.key(0), ema=True,
                       trainable=lambda m: m.b)  # fmt: skip
    for _ in range(4):
        state, info = train_step(state, data, loss=mse, optimizer=optax.sgd(0.1), ema=0.9)
    # gradient descent on b alone with a = 0.5 fixed: d/db mean((a x + b - y)^2) = 2 mean(r)
    x, y = np.asarray(data[0]), np.asarray(data[1])
    b, grad = 0.0, 0.0
    for _ in range(4):
        grad = 2 * np.mean(0.5 * x + b - y)
        b -= 0.1 * grad
    assert float(state.model.b) == pytest.approx(b, rel=1e-12)
    assert float(state.model.a) == 0.5
    assert float(state.ema_model.a) == 0.5  # the frozen array is not averaged either
    # the gradient norm is the free array's, |d/db| (d/da is not even computed)
    assert float(info.grad_norm) == pytest.approx(abs(grad), rel=1e-12)
    # fit with the same `trainable` reaches the same b (one batch of all 8 examples)
    fitted, hist = fit(
        model, mse, data, optimizer=optax.sgd(0.1), key=jax.random.key(0), batch_size=8,
        num_steps=4, trainable=lambda m: m.b, progress=False,
    )  # fmt: skip
    assert float(fitted.b) == pytest.approx(b, rel=1e-12)
    assert float(fitted.a) == 0.5 and len(hist["loss"]) == 4


def _stepper_problem():
    """A small FNO stepper and one-step pairs of smooth 2-D fields shifted by one grid point."""
    stepper = nn.Stepper(nn.FNO2d(1, 1, 6, 3, 2, key=jax.random.key(3), projection_width=8))
    n = 8
    x = 2 * np.pi * np.arange(n) / n
    phase = np.random.default_rng(0).uniform(0, 2 * np.pi, (12, 2))
    fields = np.sin(x[None, :, None] + phase[:, 0, None, None]) + np.cos(
        2 * x[None, None, :] + phase[:, 1, None, None]
    )
    inputs = fields[:, None].astype(np.float32)
    targets = np.roll(fields, 1, axis=1)[:, None].astype(np.float32)  # one grid shift per step
    return stepper, (jnp.asarray(inputs), jnp.asarray(targets))


@pytest.mark.slow  # ~3 s of compilation of an FNO fit; the fast tier has the Line case
def test_fine_tuning_the_last_fno_layers_keeps_the_rest_bit_identical():
    stepper, data = _stepper_problem()
    where = lambda m: m.net.last_layers()  # noqa: E731
    mask = trainable_mask(stepper, where)
    assert jax.tree.structure(mask) == jax.tree.structure(stepper)
    free_names = {
        jax.tree_util.keystr(path)
        for path, leaf in jax.tree_util.tree_leaves_with_path(mask)
        if leaf
    }
    # the last Fourier layer's spectral weights and skip, and both projection layers
    assert any(".spectral[1]" in p for p in free_names)
    assert any(".skips[1]" in p for p in free_names)
    assert any(".projection[0]" in p for p in free_names)
    assert any(".projection[1]" in p for p in free_names)
    assert not any(".spectral[0]" in p or ".lifting" in p or ".skips[0]" in p for p in free_names)

    loss = losses.SobolevLoss(-1.0, length=2 * np.pi, spatial_dims=2, seminorm=True)
    tuned, hist = fit(
        stepper, loss, data, optimizer=optax.adam(3e-2), key=jax.random.key(0),
        batch_size=12, num_steps=20, trainable=where, progress=False,
    )  # fmt: skip
    # full batches: the recorded losses are the H^-1 loss on all the data before each update
    before, after = hist["loss"][0], hist["loss"][-1]
    assert after < 0.3 * before, (before, after)  # 0.29 -> 0.03 when written
    old = jax.tree.leaves(eqx.filter(stepper, eqx.is_inexact_array))
    new = jax.tree.leaves(eqx.filter(tuned, eqx.is_inexact_array))
    flags = [
        m for m, x in zip(jax.tree.leaves(mask), jax.tree.leaves(stepper), strict=True)
        if eqx.is_inexact_array(x)
    ]  # fmt: skip
    assert len(flags) == len(old) == len(new)
    for free, u, v in zip(flags, old, new, strict=True):
        if free:
            assert not np.array_equal(np.asarray(u), np.asarray(v))
        else:
            np.testing.assert_array_equal(np.asarray(u), np.asarray(v))
    # the optimizer (Adam: two moments per array) keeps state for the free arrays only
    state = train_init(stepper, optax.adam(1e-3), key=jax.random.key(0), trainable=where)
    moments = [a for a in jax.tree.leaves(state.opt_state) if a.ndim > 0]
    assert len(moments) == 2 * sum(flags)


def test_last_layers_and_bad_wheres_are_named():
    fno = nn.FNO2d(1, 1, 4, 2, 3, key=jax.random.key(0), projection_width=4)
    assert fno.last_layers(0) == (fno.projection,)
    assert fno.last_layers(2) == (*fno.spectral[1:], *fno.skips[1:], fno.projection)
    with pytest.raises(ValueError, match="`num_fourier_layers`"):
        fno.last_layers(4)
    model, data = _line_problem()
    with pytest.raises(TypeError, match="`trainable` must be a function|parameter 'where'"):
        trainable_mask(model, "b")
    with pytest.raises(ValueError, match="`trainable` must return parts"):
        trainable_mask(model, lambda m: jnp.ones(2))
    with pytest.raises(ValueError, match="`trainable` selects no inexact"):
        trainable_mask(nn.Stepper(fno), lambda m: m.net.activation)
    with pytest.raises(ValueError, match="`trainable`"):
        fit(
            model, mse, data, optimizer=optax.sgd(0.1), key=jax.random.key(0), batch_size=8,
            num_steps=1, trainable=lambda m: m.c, progress=False,
        )  # fmt: skip


def test_a_checkpoint_of_a_partial_fit_refuses_another_trainable(tmp_path):
    model, data = _line_problem()
    kwargs = dict(
        optimizer=optax.sgd(0.1), key=jax.random.key(0), batch_size=8, num_steps=2,
        progress=False, checkpoint_dir=tmp_path,
    )  # fmt: skip
    fit(model, mse, data, trainable=lambda m: m.a, **kwargs)
    with pytest.raises(ValueError, match="trainable"):
        fit(model, mse, data, trainable=lambda m: m.b, **{**kwargs, "num_steps": 3})


def test_a_masked_state_passes_through_jit_and_scan(x64):
    """The mask is static structure: jit(train_step) and a lax.scan over train_step work on a
    masked state (a mask stored as a pytree of bools became traced arrays there and failed as
    a filter spec) and give the same steps as the eager loop."""
    model, data = _line_problem()
    opt = optax.sgd(0.1)
    state = train_init(model, opt, key=jax.random.key(0), trainable=lambda m: m.b)
    step = jax.jit(lambda s: train_step(s, data, loss=mse, optimizer=opt)[0])
    scanned, _ = jax.lax.scan(lambda s, _: (step(s), None), state, None, length=4)
    eager = state
    for _ in range(4):
        eager, _ = train_step(eager, data, loss=mse, optimizer=opt)
    assert float(scanned.model.b) == pytest.approx(float(eager.model.b), rel=1e-12)
    assert float(scanned.model.a) == 0.5 and scanned.trainable == state.trainable
