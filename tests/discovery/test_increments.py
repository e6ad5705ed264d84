"""`discover_from_increments` (MEDIDA-QG) on a tiny two-layer QG twin: the plumbing (shapes,
names, timings, the diagnostics' definitions) and its argument checks."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxsci import discovery, dynamics, filters, integrate, observations

N = 16


def _setup(k=1):
    truth = dynamics.TwoLayerQG(N)
    model = dynamics.TwoLayerQG(N, rek=0.0)
    obs_op = observations.every_kth_grid((N, N), k, n_layers=2, noise_std=1e-9)
    library = discovery.LayeredLibrary(
        ["lap(psi)", "psi_x", "J(psi,q)"], truth.length, N, streamfunction=truth.streamfunction
    )
    return truth, model, obs_op, library


def _scatter(coords, values, key):
    # every point observed: the "interpolation" puts the values back on the grid
    del key
    spacing = 1e6 / N
    iy = np.asarray(jnp.round(coords[:, 0] / spacing)).astype(int)
    ix = np.asarray(jnp.round(coords[:, 1] / spacing)).astype(int)
    return jnp.zeros((values.shape[0], N, N)).at[:, iy, ix].set(values)


@pytest.mark.slow
def test_plumbing_on_a_fully_observed_twin():
    truth, model, obs_op, library = _setup()
    solver = integrate.Filtered(integrate.ETDRK4(), truth.spectral_filter())
    dt = 7200.0
    q0 = truth.default_initial_state(jax.random.key(0)) * 10  # finite amplitude, stable
    traj = integrate.rollout(integrate.Flow(truth, dt, solver), q0, 30, dt=dt)
    y = filters.synthetic_observations(jax.random.key(1), obs_op, traj[10:].reshape(20, -1))
    dom = filters.grid_domains((N, N), 2)
    letkf = filters.LETKF(2.0, obs_op, dom.state_locations, dom.domain_length, domains=dom.domains)
    ens = traj[:10].reshape(10, -1)[::2]
    res = discovery.discover_from_increments(
        integrate.Flow(model, dt, solver),
        library,
        discovery.STLSQ(threshold=0.05),
        obs_op,
        filters.Inflation(letkf, 1.1),
        ens,
        y,
        dt,
        interpolate=_scatter,
        key=jax.random.key(2),
        burn_in=5,
        truth=traj[10:],
    )
    assert res.names == tuple(f"{t}[{i}]" for i in (1, 2) for t in library.terms)
    assert res.increments.shape == (15, 2, N, N) and res.analysis.shape == (20, 2, N, N)
    # every point observed and put back: the interpolated increments are the filter's own
    np.testing.assert_allclose(
        res.increments, (res.analysis - res.background)[5:], rtol=1e-5, atol=1e-12
    )
    info = res.info
    assert info.interpolation_error == pytest.approx(info.filter_increment_error, rel=1e-4)
    assert info.num_samples == 15 * 2 * N * N
    assert set(info.seconds) == {"assimilation", "interpolation", "regression"}
    assert np.all(np.isfinite(np.asarray(res.coefficients)))


def test_argument_errors_name_the_argument():
    # every check runs before any computation: a library on an 8^2 grid and index
    # observations built from NumPy arrays keep this test cheap
    n = 8
    library = discovery.LayeredLibrary(["lap(psi)"], 1e6, n)
    obs_op = observations.IndexObservation(2 * n * n, np.arange(0, 2 * n * n, 4))
    ens = np.zeros((4, 2 * n * n))
    y = np.zeros((10, obs_op.obs_dim))
    kw = dict(interpolate=_scatter, key=jax.random.key(0))
    args = (lambda q, t0, t1: q, library, discovery.RVM())
    call = discovery.discover_from_increments
    with pytest.raises(ValueError, match="states"):
        call(*args, obs_op, filters.ETKF(), ens, y, 1.0, states="middle", **kw)
    with pytest.raises(ValueError, match="burn_in"):
        call(*args, obs_op, filters.ETKF(), ens, y, 1.0, burn_in=10, **kw)
    with pytest.raises(ValueError, match="observations"):
        call(*args, obs_op, filters.ETKF(), ens, y[:, :3], 1.0, **kw)
    with pytest.raises(ValueError, match="initial_ensemble"):
        call(*args, obs_op, filters.ETKF(), ens[:, :5], y, 1.0, **kw)
    with pytest.raises(ValueError, match="lowpass"):
        call(*args, obs_op, filters.ETKF(), ens, y, 1.0, lowpass=2.0, **kw)
    with pytest.raises(ValueError, match="truth"):
        call(*args, obs_op, filters.ETKF(), ens, y, 1.0, truth=np.zeros((3, 2, n, n)), **kw)
    with pytest.raises(TypeError, match="obs_op"):
        call(*args, "not an observation", filters.ETKF(), ens, y, 1.0, **kw)


def test_design_arguments_name_the_argument():
    n = 8
    library = discovery.LayeredLibrary(["lap(psi)"], 1e6, n)
    obs_op = observations.IndexObservation(2 * n * n, np.arange(0, 2 * n * n, 4))
    ens = np.zeros((4, 2 * n * n))
    y = np.zeros((10, obs_op.obs_dim))
    kw = dict(interpolate=_scatter, key=jax.random.key(0))
    args = (lambda q, t0, t1: q, library, discovery.RVM(), obs_op, filters.ETKF(), ens, y, 1.0)
    call = discovery.discover_from_increments
    with pytest.raises(ValueError, match="design"):
        call(*args, design="midpoint", **kw)
    with pytest.raises(TypeError, match="flow"):  # the integrated design needs a Flow
        call(*args, design="integrated", **kw)
    with pytest.raises(ValueError, match="states"):
        call(*args, design="integrated", states="background", **kw)
    with pytest.raises(ValueError, match="passes"):
        call(*args, passes=0, **kw)
    with pytest.raises(ValueError, match="lowpass"):  # observed points only: no low-pass
        call(*args, lowpass=0.5, interpolate=None, key=jax.random.key(0))
    states = np.zeros((3, 2, n, n))
    with pytest.raises(ValueError, match="points"):
        discovery.regress_increments(
            library, discovery.RVM(), states, states, 1.0, points=np.arange(2), lowpass=0.5
        )


def test_corrected_layered_model_checks_its_library():
    n = 8
    qg = dynamics.TwoLayerQG(n)
    with pytest.raises(ValueError, match="streamfunction"):
        discovery.CorrectedModel(qg, discovery.LayeredLibrary(["lap(psi)"], qg.length, n))
    three = discovery.LayeredLibrary(
        ["lap(psi)"], qg.length, n, num_layers=3, streamfunction=qg.streamfunction
    )
    with pytest.raises(ValueError, match="states of shape"):
        discovery.CorrectedModel(qg, three)
    lib = discovery.LayeredLibrary(["lap(psi)"], qg.length, n, streamfunction=qg.streamfunction)
    drag = np.array([0.0, -float(qg.rek)])  # lap(psi) of layers 1 and 2
    assert discovery.CorrectedModel(qg, lib, drag).state_shape == (2, n, n)
    # with the drag as its correction, the drag-free model's tendency is the truth's
    q = qg.default_initial_state(jax.random.key(0)) * 30
    free = dynamics.TwoLayerQG(n, rek=0.0)
    corrected = discovery.CorrectedModel(free, lib, drag)
    np.testing.assert_allclose(
        corrected.vector_field(0.0, q, None), qg.vector_field(0.0, q, None), rtol=1e-5, atol=1e-20
    )
    with pytest.raises(ValueError, match="states"):
        discovery.integrated_design(corrected, q.reshape(1, -1), 7200.0, dt=7200.0)
