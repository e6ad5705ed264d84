"""One conformance registry over every sampler `posterior` accepts (`inference.SAMPLERS`): the
init/step contract of the kernel `build` returns, jit == no-jit for a few steps, vmap over
chains == a loop, the position's dtype kept (float32 and float64), typed `StepInfo`, and bad
settings and starts rejected by name. On a 2-D Gaussian; a few steps, no statistics here
(those are in test_conjugate.py and test_lotka_volterra.py).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _params import marked_params

from jaxsci import inference
from jaxsci.inference import SAMPLERS, StepInfo
from jaxsci.inference._samplers import WarmupStage

SCALES = (1.0, 2.0)  # sds of the target's two coordinates
NUM_STEPS = 3
NUM_WARMUP = 10


def logdensity(u):
    return -0.5 * jnp.sum((u / jnp.asarray(SCALES, u.dtype)) ** 2)


def _stages() -> WarmupStage:
    """NUM_STEPS steps: warmup steps inside a slow window, then one sampling step."""
    adapting = jnp.arange(NUM_STEPS) < NUM_STEPS - 1
    no = jnp.zeros(NUM_STEPS, bool)
    return WarmupStage(adapting=adapting, slow=adapting, window_end=no, last=no)


def _chain(sampler):
    """(key, u0) -> (positions (NUM_STEPS, 2), infos, (step size, inverse mass matrix)) of one
    chain: the kernel's init, then its step in a scan."""
    kernel = sampler.build(logdensity, 2, NUM_WARMUP)

    def run(key, u0):
        lp, grad = jax.value_and_grad(logdensity)(u0)
        state = kernel.init(key, u0, lp, grad)

        def body(state, xs):
            k, stage = xs
            state, info = kernel.step(k, state, stage)
            return state, (kernel.position(state), info)

        xs = (jax.random.split(key, NUM_STEPS), _stages())
        state, (positions, infos) = jax.lax.scan(body, state, xs)
        return positions, infos, kernel.adapted(state)

    return run


@pytest.mark.parametrize("name", marked_params(SAMPLERS, {"nuts", "numpyro_nuts"}))
def test_contract_jit_no_jit_vmap_and_float32(name):
    sampler = SAMPLERS[name]()
    run = _chain(sampler)
    key = jax.random.key(0)
    u0 = jnp.asarray([0.5, -1.0], jnp.float32)
    eager = run(key, u0)
    jitted = jax.jit(run)
    pos, info, (step_size, imm) = jitted(key, u0)
    # contract: positions in R^2 of the start's dtype, a StepInfo of scalars per step, and
    # the adapted step size and (diagonal) inverse mass matrix
    assert pos.shape == (NUM_STEPS, 2) and pos.dtype == jnp.float32
    assert isinstance(info, StepInfo) and set(sampler.stat_names) <= set(StepInfo._fields)
    assert all(np.shape(v) == (NUM_STEPS,) for v in info)
    assert info.diverging.dtype == jnp.bool_ and info.n_steps.dtype == jnp.int32
    assert step_size.shape == () and imm.shape == (2,)
    assert np.all(np.isfinite(np.asarray(pos))) and np.all(np.asarray(info.n_steps) >= 1)
    for a, b in zip(
        jax.tree.leaves(eager), jax.tree.leaves((pos, info, (step_size, imm))), strict=True
    ):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)
    # chains: vmap over keys and starts == one chain at a time
    keys = jax.random.split(jax.random.key(1), 2)
    starts = jnp.asarray([[0.5, -1.0], [-1.0, 2.0]], jnp.float32)
    batched = jax.jit(jax.vmap(run))(keys, starts)
    for c in range(2):
        one = jitted(keys[c], starts[c])
        for a, b in zip(jax.tree.leaves(batched), jax.tree.leaves(one), strict=True):
            np.testing.assert_allclose(np.asarray(a)[c], np.asarray(b), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", list(SAMPLERS))
def test_float64_positions_stay_float64(x64, name):
    """Shapes and dtypes by abstract evaluation (no compilation): a float64 start gives
    float64 positions, log-densities and (dense) inverse mass matrices."""
    sampler = SAMPLERS[name](dense_mass=True)
    pos, info, (step_size, imm) = jax.eval_shape(
        _chain(sampler), jax.random.key(0), jnp.asarray([0.5, -1.0], jnp.float64)
    )
    assert pos.dtype == jnp.float64 and info.lp.dtype == jnp.float64
    assert step_size.dtype == jnp.float64
    assert imm.shape == (2, 2) and imm.dtype == jnp.float64


@pytest.mark.parametrize("name", list(SAMPLERS))
def test_bad_settings_and_starts_are_named(name):
    cls = SAMPLERS[name]
    with pytest.raises(ValueError, match=r"`target_accept` must be finite and in \(0, 1\)"):
        cls(target_accept=1.0)
    # ours, or the jaxtyping import hook's type-check error when the test run enables it
    with pytest.raises(TypeError, match="`dense_mass` must be a bool|parameter 'dense_mass'"):
        cls(dense_mass=1)
    target = inference.LogDensity(lambda p: logdensity(p["x"]), {"x": "real"}, shapes={"x": (2,)})
    with pytest.raises(ValueError, match=r"`init` .* shape \(num_chains, dim\) = \(2, 2\)"):
        inference.posterior(
            target, key=jax.random.key(0), sampler=cls(), num_chains=2, init=np.zeros((2, 3))
        )
