"""The abstract observation model y = h(x) + r, r ~ N(0, R), and its noise covariance."""

import abc
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._checks import (
    check_finite,
    check_int,
    check_positive,
    check_shape,
    float_parameter,
    is_concrete,
)
from .._custom_types import Array, Float, Key


def _in_dtype(name: str, mats, dtype) -> tuple:
    """(R, L, L^{-1}) in `dtype`; a ValueError naming `name` when a concrete factor is not
    representable there (a noise scale of 1e-50 is positive in float64 but 0 in float32,
    and its inverse infinite)."""
    out = tuple(jnp.asarray(m, dtype=dtype) for m in mats)
    if is_concrete(out) and not all(bool(jnp.all(jnp.isfinite(m))) for m in out):
        raise ValueError(
            f"`{name}` is out of the range of {jnp.dtype(dtype).name}: R, its Cholesky factor "
            "and the inverse factor must all be finite there."
        )
    factor_diagonal = jnp.diagonal(out[1]) if out[1].ndim == 2 else out[1]  # (std of a diagonal R)
    if is_concrete(out) and not bool(jnp.all(factor_diagonal > 0)):
        raise ValueError(
            f"`{name}` underflows to 0 in {jnp.dtype(dtype).name}: the noise scale must be "
            "representable."
        )
    return out


def _factor(obs_dim: int, noise_cov: Any, noise_std: Any):
    """(std, dense) of `GaussianNoise`: the standard deviations (obs,), and (R, L, L^{-1})
    for a non-diagonal R (None for a diagonal one, which is held as `std` alone)."""
    if noise_cov is not None and noise_std is not None:
        raise ValueError("give at most one of `noise_cov` and `noise_std`, got both.")
    is_std = noise_std is not None
    name = "noise_std" if is_std else "noise_cov"
    value = noise_std if is_std else (1.0 if noise_cov is None else noise_cov)
    shape = tuple(np.shape(value))
    dtype = jnp.result_type(float)
    concrete = is_concrete(value)
    xp: Any = np if concrete else jnp
    if len(shape) > (1 if is_std else 2):
        want = f"a scalar or shape ({obs_dim},)" + ("" if is_std else f" or ({obs_dim}, {obs_dim})")
        raise ValueError(f"`{name}` has shape {shape}, expected {want}.")
    if len(shape) <= 1:
        if shape not in ((), (obs_dim,)):
            raise ValueError(
                f"`{name}` has shape {shape}; a diagonal covariance needs shape ({obs_dim},)."
            )
        check_positive(name, value)
        v = xp.broadcast_to(xp.asarray(value, dtype=np.float64 if concrete else dtype), (obs_dim,))
        std = v if is_std else xp.sqrt(v)
        return _std_in_dtype(name, std, dtype), None
    if shape != (obs_dim, obs_dim):
        raise ValueError(f"`{name}` has shape {shape}, expected ({obs_dim}, {obs_dim}).")
    if not concrete:
        cov = jnp.asarray(value, dtype=dtype)
        chol = jnp.linalg.cholesky(cov)
        eye = jnp.eye(obs_dim, dtype=dtype)
        inv_chol = jax.scipy.linalg.solve_triangular(chol, eye, lower=True)
        return jnp.sqrt(jnp.diagonal(cov)), (cov, chol, inv_chol)
    cov = np.asarray(value, dtype=np.float64)
    if not np.all(np.isfinite(cov)) or not np.allclose(cov, cov.T, rtol=1e-6, atol=1e-12):
        raise ValueError(f"`{name}` must be a finite symmetric matrix.")
    try:
        chol = np.linalg.cholesky(cov)
    except np.linalg.LinAlgError as err:
        raise ValueError(
            f"`{name}` is not positive-definite (its Cholesky factorisation failed)."
        ) from err
    std = np.sqrt(np.diag(cov))
    if np.count_nonzero(cov - np.diag(np.diag(cov))) == 0:  # a diagonal matrix: std alone
        return _std_in_dtype(name, std, dtype), None
    mats = (cov, chol, np.linalg.inv(chol))
    return jnp.asarray(std, dtype=dtype), _in_dtype(name, mats, dtype)


