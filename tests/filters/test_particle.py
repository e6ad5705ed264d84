"""The bootstrap particle filter (statistical tests, fixed seeds); the resampling schemes and the
SMC step it is built on are tested in tests/smc."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxsci import filters as F, smc

from ._linear import exact, linear_flow, make_problem, sample_ensemble


@pytest.mark.slow
@pytest.mark.parametrize(
    "pf",
    [
        F.BootstrapPF(F.systematic, ess_threshold=0.5),
        F.BootstrapPF(F.multinomial, 1.0),
        F.BootstrapPF(F.SoftResampler(F.stratified, 0.5), 1.0),
    ],
    ids=["systematic-adaptive", "multinomial-always", "soft-always"],
)
def test_log_likelihood_estimate_is_unbiased(x64, pf):
    """The particle estimate Z_hat of p(y_{1:K}) is unbiased (its log is not: E log Z_hat <
    log Z by Jensen). Test E[Z_hat / Z] = 1 with Z the exact Kalman likelihood, using the
    Monte-Carlo standard error of the ratio over 2000 independent runs; and check that the
    log estimate is biased low, by about var(log Z_hat) / 2 (delta method)."""
    obs_op, ys = make_problem(n_cycles=5, seed=3)
    q = 0.3 * np.eye(3)
    ll_exact = float(exact(ys, q).log_likelihood)
    chol_q = jnp.asarray(np.linalg.cholesky(q))
    n_particles, reps = 200, 2000

    def one(key):
        k0, k1 = jax.random.split(key)
        res = F.run_filter(
            k1,
            linear_flow,
            obs_op,
            pf,
            sample_ensemble(k0, n_particles),
            ys,
            dt=1.0,
            process_noise_chol=chol_q,
        )
        return jnp.sum(res.log_likelihood)

    ll_hat = np.asarray(jax.vmap(one)(jax.random.split(jax.random.key(5), reps)))
    ratio = np.exp(ll_hat - ll_exact)
    mcse = ratio.std(ddof=1) / np.sqrt(reps)
    assert abs(ratio.mean() - 1.0) < 4.0 * mcse, (ratio.mean(), mcse)
    assert mcse < 0.05  # the test has power: the estimator is not too noisy to say anything
    bias_log = ll_hat.mean() - ll_exact
    assert bias_log < 0
    np.testing.assert_allclose(bias_log, -0.5 * ll_hat.var(), rtol=0.5)


@pytest.mark.slow
def test_pf_tracks_lorenz63():
    """DAPPER's L63 particle filter setting (reg jitter, N=100) tracks the truth: rmse_a below
    the observation error, with resampling happening and ESS reported."""
    from jaxsci.dynamics import Lorenz63
    from jaxsci.integrate import Flow

    model = Lorenz63()
    flow = Flow(model, 0.01)
    obs_op = F.IndexObservation(3, noise_cov=2.0)
    x0 = jnp.array([1.509, -1.531, 25.46])
    pf = F.BootstrapPF(F.systematic, ess_threshold=0.5, reg=2.4)
    res = F.assimilate(
        jax.random.key(0),
        flow,
        obs_op,
        pf,
        x0,
        n_cycles=300,
        dt=0.05,
        ensemble_size=100,
        init_std=1.0,
        burn_in=3.0,
    )
    assert not bool(res.diverged)
    assert float(res.rmse_a_mean) < np.sqrt(2.0)
    # resampling fires exactly when ESS <= ess_threshold * N: it must have fired
    assert float(jnp.min(res.filter.ess)) <= 0.5 * 100
    assert bool(jnp.all(jnp.isfinite(res.filter.log_likelihood)))


@pytest.mark.parametrize(
    "rule, n_on_survivor",
    [(F.NoUniqueJitter(), 0), (F.KeepFirstCopyJitter(), 1), (F.JitterAll(), 0)],
    ids=["nuj", "keep_first", "all"],
)
@pytest.mark.slow  # 16-24 s under xdist; CI's slow tier runs it
def test_jitter_survives_degenerate_weights(rule, n_on_survivor):
    """Regression: when one particle holds all the weight, the weighted covariance is zero;
    DAPPER falls back to the unweighted covariance so the resampled copies are spread out
    again (otherwise a deterministic model never recovers). All N copies are of one particle:
    DAPPER's rule (`nuj`) and JitterAll move every copy; KeepFirstCopyJitter keeps one."""
    n, dim = 50, 3
    particles = jax.random.normal(jax.random.key(3), (n, dim))
    obs = F.IndexObservation(dim, noise_cov=1e-6)
    y = particles[7]  # the observation sits on particle 7: its weight is ~1, all others ~0
    pf = F.BootstrapPF(F.systematic, ess_threshold=1.0, reg=1.0, jitter_rule=rule)
    state = F.FilterState(particles, jnp.zeros(n))
    (new, log_w), info = pf.analysis(jax.random.key(4), state, y, obs)
    assert float(info.ess) < 1.0 + 1e-3 and bool(info.resampled)
    spread = jnp.std(new, axis=0)
    assert bool(jnp.all(spread > 0.1 * jnp.std(particles, axis=0)))
    on_survivor = jnp.all(new == particles[7], axis=1)
    assert int(on_survivor.sum()) == n_on_survivor
    assert bool(jnp.allclose(jax.nn.softmax(log_w), 1.0 / n))


