import jax.numpy as jnp
from jaxtyping import Real

from .._checks import check_positive, float_parameter
from .._custom_types import Array, ArrayLike, Float, PyTree, ScalarLike, State
from ._base import AbstractDynamics


class SIR(AbstractDynamics):
    r"""Kermack-McKendrick SIR epidemic model.

    dS/dt = -beta S I / P,  dI/dt = beta S I / P - gamma I,  dR/dt = gamma I, with P the
    (conserved) population. R0 = beta / gamma.
    """

    beta: Float[Array, ""]
    gamma: Float[Array, ""]
    population: Float[Array, ""]

    def __init__(
        self,
        beta: Real[ArrayLike, ""] = 0.3,
        gamma: Real[ArrayLike, ""] = 0.1,
        population: Real[ArrayLike, ""] = 1.0,
    ):
        self.beta = float_parameter("beta", beta)
        self.gamma = float_parameter("gamma", gamma)
        self.population = float_parameter("population", population)

    def __check_init__(self):
        check_positive("beta", self.beta)
        check_positive("gamma", self.gamma)
        check_positive("population", self.population)

    @property
    def state_shape(self) -> tuple[int, ...]:
        return (3,)

    def vector_field(self, t: ScalarLike, y: Float[Array, "3"], args: PyTree = None) -> State:
        s, i = y[0], y[1]
        infection = self.beta * s * i / self.population
        recovery = self.gamma * i
        return jnp.stack([-infection, infection - recovery, recovery])

    def default_initial_state(self, key: Array | None = None) -> State:
        return jnp.array([0.99, 0.01, 0.0]) * self.population
