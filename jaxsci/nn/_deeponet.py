"""Deep operator network (Lu et al. 2021)."""

from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp

from .._checks import check_int
from .._custom_types import Array, Float, Key
from ._base import AbstractNetwork, check_example
from ._init import default_float, subkey
from ._mlp import MLP


class DeepONet(AbstractNetwork):
    r"""Unstacked deep operator network (Lu, Jin, Pang, Zhang & Karniadakis 2021, Nature
    Machine Intelligence 3, 218-229).

        G(u)(y) = sum_{k=1}^{basis} b_k(u(x_1), ..., u(x_m)) t_k(y) + b_0

    The branch net b (an `MLP` on the m = `branch_in` sensor values of the input
    function) gives the coefficients, the trunk net t (an `MLP` on the `trunk_in`
    coordinates of the query point y, with the activation also applied to its last
    layer, as in Lu et al.) gives the basis functions; b_0 is a trained scalar bias.

    Shapes: `u_sensors` `(branch_in,)`, `y_query` `(trunk_in,)`, output a scalar. Evaluate
    on many query points with `jax.vmap(model, in_axes=(None, 0))` (the branch is then
    computed once); resolution independent in the query points (any grid), while the
    sensor locations are fixed by training.

    Parameter count: `MLP(branch_in, basis, width, depth)` + `MLP(trunk_in, basis, width,
    depth)` + 1, i.e. with w = width, p = basis, for depth >= 1:
    (branch_in + trunk_in) w + 2 w + 2 (depth - 1)(w^2 + w) + 2 (w p + p) + 1.

    Arguments:
        branch_in: number of sensors m.
        trunk_in: dimension of a query point y.
        width: hidden units of both nets.
        depth: hidden layers of both nets.
        basis: number p of basis functions.
        key: PRNG key.
        activation: nonlinearity of both nets (default GELU).
    """

    branch: MLP
    trunk: MLP
    bias: Float[Array, ""]
    branch_in: int = eqx.field(static=True)
    trunk_in: int = eqx.field(static=True)

    def __init__(
        self,
        branch_in: int,
        trunk_in: int,
        width: int,
        depth: int,
        basis: int,
        *,
        key: Key,
        activation: Callable[[Array], Array] = jax.nn.gelu,
    ):
        self.branch_in = check_int("branch_in", branch_in)
        self.trunk_in = check_int("trunk_in", trunk_in)
        basis = check_int("basis", basis)
        width, depth = check_int("width", width), check_int("depth", depth, 0)
        self.branch = MLP(branch_in, basis, width, depth, activation=activation, key=subkey(key, 0))
        self.trunk = MLP(
            trunk_in,
            basis,
            width,
            depth,
            activation=activation,
            final_activation=activation,
            key=subkey(key, 1),
        )
        self.bias = jnp.asarray(0.0, default_float())

    def __call__(
        self, u_sensors: Float[Array, " branch_in"], y_query: Float[Array, " trunk_in"]
    ) -> Float[Array, ""]:
        check_example(
            "u_sensors", u_sensors, (self.branch_in,), f"(branch_in,) = ({self.branch_in},)"
        )
        check_example("y_query", y_query, (self.trunk_in,), f"(trunk_in,) = ({self.trunk_in},)")
        return jnp.dot(self.branch(u_sensors), self.trunk(y_query)) + self.bias