#: A hand-built draw (sorted, as systematic resampling returns it): parent 0 three times,
#: 3 twice, 2, 5 and 7 once.
_ANCESTORS = (0, 0, 0, 2, 3, 3, 5, 7)


def _fixed_draw(key, weights, num_samples):
    """A "resampling scheme" that always returns `_ANCESTORS`."""
    del key, weights
    return jnp.asarray(_ANCESTORS[:num_samples], dtype=jnp.int32)


@pytest.mark.parametrize(
    "rule, moved",
    [
        # DAPPER 1.7.1 `regularize(C12, E, idx, nuj)` moves rows [0, 1, 2, 4, 5] of this draw
        # with nuj=True and every row with nuj=False (tests/smc/test_jitter.py)
        (F.NoUniqueJitter(), [0, 1, 2, 4, 5]),
        (None, [0, 1, 2, 4, 5]),  # the default is DAPPER's rule
        (F.JitterAll(), list(range(8))),
        (F.KeepFirstCopyJitter(), [1, 2, 5]),  # not DAPPER's: rows 0 and 4 stay
    ],
    ids=["nuj", "default", "all", "keep_first"],
)
def test_jitter_moves_exactly_the_particles_of_its_rule(rule, moved):
    """Regression: the PF left the first copy of a duplicated particle in place while its
    docstring called that DAPPER's `nuj`; DAPPER's `nuj=True` jitters every copy of a
    particle drawn twice or more. With the draw fixed, a particle moved iff it differs from
    its ancestor."""
    n, dim = len(_ANCESTORS), 3
    particles = jax.random.normal(jax.random.key(0), (n, dim))
    kwargs = {} if rule is None else {"jitter_rule": rule}
    pf = F.BootstrapPF(_fixed_draw, ess_threshold=1.0, reg=1.0, **kwargs)
    obs = F.IndexObservation(dim, noise_cov=4.0)
    state = F.FilterState(particles, jnp.zeros(n))
    (new, _), info = pf.analysis(jax.random.key(1), state, jnp.zeros(dim), obs)
    assert bool(info.resampled)
    copies = particles[jnp.asarray(_ANCESTORS)]
    assert np.flatnonzero(np.any(np.asarray(new != copies), axis=1)).tolist() == moved