def _std_in_dtype(name: str, std, dtype):
    """The standard deviations of a diagonal R in `dtype`, checked by `_in_dtype` as its
    matrices are (R = std^2, L = std and L^{-1} = 1 / std finite, std > 0)."""
    return _in_dtype(name, (std**2, std, 1.0 / std), dtype)[1]


def as_locations(locations: Any, obs_dim: int) -> Float[Array, " obs *coord"] | None:
    """The `locations` argument of an observation model: None, or the finite positions of
    the observations (LETKF localisation distances use them): (obs,) on a line or ring,
    (obs, d) in d dimensions (e.g. (y, x) on a 2-D grid)."""
    if locations is None:
        return None
    locs = float_parameter("locations", locations)
    if locs.ndim == 2 and locs.shape[0] == obs_dim and locs.shape[1] >= 1:
        check_finite("locations", locs)
        return locs
    check_shape(
        "locations", locs, (obs_dim,), f"({obs_dim},) or ({obs_dim}, d): one per observation"
    )
    check_finite("locations", locs)
    return locs


class GaussianNoise(eqx.Module):
    """Observation error r ~ N(0, R): R (`cov`), its lower Cholesky factor L (`chol`,
    R = L L^T), L^{-1} (`inv_chol`, the whitening map) and whether R is `diagonal`.

    A diagonal R is held as its standard deviations `std` alone (O(obs) memory: 10^4
    observations would otherwise hold three 10^4 x 10^4 matrices, 1.2 GB in float32, and
    every program capturing them would embed them); `cov`, `chol` and `inv_chol` build the
    diagonal matrices when asked, and the filters whiten and sample with `std` directly. A
    non-diagonal R keeps the three matrices (`dense`).

    R is given by at most one of `noise_cov` (a scalar s: R = s I; a vector: diagonal R; an
    (obs, obs) symmetric positive-definite matrix) and `noise_std` (a scalar or an (obs,)
    vector of standard deviations: L = diag(noise_std)); neither gives R = I. Concrete
    values are checked (a ValueError names the argument) and factored in float64 with NumPy;
    traced values (a `vmap` over noise levels) are factored with JAX, unchecked. The
    matrices have the default float dtype.

    Arguments:
        obs_dim: the number of observed values.
        noise_cov: R, as above.
        noise_std: instead of `noise_cov`, the standard deviation(s).
    """

    std: Float[Array, " obs"]
    dense: tuple[Float[Array, "obs obs"], Float[Array, "obs obs"], Float[Array, "obs obs"]] | None

    def __init__(self, obs_dim: int, noise_cov: Any = None, *, noise_std: Any = None):
        obs_dim = check_int("obs_dim", obs_dim, 1)
        self.std, self.dense = _factor(obs_dim, noise_cov, noise_std)

    @property
    def diagonal(self) -> bool:
        """Whether R is diagonal (held as `std` alone)."""
        return self.dense is None

    @property
    def obs_dim(self) -> int:
        """The number of observed values."""
        return self.std.shape[0]

    @property
    def cov(self) -> Float[Array, "obs obs"]:
        """R (built from `std` when diagonal)."""
        return jnp.diag(self.std**2) if self.dense is None else self.dense[0]

    @property
    def chol(self) -> Float[Array, "obs obs"]:
        """L, the lower Cholesky factor of R."""
        return jnp.diag(self.std) if self.dense is None else self.dense[1]

    @property
    def inv_chol(self) -> Float[Array, "obs obs"]:
        """L^{-1}, the whitening map."""
        return jnp.diag(1.0 / self.std) if self.dense is None else self.dense[2]


