import jax.numpy as jnp
from jaxtyping import Real

from .._checks import check_positive, float_parameter
from .._custom_types import Array, ArrayLike, Float, PyTree, ScalarLike, State
from ._base import AbstractDynamics


class LotkaVolterra(AbstractDynamics):
    r"""Predator-prey model, in the parameterisation of Stan's / posteriordb's example.

    du/dt = (alpha - beta v) u,  dv/dt = (-gamma + delta u) v, with u the prey (hare) and
    v the predator (lynx). posteriordb names (alpha, beta, gamma, delta) theta[1..4].
    """

    alpha: Float[Array, ""]
    beta: Float[Array, ""]
    gamma: Float[Array, ""]
    delta: Float[Array, ""]

    def __init__(
        self,
        alpha: Real[ArrayLike, ""] = 0.55,
        beta: Real[ArrayLike, ""] = 0.028,
        gamma: Real[ArrayLike, ""] = 0.80,
        delta: Real[ArrayLike, ""] = 0.024,
    ):
        self.alpha = float_parameter("alpha", alpha)
        self.beta = float_parameter("beta", beta)
        self.gamma = float_parameter("gamma", gamma)
        self.delta = float_parameter("delta", delta)

    def __check_init__(self):
        check_positive("alpha", self.alpha)
        check_positive("beta", self.beta)
        check_positive("gamma", self.gamma)
        check_positive("delta", self.delta)

    @property
    def state_shape(self) -> tuple[int, ...]:
        return (2,)

    def vector_field(self, t: ScalarLike, y: Float[Array, "2"], args: PyTree = None) -> State:
        u, v = y[0], y[1]
        return jnp.stack([(self.alpha - self.beta * v) * u, (-self.gamma + self.delta * u) * v])

    def default_initial_state(self, key: Array | None = None) -> State:
        # Hudson's Bay 1900 pelts (thousands): hare 30, lynx 4.
        return jnp.array([30.0, 4.0])
