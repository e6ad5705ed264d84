"""A learned local closure of Lorenz-96: `LocalMLP` (against the site formula), the hybrid
with a zero closure (exactly the plain model), the two-scale model's subgrid tendency
(against the slow equation), gradients of the filter likelihood with respect to the closure
weights (against central differences), and the closure learned through an ensemble filter
from noisy, sparse observations (against the model without closure and the oracle closure
fitted to the true subgrid tendencies)."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxsci import filters as F, losses, nn, train
from jaxsci.dynamics import Lorenz96, Lorenz96TwoScale
from jaxsci.integrate import Flow, rollout


def _by_hand(model, x):
    """Site by site, the docstring's formula."""
    n, r = x.shape[0], model.radius
    out = []
    for i in range(n):
        stencil = jnp.stack([x[(i + j) % n] for j in range(-r, r + 1)])
        out.append(model.output_scale * model.mlp((stencil - model.mean) / model.scale)[0])
    return jnp.stack(out)


def test_local_mlp_is_the_site_formula_and_sees_only_its_stencil():
    model = nn.LocalMLP(2, 8, 2, mean=0.5, scale=2.0, output_scale=3.0, key=jax.random.key(0))
    x = jax.random.normal(jax.random.key(1), (9,))
    np.testing.assert_allclose(model(x), _by_hand(model, x), rtol=1e-5, atol=1e-6)
    jac = np.asarray(jax.jacfwd(model)(x))
    n = x.shape[0]
    distance = np.abs((np.arange(n)[:, None] - np.arange(n)[None, :] + n // 2) % n - n // 2)
    assert np.all(jac[distance > 2] == 0.0) and np.all(jac[distance <= 2] != 0.0)


@pytest.mark.slow
def test_zero_closure_hybrid_is_exactly_the_plain_model():
    """zero_init: the hybrid's vector field, flow and filter run are the plain model's, bit
    for bit, while its closure weights still get a nonzero gradient."""
    k = 12
    plain = Lorenz96(k, 10.0)
    closure = nn.LocalMLP(1, 8, 2, scale=3.5, zero_init=True, key=jax.random.key(2))
    hybrid = nn.HybridVectorField(plain, closure)
    x = 10.0 + 3.0 * jax.random.normal(jax.random.key(3), (k,))
    np.testing.assert_array_equal(hybrid.vector_field(0.0, x), plain.vector_field(0.0, x))
    step = eqx.filter_jit(lambda m, x: Flow(m, 0.05)(x, 0.0, 0.2))
    np.testing.assert_array_equal(step(hybrid, x), step(plain, x))
    obs_op = F.IndexObservation(k, indices=np.arange(0, k, 2), noise_cov=1.0)
    truth = rollout(Flow(plain, 0.05), x, 8, dt=0.05)
    ys = F.synthetic_observations(jax.random.key(4), obs_op, truth)
    ens = x + jax.random.normal(jax.random.key(5), (6, k))
    filt = F.Inflation(F.DEnKF(), 1.05)
    runs = [
        F.run_filter(jax.random.key(6), Flow(m, 0.05), obs_op, filt, ens, ys, dt=0.05)
        for m in (hybrid, plain)
    ]
    np.testing.assert_array_equal(runs[0].mean_a, runs[1].mean_a)
    np.testing.assert_array_equal(runs[0].log_likelihood, runs[1].log_likelihood)
    loss = losses.FilterLikelihoodLoss(obs_op, filt, 0.05)
    grads = eqx.filter_jit(
        eqx.filter_grad(lambda m: loss(m, (ens[None], ys[None]), key=jax.random.key(7))[0])
    )(hybrid)
    assert float(jnp.abs(grads.closure.mlp.layers[-1].weight).sum()) > 0.0


def test_subgrid_tendency_is_the_slow_equation_minus_one_scale_lorenz96(x64):
    """-(h c / b) sum_j Y_{j,k} by a loop over the fast ring, and the two-scale slow tendency
    minus the one-scale tendency of X (the closure's target)."""
    model = Lorenz96TwoScale(6, 4, forcing=10.0, coupling=1.0, time_scale=10.0)
    y = jax.random.normal(jax.random.key(8), (6 + 24,), dtype=jnp.float64) * 3.0
    sub = np.asarray(model.subgrid_tendency(y))
    fast = np.asarray(y[6:])
    loop = [-1.0 * 10.0 / 10.0 * sum(fast[k * 4 + j] for j in range(4)) for k in range(6)]
    np.testing.assert_allclose(sub, loop, rtol=1e-14)
    one = Lorenz96(6, 10.0).vector_field(0.0, model.slow(y))
    np.testing.assert_allclose(model.vector_field(0.0, y)[:6] - one, sub, rtol=1e-12, atol=1e-12)


@pytest.mark.slow
def test_filter_loss_gradient_in_the_closure_weights_matches_finite_differences(x64):
    """d loss / d theta along a random direction of all the closure weights of a tiny
    `LocalMLP` (float64, 4 cycles), against a central difference with step 1e-6."""
    k = 8
    plain = Lorenz96(k, 10.0)
    closure = nn.LocalMLP(1, 3, 1, scale=3.5, key=jax.random.key(9))
    model = nn.HybridVectorField(plain, closure)
    obs_op = F.IndexObservation(k, indices=np.arange(0, k, 2), noise_cov=1.0)
    x = 10.0 + 3.0 * jax.random.normal(jax.random.key(10), (k,), dtype=jnp.float64)
    truth = rollout(Flow(plain, 0.05), x, 4, dt=0.05)
    ys = F.synthetic_observations(jax.random.key(11), obs_op, truth)
    ens = x + jax.random.normal(jax.random.key(12), (2, 6, k), dtype=jnp.float64)
    batch = (ens, jnp.stack([ys, ys]))
    loss = losses.FilterLikelihoodLoss(obs_op, F.Inflation(F.DEnKF(), 1.05), 0.05, burn_in=1)

    weights, rest = eqx.partition(model.closure.mlp, eqx.is_inexact_array)

    @eqx.filter_jit
    def f(w):
        """The loss as a function of the closure's MLP weights alone (the forcing and the
        buffers fixed)."""
        m = eqx.tree_at(lambda m: m.closure.mlp, model, eqx.combine(w, rest))
        return loss(m, batch, key=jax.random.key(13))[0]

    grad = eqx.filter_jit(jax.grad(f))(weights)
    leaves, treedef = jax.tree_util.tree_flatten(weights)
    direction = [
        jax.random.normal(jax.random.fold_in(jax.random.key(14), i), v.shape, v.dtype)
        for i, v in enumerate(leaves)
    ]
    g = sum(
        float(jnp.vdot(a, d))
        for a, d in zip(jax.tree_util.tree_leaves(grad), direction, strict=True)
    )
    h = 1e-6
    shifted = [
        jax.tree_util.tree_unflatten(
            treedef, [v + s * h * d for v, d in zip(leaves, direction, strict=True)]
        )
        for s in (1, -1)
    ]
    fd = (float(f(shifted[0])) - float(f(shifted[1]))) / (2 * h)
    assert abs(g) > 1e-3
    np.testing.assert_allclose(g, fd, rtol=1e-6)


def _two_scale_twin(n_train, n_valid):
    """Truth: two-scale Lorenz-96 (K=36, J=10, F=10, h=1, c=b=10; RK4 step 0.005 resolves the
    fast scale, c = 10 times faster) after 10 time units of spin-up; half of the slow variables
    observed every 0.05 with noise std 1."""
    truth_model = Lorenz96TwoScale(36, 10, forcing=10.0)
    flow = Flow(truth_model, 0.005)
    x0 = eqx.filter_jit(lambda x: rollout(flow, x, 200, dt=0.05)[-1])(
        truth_model.default_initial_state()
    )
    traj = eqx.filter_jit(lambda x: rollout(flow, x, n_train + n_valid, dt=0.05))(x0)
    obs_op = F.IndexObservation(36, indices=np.arange(0, 36, 2), noise_cov=1.0)
    xs = jax.vmap(truth_model.slow)(traj)
    ys = F.synthetic_observations(jax.random.key(1), obs_op, xs)
    return truth_model, traj, xs, obs_op, ys


@pytest.mark.slow
def test_closure_learned_through_the_filter_beats_no_closure_on_held_out_cycles():
    """The end-to-end study at full size (K = 36), CI-short: 400 training cycles (20 time
    units), 200 held-out cycles after them.

    No closure: one-scale Lorenz-96, F = 10. Oracle: a `LocalMLP` (r = 1) fitted offline by
    MSE to the true subgrid tendencies -(h c / b) sum_j Y_{j,k}; it must match their binned
    conditional mean given X_k (the reference, computed from the truth). Learned: the same
    network (zero-initialised, so training starts from no closure) fitted by Adam on
    `FilterLikelihoodLoss` over 20-cycle windows whose initial ensembles are the analyses of
    a no-closure DEnKF run of the training observations -- observations only, no truth. Each
    model is then scored by the DEnKF (30 members, 20% inflation: with them the no-closure
    filter keeps track, rmse_a well below the climatological spread ~3.5) on the held-out
    cycles from a climatological ensemble: mean rmse_a after 20 spin-up cycles.
    """
    n_train, n_valid, dt = 400, 200, 0.05
    truth_model, traj, xs, obs_op, ys = _two_scale_twin(n_train, n_valid)
    u = jax.vmap(truth_model.subgrid_tendency)(traj)
    mean, std, u_std = float(xs.mean()), float(xs.std()), float(u.std())
    filt = F.Inflation(F.DEnKF(), 1.2)
    ens0 = mean + std * jax.random.normal(jax.random.key(2), (30, 36))
    plain = Lorenz96(36, 10.0)

    def make_closure():
        return nn.LocalMLP(
            1,
            16,
            2,
            mean=mean,
            scale=std,
            output_scale=u_std,
            zero_init=True,
            key=jax.random.key(4),
        )

    # the oracle: offline regression on the true subgrid tendencies of the training cycles
    oracle_closure, hist = train.fit(
        make_closure(),
        losses.MSELoss(),
        (xs[:n_train], u[:n_train]),
        optimizer=optax.adam(3e-3),
        key=jax.random.key(5),
        batch_size=32,
        num_steps=1500,
        progress=False,
    )
    xf, uf = np.asarray(xs[:n_train]).ravel(), np.asarray(u[:n_train]).ravel()
    cf = np.asarray(jax.vmap(oracle_closure)(xs[:n_train])).ravel()
    bins = np.digitize(xf, np.linspace(-6.0, 12.0, 10))
    for b in np.unique(bins):
        sel = bins == b
        if sel.sum() >= 200:  # conditional means with a standard error below ~0.1
            assert abs(cf[sel].mean() - uf[sel].mean()) < 0.3, b
    assert np.mean((cf - uf) ** 2) < 0.2 * np.var(uf)

    # learned through the filter, from the observations alone
    record = F.run_filter(
        jax.random.key(6),
        Flow(plain, dt),
        obs_op,
        filt,
        ens0,
        ys[:n_train],
        dt=dt,
        store_ensembles=True,
    )
    windows = losses.filter_windows(record, ys[:n_train], 20, 10)
    windows = jax.tree.map(lambda a: a[2:], windows)  # from cycle 21 on: after the record's spin-up
    learned, hist = train.fit(
        nn.HybridVectorField(plain, make_closure()),
        losses.FilterLikelihoodLoss(obs_op, filt, dt, burn_in=5),
        windows,
        optimizer=optax.adam(3e-3),
        key=jax.random.key(7),
        batch_size=4,
        num_steps=200,
        progress=False,
    )
    assert hist["stopped"] == "" and np.all(np.isfinite(hist["loss"]))
    assert np.all(hist["aux/finite"] == 1.0)
    assert hist["loss"][-20:].mean() < hist["loss"][:20].mean()

    def rmse_a(model):
        res = F.run_filter(
            jax.random.key(3), Flow(model, dt), obs_op, filt, ens0, ys[n_train:], dt=dt
        )
        err = jnp.sqrt(jnp.mean((res.mean_a - xs[n_train:]) ** 2, axis=-1))
        return float(err[20:].mean())

    oracle = nn.HybridVectorField(plain, oracle_closure)
    none_, learned_, oracle_ = rmse_a(plain), rmse_a(learned), rmse_a(oracle)
    print(f"held-out rmse_a: none {none_:.3f}  learned {learned_:.3f}  oracle {oracle_:.3f}")
    assert oracle_ < none_ < 0.5 * float(xs.std())  # the baseline filter has not lost the truth
    assert learned_ < 0.9 * none_


def _small_twin(k=8, n=6):
    plain = Lorenz96(k, 10.0)
    obs_op = F.IndexObservation(k, indices=np.arange(0, k, 2), noise_cov=1.0)
    x = 10.0 + 3.0 * jax.random.normal(jax.random.key(20), (k,))
    truth = rollout(Flow(plain, 0.05), x, n, dt=0.05)
    ys = F.synthetic_observations(jax.random.key(21), obs_op, truth)
    ens = x + jax.random.normal(jax.random.key(22), (5, k))
    return plain, obs_op, ys, ens


@pytest.mark.slow  # 12-16 s under xdist; CI's slow tier runs it
def test_filter_windows_and_loss_are_the_filter_likelihood_of_each_window():
    """`filter_windows` against slicing by hand; the loss against `log_likelihood` (the
    filter's own sum over cycles) of each window, averaged per cycle and negated."""
    plain, obs_op, ys, ens = _small_twin()
    filt = F.Inflation(F.DEnKF(), 1.05)
    record = F.run_filter(
        jax.random.key(23),
        Flow(plain, 0.05),
        obs_op,
        filt,
        ens,
        ys,
        dt=0.05,
        store_ensembles=True,
    )
    wens, wys = losses.filter_windows(record, ys, 3, 2)
    assert wens.shape == (2, 5, 8) and wys.shape == (2, 3, 4)  # starts at cycles 1 and 3
    np.testing.assert_array_equal(wens[1], record.ensembles[2])
    np.testing.assert_array_equal(wys[1], ys[3:6])
    loss = losses.FilterLikelihoodLoss(obs_op, filt, 0.05)
    key = jax.random.key(24)
    value, aux = eqx.filter_jit(lambda m, b, k: loss(m, b, key=k))(plain, (wens, wys), key)
    keys = jax.random.split(key, 2)
    want = [
        F.log_likelihood(
            keys[i], Flow(plain, 0.05, max_steps=4), obs_op, filt, wens[i], wys[i], dt=0.05
        )
        for i in range(2)
    ]
    np.testing.assert_allclose(value, -sum(want) / 6, rtol=1e-5)
    assert float(aux["finite"]) == 1.0
    with pytest.raises(ValueError, match="burn_in"):
        losses.FilterLikelihoodLoss(obs_op, filt, 0.05, burn_in=3)(plain, (wens, wys), key=key)
    with pytest.raises(TypeError, match="key"):
        loss(plain, (wens, wys))
    with pytest.raises(ValueError, match="ensembles"):
        unstored = F.run_filter(
            jax.random.key(23), Flow(plain, 0.05), obs_op, filt, ens, ys, dt=0.05
        )
        losses.filter_windows(unstored, ys, 3, 2)


@pytest.mark.slow
def test_a_blown_up_closure_is_reported_by_fit_not_silent():
    """A closure that blows the forecasts up makes the filter loss non-finite: `fit` stops and
    says so (throw=False) or raises (throw=True)."""
    plain, obs_op, ys, ens = _small_twin()
    closure = nn.LocalMLP(1, 4, 1, output_scale=1e30, key=jax.random.key(25))
    model = nn.HybridVectorField(plain, closure)
    loss = losses.FilterLikelihoodLoss(obs_op, F.Inflation(F.DEnKF(), 1.05), 0.05)
    batch = (ens[None], ys[None])
    kwargs = dict(
        optimizer=optax.adam(1e-3),
        key=jax.random.key(26),
        batch_size=1,
        num_steps=3,
        progress=False,
    )
    _, hist = train.fit(model, loss, batch, throw=False, **kwargs)
    assert hist["stopped"] != ""
    with pytest.raises(Exception, match="(?i)finite|nan"):
        train.fit(model, loss, batch, throw=True, **kwargs)
