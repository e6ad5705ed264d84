"""Non-finite physical parameters are a ValueError naming the argument at construction."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxsci.dynamics as dyn
from jaxsci.spectral import PeriodicGrid

# (model, parameter) pairs: every array parameter of every model; the positivity checks of
# the viscosities and rates also refuse NaN and inf.
PARAMETERS = [
    (dyn.Lorenz63, "sigma"),
    (dyn.Lorenz63, "rho"),
    (dyn.Lorenz63, "beta"),
    (dyn.Lorenz96, "forcing"),
    (dyn.Lorenz96TwoScale, "forcing"),
    (dyn.Lorenz96TwoScale, "coupling"),
    (dyn.Lorenz96TwoScale, "time_scale"),
    (dyn.Lorenz96TwoScale, "amplitude_scale"),
    (dyn.KuramotoSivashinsky, "nu"),
    (dyn.KuramotoSivashinsky, "alpha"),
    (dyn.KuramotoSivashinsky, "lam"),
    (dyn.KuramotoSivashinsky, "dispersion"),
    (dyn.KuramotoSivashinsky, "growth"),
    (dyn.Burgers, "nu"),
    (dyn.NavierStokes2D, "nu"),
    (dyn.NavierStokes2D, "drag"),
    (dyn.NavierStokes2D, "forcing_amplitude"),
    (dyn.LotkaVolterra, "alpha"),
    (dyn.SIR, "population"),
]


@pytest.mark.parametrize("cls,name", PARAMETERS, ids=lambda p: getattr(p, "__name__", p))
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_parameter_is_named(cls, name, bad):
    with pytest.raises(ValueError, match=f"`{name}`"):
        cls(**{name: bad})


def test_non_finite_noise_scale_is_named():
    with pytest.raises(ValueError, match="`sigma`"):
        dyn.AdditiveNoise(dyn.Lorenz63(), jnp.array([0.1, np.nan, 0.1]))


def test_traced_parameters_are_not_checked():
    """A vmapped sweep builds the model from traced values: the check lets them through."""
    models = eqx.filter_vmap(lambda f: dyn.Lorenz96(n=8, forcing=f))(jnp.array([6.0, 8.0]))
    np.testing.assert_allclose(np.asarray(models.forcing), [6.0, 8.0])


class _Decay(dyn.AbstractDynamics):
    """A user's model written with the public checks only: dy/dt = -rate y."""

    rate: jax.Array

    def __init__(self, rate):
        self.rate = dyn.float_parameter("rate", rate)

    def __check_init__(self):
        dyn.check_positive("rate", self.rate)

    @property
    def state_shape(self):
        return (1,)

    def vector_field(self, t, y, args=None):
        return -self.rate * y


def test_user_models_check_parameters_with_the_public_helpers():
    """`jaxsci.dynamics` exports the checks the built-in models use (they were importable only
    from the private `jaxsci._checks`): a concrete bad value is a ValueError or TypeError
    naming the argument, a traced one passes, so the model can be built under vmap."""
    with pytest.raises(ValueError, match="`rate` must be finite and positive"):
        _Decay(-1.0)
    with pytest.raises(TypeError, match="`rate`"):
        _Decay("fast")
    model = _Decay(2)
    assert model.rate.dtype == jnp.result_type(float)
    models = eqx.filter_vmap(_Decay)(jnp.array([1.0, 2.0]))
    np.testing.assert_allclose(np.asarray(models.rate), [1.0, 2.0])


class _FullLayoutHeat(dyn.AbstractSemilinear):
    """u_t = u_xx with its symbol on the full FFT layout instead of the real-FFT one."""

    grid: PeriodicGrid

    def __init__(self):
        self.grid = PeriodicGrid(32)

    def linear_operator(self):
        (k,) = self.grid.wavenumbers(full=True)
        return jnp.asarray(-(k**2))

    def nonlinear(self, t, y_hat, args=None):
        return jnp.zeros_like(y_hat)


def test_linear_operator_on_the_wrong_layout_is_named():
    """A user's semilinear model whose Fourier symbol is not on the grid's real-FFT layout is
    an error at construction naming `linear_operator()` and both shapes (it used to surface
    only inside the integrator, as a broadcasting TypeError of shapes (32,) and (17,))."""
    with pytest.raises(ValueError, match=r"`linear_operator\(\)` of _FullLayoutHeat has shape "):
        _FullLayoutHeat()


class _ThreeOfFour(dyn.AbstractDynamics):
    """A user's slip: a vector field that drops a component of the 4-state."""

    @property
    def state_shape(self):
        return (4,)

    def vector_field(self, t, y, args=None):
        return -y[:3]


def test_vector_field_of_the_wrong_shape_is_named():
    """`simulate` and `inference.solve_ode` name the model's `vector_field` and both shapes
    when it returns the wrong shape (they used to pass on diffrax's 'Incompatible types for
    broadcasting: input type=float32[3] and requested type=float32[4]'); the check itself
    traces with eval_shape only."""
    import jaxsci
    from jaxsci import inference

    model, y0, ts = _ThreeOfFour(), jnp.ones(4), jnp.array([0.0, 1.0])
    message = r"`vector_field` of _ThreeOfFour returns shape \(3,\) for a state of shape \(4,\)"
    with pytest.raises(ValueError, match=message):
        jaxsci.simulate(model, y0, ts)
    with pytest.raises(ValueError, match=message):
        inference.solve_ode(model, y0, ts)
    with pytest.raises(ValueError, match=message):
        model.check_vector_field(y0)
    dyn.Lorenz63().check_vector_field(jnp.ones(3))  # a right one passes


def test_flow_names_a_vector_field_of_the_wrong_shape():
    """`Flow` (the model step of the filters, rollouts and discovery), its call and its
    fixed-window scan, names the model's `vector_field` too, not diffrax's broadcasting."""
    import jaxsci
    from jaxsci import filters

    model, y0 = _ThreeOfFour(), jnp.ones(4)
    message = r"`vector_field` of _ThreeOfFour returns shape \(3,\) for a state of shape \(4,\)"
    flow = jaxsci.Flow(model, 0.1)
    with pytest.raises(ValueError, match=message):
        flow(y0, 0.0, 1.0)
    with pytest.raises(ValueError, match=message):
        flow.window(1.0)(y0, 0.0)
    obs = filters.IndexObservation(4, [0, 1], noise_std=1.0)
    with pytest.raises(ValueError, match=message):
        filters.assimilate(
            jax.random.key(0), flow, obs, filters.ETKF(), y0, n_cycles=3, dt=0.1, ensemble_size=4
        )