class AbstractObservation(eqx.Module):
    """An observation model y = h(x) + r with Gaussian error r ~ N(0, R).

    Concrete classes hold `noise` (a `GaussianNoise`: R, its Cholesky factor L and L^{-1},
    read as `noise_cov`, `noise_chol`, `noise_inv_chol`), `state_dim` and `locations`
    (positions of the observations on the model grid, for localisation: (obs,) in 1-D,
    (obs, d) in d dimensions; None when the observation has no position), and implement
    `__call__(x) -> h(x)` on one state. One type
    serves the filters (`jaxsci.filters`) and posterior sampling with a diffusion prior
    (`jaxsci.diffusion`).
    """

    noise: eqx.AbstractVar[GaussianNoise]
    state_dim: eqx.AbstractVar[int]
    locations: eqx.AbstractVar[Float[Array, " obs *coord"] | None]

    @abc.abstractmethod
    def __call__(self, x: Float[Array, " dim"]) -> Float[Array, " obs"]:
        """The noise-free observation h(x) of one state."""

    @property
    def obs_dim(self) -> int:
        """The number of observed values."""
        return self.noise.obs_dim

    @property
    def noise_cov(self) -> Float[Array, "obs obs"]:
        """R."""
        return self.noise.cov

    @property
    def noise_chol(self) -> Float[Array, "obs obs"]:
        """L, the lower Cholesky factor of R."""
        return self.noise.chol

    @property
    def noise_inv_chol(self) -> Float[Array, "obs obs"]:
        """L^{-1}, the whitening map."""
        return self.noise.inv_chol

    @property
    def diagonal(self) -> bool:
        """Whether R is diagonal."""
        return self.noise.diagonal

    def whiten(self, v: Float[Array, "*batch obs"]) -> Float[Array, "*batch obs"]:
        """L^{-1} v along the last axis: whitened residuals have identity error covariance."""
        if self.diagonal:
            return v * (1.0 / self.noise.std).astype(v.dtype)
        return v @ self.noise_inv_chol.T

    def log_det_noise_cov(self) -> Float[Array, ""]:
        """log det R."""
        if self.diagonal:
            return 2.0 * jnp.sum(jnp.log(self.noise.std))
        return 2.0 * jnp.sum(jnp.log(jnp.diag(self.noise_chol)))

    def sample(self, key: Key, x: Float[Array, " dim"]) -> Float[Array, " obs"]:
        """A noisy observation h(x) + L z, z ~ N(0, I)."""
        z = jax.random.normal(key, (self.obs_dim,), dtype=x.dtype)
        if self.diagonal:
            # z and the product std z are materialised as they are (no reassociation of std
            # with the normal sampler's constants, no fused multiply-add with h(x)), so every
            # program that draws these observations (a filter's loop, one vmapped call) gives
            # the same numbers, as the matrix product L z did
            z = jax.lax.optimization_barrier(z)
            noise = jax.lax.optimization_barrier(self.noise.std.astype(x.dtype) * z)
            return self(x) + noise
        return self(x) + self.noise_chol.astype(x.dtype) @ z

    def log_likelihood(self, y: Float[Array, " obs"], x: Float[Array, " dim"]) -> Float[Array, ""]:
        """log N(y; h(x), R)."""
        r = self.whiten(y - self(x))
        p = self.obs_dim
        return -0.5 * (jnp.sum(r**2) + self.log_det_noise_cov() + p * jnp.log(2 * jnp.pi))

    def check_state(self, x: Any, name: str = "ensemble") -> None:
        """Raise a ValueError naming `name` if the last axis of `x` is not `state_dim`."""
        if jnp.ndim(x) < 1 or jnp.shape(x)[-1] != self.state_dim:
            raise ValueError(
                f"`{name}` has shape {tuple(jnp.shape(x))}, but the observation operator expects "
                f"states of dimension {self.state_dim} on the last axis."
            )

    def check_observation(self, y: Any, name: str = "y_obs") -> None:
        """Raise a ValueError naming `name` on a wrong last dimension or non-finite values."""
        if jnp.ndim(y) < 1 or jnp.shape(y)[-1] != self.obs_dim:
            raise ValueError(
                f"`{name}` has shape {tuple(jnp.shape(y))}, but the observation operator has "
                f"obs dimension {self.obs_dim} (last axis)."
            )
        check_finite(name, y)


class AbstractLinearObservation(AbstractObservation):
    """A linear observation model h(x) = H x. Concrete classes also hold `gram`, the (obs,
    obs) Gram matrix H H^T (used by twisted SMC samplers), and implement `matrix()`, H as an
    (obs, dim) matrix (used by exact Gaussian posteriors). `LinearObservation` (any H, or a
    matrix-free map) and `IndexObservation` (a selection of state variables) are linear."""

    gram: eqx.AbstractVar[Float[Array, "obs obs"]]

    @abc.abstractmethod
    def matrix(self) -> Float[Array, "obs dim"]:
        """H as an (obs, dim) matrix."""
