"""Model-error discovery on your own model class, from Python (no pipeline, no config).

    python examples/compose_medida.py          # 200 noisy observations, 2 EnKF passes
    python examples/compose_medida.py --fast   # a small run, for the tests

Any semilinear model on a periodic 1-D grid can be corrected: this script defines one, a
damped Kuramoto-Sivashinsky equation

    u_t = -u u_x - u_xx - u_xxxx - d u          (d: the damping, a model parameter),

as a `jaxsci.dynamics.AbstractSemilinear` subclass in a dozen lines (a `grid`, the Fourier
symbol of its linear part, its nonlinear part). The "real system" is the same class with a
larger damping and an extra dispersion term that the model lacks; its noisy observations
are assimilated by an EnKF and the missing terms found by `discover_model_error` (MEDIDA,
Mojgani, Chattopadhyay & Hassanzadeh 2022), with every piece passed as an object: the model,
the term library, the sparse regression, the observation operator and the filters.
"""

import argparse

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Complex, Float

from jaxsci import discovery, filters, integrate
from jaxsci.dynamics import AbstractSemilinear
from jaxsci.spectral import PeriodicGrid

LENGTH, POINTS = 16 * np.pi, 64  # a chaotic domain for small damping
DT, INTERVAL = 0.25, 1.0  # ETDRK4 step; observations every 4 steps


class DampedKS(AbstractSemilinear):
    """u_t = -u u_x - u_xx - u_xxxx - damping u - dispersion u_xxx on [0, LENGTH)."""

    damping: Float[Array, ""]
    dispersion: Float[Array, ""]
    grid: PeriodicGrid

    def __init__(self, damping=0.0, dispersion=0.0):
        self.damping = jnp.asarray(damping, dtype=float)
        self.dispersion = jnp.asarray(dispersion, dtype=float)
        self.grid = PeriodicGrid(POINTS, LENGTH)  # 2/3 de-aliased

    @property
    def state_shape(self) -> tuple[int, ...]:
        return (POINTS,)

    def linear_operator(self) -> Complex[Array, " mode"]:
        (k,), (ko,) = self.grid.wavenumbers(), self.grid.odd_wavenumbers()
        return jnp.asarray(k**2 - k**4) - self.damping + 1j * self.dispersion * jnp.asarray(ko**3)

    def nonlinear(self, t, y_hat: Complex[Array, " mode"], args=None) -> Complex[Array, " mode"]:
        u = self.grid.from_spectral(self.grid.dealiased(y_hat))
        return self.grid.dealiased(
            -0.5j * self.grid.odd_wavenumbers()[0] * self.grid.to_spectral(u * u)
        )

    def default_initial_state(self, key=None) -> Float[Array, " x"]:
        x = jnp.asarray(self.grid.coordinates()[0])
        return jnp.cos(x / 8) * (1 + jnp.sin(x / 8))


def main(fast: bool) -> dict[str, float]:
    key_x0, key_obs, key_ens, key_filter = jax.random.split(jax.random.key(0), 4)
    model = DampedKS(damping=0.0)
    truth = DampedKS(damping=0.05, dispersion=0.1)  # the model misses -0.05 u - 0.1 u_xxx
    library = discovery.SpectralLibrary(
        ["u", "u_x", "u_xx", "u_xxx", "u^2", "u*u_x"], LENGTH, POINTS
    )
    count = 100 if fast else 200

    # the real system, observed every INTERVAL with 2% noise (integrate.rollout of its flow)
    flow = integrate.Flow(truth, DT)
    x0 = truth.default_initial_state() + 0.01 * jax.random.normal(key_x0, (POINTS,))
    x0 = jax.jit(lambda x: integrate.rollout(flow, x, 100, dt=INTERVAL)[-1])(x0)  # spin-up
    states = jax.jit(
        lambda x: integrate.rollout(flow, x, count - 1, dt=INTERVAL, include_initial=True)
    )(x0)
    sigma = 0.02 * float(jnp.std(states))
    obs_op = filters.IndexObservation(POINTS, noise_cov=sigma**2)
    observations = filters.synthetic_observations(key_obs, obs_op, states)

    # two EnKF + regression passes: heavy inflation for the imperfect model, moderate for the
    # corrected one, whose background mean then serves as an instrument for the regressors
    assimilation = discovery.EnKFPasses(
        obs_op,
        filters.Inflation(filters.RTPS(filters.EnKF(), 0.5), 1.2),
        observations[0] + sigma * jax.random.normal(key_ens, (32, POINTS)),
        first_filter=filters.Inflation(filters.RTPS(filters.EnKF(), 0.9), 1.1),
        passes=2,
        burn_in=10,
        samples=discovery.InstrumentalPairs(),
    )
    found = discovery.discover_model_error(
        model,
        library,
        discovery.RVM(),
        observations,
        INTERVAL,
        dt=DT,
        refinements=1,
        assimilation=assimilation,
        truth=states,
        key=key_filter,
    )
    true = discovery.true_coefficients(truth, model, library, states[::10])
    print(
        f"EnKF analysis rmse per pass / noise std: {np.asarray(found.info.analysis_rmse) / sigma}"
    )
    print(f"{'term':8s} {'found':>10s} {'true':>10s}")
    terms = found.fit.terms()
    for name, value in zip(library.names, true.coefficients, strict=True):
        print(f"{name:8s} {terms.get(name, 0.0):+10.5f} {value:+10.5f}")
    return terms


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="model-error discovery on a user-defined model")
    parser.add_argument("--fast", action="store_true", help="short run (for tests)")
    main(parser.parse_args().fast)
