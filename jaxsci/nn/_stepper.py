"""`Stepper`: a network as a learned time stepper u(t) -> u(t + Delta)."""

from collections.abc import Callable

import equinox as eqx

from .._custom_types import Array, Float
from ._base import AbstractNetwork


class Stepper(AbstractNetwork):
    r"""A learned time stepper: u(t + Delta) ~ u(t) + net(u(t)) (residual) or net(u(t)).

    The residual form learns the increment over one step, which is small when Delta is short
    compared with the dynamics, so the network starts near the identity map; this is the
    usual parameterisation of neural PDE surrogates rolled out autoregressively (e.g.
    Brandstetter, Worrall & Welling 2022, "Message passing neural PDE solvers", ICLR; Lippe
    et al. 2023, "PDE-Refiner"). Roll it out with `jaxsci.integrate.rollout(stepper, u0, n)`
    and train it through the rollout with `jaxsci.losses.RolloutLoss`.

    Parameter count: that of `net` (the stepper adds none).

    Arguments:
        net: a network (any callable `eqx.Module`, its weights its array leaves) mapping a
            state to a state of the same shape, e.g. an `FNO1d` with one input and one
            output channel acting on a (1, n) field.
        residual: predict the increment u(t + Delta) - u(t) (True) or the next state itself.
    """

    net: Callable[[Array], Array]
    residual: bool = eqx.field(static=True)

    def __init__(self, net: Callable[[Array], Array], residual: bool = True):
        if not (isinstance(net, eqx.Module) and callable(net)):
            raise TypeError(
                "`net` must be a network (a callable eqx.Module such as jaxsci.nn.FNO1d), got "
                f"{type(net).__name__}."
            )
        self.net = net
        self.residual = bool(residual)

    def __call__(self, u: Float[Array, " *state"]) -> Float[Array, " *state"]:
        """The state one step after `u` (one example; the shape the network takes)."""
        out = self.net(u)
        return u + out if self.residual else out
