"""Conformance suite over every diffusion sampler: one registry, the same checks for each.

The registry holds every name of the pipelines' sampler registry (`SAMPLERS`) plus `DPS`
(through `sample`) and `TDS` (through `smc_sample`); `test_registry_covers_every_sampler`
keeps it complete. For each: the init/step contract (typed NamedTuple info with an integer
`nfe`, the index advances, the state keeps shape and dtype); jit == no-jit (the first
step, run op by op in Python under `jax.disable_jit` from the initial state, equals the
jitted driver's trajectory; for the weighted samplers (TDS, FKCorrector, EnsemblePosterior,
which keep no trajectory) the jitted step); vmap over initial
noises and keys == a loop of single calls; finite, non-zero gradients with respect to x_T
and to a model parameter; dtype preserved (float32 in, float32 out; float64 in, float64
out under x64); bad shapes rejected with an error naming the argument.

Cheap by construction: d = 2, the exact-score `GaussianMixture` (times a parameter `scale`
for the model gradient), a 3-step grid, and two compiled programs per sampler, cached so
that the tests share them: the single run with its gradient, and the vmapped run. The
float64 check traces without compiling (`jax.eval_shape`).
"""

import dataclasses
import functools
from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _params import marked_params

import jaxsci.diffusion as jd
from jaxsci.observations import LinearObservation
from jaxsci.pipelines._diffusion_names import SAMPLERS, make_sampler

STEPS = 3  # the fewest steps the third-order multistep samplers accept
BATCH = 2  # vmapped runs
PARTICLES = 4  # TDS: particles per SMC run
OBS = LinearObservation(np.asarray([[1.0, 1.0]]), noise_std=0.5)
Y_OBS = np.asarray([0.3])


class ScaledMixtureEps(eqx.Module):
    """scale * the exact eps of a Gaussian mixture under `schedule`: an exact-score model
    with a differentiable parameter."""

    mixture: jd.GaussianMixture
    schedule: jd.AbstractSchedule
    scale: jax.Array

    def __call__(self, t, x):
        sch = self.schedule
        return self.scale * self.mixture.eps(x, sch.alpha(t), sch.sigma(t)).astype(x.dtype)


@dataclasses.dataclass(frozen=True)
class Case:
    make: Callable[[], object]
    smc: bool = False  # TDS: weighted particles through `smc_sample`
    driver: str = "smc_sample"  # the weighted samplers' driver (FK: fk_sample, ...)


CASES = {name: Case(lambda name=name: make_sampler(name)) for name in SAMPLERS}
# DPM-Solver-v3 runs on statistics (any table covering the grid's log-SNRs; nonzero s and b
# so every term of its step is exercised).
_V3_LAM = jnp.linspace(-10.5, 10.5, 5, dtype=jnp.float32)
_V3_ONE = jnp.ones((5, 2), jnp.float32)
_V3_STATS = jd.ModelStatistics(_V3_LAM, 0.6 * _V3_ONE, -0.3 * _V3_ONE, 0.1 * _V3_ONE)
CASES["dpm_solver_v3"] = Case(lambda: make_sampler("dpm_solver_v3", statistics=_V3_STATS))
CASES["dps"] = Case(lambda: jd.DPS(OBS, Y_OBS, zeta=0.5))
CASES["tds"] = Case(lambda: jd.TDS(OBS, Y_OBS, twist=jd.PiGDMTwist(2.0)), smc=True)
CASES["fk_corrector"] = Case(
    lambda: jd.FKCorrector(jd.AnnealedTarget(2.0)), smc=True, driver="fk_sample"
)
CASES["ensemble_posterior"] = Case(
    lambda: jd.EnsemblePosterior(OBS, Y_OBS), smc=True, driver="ensemble_posterior_sample"
)
WEIGHTED = {"tds", "fk_corrector", "ensemble_posterior"}
# higher-order variants whose contract and vmap rows run in the slow tier (CI runs both
# tiers; 8-18 s each under xdist): the fast tier keeps the first-order member of each family
# (deis_1, dpm_solver_1/2, dpmpp_2m, unipc_1/3, ddim, ...)
HIGHER_ORDER = {
    "deis_2",
    "deis_3",
    "dpm_solver_3",
    "dpmpp_2s",
    "dpmpp_3m",
    "sde_dpmpp_2m",
    "unipc_2",
}
NAMES = list(CASES)


def named(arg: str) -> str:
    """A message naming `arg`: ours (`arg`), or the jaxtyping import hook's type-check error
    ("parameter 'arg'", a TypeError) when the test run enables it."""
    return rf"`{arg}`|parameter '{arg}'"


SCHEDULE = jd.VPLinear()
GRID = np.asarray(jd.time_grid(SCHEDULE, STEPS))


