import jax.numpy as jnp
from jaxtyping import Real

from .._checks import check_finite, check_positive, float_parameter
from .._custom_types import Array, ArrayLike, Float, PyTree, ScalarLike, State
from ._base import AbstractDynamics


class Lorenz63(AbstractDynamics):
    r"""Lorenz (1963) convection model.

    dx/dt = sigma (y - x),  dy/dt = x (rho - z) - y,  dz/dt = x y - beta z.
    Classic chaotic parameters sigma=10, rho=28, beta=8/3 (leading Lyapunov exponent
    about 0.906).
    """

    sigma: Float[Array, ""]
    rho: Float[Array, ""]
    beta: Float[Array, ""]

    def __init__(
        self,
        sigma: Real[ArrayLike, ""] = 10.0,
        rho: Real[ArrayLike, ""] = 28.0,
        beta: Real[ArrayLike, ""] = 8.0 / 3.0,
    ):
        self.sigma = float_parameter("sigma", sigma)
        self.rho = float_parameter("rho", rho)
        self.beta = float_parameter("beta", beta)

    def __check_init__(self):
        check_positive("sigma", self.sigma)
        check_finite("rho", self.rho)
        check_positive("beta", self.beta)

    @property
    def state_shape(self) -> tuple[int, ...]:
        return (3,)

    def vector_field(self, t: ScalarLike, y: Float[Array, "3"], args: PyTree = None) -> State:
        x, yy, z = y[0], y[1], y[2]
        return jnp.stack([self.sigma * (yy - x), x * (self.rho - z) - yy, x * yy - self.beta * z])

    def default_initial_state(self, key: Array | None = None) -> State:
        # A point on the attractor for the classic parameters (as used by DAPPER's L63 setup).
        return jnp.array([1.509, -1.531, 25.46])


Lorenz63.__init__.__doc__ = "Arguments: `sigma`, `rho`, `beta` (scalars, differentiable)."
