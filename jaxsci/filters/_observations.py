"""Observation models y = h(x) + r, r ~ N(0, R), and synthetic observations from a truth run."""

import abc
from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.core import Tracer

from .._custom_types import Array, ArrayLike, Float, Int, Key


def _is_concrete(x) -> bool:
    return not isinstance(x, Tracer)


def _noise_matrices(noise_cov, obs_dim: int, name: str):
    """R from a scalar (R = s I), a vector (diagonal R) or a matrix; checked positive-definite.

    Returns (cov, chol, inv_chol, diagonal) as numpy float arrays; `diagonal` is a Python bool.
    """
    cov = np.asarray(noise_cov, dtype=np.float64)
    if cov.ndim == 0:
        cov = np.full((obs_dim,), float(cov))
    if cov.ndim == 1:
        if cov.shape != (obs_dim,):
            raise ValueError(
                f"`{name}` has shape {cov.shape}; a diagonal covariance needs shape ({obs_dim},)."
            )
        if not (np.all(np.isfinite(cov)) and np.all(cov > 0)):
            raise ValueError(
                f"`{name}` must be positive-definite: diagonal entries must be finite and > 0, "
                f"got {cov.tolist()}."
            )
        std = np.sqrt(cov)
        return np.diag(cov), np.diag(std), np.diag(1.0 / std), True
    if cov.shape != (obs_dim, obs_dim):
        raise ValueError(f"`{name}` has shape {cov.shape}, wanted ({obs_dim}, {obs_dim}).")
    if not np.all(np.isfinite(cov)) or not np.allclose(cov, cov.T, rtol=1e-6, atol=1e-12):
        raise ValueError(f"`{name}` must be a finite symmetric matrix.")
    try:
        chol = np.linalg.cholesky(cov)
    except np.linalg.LinAlgError as err:
        raise ValueError(
            f"`{name}` is not positive-definite (its Cholesky factorisation failed)."
        ) from err
    inv_chol = np.linalg.inv(chol)
    return cov, chol, inv_chol, bool(np.count_nonzero(cov - np.diag(np.diag(cov))) == 0)


class AbstractObservation(eqx.Module):
    """An observation model y = h(x) + r with Gaussian error r ~ N(0, R).

    Concrete classes hold `noise_cov` (R, obs x obs), its lower Cholesky factor `noise_chol`
    (L, R = L L^T), `noise_inv_chol` (L^{-1}, the whitening map), `state_dim` and
    `locations` (positions of the observations on the model grid, for localisation; None
    when the observation has no position). They implement `__call__(x) -> h(x)` on one state.
    """

    noise_cov: eqx.AbstractVar[Float[Array, "obs obs"]]
    noise_chol: eqx.AbstractVar[Float[Array, "obs obs"]]
    noise_inv_chol: eqx.AbstractVar[Float[Array, "obs obs"]]
    diagonal: eqx.AbstractVar[bool]
    state_dim: eqx.AbstractVar[int]
    locations: eqx.AbstractVar[Float[Array, " obs"] | None]

    @abc.abstractmethod
    def __call__(self, x: Float[Array, " dim"]) -> Float[Array, " obs"]:
        """The noise-free observation h(x) of one state."""

    @property
    def obs_dim(self) -> int:
        return self.noise_cov.shape[0]

    def whiten(self, v: Float[Array, "... obs"]) -> Float[Array, "... obs"]:
        """L^{-1} v along the last axis: whitened residuals have identity error covariance."""
        if self.diagonal:
            return v * jnp.diag(self.noise_inv_chol)
        return v @ self.noise_inv_chol.T

    def log_det_noise_cov(self) -> Float[Array, ""]:
        """log det R."""
        return 2.0 * jnp.sum(jnp.log(jnp.diag(self.noise_chol)))

    def sample(self, key: Key, x: Float[Array, " dim"]) -> Float[Array, " obs"]:
        """A noisy observation h(x) + L z, z ~ N(0, I)."""
        z = jax.random.normal(key, (self.obs_dim,), dtype=x.dtype)
        return self(x) + self.noise_chol.astype(x.dtype) @ z

    def log_likelihood(self, y: Float[Array, " obs"], x: Float[Array, " dim"]) -> Float[Array, ""]:
        """log N(y; h(x), R)."""
        r = self.whiten(y - self(x))
        p = self.obs_dim
        return -0.5 * (jnp.sum(r**2) + self.log_det_noise_cov() + p * jnp.log(2 * jnp.pi))

    def check_state(self, x, name: str = "ensemble") -> None:
        """Raise a ValueError naming `name` if the last axis of `x` is not `state_dim`."""
        if jnp.ndim(x) < 1 or jnp.shape(x)[-1] != self.state_dim:
            raise ValueError(
                f"`{name}` has shape {tuple(jnp.shape(x))}, but the observation operator expects "
                f"states of dimension {self.state_dim} on the last axis."
            )

    def check_observation(self, y, name: str = "y_obs") -> None:
        """Raise a ValueError naming `name` on a wrong last dimension or non-finite values."""
        if jnp.ndim(y) < 1 or jnp.shape(y)[-1] != self.obs_dim:
            raise ValueError(
                f"`{name}` has shape {tuple(jnp.shape(y))}, but the observation operator has "
                f"obs dimension {self.obs_dim} (last axis)."
            )
        if _is_concrete(y) and not bool(np.all(np.isfinite(np.asarray(y)))):
            raise ValueError(f"`{name}` contains non-finite values (NaN or inf).")


