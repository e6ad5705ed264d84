"""A nonlinear observation h(x) = fn(x) given by a user callable."""

from collections.abc import Callable, Sequence
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp

from .._checks import check_callable, check_int
from .._custom_types import Array, ArrayLike, Float
from ._base import AbstractObservation, GaussianNoise, as_locations


class NonlinearObservation(AbstractObservation):
    """h(x) = fn(x) for a user callable (e.g. x**2, |x|, a radiative transfer model).

    Arguments:
        fn: maps one state of shape (state_dim,) to (obs_dim,); must be jax-traceable.
        state_dim, obs_dim: dimensions.
        noise_cov: R as a scalar, a vector (diagonal) or a full matrix.
        noise_std: instead of `noise_cov`, the error standard deviation(s). Neither: R = I.
        locations: optional positions of the observations, (obs,) or (obs, d) (for
            LETKF).
    """

    fn: Callable = eqx.field(static=True)
    noise: GaussianNoise
    state_dim: int = eqx.field(static=True)
    locations: Float[Array, " obs *coord"] | None

    def __init__(
        self,
        fn: Callable,
        state_dim: int,
        obs_dim: int,
        noise_cov: Any = None,
        locations: Float[ArrayLike, " obs *coord"] | Sequence[Any] | None = None,
        *,
        noise_std: Any = None,
    ):
        check_callable("fn", fn, "a callable x -> h(x)")
        state_dim = check_int("state_dim", state_dim, 1)
        obs_dim = check_int("obs_dim", obs_dim, 1)
        state = jax.ShapeDtypeStruct((state_dim,), jnp.result_type(float))
        try:
            out = jax.eval_shape(fn, state)
        except Exception as err:  # noqa: BLE001 - re-raised with the argument named
            raise ValueError(
                f"`fn` must map a state of shape ({state_dim},) (`state_dim`) to a vector; "
                f"calling it failed: {err}"
            ) from err
        if tuple(jnp.shape(out)) != (obs_dim,):
            raise ValueError(
                f"`fn` maps a state of shape ({state_dim},) to shape {tuple(jnp.shape(out))}, "
                f"but `obs_dim` = {obs_dim}: they must agree."
            )
        self.fn = fn
        self.noise = GaussianNoise(obs_dim, noise_cov, noise_std=noise_std)
        self.state_dim = state_dim
        self.locations = as_locations(locations, obs_dim)

    def __call__(self, x: Float[Array, " dim"]) -> Float[Array, " obs"]:
        return self.fn(x)