def _model(dtype):
    mix = jd.GaussianMixture([0.3, 0.7], [[-1.0, 0.5], [1.0, -0.5]], [[0.25, 0.25], [0.3, 0.2]])
    mix = jax.tree_util.tree_map(lambda a: jnp.asarray(a, dtype), mix)
    return ScaledMixtureEps(mix, SCHEDULE, jnp.asarray(1.0, dtype))


MODEL32 = _model(jnp.float32)


def _inputs(name, dtype=np.float32):
    """BATCH initial states (TDS: BATCH populations of PARTICLES) and keys."""
    shape = (BATCH, PARTICLES, 2) if CASES[name].smc else (BATCH, 2)
    x = np.asarray(jax.random.normal(jax.random.key(1), shape), dtype)
    return x, jax.random.split(jax.random.key(7), BATCH)


def _forward(name, x_T, model, key):
    """One run: (output, trajectory or TDS weights, nfe). The output is the sample (TDS:
    its particles)."""
    grid = jnp.asarray(GRID, x_T.dtype)
    if CASES[name].smc:
        driver = getattr(jd, CASES[name].driver)
        res = driver(CASES[name].make(), model, SCHEDULE, grid, PARTICLES, key=key, x_T=x_T)
        return res.particles, res.weights(), res.nfe
    res = jd.sample(CASES[name].make(), model, SCHEDULE, grid, x_T, key=key, save_trajectory=True)
    return res.x, res.trajectory, res.nfe


@functools.cache
def _single(name):
    """The jitted single run with its gradient w.r.t. (x_T, model) of sum(output^2)."""

    def loss(diff, key):
        x_T, model = diff
        out, extra, nfe = _forward(name, x_T, model, key)
        return jnp.sum(out**2), (out, extra, nfe)

    return eqx.filter_jit(eqx.filter_value_and_grad(loss, has_aux=True))


@functools.cache
def _batched(name):
    """The jitted run vmapped over initial states and keys."""
    return eqx.filter_jit(
        eqx.filter_vmap(lambda x, m, k: _forward(name, x, m, k)[0], in_axes=(0, None, 0))
    )


def test_registry_covers_every_sampler():
    """Every concrete sampler class exported by jaxsci.diffusion has a case."""
    exported = {
        obj
        for obj in vars(jd).values()
        if isinstance(obj, type)
        and (
            issubclass(obj, jd.AbstractSampler)
            or obj in (jd.TDS, jd.FKCorrector, jd.EnsemblePosterior)
        )
        and not obj.__name__.startswith("Abstract")
    }
    covered = {type(case.make()) for case in CASES.values()}
    assert exported == covered, exported ^ covered


def _step_keys(name, key):
    """The per-step keys the drivers derive from `key` (`smc_sample` first splits off the
    key of its initial draw)."""
    if CASES[name].smc:
        key = jax.random.split(key)[1]
    return jax.random.split(key, STEPS)