def _as_float(a):
    return jnp.asarray(a, dtype=jnp.result_type(float))


class LinearObservation(AbstractObservation):
    """h(x) = H x with a dense matrix `matrix` of shape (obs, dim).

    Arguments:
        matrix: H.
        noise_cov: R as a scalar (R = s I), a vector (diagonal) or a full matrix.
        locations: optional positions of the observations on the state grid (for LETKF).
    """

    matrix: Float[Array, "obs dim"]
    noise_cov: Float[Array, "obs obs"]
    noise_chol: Float[Array, "obs obs"]
    noise_inv_chol: Float[Array, "obs obs"]
    diagonal: bool = eqx.field(static=True)
    state_dim: int = eqx.field(static=True)
    locations: Float[Array, " obs"] | None

    def __init__(self, matrix: Float[ArrayLike, "obs dim"], noise_cov=1.0, locations=None):
        matrix = np.asarray(matrix, dtype=np.float64)
        if matrix.ndim != 2:
            raise ValueError(f"`matrix` must be 2-D (obs, dim), got shape {matrix.shape}.")
        cov, chol, inv_chol, diag = _noise_matrices(noise_cov, matrix.shape[0], "noise_cov")
        self.matrix = _as_float(matrix)
        self.noise_cov, self.noise_chol = _as_float(cov), _as_float(chol)
        self.noise_inv_chol, self.diagonal = _as_float(inv_chol), diag
        self.state_dim = int(matrix.shape[1])
        self.locations = None if locations is None else _as_float(locations)

    def __call__(self, x):
        return self.matrix.astype(x.dtype) @ x


class IndexObservation(AbstractObservation):
    """h(x) = x[indices]: observe a subset of state variables (all of them by default).

    `locations` are the indices themselves, so LETKF can localise on a 1-D grid.

    Arguments:
        state_dim: dimension of the state.
        indices: observed indices (default: all).
        noise_cov: R as a scalar, a vector (diagonal) or a full matrix.
    """

    indices: Int[Array, " obs"]
    noise_cov: Float[Array, "obs obs"]
    noise_chol: Float[Array, "obs obs"]
    noise_inv_chol: Float[Array, "obs obs"]
    diagonal: bool = eqx.field(static=True)
    state_dim: int = eqx.field(static=True)
    locations: Float[Array, " obs"]

    def __init__(self, state_dim: int, indices=None, noise_cov=1.0):
        state_dim = int(state_dim)
        idx = np.arange(state_dim) if indices is None else np.asarray(indices, dtype=np.int64)
        if idx.ndim != 1 or idx.size == 0 or idx.min() < 0 or idx.max() >= state_dim:
            raise ValueError(
                f"`indices` must be a non-empty 1-D array of integers in [0, {state_dim}), "
                f"got {idx.tolist()}."
            )
        cov, chol, inv_chol, diag = _noise_matrices(noise_cov, idx.size, "noise_cov")
        self.indices = jnp.asarray(idx, dtype=jnp.int32)
        self.noise_cov, self.noise_chol = _as_float(cov), _as_float(chol)
        self.noise_inv_chol, self.diagonal = _as_float(inv_chol), diag
        self.state_dim = state_dim
        self.locations = _as_float(idx)

    def __call__(self, x):
        return x[self.indices]


def every_kth(state_dim: int, k: int, noise_cov=1.0, offset: int = 0) -> IndexObservation:
    """Observe every `k`-th state variable starting at `offset`."""
    if int(k) < 1:
        raise ValueError(f"`k` must be a positive integer, got {k}.")
    return IndexObservation(state_dim, np.arange(int(offset), int(state_dim), int(k)), noise_cov)


class NonlinearObservation(AbstractObservation):
    """h(x) = fn(x) for a user callable (e.g. x**2, |x|, a radiative transfer model).

    Arguments:
        fn: maps one state of shape (state_dim,) to (obs_dim,); must be jax-traceable.
        state_dim, obs_dim: dimensions.
        noise_cov: R as a scalar, a vector (diagonal) or a full matrix.
        locations: optional positions of the observations (for LETKF).
    """

    fn: Callable = eqx.field(static=True)
    noise_cov: Float[Array, "obs obs"]
    noise_chol: Float[Array, "obs obs"]
    noise_inv_chol: Float[Array, "obs obs"]
    diagonal: bool = eqx.field(static=True)
    state_dim: int = eqx.field(static=True)
    locations: Float[Array, " obs"] | None

    def __init__(self, fn: Callable, state_dim: int, obs_dim: int, noise_cov=1.0, locations=None):
        cov, chol, inv_chol, diag = _noise_matrices(noise_cov, int(obs_dim), "noise_cov")
        self.fn = fn
        self.noise_cov, self.noise_chol = _as_float(cov), _as_float(chol)
        self.noise_inv_chol, self.diagonal = _as_float(inv_chol), diag
        self.state_dim = int(state_dim)
        self.locations = None if locations is None else _as_float(locations)

    def __call__(self, x):
        return self.fn(x)


def synthetic_observations(
    key: Key, obs_op: AbstractObservation, truth: Float[Array, "time dim"]
) -> Float[Array, "time obs"]:
    """Noisy observations y_k = h(x_k) + r_k, r_k ~ N(0, R) independent, of a truth run."""
    obs_op.check_state(truth, "truth")
    keys = jax.random.split(key, truth.shape[0])
    return jax.vmap(obs_op.sample)(keys, truth)
