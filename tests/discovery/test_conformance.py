"""Conformance of every sparse regression: the result contract (shapes, exact zeros and
zero covariance off the selected set, a symmetric positive semi-definite covariance),
jit == eager, vmap over targets, and one trace for new values of the same shapes."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _params import marked_params

from jaxsci.discovery import RVM, STLSQ, HorseshoeRegression, normal_equations

REGRESSIONS = {
    "RVM": RVM(),
    "STLSQ": STLSQ(),
    "Horseshoe": HorseshoeRegression(num_warmup=50, num_samples=50),
}
# NUTS compiles for tens of seconds: the horseshoe's contract runs in the slow tier
CONTRACT = [pytest.param(n, marks=pytest.mark.slow) if n == "Horseshoe" else n for n in REGRESSIONS]
JITTABLE = [n for n, r in REGRESSIONS.items() if r.jittable]


def _data(seed=0, n=120, m=6):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, m)) * np.logspace(-1, 1, m)
    w = np.zeros(m)
    w[[0, 3]] = [1.5, -0.2]
    y = x @ w + 0.05 * rng.normal(size=n)
    return jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.float32)


@pytest.mark.parametrize("name", CONTRACT)
def test_result_contract(name):
    x, y = _data()
    fit = REGRESSIONS[name].fit(x, y, key=jax.random.key(0))
    m = x.shape[1]
    assert fit.coefficients.shape == (m,) and fit.active.shape == (m,)
    assert fit.covariance.shape == (m, m) and fit.precisions.shape == (m,)
    active = np.asarray(fit.active)
    assert active[0] and active[3]
    assert np.all(np.asarray(fit.coefficients)[~active] == 0)
    cov = np.asarray(fit.covariance)
    assert np.all(cov[~active] == 0) and np.all(cov[:, ~active] == 0)
    np.testing.assert_allclose(cov, cov.T, rtol=1e-5, atol=1e-12)
    assert np.linalg.eigvalsh(cov).min() >= -1e-6 * np.abs(cov).max()
    np.testing.assert_allclose(fit.std, np.sqrt(np.clip(np.diag(cov), 0, None)), rtol=1e-6)
    assert float(fit.noise_variance) > 0


@pytest.mark.parametrize("name", marked_params(JITTABLE, {"RVM"}))
def test_jit_vmap_and_a_single_trace(name):
    regression = REGRESSIONS[name]
    traces = []

    @eqx.filter_jit
    def fit(reg, a, b):
        traces.append(None)
        return reg.fit_normal(normal_equations(a, b))

    results = []
    for seed in range(3):
        x, y = _data(seed)
        results.append(fit(regression, x, y))
    assert len(traces) == 1
    eager = regression.fit(*_data(0))
    np.testing.assert_array_equal(eager.active, results[0].active)
    np.testing.assert_array_less(
        np.abs(eager.coefficients - results[0].coefficients), 0.05 * eager.std + 1e-12
    )
    x, _ = _data(0)
    ys = jnp.stack([_data(s)[1] for s in range(3)])
    batch = jax.vmap(lambda b: regression.fit_normal(normal_equations(x, b)))(ys)
    assert batch.coefficients.shape == (3, x.shape[1])
    np.testing.assert_array_equal(batch.active[0], eager.active)
