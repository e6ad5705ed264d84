"""jaxtyping aliases shared by all jaxsci modules."""

from typing import TypeAlias

from jaxtyping import Array, ArrayLike, Bool, Complex, Float, Int, PRNGKeyArray, PyTree

Scalar: TypeAlias = Float[Array, ""]
ScalarLike: TypeAlias = Float[ArrayLike, ""]
State: TypeAlias = Float[Array, "..."]
SpectralState: TypeAlias = Complex[Array, "..."]
Key: TypeAlias = PRNGKeyArray

__all__ = [
    "Array",
    "ArrayLike",
    "Bool",
    "Complex",
    "Float",
    "Int",
    "Key",
    "PyTree",
    "Scalar",
    "ScalarLike",
    "SpectralState",
    "State",
]
