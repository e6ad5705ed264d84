import jax.numpy as jnp

from .._custom_types import Array, Float, PyTree, ScalarLike
from ._base import AbstractDynamics, AbstractSDE, check_positive


class AdditiveNoise(AbstractSDE):
    r"""Turn any deterministic model into an SDE dy = f(t, y) dt + sigma dW.

    Composition, not inheritance: wraps `dynamics` and adds diagonal additive noise of
    scale `sigma` (a scalar, or an array of the state's shape).
    """

    dynamics: AbstractDynamics
    sigma: Float[Array, "..."]

    def __init__(self, dynamics: AbstractDynamics, sigma=1.0):
        self.dynamics = dynamics
        self.sigma = jnp.asarray(sigma, dtype=float)

    def __check_init__(self):
        check_positive("sigma", self.sigma, allow_zero=True)

    @property
    def state_shape(self):
        return self.dynamics.state_shape

    def vector_field(self, t: ScalarLike, y, args: PyTree = None):
        return self.dynamics.vector_field(t, y, args)

    def diffusion(self, t: ScalarLike, y, args: PyTree = None):
        return jnp.broadcast_to(self.sigma, y.shape).astype(y.dtype)

    def default_initial_state(self, key=None):
        return self.dynamics.default_initial_state(key)
