"""Conformance suite over every loss in `jaxsci.losses` (and the diffusion training losses):
the `loss(model, batch, *, key) -> (scalar, aux)` contract, jit == no-jit, vmap over
independent batches == a Python loop, finite parameter gradients that agree with central
finite differences (float64), dtype preserved (float32 in -> float32 out, float64 under x64),
and a badly shaped batch rejected with an error that names it."""

import dataclasses
import functools
from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxsci import diffusion, losses


class Affine(eqx.Module):
    """u -> a * u + b, elementwise (a learnable one-step model)."""

    a: jax.Array
    b: jax.Array

    def __call__(self, u):
        return self.a * u + self.b


class Sampler(eqx.Module):
    """x -> a * x + s * N(0, 1): a generative model (one member per call)."""

    a: jax.Array
    s: jax.Array

    def __call__(self, x, *, key):
        return self.a * x + self.s * jax.random.normal(key, x.shape, x.dtype)


class MeanLogVar(eqx.Module):
    a: jax.Array
    v: jax.Array

    def __call__(self, x):
        return self.a * x, self.v * jnp.ones_like(x)


class Field(eqx.Module):
    """u(x, t) = a sin(x) exp(-c t): a PINN field of one point (x, t)."""

    a: jax.Array
    c: jax.Array

    def __call__(self, p):
        return self.a * jnp.sin(p[0]) * jnp.exp(-self.c * p[1])


class TimeModel(eqx.Module):
    """(t, x) -> w * x + b t: a time-conditioned network for the diffusion losses."""

    w: jax.Array
    b: jax.Array

    def __call__(self, t, x):
        return self.w * x + self.b * t


class TanhField(eqx.Module):
    """A tiny neural vector field f(t, y) = tanh(w y) + b for the neural-ODE losses."""

    w: jax.Array
    b: jax.Array

    def __call__(self, t, y, args=None):
        return jnp.tanh(self.w @ y) + self.b


def _tanh_field():
    return TanhField(np.array([[-0.5, 1.0], [-1.0, -0.3]]), np.array([0.1, -0.2]))


def _node_batch(rng, n):
    return rng.normal(size=(n, 2)), rng.normal(size=(n, 3, 2))


def _heat_residual(u, p):
    du = jax.grad(u)(p)
    d2 = jax.hessian(u)(p)[0, 0]
    return du[1] - d2


@dataclasses.dataclass(frozen=True)
class Case:
    loss: Callable[[], losses.AbstractLoss]
    model: Callable[[], eqx.Module]
    batch: Callable[[np.random.Generator, int], object]  # (rng, batch size) -> batch
    stochastic: bool = False  # needs a key
    bad_batch: Callable[[np.random.Generator], object] | None = None
    bad_name: str = "batch"
    # model fields documented as frozen (read through stop_gradient): gradient exactly zero
    frozen: tuple[str, ...] = ()
    # the float64 finite-difference gradient check in the slow tier (it compiles the loss
    # and its gradient several times: ~5-7 s for a diffrax solve or a U-Net)
    slow_gradient: bool = False
    # every numeric row (contract, vmap, gradient) in the slow tier; the bad-batch row and
    # the loss's own tests stay fast
    slow: bool = False


def _pair(shape_in, shape_out=None):
    def make(rng, n):
        x = rng.normal(size=(n, *shape_in))
        y = rng.normal(size=(n, *(shape_out or shape_in)))
        return x, y

    return make


def _pair_bad(rng):
    return rng.normal(size=(3, 8)), rng.normal(size=(3, 5))


def _rollout_batch(rng, n):
    return rng.normal(size=(n, 8)), rng.normal(size=(n, 3, 8))


def _pinn_batch(rng, n):
    pts = np.stack([rng.uniform(0, np.pi, (n, 3)), np.tile([0.1, 0.2, 0.3], (n, 1))], axis=-1)
    bnd = rng.uniform(0, 1, (n, 2))
    return {
        "collocation": pts,
        "boundary": (bnd, np.zeros(n)),
        "initial": (bnd * [np.pi, 0.0], np.sin(bnd[:, 0] * np.pi)),
    }


