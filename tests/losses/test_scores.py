"""Scores and norms against independent references: properscoring, closed forms, numpy loops."""

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import properscoring as ps
import pytest
from scipy import stats

from jaxsci import losses

# --------------------------------------------------------------------------------------- CRPS


@pytest.mark.parametrize("m, shape", [(1, (7,)), (2, (3, 4)), (9, (5,)), (40, ())])
def test_crps_ensemble_matches_properscoring(x64, m, shape):
    rng = np.random.default_rng(m)
    ens = rng.normal(size=(m, *shape)) * rng.uniform(0.5, 2.0)
    obs = rng.normal(size=shape)
    ours = losses.crps_ensemble(jnp.asarray(ens), jnp.asarray(obs))
    # properscoring wants the ensemble on the last axis.
    ref = ps.crps_ensemble(obs, np.moveaxis(ens, 0, -1))
    np.testing.assert_allclose(np.asarray(ours), ref, rtol=1e-12, atol=1e-13)


def test_crps_with_ties_and_float32_matches_properscoring():
    rng = np.random.default_rng(1)
    ens = rng.integers(-2, 3, size=(6, 50)).astype(np.float32)  # many tied members
    obs = rng.integers(-2, 3, size=(50,)).astype(np.float32)
    ours = losses.crps_ensemble(ens, obs)
    ref = ps.crps_ensemble(obs.astype(float), ens.T.astype(float))
    np.testing.assert_allclose(np.asarray(ours), ref, rtol=1e-6, atol=1e-6)


def test_crps_gaussian_matches_properscoring(x64):
    rng = np.random.default_rng(2)
    mu, sig, y = rng.normal(size=20), rng.uniform(0.1, 3.0, 20), rng.normal(size=20) * 2
    np.testing.assert_allclose(
        np.asarray(losses.crps_gaussian(mu, sig, y)), ps.crps_gaussian(y, mu, sig), rtol=1e-12
    )


@jax.jit
def _three_scores(ens, y):
    """(standard, fair, almost fair alpha=0.95) CRPS, each (reps, *y.shape), for (reps, M, ...)."""
    return jax.vmap(
        lambda e: jnp.stack(
            [losses.crps_ensemble(e, y), losses.crps_fair(e, y), losses.crps_almost_fair(e, y)]
        ),
        out_axes=1,
    )(ens)


def test_fair_crps_unbiased_and_standard_bias(x64):
    # Members ~ N(mu, sigma^2), fixed observations y. E[fair CRPS] = CRPS(N(mu, sigma^2), y)
    # (closed form); the ordinary ensemble CRPS is off by E|X - X'|/(2M) = sigma/(sqrt(pi) M),
    # the almost-fair one by eps E|X - X'|/2 = eps sigma / sqrt(pi), eps = (1 - alpha)/M.
    # Each ensemble size is checked against the closed form within 4.5 Monte-Carlo
    # standard errors (20000 replicates).
    mu, sigma, reps = 0.3, 1.7, 20000
    y = jnp.linspace(-3.0, 4.0, 8)
    exact = np.asarray(losses.crps_gaussian(mu, sigma, y))
    rng = np.random.default_rng(0)
    for m in (2, 5, 20):
        ens = mu + sigma * rng.standard_normal((reps, m) + y.shape)
        vals = np.asarray(_three_scores(ens, y), dtype=np.float64)  # (3, reps, 8)
        mean = vals.mean(axis=1)
        mcse = vals.std(axis=1, ddof=1) / math.sqrt(reps)
        bias_std = sigma / (math.sqrt(math.pi) * m)
        bias_af = (1 - 0.95) / m * sigma / math.sqrt(math.pi)
        for row, bias in ((1, 0.0), (0, bias_std), (2, bias_af)):
            z = (mean[row] - (exact + bias)) / mcse[row]
            assert np.all(np.abs(z) < 4.5), (m, row, z)
        # The bias of the ordinary CRPS is resolved: it misses the closed form by > 6 MCSE.
        z_std = (mean[0] - exact) / mcse[0]
        assert np.all(z_std > 6), (m, z_std)


def test_standard_crps_bias_factor_for_perfect_gaussian_forecast(x64):
    # y ~ N(0, 1) and members ~ N(0, 1): E[CRPS] = 1/sqrt(pi) for the distribution, and
    # (1 + 1/M)/sqrt(pi) for the M-member ensemble's empirical CDF.
    reps, rng = 40000, np.random.default_rng(3)
    for m in (3, 10):
        y = rng.standard_normal(reps)
        ens = rng.standard_normal((m, reps))
        for fn, factor in ((losses.crps_ensemble, 1 + 1 / m), (losses.crps_fair, 1.0)):
            v = np.asarray(fn(ens, y)) * math.sqrt(math.pi)
            z = (v.mean() - factor) / (v.std(ddof=1) / math.sqrt(reps))
            assert abs(z) < 4.5, (m, fn.__name__, v.mean(), factor)


