r"""`true_coefficients`: the library expansion of a known model error (twin experiments)."""

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from .._custom_types import ArrayLike, Float
from ..dynamics import AbstractDynamics
from ._layered_library import LayeredLibrary
from ._library import SpectralLibrary

#: Contributions below this fraction of the model error's RMS are float32 rounding of the
#: vector fields, not terms of the truth (single precision resolves about 1e-7 of each
#: field; the difference of two fields loses a few more digits).
_ROUNDING = 1e-4


class TrueCoefficients(NamedTuple):
    """The true model error in a library.

    Attributes:
        coefficients: xi, zero for terms that do not contribute, (terms,) float64.
        residual: RMS of f_T - f_M - sum_j xi_j theta_j relative to the RMS of f_T - f_M
            (0 when the difference lies in the library's span).
    """

    coefficients: Float[np.ndarray, " term"]
    residual: float


def true_coefficients(
    truth: AbstractDynamics,
    model: AbstractDynamics,
    library: SpectralLibrary | LayeredLibrary,
    states: Float[ArrayLike, "time ..."],
) -> TrueCoefficients:
    r"""xi with f_T(u) - f_M(u) = sum_j xi_j theta_j(u), by least squares on `states`.

    The reference a discovery is scored against when the truth is known (a twin
    experiment): the difference of the truth's and the model's vector fields (at t = 0)
    regressed on the library at the given states, in float64 with unit-RMS columns. Terms
    whose contribution |xi_j| RMS(theta_j) is below 1e-4 of the difference's RMS are set to
    zero (float32 rounding of the vector fields, not terms of the truth).

    Arguments:
        truth: the true system (same state as the model).
        model: the imperfect model.
        library: the candidate terms, on the models' grid.
        states: (K, *state) states of the truth, e.g. a subsample of its trajectory: (K, dim)
            for a `SpectralLibrary`, (K, layer, y, x) for a `LayeredLibrary`.

    Returns:
        `TrueCoefficients(coefficients, residual)`.
    """
    u = jnp.asarray(states)
    if u.ndim < 2 or u.shape[0] < 1:
        raise ValueError(f"`states` must be (time, *state), got shape {u.shape}.")
    diff = jax.vmap(lambda x: truth.vector_field(0.0, x, None) - model.vector_field(0.0, x, None))
    target = np.asarray(diff(u), dtype=np.float64).reshape(-1)
    design = np.asarray(jax.vmap(library)(u), dtype=np.float64)
    design = design.reshape(-1, library.num_terms)
    scale = np.sqrt(np.mean(design**2, axis=0))
    scale = np.where(scale > 0, scale, 1.0)
    xi, *_ = np.linalg.lstsq(design / scale, target, rcond=None)
    xi = xi / scale
    norm = np.sqrt(np.mean(target**2))
    residual = np.sqrt(np.mean((design @ xi - target) ** 2)) / norm if norm > 0 else 0.0
    contribution = np.abs(xi) * np.sqrt(np.mean(design**2, axis=0))
    xi = np.where(contribution > _ROUNDING * max(norm, 1e-30), xi, 0.0)
    return TrueCoefficients(xi, float(residual))
