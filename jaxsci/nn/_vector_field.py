"""Networks as `jaxsci.dynamics` models: neural ODEs and hybrid physics + closure models."""

import math
from collections.abc import Callable
from typing import cast

import equinox as eqx
import jax
import jax.numpy as jnp

from .._custom_types import Array, PyTree, ScalarLike, SpectralState, State
from ..dynamics import AbstractDynamics, AbstractSDE, AbstractSemilinear
from ..spectral import PeriodicGrid
from ._mlp import MLP


def _infer_state_shape(network: Callable) -> tuple[int, ...] | None:
    """`(size,)` for an `MLP` from and to vectors of one size; None otherwise."""
    if isinstance(network, MLP) and network.in_size == network.out_size:
        return (network.in_size,)
    return None


def _check_network_shape(network_shape, state_shape) -> tuple[int, ...] | None:
    if network_shape is None:
        return None
    if isinstance(network_shape, int):
        network_shape = (network_shape,)
    network_shape = tuple(int(s) for s in network_shape)
    if math.prod(network_shape) != math.prod(state_shape):
        raise ValueError(
            f"`network_shape` {network_shape} has {math.prod(network_shape)} entries, but the "
            f"state of shape {tuple(state_shape)} has {math.prod(state_shape)}."
        )
    return network_shape


def _apply(network, t, y, time_dependent: bool, network_shape):
    """network(y) or network(t, y), on y reshaped to `network_shape`, back in y's shape."""
    z = y if network_shape is None else y.reshape(network_shape)
    out = network(t, z) if time_dependent else network(z)
    return out.reshape(y.shape).astype(y.dtype)


def _check_output(name: str, network, state_shape, time_dependent: bool, network_shape) -> None:
    """Trace `network` abstractly on a state and raise a ValueError naming `name` unless its
    output has the state's size (and shape, when no `network_shape` is given)."""
    in_shape = tuple(state_shape) if network_shape is None else network_shape
    y = jax.ShapeDtypeStruct(in_shape, jnp.zeros(()).dtype)
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
            f"`{name}` cannot be called as {call} on an input of shape {in_shape}: {err}"
        ) from err
    shape = tuple(out.shape) if isinstance(out, jax.ShapeDtypeStruct) else None
    if shape != in_shape:
        raise ValueError(
            f"`{name}` maps an input of shape {in_shape} to shape {shape}; a vector field "
            "must return its input's shape (pass `network_shape` if the network takes the "
            "state in another shape)."
        )


