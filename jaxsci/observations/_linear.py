"""A linear observation h(x) = H x, with H a matrix or a matrix-free linear map."""

from collections.abc import Callable, Sequence
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp

from .._checks import check_finite, check_int, check_ndim, float_parameter
from .._custom_types import Array, ArrayLike, Float
from ._base import AbstractLinearObservation, GaussianNoise, as_locations


class LinearObservation(AbstractLinearObservation):
    r"""h(x) = H x with H an (obs, dim) matrix or a linear callable x (dim,) -> (obs,).

    A callable (e.g. a blur or a masked Fourier transform written matrix-free) needs `dim`;
    its (obs,) output shape is found by tracing it once. The Gram matrix H H^T (`gram`, used
    by twisted SMC samplers and exact Gaussian posteriors) is formed here once, for a callable
    from its `dim` columns H e_j; `matrix()` gives H itself.

    Arguments:
        operator: H, an (obs, dim) matrix (array or nested sequence; another shape is a
            ValueError naming `operator`) or a linear callable.
        noise_cov: R as a scalar (R = s I), a vector (diagonal) or a full matrix.
        noise_std: instead of `noise_cov`, the error standard deviation(s), a scalar or an
            (obs,) vector (R = diag(noise_std^2)). Neither: R = I.
        dim: the state dimension (required for a callable; checked against a matrix).
        locations: optional positions of the observations on the state grid, (obs,) or (obs, d)
            (for LETKF).
    """

    operator: Float[Array, "obs dim"] | Callable
    gram: Float[Array, "obs obs"]
    noise: GaussianNoise
    state_dim: int = eqx.field(static=True)
    locations: Float[Array, " obs *coord"] | None

    def __init__(
        self,
        operator: Float[ArrayLike, "..."] | Sequence[Sequence[float]] | Callable,
        noise_cov: Any = None,
        *,
        noise_std: Any = None,
        dim: int | None = None,
        locations: Float[ArrayLike, " obs *coord"] | Sequence[Any] | None = None,
    ):
        dtype = jnp.result_type(float)
        if callable(operator):
            if dim is None:
                raise ValueError("`dim` is required when `operator` is a callable.")
            dim = check_int("dim", dim, 1)
            try:
                out = jax.eval_shape(operator, jax.ShapeDtypeStruct((dim,), dtype))
            except Exception as err:  # noqa: BLE001 - re-raised with the argument named
                raise ValueError(
                    f"`operator` must map a state of shape ({dim},) to a vector; calling it "
                    f"failed: {err}"
                ) from err
            shape = tuple(jnp.shape(out))
            if len(shape) != 1 or shape[0] == 0:
                raise ValueError(
                    f"`operator` maps a state of shape ({dim},) to shape {shape}, expected a "
                    "non-empty vector (obs,)."
                )
            columns = jnp.asarray(jax.vmap(operator)(jnp.eye(dim, dtype=dtype)))  # H^T
            self.operator = operator
            self.gram = columns.T @ columns
            obs_dim = shape[0]
        else:
            matrix = float_parameter("operator", operator)
            check_ndim("operator", matrix, 2, "(obs, dim)")
            check_finite("operator", matrix)
            if dim is not None and check_int("dim", dim, 1) != matrix.shape[1]:
                raise ValueError(
                    f"`dim` = {dim} does not match the {matrix.shape[1]} columns of `operator`."
                )
            self.operator = matrix
            self.gram = matrix @ matrix.T
            obs_dim, dim = matrix.shape
        self.noise = GaussianNoise(obs_dim, noise_cov, noise_std=noise_std)
        self.state_dim = int(dim)
        self.locations = as_locations(locations, obs_dim)

    def __call__(self, x: Float[Array, " dim"]) -> Float[Array, " obs"]:
        if callable(self.operator):
            return self.operator(x)
        return self.operator.astype(x.dtype) @ x

    def matrix(self) -> Float[Array, "obs dim"]:
        """H as an (obs, dim) matrix (for a callable: from its columns H e_j)."""
        if callable(self.operator):
            eye = jnp.eye(self.state_dim, dtype=self.gram.dtype)
            return jnp.asarray(jax.vmap(self.operator)(eye)).T
        return self.operator
