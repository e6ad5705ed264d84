import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Real

from .._checks import check_finite, check_int, check_positive, float_parameter
from .._custom_types import Array, ArrayLike, Float, PyTree, ScalarLike, State
from ._base import AbstractDynamics
from ._lorenz96 import cyclic_shifts


class Lorenz96TwoScale(AbstractDynamics):
    r"""Two-scale Lorenz (1996) model: K slow variables X, each coupled to J fast Y.

    dX_k/dt = -X_{k-1}(X_{k-2} - X_{k+1}) - X_k + F - (h c / b) sum_j Y_{j,k}
    dY_{j,k}/dt = -c b Y_{j+1,k}(Y_{j+2,k} - Y_{j-1,k}) - c Y_{j,k} + (h c / b) X_k
    The fast variables form one ring of length J*K (Y_{j,k} at index k*J + j). The state
    is the flat vector (X_1..X_K, Y_1..Y_{JK}). Defaults h=1, c=10, b=10, F=10 follow
    Lorenz (1996) and Wilks (2005).
    """

    forcing: Float[Array, ""]
    coupling: Float[Array, ""]
    time_scale: Float[Array, ""]
    amplitude_scale: Float[Array, ""]
    k: int = eqx.field(static=True)
    j: int = eqx.field(static=True)

    def __init__(
        self,
        k: int = 8,
        j: int = 32,
        forcing: Real[ArrayLike, ""] = 10.0,
        coupling: Real[ArrayLike, ""] = 1.0,
        time_scale: Real[ArrayLike, ""] = 10.0,
        amplitude_scale: Real[ArrayLike, ""] = 10.0,
    ):
        self.k = check_int("k", k, minimum=4)
        self.j = check_int("j", j, minimum=1)
        self.forcing = float_parameter("forcing", forcing)
        self.coupling = float_parameter("coupling", coupling)
        self.time_scale = float_parameter("time_scale", time_scale)
        self.amplitude_scale = float_parameter("amplitude_scale", amplitude_scale)

    def __check_init__(self):
        for name in ("forcing", "coupling", "time_scale"):
            check_finite(name, getattr(self, name))
        # b divides the coupling h c / b of the slow equations (Lorenz 1996: b = 10 > 0)
        check_positive("amplitude_scale", self.amplitude_scale)

    @property
    def state_shape(self) -> tuple[int, ...]:
        return (self.k + self.k * self.j,)

    def slow(self, y: Float[Array, " n"]) -> Float[Array, " k"]:
        """The slow variables X of a state, (K,)."""
        return y[: self.k]

    def subgrid_tendency(self, y: Float[Array, " n"]) -> Float[Array, " k"]:
        r"""The unresolved coupling term of the slow equations, -(h c / b) sum_j Y_{j,k}, (K,).

        The slow tendency minus the one-scale Lorenz-96 tendency of X: the target of a
        closure U(X) of the slow state (Wilks 2005 fits a polynomial U(X_k); a local network in
        `jaxsci.nn.LocalMLP`).
        """
        h, c, b = self.coupling, self.time_scale, self.amplitude_scale
        return -h * c / b * y[self.k :].reshape(self.k, self.j).sum(axis=1)

    def vector_field(
        self, t: ScalarLike, y: Float[Array, " n"], args: PyTree = None
    ) -> Float[Array, " n"]:
        x, fast = y[: self.k], y[self.k :]
        h, c, b = self.coupling, self.time_scale, self.amplitude_scale
        ahead, back2, back1 = cyclic_shifts(x, (1, -2, -1))
        dx = (ahead - back2) * back1 - x + self.forcing + self.subgrid_tendency(y)
        f_ahead, f_ahead2, f_back = cyclic_shifts(fast, (1, 2, -1))
        dfast = -c * b * f_ahead * (f_ahead2 - f_back)
        dfast = dfast - c * fast + h * c / b * jnp.repeat(x, self.j)
        return jnp.concatenate([dx, dfast])

    def default_initial_state(self, key: Array | None = None) -> State:
        x = jnp.full((self.k,), self.forcing).at[0].add(0.01)
        # Small deterministic fast-variable pattern (no key needed, reproducible).
        fast = 0.01 * jnp.sin(jnp.arange(self.k * self.j) * 0.7)
        return jnp.concatenate([x, fast])