@pytest.mark.slow  # a Monte-Carlo estimate of the jitter covariance
def test_jitter_covariance_is_the_bandwidth_times_the_weighted_covariance():
    """The jitter's covariance is h^2 C with h = reg N^(-1/(dim+4)) and C the unbiased
    weighted covariance of the cloud before resampling, with the weights after reweighting:
    NumPy's `np.cov(x, aweights=w, ddof=1)`. Every particle is resampled once (the draw is
    the identity) and jittered (JitterAll); each entry of the empirical covariance of the
    N = 20000 displacements / h^2 is within 4 Monte-Carlo standard errors of C, whose
    variance is (C_jj C_kk + C_jk^2) / N for Gaussian draws."""
    n, dim, reg, noise_var = 20000, 3, 0.7, 4.0
    k0, k1, k2 = jax.random.split(jax.random.key(2), 3)
    particles = jax.random.normal(k0, (n, dim)) @ jnp.array(
        [[1.0, 0.5, 0.0], [0.0, 2.0, -0.3], [0.0, 0.0, 0.5]]
    )
    log_w0 = 0.5 * jax.random.normal(k1, (n,))
    y = jnp.array([0.5, -1.0, 0.2])
    pf = F.BootstrapPF(
        lambda key, w, m: jnp.arange(m, dtype=jnp.int32), 1.0, reg=reg, jitter_rule=F.JitterAll()
    )
    obs = F.IndexObservation(dim, noise_cov=noise_var)
    (new, _), _ = pf.analysis(k2, F.FilterState(particles, log_w0), y, obs)
    x = np.asarray(particles, dtype=np.float64)
    log_w = np.asarray(log_w0, np.float64) - 0.5 * np.sum((x - np.asarray(y)) ** 2, 1) / noise_var
    w = np.exp(log_w - log_w.max())
    c_ref = np.cov(x, rowvar=False, aweights=w / w.sum(), ddof=1)
    h = reg * n ** (-1.0 / (dim + 4))
    c_hat = np.cov(np.asarray(new, np.float64) - x, rowvar=False, bias=True) / h**2
    se = np.sqrt((np.outer(np.diag(c_ref), np.diag(c_ref)) + c_ref**2) / n)
    assert np.all(np.abs(c_hat - c_ref) < 4 * se), (c_hat, c_ref, se)


def test_spread_is_finite_when_weights_collapse_without_resampling():
    """Regression: with `ess_threshold=0` the PF never resamples, and a very precise
    observation puts all the weight on one particle. The reported spread used the unbiased
    weighted variance w.(x - m)^2 / (1 - sum w^2) = 0/0 = NaN; it now falls back to the
    cloud's unweighted spread (as the PF's jitter does), while the mean is the weighted mean."""
    from jaxsci.dynamics import Lorenz63
    from jaxsci.integrate import Flow

    model = Lorenz63()
    obs = F.IndexObservation(3, noise_cov=1e-8)
    pf = F.BootstrapPF(F.systematic, ess_threshold=0.0)
    res = F.assimilate(
        jax.random.key(0),
        Flow(model, 0.01),
        obs,
        pf,
        model.default_initial_state(),
        n_cycles=5,
        dt=0.1,
        ensemble_size=50,
        init_std=1.0,
    )
    ess = np.asarray(res.filter.ess)
    assert ess[-1] < 1.0 + 1e-3  # the weights have collapsed
    assert np.all(np.isfinite(np.asarray(res.filter.spread_a)))
    assert float(res.filter.spread_a[-1]) > 0.1


def test_filters_reexport_the_smc_schemes():
    """`jaxsci.filters` re-exports the schemes of `jaxsci.smc` (the same objects: one home);
    the name table of the configs lives in the pipelines, not in the library."""
    for fn in (smc.multinomial, smc.stratified, smc.systematic, smc.residual):
        assert getattr(F, fn.__name__) is fn
    assert F.effective_sample_size is smc.effective_sample_size
    assert not hasattr(F, "RESAMPLING_SCHEMES")
