"""The sparse-regression interface: `AbstractSparseRegression.fit(design, target)`.

Every method solves the linear model t = Phi w + noise for a sparse w, with Phi the
(samples, terms) design matrix (library columns) and t the (samples,) target. They work
on the normal equations -- G = Phi^T Phi, b = Phi^T t, t^T t and the sample count -- so the
cost after forming them does not grow with the number of samples, and each method first
rescales every column to unit RMS (and the target too): library columns can differ by
many orders of magnitude (u_xxxx against u on a fine grid), which would otherwise wreck the
conditioning of G and make thresholds depend on units.
"""

import abc
from typing import ClassVar

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jax.core import Tracer

from .._custom_types import Array, Bool, Float, Int, Key


class NormalEquations(eqx.Module):
    """Sufficient statistics of a Gaussian linear model: G = Phi^T Phi (terms, terms),
    b = Phi^T t (terms,), t^T t and the number of samples n."""

    gram: Float[Array, "term term"]
    moment: Float[Array, " term"]
    target_sq: Float[Array, ""]
    num_samples: Int[Array, ""] | int


def normal_equations(
    design: Float[Array, "sample term"], target: Float[Array, " sample"]
) -> NormalEquations:
    """Form the normal equations of `design` and `target`."""
    return NormalEquations(
        gram=design.T @ design,
        moment=design.T @ target,
        target_sq=target @ target,
        num_samples=design.shape[0],
    )


class Scaled(eqx.Module):
    """Normal equations rescaled to unit-RMS columns and target, and the scales used.

    Phi~ = Phi D^{-1} with d_j = RMS of column j, t~ = t / s with s = RMS of t. A zero
    column gets d_j = 1 and `usable` False (it can never be selected).
    """

    gram: Float[Array, "term term"]
    moment: Float[Array, " term"]
    target_sq: Float[Array, ""]
    num_samples: Float[Array, ""]
    column_scale: Float[Array, " term"]
    target_scale: Float[Array, ""]
    usable: Bool[Array, " term"]


def rescale(ne: NormalEquations, normalize: bool = True) -> Scaled:
    """Rescale normal equations to unit-RMS columns and target (identity if not `normalize`)."""
    n = jnp.asarray(ne.num_samples, dtype=ne.gram.dtype)
    diag = jnp.diag(ne.gram)
    usable = diag > 0
    if normalize:
        d = jnp.where(usable, jnp.sqrt(diag / n), 1.0)
        s = jnp.sqrt(ne.target_sq / n)
        s = jnp.where(s > 0, s, 1.0)
    else:
        d = jnp.ones_like(diag)
        s = jnp.ones((), dtype=diag.dtype)
    gram = ne.gram / (d[:, None] * d[None, :])
    moment = ne.moment / (d * s)
    return Scaled(gram, moment, ne.target_sq / s**2, n, d, s, usable)


class SparseRegressionResult(eqx.Module):
    """The fit of a sparse regression, in the units of the original design and target.

    Attributes:
        coefficients: w (zero for terms not selected), (terms,).
        covariance: posterior (or least-squares) covariance of w; zero rows/columns for
            terms not selected, (terms, terms).
        active: the selected terms, (terms,).
        noise_variance: the estimated variance of the target noise.
        precisions: RVM's ARD prior precisions alpha_j (inf for pruned terms); for other
            methods inf where not selected and 0 where selected (no prior).
        log_evidence: log p(t | alpha, beta) for the RVM; NaN for other methods.
        num_iterations: iterations run.
        converged: whether the method met its stopping rule before its iteration cap.
        draws: posterior draws of w (draws, terms) for sampling methods, else None.
    """

    coefficients: Float[Array, " term"]
    covariance: Float[Array, "term term"]
    active: Bool[Array, " term"]
    noise_variance: Float[Array, ""]
    precisions: Float[Array, " term"]
    log_evidence: Float[Array, ""]
    num_iterations: Int[Array, ""]
    converged: Bool[Array, ""]
    draws: Float[Array, "draw term"] | None = None

    @property
    def std(self) -> Float[Array, " term"]:
        """Posterior standard deviations sqrt(diag(covariance))."""
        return jnp.sqrt(jnp.clip(jnp.diag(self.covariance), 0.0))