def test_almost_fair_interpolates(x64):
    rng = np.random.default_rng(4)
    ens, y = rng.normal(size=(7, 5)), rng.normal(size=5)
    fair, std = losses.crps_fair(ens, y), losses.crps_ensemble(ens, y)
    for alpha in (0.0, 0.3, 0.95, 1.0):
        np.testing.assert_allclose(
            losses.crps_almost_fair(ens, y, alpha), alpha * fair + (1 - alpha) * std, rtol=1e-12
        )


def test_crps_gradient_matches_finite_differences(x64):
    rng = np.random.default_rng(5)
    ens, y = jnp.asarray(rng.normal(size=(6, 3))), jnp.asarray(rng.normal(size=3))
    f = jax.jit(lambda e: jnp.sum(losses.crps_fair(e, y)))
    g = jax.grad(f)(ens)
    h = 1e-6
    fd = np.zeros(ens.shape)
    for idx in np.ndindex(ens.shape):
        d = jnp.zeros(ens.shape).at[idx].set(h)
        fd[idx] = (f(ens + d) - f(ens - d)) / (2 * h)
    np.testing.assert_allclose(np.asarray(g), fd, rtol=1e-6, atol=1e-8)


# ------------------------------------------------------------------------------ energy score


def _energy_numpy(ens, y, fair):
    m = ens.shape[0]
    flat, yf = ens.reshape(m, -1), y.reshape(-1)
    first = np.mean([np.linalg.norm(flat[i] - yf) for i in range(m)])
    pair = sum(np.linalg.norm(flat[i] - flat[j]) for i in range(m) for j in range(m))
    return first - pair / (2 * m * (m - 1) if fair else 2 * m * m)


@pytest.mark.parametrize("fair", [False, True])
@pytest.mark.parametrize("shape", [(4,), (3, 5)])
def test_energy_score_matches_numpy(x64, fair, shape):
    rng = np.random.default_rng(6)
    ens, y = rng.normal(size=(8, *shape)), rng.normal(size=shape)
    ours = float(losses.energy_score(jnp.asarray(ens), jnp.asarray(y), fair=fair))
    assert ours == pytest.approx(_energy_numpy(ens, y, fair), rel=1e-12)


def test_energy_score_in_one_dimension_is_the_crps(x64):
    rng = np.random.default_rng(7)
    ens, y = rng.normal(size=(9, 1)), rng.normal(size=(1,))
    assert float(losses.energy_score(ens, y)) == pytest.approx(
        float(ps.crps_ensemble(y[0], ens[:, 0])), rel=1e-12
    )


def test_energy_score_gradient_is_finite_with_tied_members():
    ens = jnp.ones((4, 3)).at[0].set(2.0)  # members 1..3 coincide: sqrt at 0 on the pairs
    g = jax.jit(jax.grad(lambda e: losses.energy_score(e, jnp.zeros(3), fair=True)))(ens)
    assert np.all(np.isfinite(np.asarray(g)))


# -------------------------------------------------------------------------- Gaussian NLL etc.


def test_gaussian_nll_matches_scipy(x64):
    rng = np.random.default_rng(8)
    mu, var, y = rng.normal(size=10), rng.uniform(0.1, 4, 10), rng.normal(size=10)
    np.testing.assert_allclose(
        np.asarray(losses.gaussian_nll(mu, var, y)),
        -stats.norm.logpdf(y, mu, np.sqrt(var)),
        rtol=1e-12,
    )


def test_relative_l2_definition(x64):
    rng = np.random.default_rng(9)
    p, t = rng.normal(size=(2, 16)), rng.normal(size=(2, 16))
    ref = np.sqrt(((p - t) ** 2).sum()) / np.sqrt((t**2).sum())
    assert float(losses.relative_l2(p, t)) == pytest.approx(ref, rel=1e-12)


# --------------------------------------------------------------------------- Sobolev norms


def _weight(kappa, s, seminorm):
    return kappa ** (2 * s) if seminorm else (1 + kappa**2) ** s


@pytest.mark.parametrize("s", [-1.0, -0.5, 0.0, 1.0, 2.5])
@pytest.mark.parametrize("seminorm", [False, True])
def test_sobolev_norm_of_sinusoids_1d(x64, s, seminorm):
    # u = c + sum_j a_j sin(2 pi m_j x / L + phi_j) on [0, L):
    # ||u||^2 = L [c^2 w(0) + sum_j a_j^2 / 2 w(kappa_j)], kappa_j = 2 pi m_j / L,
    # w = (1 + kappa^2)^s, or |kappa|^{2s} with w(0) = 0 for the seminorm.
    n, length = 64, 3.0
    x = np.arange(n) * length / n
    c, amps, modes, phases = 0.7, [1.0, -0.4, 0.25], [1, 5, 17], [0.3, 1.1, -2.0]
    terms = zip(amps, modes, phases, strict=True)
    u = c + sum(a * np.sin(2 * np.pi * m * x / length + p) for a, m, p in terms)
    kap = [2 * np.pi * m / length for m in modes]
    exact = length * (
        (0.0 if seminorm else c**2)
        + sum(a**2 / 2 * _weight(k, s, seminorm) for a, k in zip(amps, kap, strict=True))
    )
    ours = float(losses.sobolev_norm(u, s, length=length, seminorm=seminorm))
    assert ours == pytest.approx(math.sqrt(exact), rel=1e-10)