@pytest.mark.parametrize(
    "name",
    marked_params(
        NAMES, {"probability_flow", "dc_solver", "dpm_solver_v3"} | WEIGHTED | HIGHER_ORDER
    ),
)
def test_contract_jit_equals_no_jit_and_gradients(name):
    xs, keys = _inputs(name)
    x_T, key = xs[0], keys[0]
    (value, (out, extra, nfe)), (g_x, g_model) = _single(name)((x_T, MODEL32), key)
    assert out.shape == x_T.shape and out.dtype == jnp.float32
    assert np.all(np.isfinite(out)) and np.isfinite(value)
    assert g_x.shape == x_T.shape and np.all(np.isfinite(g_x)) and np.any(g_x != 0)
    assert np.isfinite(g_model.scale) and g_model.scale != 0

    # The contract, and the first step op by op in Python (init is jitted: DEIS's
    # coefficient table and TDS's twists are thousands of small operations).
    sampler, den = CASES[name].make(), jd.Denoiser(MODEL32, SCHEDULE)
    if name == "fk_corrector":  # one denoiser per model of the target
        den = (den,)
    state = eqx.filter_jit(sampler.init)(den, jnp.asarray(GRID, jnp.float32), jnp.asarray(x_T))
    assert int(state.i) == 0 and state.x.shape == x_T.shape
    k = _step_keys(name, key)[0]
    with jax.disable_jit():
        new, info = sampler.step(k, state, den)
    assert type(new) is type(state) and int(new.i) == 1
    assert new.x.shape == x_T.shape and new.x.dtype == jnp.float32
    assert isinstance(info, tuple) and hasattr(type(info), "_fields")  # a NamedTuple
    assert jnp.shape(info.nfe) == () and jnp.issubdtype(info.nfe.dtype, jnp.integer)
    if CASES[name].smc:
        jitted, _ = eqx.filter_jit(sampler.step)(k, state, den)
        np.testing.assert_allclose(jitted.x, new.x, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(jitted.log_weights, new.log_weights, rtol=1e-4, atol=1e-5)
        assert int(nfe) == STEPS + 1  # and the initial twist
    else:
        np.testing.assert_allclose(extra[1], new.x, rtol=1e-4, atol=1e-5)
        assert int(nfe) >= STEPS
    if name == "ddim":  # denoise_final adds one evaluation
        final = jd.sample(sampler, MODEL32, SCHEDULE, GRID, x_T, denoise_final=True)
        assert int(final.nfe) == int(nfe) + 1


@pytest.mark.parametrize(
    "name",
    marked_params(
        NAMES, {"probability_flow", "dc_solver", "dpm_solver_v3"} | WEIGHTED | HIGHER_ORDER
    ),
)
def test_vmap_equals_loop(name):
    xs, keys = _inputs(name)
    batched = _batched(name)(xs, MODEL32, keys)
    for x, k, b in zip(xs, keys, batched, strict=True):
        single = _single(name)((x, MODEL32), k)[0][1][0]
        np.testing.assert_allclose(b, single, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", NAMES)
def test_float64_preserved(name, x64):
    xs, keys = _inputs(name, np.float64)
    out = jax.eval_shape(lambda x, k: _forward(name, x, _model(jnp.float64), k), xs[0], keys[0])
    assert out[0].dtype == jnp.float64 and out[1].dtype == jnp.float64


@pytest.mark.parametrize("name", NAMES)
def test_bad_shapes_rejected_by_name(name):
    xs, keys = _inputs(name)
    x_T, key = xs[0], keys[0]
    grid = jnp.asarray(GRID, jnp.float32)
    sampler = CASES[name].make()
    # Our ValueError, or the jaxtyping hook's TypeError (naming the same argument) when the
    # test run enables it: it checks the annotated shapes first.
    bad_shape = (ValueError, TypeError)
    if CASES[name].smc:
        driver = getattr(jd, CASES[name].driver)
        kw = {"dim": 2} if name == "fk_corrector" else {}
        with pytest.raises(ValueError, match=r"`x_T` must have shape \(num_particles, d\)"):
            driver(sampler, MODEL32, SCHEDULE, grid, PARTICLES, key=key, x_T=x_T[:, :1], **kw)
        with pytest.raises(bad_shape, match=named("grid")):
            driver(sampler, MODEL32, SCHEDULE, grid[None], PARTICLES, key=key, **kw)
        return
    with pytest.raises(bad_shape, match=named("grid")):
        jd.sample(sampler, MODEL32, SCHEDULE, jnp.stack([grid, grid]), x_T, key=key)
    with pytest.raises(TypeError, match="`x_T` must be a floating array"):
        jd.sample(sampler, MODEL32, SCHEDULE, grid, x_T.astype(np.int32), key=key)
    if name == "dps":  # DPS acts on x in R^d; the others on one example of any shape
        with pytest.raises(ValueError, match=r"`x_T` has shape \(3,\).*dimension 2"):
            jd.sample(sampler, MODEL32, SCHEDULE, grid, np.zeros(3, np.float32), key=key)
    with pytest.raises(ValueError, match=r"model returned shape \(3,\) for `x_T` of shape \(2,\)"):
        jd.sample(sampler, lambda t, x: jnp.zeros(3), SCHEDULE, grid, x_T, key=key)


@pytest.mark.parametrize("name", ["fk_corrector", "ensemble_posterior"])
def test_weighted_samplers_sweep_smc_options_without_recompiling(name):
    # ess_threshold and collapse_ess are array fields: a new value is a new input to the
    # compiled run, not a new compilation (under eqx.filter_jit, Python floats are static).
    traces = []

    @eqx.filter_jit
    def run(sampler, x_T, key):
        traces.append(1)
        driver = getattr(jd, CASES[name].driver)
        return driver(sampler, MODEL32, SCHEDULE, GRID, PARTICLES, key=key, x_T=x_T).particles

    xs, keys = _inputs(name)
    for threshold, collapse in ((0.5, 2.0), (0.9, 1.0)):
        if name == "fk_corrector":
            sampler = jd.FKCorrector(
                jd.AnnealedTarget(2.0), ess_threshold=threshold, collapse_ess=collapse
            )
        else:
            sampler = jd.EnsemblePosterior(
                OBS, Y_OBS, ess_threshold=threshold, collapse_ess=collapse
            )
        run(sampler, xs[0], keys[0])
    assert len(traces) == 1
