"""LETKF twin experiment on two-layer QG turbulence (issue 18): sparse observations of the
upper-layer PV, one local domain per grid column, the gathered local-observation path."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxsci import dynamics, filters, integrate

DAY, DT, N = 86400.0, 7200.0, 64


@pytest.mark.slow  # ~17k QG steps of spin-up and 25 cycles x 12 members: ~30-40 s
def test_letkf_tracks_qg_turbulence_from_sparse_observations():
    """64^2 QG at pyqg's defaults (ETDRK4 with a grid-scale del^8 hyperviscosity in place of
    pyqg's filter, as in benchmarks/bench_qg_letkf.py), spun up 1400 days from pyqg's
    random start into steady turbulence. q_1 observed at every 2nd point along each axis
    (1024 values, 1 in 8 of the state) daily with noise 10% of q_1's climatological std;
    12 climatological members, loc_rad 2 grid points, RTPS 0.7. The analysis error of the
    whole state (both layers) over days 10-25 is well below the climatological spread (std
    of the truth about its time mean over days 1100-1400: 0.7-0.8 would be a lost filter)
    and below the observation error (the benchmark's 100-day run: 0.04 x the spread,
    0.3 x the observation error)."""
    kmax = np.pi * N / 1e6
    model = dynamics.TwoLayerQG(N, hyperviscosity=1.0 / (DT * kmax**8))
    flow = integrate.FlattenedFlow(integrate.Flow(model, DT))
    spin = jax.jit(lambda q: integrate.rollout(flow, q, 140, dt=10 * DAY))
    traj = spin(flow.flatten(model.default_initial_state()))
    steady = traj[110:]
    clim = float(filters.climatological_spread(steady))
    noise = 0.1 * float(jnp.std(steady[:, : N * N]))
    obs_op = filters.every_kth_grid((N, N), 2, n_layers=2, layers=0, noise_std=noise)
    g = filters.grid_domains((N, N), n_layers=2)
    letkf = filters.LETKF(2.0, obs_op, g.state_locations, g.domain_length, domains=g.domains)
    assert letkf.local_obs is not None  # sparse: the gathered path
    members = steady[np.linspace(0, 20, 12).astype(int)]  # >= 100 days before the truth
    truth = jax.jit(lambda x: integrate.rollout(flow, x, 25, dt=DAY))(traj[-1])
    ys = filters.synthetic_observations(jax.random.key(0), obs_op, truth)
    res = filters.run_filter(
        jax.random.key(1),
        flow,
        obs_op,
        filters.RTPS(letkf, 0.7),
        members,
        ys,
        dt=DAY,
        compute_likelihood=False,
    )
    err = np.sqrt(np.mean((np.asarray(res.mean_a) - np.asarray(truth)) ** 2, axis=1))
    rmse_a = float(np.mean(err[10:]))
    print(f"rmse_a {rmse_a:.3g} = {rmse_a / clim:.3f} x clim, {rmse_a / noise:.3f} x obs error")
    assert rmse_a < 0.2 * clim, (rmse_a, clim)
    assert rmse_a < noise, (rmse_a, noise)
