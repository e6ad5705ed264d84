import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Real

from .._checks import check_finite, check_int, float_parameter
from .._custom_types import Array, ArrayLike, Float, PyTree, ScalarLike, State
from ._base import AbstractDynamics


def cyclic_shifts(y, offsets):
    """The periodic shifts y_{i+k} (for k in `offsets`) of a 1-D array.

    Built from one padded copy (ghost cells) rather than `jnp.roll`: under vmap XLA:CPU
    compiles a padded slice into faster code than a roll (measured on Lorenz-96 ensembles,
    benchmarks/bench_l96_numpy.py).
    """
    n = y.shape[-1]
    lo, hi = max(0, -min(offsets)), max(0, max(offsets))
    padded = jnp.concatenate([y[n - lo :], y, y[:hi]])
    return [padded[lo + k : lo + k + n] for k in offsets]


class Lorenz96(AbstractDynamics):
    r"""Lorenz (1996) model on a ring of `n` variables.

    dx_i/dt = (x_{i+1} - x_{i-2}) x_{i-1} - x_i + F, indices cyclic. With n=40, F=8 the
    leading Lyapunov exponent is about 1.69 per time unit.
    """

    forcing: Float[Array, ""]
    n: int = eqx.field(static=True)

    def __init__(self, n: int = 40, forcing: Real[ArrayLike, ""] = 8.0):
        self.n = check_int("n", n, minimum=4)
        self.forcing = float_parameter("forcing", forcing)

    def __check_init__(self):
        check_finite("forcing", self.forcing)

    @property
    def state_shape(self) -> tuple[int, ...]:
        return (self.n,)

    def vector_field(
        self, t: ScalarLike, y: Float[Array, " n"], args: PyTree = None
    ) -> Float[Array, " n"]:
        ahead, back2, back1 = cyclic_shifts(y, (1, -2, -1))
        return (ahead - back2) * back1 - y + self.forcing

    def default_initial_state(self, key: Array | None = None) -> State:
        # The rest state x_i = F is unstable; a small bump on one site starts the chaos.
        return jnp.full((self.n,), self.forcing).at[0].add(0.01)