def _is_concrete(x) -> bool:
    return not isinstance(x, Tracer)


def check_design(design, target, names=None) -> tuple[Array, Array]:
    """Validate a design matrix and target; return them as float arrays.

    Raises:
        ValueError: empty library (no columns), fewer samples than terms, wrong shapes, or
            (for concrete arrays) a non-finite column or target, naming the term.
    """
    design = jnp.asarray(design)
    target = jnp.asarray(target)
    if not jnp.issubdtype(design.dtype, jnp.floating):
        design = design.astype(jnp.result_type(float))
    target = target.astype(design.dtype)
    if design.ndim != 2:
        raise ValueError(
            f"`design` must be a 2-D (samples, terms) matrix, got shape {design.shape}."
        )
    samples, terms = design.shape
    if terms == 0:
        raise ValueError(
            "`design` has no columns: the term library is empty; give at least one candidate term."
        )
    if target.shape != (samples,):
        raise ValueError(
            f"`target` has shape {target.shape}, but `design` has {samples} samples; "
            f"expected shape ({samples},)."
        )
    if samples < terms:
        raise ValueError(
            f"`design` has fewer samples ({samples}) than terms ({terms}): the regression is "
            "underdetermined; give more samples or fewer candidate terms."
        )
    if names is not None and len(names) != terms:
        raise ValueError(f"`names` has {len(names)} entries, but `design` has {terms} columns.")
    if _is_concrete(design):
        finite = np.all(np.isfinite(np.asarray(design)), axis=0)
        if not finite.all():
            bad = [
                names[j] if names is not None else f"column {j}" for j in np.flatnonzero(~finite)
            ]
            raise ValueError(
                f"`design` has non-finite values (NaN or inf) in library term(s) {bad}."
            )
    if _is_concrete(target) and not np.all(np.isfinite(np.asarray(target))):
        raise ValueError("`target` contains non-finite values (NaN or inf).")
    return design, target


class AbstractSparseRegression(eqx.Module):
    """A sparse linear regression t ~ Phi w: `fit(design, target, key=None)`.

    Concrete methods implement `fit_normal(normal_equations, key)`; `fit` validates its
    inputs (ValueErrors for an empty library, non-finite terms and fewer samples than
    terms) and forms the normal equations. `jittable` says whether `fit_normal` may be
    traced under `jax.jit` (samplers that run their own compiled loops may not).
    """

    jittable: ClassVar[bool] = True

    @abc.abstractmethod
    def fit_normal(self, ne: NormalEquations, key: Key | None = None) -> SparseRegressionResult:
        """Fit from the normal equations (jit-compatible)."""

    def fit(
        self,
        design: Float[Array, "sample term"],
        target: Float[Array, " sample"],
        *,
        key: Key | None = None,
        names=None,
    ) -> SparseRegressionResult:
        """Fit t = Phi w + noise. `names` (one per column) only improves error messages.

        Validates (outside any trace), then forms the normal equations and fits in one
        compiled call (cached per shape and method), or eagerly for non-jittable methods.
        """
        design, target = check_design(design, target, names)
        if self.jittable:
            return _fit_design(self, design, target, key)
        return self.fit_normal(normal_equations(design, target), key)


@eqx.filter_jit
def _fit_design(regression, design, target, key):
    return regression.fit_normal(normal_equations(design, target), key)


@eqx.filter_jit
def fit_normal_jit(regression, ne, key):
    """`regression.fit_normal(ne, key)` in one compiled call (jittable methods)."""
    return regression.fit_normal(ne, key)


def fit_normal(regression, ne, key):
    """`regression.fit_normal(ne, key)`: one compiled call where the method is jittable,
    eager otherwise (the drivers' one dispatch)."""
    if regression.jittable:
        return fit_normal_jit(regression, ne, key)
    return regression.fit_normal(ne, key)
