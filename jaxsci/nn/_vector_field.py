"""Networks as `jaxsci.dynamics` models: neural ODEs and hybrid physics + closure models."""

from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp

from .._custom_types import Array, PyTree, ScalarLike, SpectralState, State
from ..dynamics import AbstractDynamics, AbstractSDE, AbstractSemilinear


def _infer_state_shape(network) -> tuple[int, ...] | None:
    in_size = getattr(network, "in_size", None)
    if isinstance(in_size, int) and getattr(network, "out_size", None) == in_size:
        return (in_size,)
    return None


def _check_output(name: str, network, state_shape, time_dependent: bool) -> None:
    """Trace `network` abstractly on a state and raise a ValueError naming `name` unless its
    output has the state's shape."""
    y = jax.ShapeDtypeStruct(tuple(state_shape), jnp.zeros(()).dtype)
    t = jax.ShapeDtypeStruct((), jnp.zeros(()).dtype)
    try:
        out = (
            eqx.filter_eval_shape(network, t, y)
            if time_dependent
            else eqx.filter_eval_shape(network, y)
        )
    except (TypeError, ValueError) as err:
        call = "network(t, y)" if time_dependent else "network(y)"
        raise ValueError(
            f"`{name}` cannot be called as {call} on a state of shape {tuple(state_shape)}: {err}"
        ) from err
    shape = tuple(getattr(out, "shape", ()))
    if shape != tuple(state_shape):
        raise ValueError(
            f"`{name}` maps a state of shape {tuple(state_shape)} to shape {shape}; a vector "
            "field must return the state's shape."
        )


class NeuralVectorField(AbstractDynamics):
    r"""A network as an ODE model: dy/dt = f_theta(y), or f_theta(t, y) when time dependent.

    The neural ODE of Chen, Rubanova, Bettencourt & Duvenaud (2018, NeurIPS). Being an
    `AbstractDynamics`, it integrates with `jaxsci.simulate` / `jaxsci.Flow` (any diffrax
    solver and adjoint), and `eqx.filter_grad` of a loss of the trajectory gives the
    gradient with respect to the network weights.

    Arguments:
        network: a callable module, `network(y)` (or `network(t, y)`) returning an array
            of the state's shape, e.g. `MLP(d, d, ...)` or `FNO1d(1, 1, ...)` on `(1, n)`.
        state_shape: the shape of one state; inferred for an `MLP` with in_size ==
            out_size, required otherwise.
        time_dependent: call the network as `network(t, y)` (e.g. a `ScoreMLP`-style
            time-conditioned network) instead of `network(y)`.
    """

    network: Callable
    shape: tuple[int, ...] = eqx.field(static=True)
    time_dependent: bool = eqx.field(static=True)

    def __init__(
        self,
        network: Callable,
        state_shape: tuple[int, ...] | int | None = None,
        *,
        time_dependent: bool = False,
    ):
        if not callable(network):
            raise TypeError(f"`network` must be callable, got {type(network).__name__}.")
        if state_shape is None:
            state_shape = _infer_state_shape(network)
            if state_shape is None:
                raise ValueError(
                    f"`state_shape` is required: it cannot be inferred from a "
                    f"{type(network).__name__} (only from an MLP with in_size == out_size)."
                )
        if isinstance(state_shape, int):
            state_shape = (state_shape,)
        self.shape = tuple(int(s) for s in state_shape)
        self.time_dependent = bool(time_dependent)
        self.network = network
        _check_output("network", network, self.shape, self.time_dependent)

    @property
    def state_shape(self) -> tuple[int, ...]:
        return self.shape

    def vector_field(self, t: ScalarLike, y: State, args: PyTree = None) -> State:
        out = self.network(t, y) if self.time_dependent else self.network(y)
        return out.astype(y.dtype)


def _check_physics(physics, cls: type) -> None:
    if not isinstance(physics, cls):
        raise TypeError(f"`physics` must be a {cls.__name__}, got {type(physics).__name__}.")
    if isinstance(physics, AbstractSDE):
        raise TypeError(
            f"`physics` is the SDE {type(physics).__name__}; build the hybrid from its drift "
            "model and wrap the result, e.g. AdditiveNoise(HybridVectorField(drift, closure), "
            "sigma)."
        )


