import jax.numpy as jnp
from jaxtyping import Real

from .._checks import check_positive, float_parameter
from .._custom_types import Array, ArrayLike, Float, PyTree, ScalarLike, State
from ._base import AbstractDynamics, AbstractSDE


class AdditiveNoise(AbstractSDE):
    r"""Turn any deterministic model into an SDE dy = f(t, y) dt + sigma dW.

    Composition, not inheritance: wraps `dynamics` and adds diagonal additive noise of
    scale `sigma` (a scalar, or an array of the state's shape).
    """

    dynamics: AbstractDynamics
    sigma: Float[Array, "..."]

    def __init__(self, dynamics: AbstractDynamics, sigma: Real[ArrayLike, "..."] = 1.0):
        self.dynamics = dynamics
        self.sigma = float_parameter("sigma", sigma)

    def __check_init__(self):
        check_positive("sigma", self.sigma, allow_zero=True)
        shape = self.dynamics.state_shape
        if jnp.shape(self.sigma) not in ((), shape):
            raise ValueError(
                f"`sigma` has shape {jnp.shape(self.sigma)}, expected a scalar () or the "
                f"state's shape {shape}."
            )

    @property
    def state_shape(self) -> tuple[int, ...]:
        return self.dynamics.state_shape

    def vector_field(self, t: ScalarLike, y: State, args: PyTree = None) -> State:
        return self.dynamics.vector_field(t, y, args)

    def diffusion(self, t: ScalarLike, y: State, args: PyTree = None) -> State:
        return jnp.broadcast_to(self.sigma, y.shape).astype(y.dtype)

    def default_initial_state(self, key: Array | None = None) -> State:
        return self.dynamics.default_initial_state(key)