@pytest.mark.parametrize("s", [-1.0, 0.0, 1.5])
def test_sobolev_norm_of_sinusoids_2d_with_channels(x64, s):
    n, length = 32, 2 * np.pi
    x = np.arange(n) * length / n
    xx, yy = np.meshgrid(x, x, indexing="ij")
    # channel 0: a sin(3x + 2y), channel 1: b cos(5y) + d (a constant)
    a, b, d = 1.3, 0.6, -0.2
    u = np.stack([a * np.sin(3 * xx + 2 * yy), b * np.cos(5 * yy) + d])
    area = length**2
    exact = area * (a**2 / 2 * (1 + 13) ** s + b**2 / 2 * (1 + 25) ** s + d**2)
    ours = float(losses.sobolev_norm(u, s, length=length, spatial_dims=2))
    assert ours == pytest.approx(math.sqrt(exact), rel=1e-10)


def test_sobolev_norm_nyquist_and_odd_grids(x64):
    # The Nyquist mode of an even grid appears once; an odd grid has none.
    for n in (16, 15):
        x = np.arange(n) / n
        u = np.cos(2 * np.pi * (n // 2) * x)
        kappa = 2 * np.pi * (n // 2)
        energy = 1.0 if n % 2 == 0 else 0.5  # mean of cos^2 on the grid
        exact = energy * (1 + kappa**2) ** 1.0
        assert float(losses.sobolev_norm(u, 1.0)) ** 2 == pytest.approx(exact, rel=1e-10)


# ---------------------------------------------------------------------- shape errors by name


def test_shape_mismatches_name_the_arguments():
    msg = r"`ensemble` has shape \(5, 3\) and `obs` has shape \(4,\)"
    with pytest.raises(ValueError, match=msg):
        losses.crps_ensemble(jnp.zeros((5, 3)), jnp.zeros(4))
    with pytest.raises(ValueError, match="`ensemble` has 1 member"):
        losses.crps_fair(jnp.zeros((1, 3)), jnp.zeros(3))
    with pytest.raises(ValueError, match="`ensemble`.*`obs`"):
        losses.energy_score(jnp.zeros((4, 2, 2)), jnp.zeros((2, 3)))
    with pytest.raises(ValueError, match="`variance` has shape"):
        losses.gaussian_nll(jnp.zeros(3), jnp.ones(4), jnp.zeros(3))
    with pytest.raises(ValueError, match="`pred` has shape .* `target` has shape"):
        losses.relative_l2(jnp.zeros(3), jnp.zeros((3, 1)))
    with pytest.raises(ValueError, match=r"`alpha` must be finite and in \[0, 1\]"):
        losses.crps_almost_fair(jnp.zeros((3, 2)), jnp.zeros(2), alpha=1.5)
    with pytest.raises(ValueError, match="`spatial_dims`"):
        losses.sobolev_norm(jnp.zeros(4), 1.0, spatial_dims=2)


def test_sobolev_order_can_be_swept_with_vmap(x64):
    """A JAX-array order s (traced under vmap) gives the norms of the NumPy-constant path,
    and `SobolevLoss.s` is an array field, so a vmap over losses sweeps it."""
    rng = np.random.default_rng(3)
    u = jnp.asarray(rng.normal(size=(2, 12, 10)))
    orders = jnp.asarray([-1.0, 0.0, 0.5, 2.0])
    for seminorm in (False, True):
        swept = jax.vmap(
            lambda s, seminorm=seminorm: losses.sobolev_norm(
                u, s, length=3.0, spatial_dims=2, seminorm=seminorm
            )
        )(orders)
        ref = [
            float(losses.sobolev_norm(u, float(s), length=3.0, spatial_dims=2, seminorm=seminorm))
            for s in orders
        ]
        np.testing.assert_allclose(np.asarray(swept), ref, rtol=1e-12)
    sweep = eqx.filter_vmap(lambda s: losses.SobolevLoss(s, length=3.0, spatial_dims=2))(orders)
    norms = eqx.filter_vmap(lambda loss: loss.norm(u[0]))(sweep)
    np.testing.assert_allclose(
        np.asarray(norms),
        [float(losses.sobolev_norm(u[0], float(s), length=3.0, spatial_dims=2)) for s in orders],
        rtol=1e-12,
    )