class HybridVectorField(AbstractDynamics):
    r"""Known physics plus a learned closure: dy/dt = f_phys(t, y) + c_theta(y).

    Universal differential equations (Rackauckas et al. 2020) / closure models: the
    network corrects a model whose physics is known up to unresolved terms. Both the
    physics parameters (array fields of `physics`) and the closure weights are
    differentiable leaves, so `eqx.filter_grad` trains either or both. A semilinear
    `physics` is integrated here as a general ODE (its split is not used); for stiff
    spectral PDEs use `HybridSemilinear`, which keeps the ETDRK solvers available.

    Arguments:
        physics: an `AbstractDynamics` (not an SDE).
        closure: `closure(y)` (or `closure(t, y)` when `time_dependent`) returning an array
            of the state's shape.
        time_dependent: call the closure with the time.
    """

    physics: AbstractDynamics
    closure: Callable
    time_dependent: bool = eqx.field(static=True)

    def __init__(
        self, physics: AbstractDynamics, closure: Callable, *, time_dependent: bool = False
    ):
        _check_physics(physics, AbstractDynamics)
        if not callable(closure):
            raise TypeError(f"`closure` must be callable, got {type(closure).__name__}.")
        self.physics = physics
        self.closure = closure
        self.time_dependent = bool(time_dependent)
        _check_output("closure", closure, physics.state_shape, self.time_dependent)

    @property
    def state_shape(self) -> tuple[int, ...]:
        return tuple(self.physics.state_shape)

    def vector_field(self, t: ScalarLike, y: State, args: PyTree = None) -> State:
        c = self.closure(t, y) if self.time_dependent else self.closure(y)
        return self.physics.vector_field(t, y, args) + c.astype(y.dtype)

    def default_initial_state(self, key: Array | None = None) -> State:
        return self.physics.default_initial_state(key)


class HybridSemilinear(AbstractSemilinear):
    r"""A stiff spectral PDE plus a learned closure, keeping its semilinear split.

        u_t = L u + N(u) + c_theta(u)

    The closure joins the nonlinear part (in spectral space, N~(u_hat) = N(u_hat) +
    F[c_theta(F^{-1} u_hat)]), so the exponential integrators (ETDRK4, the default of
    `jaxsci.simulate` for semilinear models) treat the stiff linear part exactly, as for
    the physics alone.

    Arguments:
        physics: an `AbstractSemilinear` model (Kuramoto-Sivashinsky, Burgers, ...).
        closure: `closure(u)` (or `closure(t, u)`) on the grid state, returning its shape.
        time_dependent: call the closure with the time.
    """

    physics: AbstractSemilinear
    closure: Callable
    time_dependent: bool = eqx.field(static=True)

    def __init__(
        self, physics: AbstractSemilinear, closure: Callable, *, time_dependent: bool = False
    ):
        _check_physics(physics, AbstractSemilinear)
        if not callable(closure):
            raise TypeError(f"`closure` must be callable, got {type(closure).__name__}.")
        self.physics = physics
        self.closure = closure
        self.time_dependent = bool(time_dependent)
        _check_output("closure", closure, physics.state_shape, self.time_dependent)

    @property
    def state_shape(self) -> tuple[int, ...]:
        return tuple(self.physics.state_shape)

    def linear_operator(self) -> SpectralState:
        return self.physics.linear_operator()

    def nonlinear(self, t: ScalarLike, y_hat: SpectralState, args: PyTree) -> SpectralState:
        u = self.physics.from_spectral(y_hat)
        c = self.closure(t, u) if self.time_dependent else self.closure(u)
        return self.physics.nonlinear(t, y_hat, args) + self.physics.to_spectral(c.astype(u.dtype))

    def to_spectral(self, y: State) -> SpectralState:
        return self.physics.to_spectral(y)

    def from_spectral(self, y_hat: SpectralState) -> State:
        return self.physics.from_spectral(y_hat)

    def default_initial_state(self, key: Array | None = None) -> State:
        return self.physics.default_initial_state(key)
