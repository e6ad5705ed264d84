"""`discover_in_filter` (MEDIDA-QG with the coefficients inside the LETKF): on a 32^2 twin of
two-layer QG without its bottom drag (every 2nd point of both layers observed, 1% noise, 20
members, 100 days) the drag is found within 5% and the other lower-layer columns stay under
5% of its contribution; with the drag in the model (no model error) the drag column stays
near zero. Slow tier (~1 min: two 200-cycle runs). Bad arguments are named (fast)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxsci import discovery, dynamics, filters, integrate, observations

N, DT, STEPS, COUNT, MEMBERS = 32, 7200.0, 6, 200, 20
REK, DAY = 5.787e-7, 86400.0


def _twin(count=COUNT, members=MEMBERS):
    truth_model = dynamics.TwoLayerQG(N)
    solver = integrate.Filtered(integrate.ETDRK4(), truth_model.spectral_filter())
    flow_truth = integrate.Flow(truth_model, DT, solver)
    library = discovery.LayeredLibrary(
        ["q", "lap(psi)", "J(psi,q)"],
        truth_model.length,
        N,
        streamfunction=truth_model.streamfunction,
    )
    q0 = truth_model.default_initial_state(jax.random.key(0))
    q0 = integrate.rollout(flow_truth, q0, 1000, dt=DAY)[-1]  # statistically steady
    states = integrate.rollout(flow_truth, q0, members + 1, dt=10 * DAY)
    truth = integrate.rollout(flow_truth, states[-1], count, dt=STEPS * DT, include_initial=True)
    std = np.asarray(jnp.std(truth, axis=(0, 2, 3)))
    noise = np.repeat(0.01 * std, (N // 2) ** 2)  # every 2nd point of both layers, 1% noise
    obs_op = observations.every_kth_grid((N, N), 2, n_layers=2, noise_std=noise)
    y = filters.synthetic_observations(jax.random.key(1), obs_op, truth[1:].reshape(count, -1))
    obs_op = observations.every_kth_grid((N, N), 2, n_layers=2, noise_std=3 * noise)
    dom = filters.grid_domains((N, N), 2)
    letkf = filters.LETKF(2.0, obs_op, dom.state_locations, dom.domain_length, domains=dom.domains)
    return (
        truth_model,
        solver,
        library,
        filters.RTPS(letkf, 0.7),
        obs_op,
        states[:-1].reshape(members, -1),
        y,
        truth[1:],
    )


@pytest.mark.slow
def test_the_missing_drag_is_found_and_no_drag_is_invented():
    truth_model, solver, library, filt, obs_op, ens, y, truth = _twin()
    j = library.names.index("lap(psi)[2]")
    results = {}
    for case, model in (("drag-free", dynamics.TwoLayerQG(N, rek=0.0)), ("perfect", truth_model)):
        results[case] = discovery.discover_in_filter(
            integrate.Flow(model, DT, solver),
            library,
            filt,
            obs_op,
            ens,
            y,
            STEPS * DT,
            key=jax.random.key(2),
            tendency_time=20 * DAY,
            truth=truth,
            progress=False,
        )
    found = results["drag-free"]
    contrib = np.abs(np.asarray(found.coefficients)) * np.asarray(found.column_rms)
    drag = REK * float(found.column_rms[j])
    assert abs(float(found.coefficients[j]) / -REK - 1) < 0.05, found.coefficients[j]
    lower = [i for i, name in enumerate(library.names) if name.endswith("[2]") and i != j]
    assert contrib[lower].max() < 0.05 * drag, contrib[lower] / drag
    assert found.info.averaged_cycles == (COUNT // 2, COUNT)
    np.testing.assert_allclose(found.coefficients, found.trajectory[COUNT // 2 :].mean(0))
    # far below the climatological error (~1.4 std): the filter tracks the truth
    assert found.info.analysis_rmse < 0.1 * float(jnp.std(truth))
    control = results["perfect"]
    assert abs(float(control.coefficients[j])) * float(control.column_rms[j]) < 0.05 * drag


def test_bad_arguments_are_named():
    model = dynamics.TwoLayerQG(8, rek=0.0)
    flow = integrate.Flow(model, DT, integrate.ETDRK4())
    library = discovery.LayeredLibrary(["q"], model.length, 8, streamfunction=model.streamfunction)
    obs_op = observations.every_kth_grid((8, 8), 2, n_layers=2, noise_std=1e-7)
    dom = filters.grid_domains((8, 8), 2)
    letkf = filters.LETKF(2.0, obs_op, dom.state_locations, dom.domain_length, domains=dom.domains)
    ens = 1e-6 * jax.random.normal(jax.random.key(0), (4, 128))
    y, truth = jnp.zeros((4, 32)), jnp.zeros((4, 2, 8, 8))

    def call(**kw):
        args = dict(
            flow=flow,
            library=library,
            filter=letkf,
            obs_op=obs_op,
            initial_ensemble=ens,
            observations=y,
            interval=DT,
            key=jax.random.key(0),
            tendency_time=DAY,
            start=0,
        )
        discovery.discover_in_filter(**{**args, **kw})

    with pytest.raises(TypeError, match="LETKF"):
        call(filter=filters.ETKF())
    rotated = filters.LETKF(
        2.0, obs_op, dom.state_locations, dom.domain_length, domains=dom.domains, rotate=True
    )
    with pytest.raises(ValueError, match="rotate"):
        call(filter=rotated)
    for kw, name in (
        (dict(tendency_time=0.0), "tendency_time"),
        (dict(prior_std=-1.0), "prior_std"),
        (dict(average_from=1.0), "average_from"),
        (dict(start=4), "start"),
        (dict(observations=y[:, :-1]), "observations"),
        (dict(observations=y.at[1, 3].set(jnp.nan)), "observations"),
        (dict(initial_ensemble=ens[:, :-1]), "initial_ensemble"),
        (dict(truth=truth[:-1]), "truth"),
    ):
        with pytest.raises(ValueError, match=name):
            call(**kw)