class NeuralVectorField(AbstractDynamics):
    r"""A network as an ODE model: dy/dt = f_theta(y), or f_theta(t, y) when time dependent.

    The neural ODE of Chen, Rubanova, Bettencourt & Duvenaud (2018, NeurIPS). Being an
    `AbstractDynamics`, it integrates with `jaxsci.simulate` / `jaxsci.Flow` (any diffrax
    solver and adjoint), and `eqx.filter_grad` of a loss of the trajectory gives the
    gradient with respect to the network weights (the network is a module field, so its
    arrays are leaves of this model).

    Arguments:
        network: a callable module, `network(y)` (or `network(t, y)`) returning an array
            of its input's shape, e.g. `MLP(d, d, ...)`.
        state_shape: the shape of one state; inferred for an `MLP` with in_size ==
            out_size, required otherwise.
        time_dependent: call the network as `network(t, y)` (e.g. a `ScoreMLP`-style
            time-conditioned network) instead of `network(y)`.
        network_shape: the input shape of the network when it differs from the
            state's (same number of entries), e.g. `(1, n)` for an `FNO` or `UNet` on
            the `(n,)` state of a 1-D PDE: the state is reshaped on the way in and the
            output back to the state's shape. Default: the state's shape.
    """

    network: Callable
    shape_: tuple[int, ...] = eqx.field(static=True)
    time_dependent: bool = eqx.field(static=True)
    network_shape: tuple[int, ...] | None = eqx.field(static=True)

    def __init__(
        self,
        network: Callable,
        state_shape: tuple[int, ...] | int | None = None,
        *,
        time_dependent: bool = False,
        network_shape: tuple[int, ...] | None = None,
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
        self.shape_ = tuple(int(s) for s in state_shape)
        self.time_dependent = bool(time_dependent)
        self.network_shape = _check_network_shape(network_shape, self.shape_)
        self.network = network
        _check_output("network", network, self.shape_, self.time_dependent, self.network_shape)

    @property
    def state_shape(self) -> tuple[int, ...]:
        return self.shape_

    def vector_field(self, t: ScalarLike, y: State, args: PyTree = None) -> State:
        return _apply(self.network, t, y, self.time_dependent, self.network_shape)


def _check_physics(physics, cls: type) -> None:
    if not isinstance(physics, cls):
        raise TypeError(f"`physics` must be a {cls.__name__}, got {type(physics).__name__}.")
    if isinstance(physics, AbstractSDE):
        raise TypeError(
            f"`physics` is the SDE {type(physics).__name__}; build the hybrid from its drift "
            "model and wrap the result, e.g. AdditiveNoise(HybridVectorField(drift, closure), "
            "sigma)."
        )


def _check_closure(closure, physics, time_dependent, network_shape):
    if not callable(closure):
        raise TypeError(f"`closure` must be callable, got {type(closure).__name__}.")
    state_shape = tuple(physics.state_shape)
    network_shape = _check_network_shape(network_shape, state_shape)
    _check_output("closure", closure, state_shape, time_dependent, network_shape)
    return network_shape


class HybridVectorField(AbstractDynamics):
    r"""Known physics plus a learned closure: dy/dt = f_phys(t, y) + c_theta(y).

    Universal differential equations (Rackauckas et al. 2020) / closure models: the
    network corrects a model whose physics is known up to unresolved terms. Both the
    physics parameters (array fields of `physics`) and the closure weights are
    differentiable leaves, so `eqx.filter_grad` trains either or both. A semilinear
    `physics` is integrated here as a general ODE (its split is not used); for stiff
    spectral PDEs use `HybridSemilinear`, which keeps the ETDRK solvers available.

    A local closure of a ring model, e.g. one-scale Lorenz-96 standing for the two-scale one,
    is `HybridVectorField(Lorenz96(n, F), LocalMLP(r, ...))` (see `LocalMLP`); fitted offline
    to subgrid tendencies with `jaxsci.losses.MSELoss`, or from noisy, sparse observations
    alone through an ensemble filter with `jaxsci.losses.FilterLikelihoodLoss`, both by
    `jaxsci.train.fit`.

    Arguments:
        physics: an `AbstractDynamics` (not an SDE).
        closure: `closure(y)` (or `closure(t, y)` when `time_dependent`) returning an array
            of its input's shape.
        time_dependent: call the closure with the time.
        network_shape: the input shape of the network when it differs from the
            state's (same number of entries), e.g. `(1, n)` for an `FNO` or `UNet` on
            the `(n,)` state of a 1-D PDE: the state is reshaped on the way in and the
            output back to the state's shape. Default: the state's shape.
    """

    physics: AbstractDynamics
    closure: Callable
    time_dependent: bool = eqx.field(static=True)
    network_shape: tuple[int, ...] | None = eqx.field(static=True)

    def __init__(
        self,
        physics: AbstractDynamics,
        closure: Callable,
        *,
        time_dependent: bool = False,
        network_shape: tuple[int, ...] | None = None,
    ):
        _check_physics(physics, AbstractDynamics)
        self.time_dependent = bool(time_dependent)
        self.network_shape = _check_closure(closure, physics, self.time_dependent, network_shape)
        self.physics = physics
        self.closure = closure

    @property
    def state_shape(self) -> tuple[int, ...]:
        return tuple(self.physics.state_shape)

    def closure_term(self, t: ScalarLike, y: State) -> State:
        """c_theta(y) (or c_theta(t, y)), in the state's shape."""
        return _apply(self.closure, t, y, self.time_dependent, self.network_shape)

    def vector_field(self, t: ScalarLike, y: State, args: PyTree = None) -> State:
        return self.physics.vector_field(t, y, args) + self.closure_term(t, y)

    def default_initial_state(self, key: Array | None = None) -> State:
        return self.physics.default_initial_state(key)


class HybridSemilinear(AbstractSemilinear):
    r"""A stiff spectral PDE plus a learned closure, keeping its semilinear split.

        u_t = L u + N(u) + c_theta(u)

    The closure joins the nonlinear part (in spectral space, N~(u_hat) = N(u_hat) +
    F[c_theta(F^{-1} u_hat)]), so the exponential integrators (ETDRK4, the default of
    `jaxsci.simulate` for semilinear models) treat the stiff linear part exactly, as for
    the physics alone. Composition: it wraps the `HybridVectorField` of the same physics and
    closure (its `hybrid` field) and splits it; `physics` and `closure` read through it.

    Arguments: as `HybridVectorField`, with `physics` an `AbstractSemilinear` model
    (Kuramoto-Sivashinsky, Burgers, ...) and `closure` acting on its grid state. The
    hybrid declares the physics' grid.
    """

    hybrid: HybridVectorField

    def __init__(
        self,
        physics: AbstractSemilinear,
        closure: Callable,
        *,
        time_dependent: bool = False,
        network_shape: tuple[int, ...] | None = None,
    ):
        _check_physics(physics, AbstractSemilinear)
        self.hybrid = HybridVectorField(
            physics, closure, time_dependent=time_dependent, network_shape=network_shape
        )

    @property
    def physics(self) -> AbstractSemilinear:
        return cast(AbstractSemilinear, self.hybrid.physics)  # checked in __init__

    @property
    def closure(self) -> Callable:
        return self.hybrid.closure

    @property
    def grid(self) -> PeriodicGrid:
        return self.physics.grid

    def linear_operator(self) -> SpectralState:
        return self.physics.linear_operator()

    def nonlinear(self, t: ScalarLike, y_hat: SpectralState, args: PyTree) -> SpectralState:
        correction = self.hybrid.closure_term(t, self.from_spectral(y_hat))
        return self.physics.nonlinear(t, y_hat, args) + self.to_spectral(correction)

    def default_initial_state(self, key: Array | None = None) -> State:
        return self.physics.default_initial_state(key)
