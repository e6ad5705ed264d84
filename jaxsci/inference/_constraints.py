"""Constraints: bijections from unconstrained space to a parameter's support, with log-Jacobians.

A sampler moves in unconstrained space u in R^d; the parameter is x = f(u). The density of u is
p_u(u) = p_x(f(u)) |det J_f(u)|, so the sampler's log-density adds log |det J_f(u)|
(Stan Reference Manual, "Constraint transforms"; numpyro's `biject_to`). The transforms here are
Stan's: exp for a lower bound, a scaled logistic for an interval.
"""

import abc

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._checks import float_parameter
from .._custom_types import Array, ArrayLike, Float


class AbstractConstraint(eqx.Module):
    """A support with its bijection x = forward(u) from the real line, applied elementwise."""

    @abc.abstractmethod
    def forward(self, u: Float[Array, "*shape"]) -> Float[Array, "*shape"]:
        """Unconstrained -> constrained."""

    @abc.abstractmethod
    def inverse(self, x: Float[Array, "*shape"]) -> Float[Array, "*shape"]:
        """Constrained -> unconstrained."""

    @abc.abstractmethod
    def log_abs_det_jacobian(self, u: Float[Array, "*shape"]) -> Float[Array, ""]:
        """log |det d forward / du| summed over the elements of `u`."""

    @abc.abstractmethod
    def contains(self, x: np.ndarray) -> np.ndarray:
        """Elementwise membership test on concrete values (for checking user inputs)."""


class Real(AbstractConstraint):
    """The whole real line: the identity map, log-Jacobian 0."""

    def forward(self, u):
        return u

    def inverse(self, x):
        return x

    def log_abs_det_jacobian(self, u):
        return jnp.zeros((), dtype=jnp.result_type(u, float))

    def contains(self, x):
        return np.isfinite(x)


class Positive(AbstractConstraint):
    r"""x > lower (default 0): x = lower + exp(u), log-Jacobian \sum u (Stan's lower bound)."""

    lower: Float[Array, ""]

    def __init__(self, lower: float = 0.0):
        self.lower = float_parameter("lower", lower)

    def __check_init__(self):
        if not bool(np.isfinite(np.asarray(self.lower))):
            raise ValueError(f"`lower` must be finite, got {self.lower}.")

    def forward(self, u):
        return self.lower + jnp.exp(u)

    def inverse(self, x):
        return jnp.log(x - self.lower)

    def log_abs_det_jacobian(self, u):
        return jnp.sum(u)

    def contains(self, x):
        return np.isfinite(x) & (x > float(self.lower))


class Interval(AbstractConstraint):
    r"""lower < x < upper: x = lower + (upper - lower) sigmoid(u) (Stan's lower/upper bound).

    log-Jacobian: \sum log(upper - lower) + log sigmoid(u) + log sigmoid(-u).
    """

    lower: Float[Array, ""]
    upper: Float[Array, ""]

    def __init__(self, lower: float, upper: float):
        self.lower = float_parameter("lower", lower)
        self.upper = float_parameter("upper", upper)

    def __check_init__(self):
        lo, hi = np.asarray(self.lower), np.asarray(self.upper)
        if not (np.isfinite(lo) and np.isfinite(hi) and hi > lo):
            raise ValueError(
                f"Interval needs finite `lower` < `upper`, got lower={float(lo)}, "
                f"upper={float(hi)}."
            )

    def forward(self, u):
        return self.lower + (self.upper - self.lower) * jax.nn.sigmoid(u)

    def inverse(self, x):
        p = (x - self.lower) / (self.upper - self.lower)
        return jnp.log(p) - jnp.log1p(-p)

    def log_abs_det_jacobian(self, u):
        width = jnp.log(self.upper - self.lower)
        return jnp.sum(width + jax.nn.log_sigmoid(u) + jax.nn.log_sigmoid(-u))

    def contains(self, x):
        return np.isfinite(x) & (x > float(self.lower)) & (x < float(self.upper))


#: Names accepted wherever a constraint is expected.
CONSTRAINTS: dict[str, type[AbstractConstraint]] = {
    "real": Real,
    "positive": Positive,
}


def as_constraint(value: AbstractConstraint | str | tuple, name: str) -> AbstractConstraint:
    """A constraint from an instance, a name ('real', 'positive') or a (lower, upper) pair."""
    if isinstance(value, AbstractConstraint):
        return value
    if isinstance(value, str):
        key = value.lower()
        if key in CONSTRAINTS:
            return CONSTRAINTS[key]()
        raise ValueError(
            f"`{name}` is an unknown constraint {value!r}; expected one of {list(CONSTRAINTS)}, "
            "a (lower, upper) tuple, or an AbstractConstraint such as Interval(0, 1)."
        )
    if isinstance(value, tuple) and len(value) == 2:
        return Interval(*value)
    raise TypeError(
        f"`{name}` must be a constraint ('real', 'positive', (lower, upper) or an "
        f"AbstractConstraint), got {value!r} ({type(value).__name__})."
    )


def check_in_support(constraint: AbstractConstraint, x: ArrayLike, name: str) -> None:
    """Raise a ValueError naming `name` if concrete values `x` lie outside the support."""
    arr = np.asarray(x, dtype=float)
    bad = ~constraint.contains(arr)
    if np.any(bad):
        raise ValueError(
            f"`{name}` = {arr.tolist()} is outside the support of its constraint "
            f"{constraint}; offending elements at {np.argwhere(bad).tolist()}."
        )