class LinearClosure(eqx.Module):
    """x -> a x + b, elementwise: a closure of a hybrid model."""

    a: jax.Array
    b: jax.Array

    def __call__(self, x):
        return self.a * x + self.b


def _l96_hybrid():
    from jaxsci.dynamics import Lorenz96
    from jaxsci.nn import HybridVectorField

    return HybridVectorField(Lorenz96(6, 8.0), LinearClosure(-0.1, 0.2))


def _filter_loss():
    from jaxsci import filters

    obs_op = filters.IndexObservation(6, indices=[0, 2, 4], noise_cov=1.0)
    return losses.FilterLikelihoodLoss(
        obs_op, filters.Inflation(filters.DEnKF(), 1.05), 0.05, burn_in=1
    )


def _windows_batch(rng, n):
    """n windows: 5-member ensembles around a state near 8, and 3 cycles of 3 observations."""
    return 8.0 + rng.normal(size=(n, 5, 6)), 8.0 + 2.0 * rng.normal(size=(n, 3, 3))


def _windows_bad(rng):
    return rng.normal(size=(2, 5, 6)), rng.normal(size=(3, 3, 3))


def _refiner():
    """A PDE-Refiner with K = 2 over the time-conditioned toy network (first channel used)."""
    from jaxsci.nn import PDERefiner

    return PDERefiner(TimeModel(0.6, 0.2), 1, 2, 0.01)


def _data_batch(rng, n):
    return rng.normal(size=(n, 3))


