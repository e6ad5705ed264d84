"""Chain starts: 'prior_draw' is a draw from the prior, 'prior_median' the median of 15 prior
draws (numpyro's init_to_median), a dict of values is that point, for a `LogDensity` and for a
numpyro model alike.

References: the prior itself (x ~ Normal(3, 2), s ~ LogNormal(0, 1), so log s ~ Normal(0, 1) in
unconstrained space), and the exact distribution of the median of 15 i.i.d. normals: the 8th
order statistic, Phi^-1(B) with B ~ Beta(8, 8), whose variance is computed by quadrature. Means
and sds over N chains are checked within 4 Monte-Carlo standard errors.
"""

import logging

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest
from _params import marked_params
from scipy import integrate, stats

from jaxsci import inference
from jaxsci.inference._init import initial_positions

N = 400  # chains (starting points) per check
LOC, SCALE = 3.0, 2.0


def _log_density(params):
    return dist.Normal(LOC, SCALE).log_prob(params["x"]) + dist.LogNormal(0.0, 1.0).log_prob(
        params["s"]
    )


def _numpyro_model():
    numpyro.sample("x", dist.Normal(LOC, SCALE))
    numpyro.sample("s", dist.LogNormal(0.0, 1.0))


TARGETS = {
    "logdensity": inference.LogDensity(
        _log_density,
        {"x": "real", "s": "positive"},
        prior={"x": dist.Normal(LOC, SCALE), "s": dist.LogNormal(0.0, 1.0)},
    ),
    "numpyro": inference.NumpyroModel(_numpyro_model),
}


def _median15_sd() -> float:
    """sd of the median of 15 standard normals (8th order statistic), by quadrature."""
    beta = stats.beta(8, 8)
    var, _ = integrate.quad(lambda p: stats.norm.ppf(p) ** 2 * beta.pdf(p), 0.0, 1.0)
    return float(np.sqrt(var))


def _check_moments(u: np.ndarray, mean: float, sd: float) -> None:
    """Sample mean and sd of N values within 4 Monte-Carlo standard errors of a normal's."""
    n = u.shape[0]
    assert abs(u.mean() - mean) < 4 * sd / np.sqrt(n), (u.mean(), mean)
    assert abs(u.std(ddof=1) - sd) < 4 * sd / np.sqrt(2 * (n - 1)), (u.std(ddof=1), sd)


# the LogDensity row (5 s) in the slow tier, CI runs it (fast-tier budget)
@pytest.mark.parametrize("name", marked_params(list(TARGETS), {"logdensity"}))
def test_prior_starts(name):
    target = TARGETS[name]
    order = list(target.shapes)  # unconstrained coordinates: x as is, log s
    ix, js = order.index("x"), order.index("s")
    draw, lp, grad = initial_positions(target, jax.random.key(0), N, "prior_draw")
    assert draw.shape == (N, 2) and np.all(np.isfinite(lp)) and np.all(np.isfinite(grad))
    _check_moments(draw[:, ix], LOC, SCALE)
    _check_moments(draw[:, js], 0.0, 1.0)
    median, _, _ = initial_positions(target, jax.random.key(1), N, "prior_median")
    sd15 = _median15_sd()  # ~0.31 of the prior sd: dispersed, but much less than draws
    _check_moments(median[:, ix], LOC, SCALE * sd15)
    _check_moments(median[:, js], 0.0, sd15)
    # the log-density and gradient returned are the target's at those points
    value, g = jax.vmap(jax.value_and_grad(target.logdensity))(jnp.asarray(draw[:3]))
    np.testing.assert_allclose(lp[:3], np.asarray(value), rtol=1e-5)
    np.testing.assert_allclose(grad[:3], np.asarray(g), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", list(TARGETS))
def test_user_values_start_every_chain(name):
    target = TARGETS[name]
    u, _, _ = initial_positions(target, jax.random.key(0), 3, {"x": -1.5, "s": 2.0})
    expected = {"x": -1.5, "s": np.log(2.0)}
    for k, column in zip(target.shapes, u.T, strict=True):
        np.testing.assert_allclose(column, expected[k], rtol=1e-6)


@pytest.mark.slow
def test_map_init_finds_the_main_lotka_volterra_mode(caplog):
    """posteriordb's Lotka-Volterra posterior has a lower local mode (log p = -172.5) next to
    the main one (-132.6). With key 0, 3 of the 8 L-BFGS starts drawn from the prior end in
    the lower mode; the multi-start init says so and still starts every chain at a Laplace
    draw around the main mode (a draw's log p is the mode's minus chi2_8 / 2: -136.6 +- 2)."""
    from .test_lotka_volterra import TARGET

    with caplog.at_level(logging.WARNING, logger="jaxsci.inference"):
        u, lp, grad = initial_positions(TARGET, jax.random.key(0), 4, "map")
    assert "3 of 8 optimisation starts ended in lower modes (log p [-172.47" in caplog.text
    assert "vs -132.61" in caplog.text
    assert u.shape == (4, 8) and np.all(np.isfinite(grad))
    assert np.all(lp > -145) and np.all(lp < -132.6), lp