CASES = {
    "MSELoss": Case(losses.MSELoss, lambda: Affine(1.5, 0.1), _pair((8,)), bad_batch=_pair_bad),
    "RelativeL2Loss": Case(
        losses.RelativeL2Loss, lambda: Affine(1.5, 0.1), _pair((8,)), bad_batch=_pair_bad
    ),
    "SobolevLoss": Case(
        lambda: losses.SobolevLoss(-1.0, length=2.0),
        lambda: Affine(1.5, 0.1),
        _pair((1, 8)),
        bad_batch=_pair_bad,
    ),
    "RolloutLoss": Case(
        lambda: losses.RolloutLoss(3),
        lambda: Affine(0.9, 0.05),
        _rollout_batch,
        bad_batch=_pair_bad,
    ),
    # constant steps (dt0): the step sizes do not move with the parameters, so central
    # differences see the same discretisation (adaptive steps carry no gradient, as in diffrax)
    "SolverHeuristicLoss": Case(
        lambda: losses.SolverHeuristicLoss([0.0, 0.2, 0.4], 0.5, 0.1, dt0=0.1, max_steps=8),
        _tanh_field,
        _node_batch,
        bad_batch=_pair_bad,
        slow=True,  # each row compiles a diffrax solve (and its adjoint): 3-7 s
    ),
    "LocalRegularisedLoss": Case(
        lambda: losses.LocalRegularisedLoss(
            [0.0, 0.2, 0.4], 0.5, 0.1, dt0=0.1, max_steps=8, detach_state=False
        ),
        _tanh_field,
        _node_batch,
        stochastic=True,
        bad_batch=_pair_bad,
        slow=True,  # each row compiles a diffrax solve (and its adjoint): 3-7 s
    ),
    "PDERefinerLoss": Case(
        losses.PDERefinerLoss,
        _refiner,
        _pair((1, 8)),
        stochastic=True,
        bad_batch=_pair_bad,
        frozen=("min_noise_std",),  # a fixed hyperparameter (read through stop_gradient)
        slow_gradient=True,  # a U-Net's float64 gradients compiled several times: ~5 s
    ),
    "FilterLikelihoodLoss": Case(
        _filter_loss,
        _l96_hybrid,
        _windows_batch,
        stochastic=True,
        bad_batch=_windows_bad,
        slow_gradient=True,
    ),
    "CRPSLoss": Case(
        lambda: losses.CRPSLoss(4),
        lambda: Sampler(1.2, 0.5),
        _pair((6,)),
        stochastic=True,
        bad_batch=_pair_bad,
    ),
    "StochasticRegressionLoss": Case(  # a noisy network (a dropout net's stand-in)
        lambda: losses.StochasticRegressionLoss(losses.MSELoss()),
        lambda: Sampler(1.2, 0.5),
        _pair((6,)),
        stochastic=True,
        bad_batch=_pair_bad,
    ),
    "EnergyScoreLoss": Case(
        lambda: losses.EnergyScoreLoss(4),
        lambda: Sampler(1.2, 0.5),
        _pair((6,)),
        stochastic=True,
        bad_batch=_pair_bad,
        slow=True,  # 16 s of rows under xdist; CRPSLoss, its scalar sibling, stays fast
    ),
    "GaussianNLLLoss": Case(
        losses.GaussianNLLLoss, lambda: MeanLogVar(1.3, 0.2), _pair((6,)), bad_batch=_pair_bad
    ),
    "PINNLoss": Case(
        lambda: losses.PINNLoss(_heat_residual, causal_epsilon=0.0),
        lambda: Field(0.8, 0.7),
        _pinn_batch,
        bad_batch=lambda rng: {"collocation": rng.normal(size=(4, 2))},
        bad_name="collocation",
    ),
    "DenoisingScoreMatching": Case(
        lambda: diffusion.DenoisingScoreMatching(diffusion.VPLinear()),
        lambda: TimeModel(0.6, 0.2),
        _data_batch,
        stochastic=True,
        bad_batch=lambda rng: rng.normal(size=(0, 3)),
    ),
    "FlowMatching": Case(
        diffusion.FlowMatching,
        lambda: TimeModel(0.6, 0.2),
        _data_batch,
        stochastic=True,
        bad_batch=lambda rng: rng.normal(size=(0, 3)),
    ),
    "InterpolantVelocityLoss": Case(
        lambda: diffusion.InterpolantVelocityLoss(
            diffusion.StochasticInterpolant(noise=diffusion.BrownianBridgeNoise())
        ),
        lambda: TimeModel(0.6, 0.2),
        _pair((3,)),
        stochastic=True,
        bad_batch=_pair_bad,
    ),
    "InterpolantDenoiserLoss": Case(
        lambda: diffusion.InterpolantDenoiserLoss(
            diffusion.StochasticInterpolant(noise=diffusion.BrownianBridgeNoise())
        ),
        lambda: TimeModel(0.6, 0.2),
        _pair((3,)),
        stochastic=True,
        bad_batch=_pair_bad,
        slow=True,  # InterpolantVelocityLoss runs the same interpolant in the fast tier
    ),
    "PFGMPPLoss": Case(
        lambda: diffusion.PFGMPPLoss(diffusion.PFGMPPKernel(4.0, 3)),
        lambda: TimeModel(0.6, 0.2),
        _data_batch,
        stochastic=True,
        bad_batch=lambda rng: rng.normal(size=(4, 5)),
        slow=True,  # 16 s of rows under xdist (its kernel sampler is tested in test_pfgmpp)
    ),
    "LightSBLoss": Case(
        diffusion.LightSBLoss,
        lambda: diffusion.LightSB(np.array([[0.5, -0.2, 0.1], [-0.4, 0.3, 0.2]]), 0.5),
        _pair((3,)),
        bad_batch=_pair_bad,
        frozen=("epsilon",),  # the entropic regularisation is the problem, not a parameter
        slow_gradient=True,
    ),
}
NAMES = list(CASES)


def _tiered(gradient: bool = False) -> list:
    """NAMES with the cases documented as slow (for this check) marked `slow`."""
    return [
        pytest.param(n, marks=pytest.mark.slow)
        if CASES[n].slow or (gradient and CASES[n].slow_gradient)
        else n
        for n in NAMES
    ]


def _cast(tree, dtype):
    return jax.tree_util.tree_map(
        lambda x: jnp.asarray(x, dtype) if np.issubdtype(np.asarray(x).dtype, np.floating) else x,
        tree,
    )


def _model(name, dtype):
    model = CASES[name].model()
    return jax.tree_util.tree_map(lambda x: jnp.asarray(x, dtype), model)


def _batch(name, dtype, seed=0, n=4):
    return _cast(CASES[name].batch(np.random.default_rng(seed), n), dtype)


def _key(name):
    return jax.random.key(3) if CASES[name].stochastic else None


@functools.cache
def _jitted():
    @eqx.filter_jit
    def f(loss, model, batch, key):
        return loss(model, batch, key=key)

    return f


def test_registry_covers_every_loss():
    """Every concrete AbstractLoss exported by jaxsci.losses and jaxsci.diffusion has a case."""
    exported = set()
    for module in (losses, diffusion):
        for name in dir(module):
            obj = getattr(module, name)
            if (
                isinstance(obj, type)
                and issubclass(obj, losses.AbstractLoss)
                and not name.startswith("Abstract")
            ):
                exported.add(name)
    assert exported == set(NAMES)


@pytest.mark.parametrize("name", _tiered())
def test_contract_jit_and_dtype(name):
    loss, model, batch, key = CASES[name].loss(), _model(name, jnp.float32), None, _key(name)
    batch = _batch(name, jnp.float32)
    value, aux = loss(model, batch, key=key)
    assert isinstance(loss, losses.AbstractLoss)
    assert jnp.shape(value) == () and value.dtype == jnp.float32
    assert bool(jnp.isfinite(value))
    assert isinstance(aux, dict) and all(jnp.shape(v) == () for v in aux.values())
    jitted, jaux = _jitted()(loss, model, batch, key)
    np.testing.assert_allclose(jitted, value, rtol=2e-5, atol=1e-6)
    assert set(jaux) == set(aux)


@pytest.mark.parametrize("name", _tiered())
def test_vmap_over_batches_equals_loop(name):
    loss, model, key = CASES[name].loss(), _model(name, jnp.float32), _key(name)
    batches = [_batch(name, jnp.float32, seed=s) for s in range(3)]
    stacked = jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *batches)
    one = _jitted()
    if key is None:
        got = jax.jit(jax.vmap(lambda b: loss(model, b)[0]))(stacked)
        want = [one(loss, model, b, None)[0] for b in batches]
    else:
        keys = jax.random.split(key, 3)
        got = jax.jit(jax.vmap(lambda b, k: loss(model, b, key=k)[0]))(stacked, keys)
        want = [one(loss, model, b, k)[0] for b, k in zip(batches, keys, strict=True)]
    np.testing.assert_allclose(got, np.stack(want), rtol=2e-5, atol=1e-6)


@pytest.mark.parametrize("name", _tiered(gradient=True))
def test_gradient_matches_finite_differences_float64(name, x64):
    """d loss / d theta for every parameter against central differences (float64, fixed key)."""
    loss, model, key = CASES[name].loss(), _model(name, jnp.float64), _key(name)
    batch = _batch(name, jnp.float64)

    @eqx.filter_jit
    def f(m):
        return loss(m, batch, key=key)[0]

    assert f(model).dtype == jnp.float64
    grads = eqx.filter_jit(eqx.filter_grad(f))(model)
    paths, treedef = jax.tree_util.tree_flatten_with_path(model)
    leaves = [leaf for _, leaf in paths]
    g_leaves = jax.tree_util.tree_leaves(grads)
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in g_leaves)
    frozen = [jax.tree_util.keystr(path, simple=True) in CASES[name].frozen for path, _ in paths]
    assert sum(frozen) == len(CASES[name].frozen)
    h = 1e-6
    rng = np.random.default_rng(1)
    for i, leaf in enumerate(leaves):
        if frozen[i]:
            assert not np.any(np.asarray(g_leaves[i]))
            continue
        # the derivative along a random direction of the leaf (a scalar leaf: its derivative)
        v = rng.normal(size=jnp.shape(leaf)) if jnp.ndim(leaf) else 1.0
        up = list(leaves)
        down = list(leaves)
        up[i], down[i] = leaf + h * v, leaf - h * v
        fd = (
            f(jax.tree_util.tree_unflatten(treedef, up))
            - f(jax.tree_util.tree_unflatten(treedef, down))
        ) / (2 * h)
        np.testing.assert_allclose(np.sum(g_leaves[i] * v), fd, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("name", NAMES)
def test_bad_batch_is_rejected_by_name(name):
    case = CASES[name]
    loss, model = case.loss(), _model(name, jnp.float32)
    bad = _cast(case.bad_batch(np.random.default_rng(0)), jnp.float32)
    with pytest.raises((ValueError, TypeError), match=case.bad_name):
        loss(model, bad, key=_key(name))
