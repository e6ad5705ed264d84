r"""Candidate-term libraries built from spectral derivatives on a periodic 1-D grid.

A library is the list of functions theta_j(u) that a model error (or a whole equation) is
written in: e(u) = sum_j xi_j theta_j(u) (Brunton, Proctor & Kutz 2016; Rudy et al. 2017).
Terms are named the way they are written: products of factors `u`, `u_x`, `u_xx`, ...,
each with an optional integer power, e.g. "u", "u_xxxx", "u*u_x", "u^2", "u_x^2",
"u^2*u_xx", and "1" for a constant. Derivatives are spectral: the n-th derivative has the
Fourier symbol (i k)^n, k = 2 pi m / length, with the Nyquist mode of odd derivatives set to
zero (it has no sign; Trefethen 2000, "Spectral Methods in MATLAB", ch. 3): the symbols of
`jaxsci.spectral.PeriodicGrid.derivative`, the grid `jaxsci.dynamics.KuramotoSivashinsky`
declares.

Linear terms (one factor to the first power: u, u_x, u_xx, ...) are diagonal in Fourier
space, so a corrected model puts them into the stiff linear operator of an exponential
integrator; every other term (products, powers, the constant) is "nonlinear". With
`dealias=True` a nonlinear term is evaluated as a 2/3-de-aliased pseudo-spectral solver
evaluates it (Orszag 1971): its factors from the resolved modes |m| < N/3 only and the
product projected back onto them, so that the library column equals what
`KuramotoSivashinsky.nonlinear` computes for u u_x (exactly, not up to aliasing errors).
"""

import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import equinox as eqx
import jax.numpy as jnp
import numpy as np

from .._custom_types import Array, Complex, Float
from ..spectral import PeriodicGrid
from ..spectral._grid import check_even_grid

# one factor: u, u_x, u_xx, ... with an optional power ^p
_FACTOR = re.compile(r"^u(?:_(x+))?(?:\^([0-9]+))?$")

#: The default library of the model-error experiments: the linear derivatives up to fourth
#: order, the quadratic and cubic powers and the advective nonlinearity u u_x.
DEFAULT_TERMS = ("u", "u_x", "u_xx", "u_xxx", "u_xxxx", "u^2", "u^3", "u*u_x")


def _factor_name(order: int, power: int) -> str:
    base = "u" if order == 0 else "u_" + "x" * order
    return base if power == 1 else f"{base}^{power}"


def parse_term(name: str) -> tuple[tuple[int, int], ...]:
    """Parse a term name into its factors ((derivative order, power), ...), sorted by order.

    "1" is the constant term (no factors). Repeated factors are merged ("u*u" -> u^2).

    Raises:
        ValueError: naming the term when it does not follow the grammar
            factor ("*" factor)*, factor = u | u_x...x, optionally followed by ^p (p >= 1).
    """
    if not isinstance(name, str):
        raise TypeError(f"a library term must be a string, got {name!r} ({type(name).__name__}).")
    text = name.replace(" ", "")
    if text == "1":
        return ()
    powers: dict[int, int] = {}
    for part in text.split("*"):
        match = _FACTOR.match(part)
        if match is None:
            raise ValueError(
                f"cannot parse the library term {name!r}: expected factors like u, u_x, u_xx, "
                f"u^2 or u_x^3 joined by '*' (e.g. 'u*u_x'), or '1' for a constant; "
                f"{part!r} is not one."
            )
        order = len(match.group(1) or "")
        power = int(match.group(2) or 1)
        if power < 1:
            raise ValueError(f"library term {name!r}: powers must be >= 1, got {power}.")
        powers[order] = powers.get(order, 0) + power
    return tuple(sorted(powers.items()))


def term_name(factors: tuple[tuple[int, int], ...]) -> str:
    """The canonical name of parsed factors (the inverse of `parse_term`)."""
    if not factors:
        return "1"
    return "*".join(_factor_name(o, p) for o, p in factors)


def canonical_terms(
    terms: Any,
    parse: Callable[[str], tuple],
    name_of: Callable[[tuple], str],
    example: Iterable[str],
) -> tuple[tuple[tuple, ...], tuple[str, ...]]:
    """Check a library's `terms` argument and parse it: (factors, canonical names) per term.

    Shared by the term libraries (`SpectralLibrary`, `LayeredLibrary`), each with its own
    grammar (`parse`, `name_of`). Raises a TypeError for a string, mapping or non-sequence
    or a non-string entry, a ValueError for an empty list, an unparsable term or two names
    of the same term; `example` is shown in the empty-list message.
    """
    if isinstance(terms, str):
        raise TypeError(f"`terms` must be a sequence of term names, got the string {terms!r}.")
    if isinstance(terms, Mapping) or not isinstance(terms, Iterable):
        raise TypeError(
            f"`terms` must be a sequence of term names, got {type(terms).__name__} {terms!r}."
        )
    try:
        terms = tuple(terms)
    except TypeError as err:  # a 0-d array
        raise TypeError(f"`terms` must be a sequence of term names, got {terms!r}.") from err
    for term in terms:
        if not isinstance(term, str):
            raise TypeError(
                f"`terms` must be a sequence of term names (strings), got the entry "
                f"{term!r} ({type(term).__name__})."
            )
    if not terms:
        raise ValueError(
            f"`terms` is empty: a library needs at least one candidate term, e.g. {list(example)}."
        )
    try:
        factors = tuple(parse(t) for t in terms)
    except ValueError as err:
        raise ValueError(f"`terms`: {err}") from err
    names = tuple(name_of(f) for f in factors)
    seen: dict[str, str] = {}
    for given, name in zip(terms, names, strict=True):
        if name in seen:
            raise ValueError(
                f"`terms` lists the same term twice: {seen[name]!r} and {given!r} are both "
                f"{name!r}."
            )
        seen[name] = given
    return factors, names


class SpectralLibrary(eqx.Module):
    """A library of candidate terms theta_j(u) of a field u on the periodic grid
    x_i = i length / num_points, i = 0..num_points-1.

    `library(u)` evaluates every term on one field and returns the (num_points, terms)
    block of a design matrix; `jax.vmap` it over snapshots. `linear_symbol` and
    `nonlinear_spectral` give the same terms in Fourier space for `CorrectedModel`. The
    grid arguments make `grid`, a `PeriodicGrid` (the library of a model `m` is
    `SpectralLibrary(terms, m.length, m.num_points, m.dealias)`).

    Arguments:
        terms: term names (see the module docstring), e.g. `DEFAULT_TERMS`. Names are
            stored in canonical form ("u*u" becomes "u^2"); duplicates are an error.
        length: the domain length (period).
        num_points: grid points (even, >= 4).
        dealias: evaluate nonlinear terms on the 2/3-de-aliased modes (as the models do).
    """

    names: tuple[str, ...] = eqx.field(static=True)
    factors: tuple[tuple[tuple[int, int], ...], ...] = eqx.field(static=True)
    length: float = eqx.field(static=True)
    num_points: int = eqx.field(static=True)
    dealias: bool = eqx.field(static=True)

    def __init__(
        self,
        terms=DEFAULT_TERMS,
        length: float = 22.0,
        num_points: int = 64,
        dealias: bool = True,
    ):
        factors, names = canonical_terms(terms, parse_term, term_name, DEFAULT_TERMS)
        self.num_points, self.length = check_even_grid(num_points, length)
        self.names = names
        self.factors = factors
        self.dealias = bool(dealias)

    @property
    def grid(self) -> PeriodicGrid:
        """The periodic grid the terms are evaluated on."""
        return PeriodicGrid(self.num_points, self.length, dealias=self.dealias)

    @property
    def num_terms(self) -> int:
        return len(self.names)

    @property
    def is_linear(self) -> tuple[bool, ...]:
        """Per term: True for u, u_x, u_xx, ... (one factor, power one)."""
        return tuple(len(f) == 1 and f[0][1] == 1 for f in self.factors)

    @property
    def max_order(self) -> int:
        return max((o for f in self.factors for o, _ in f), default=0)

    def derivative_symbol(self, order: int) -> np.ndarray:
        """(i k)^order on the rfft modes (a NumPy constant); Nyquist zero for odd orders."""
        return self.grid.derivative(order)

    def _check_field(self, u):
        if jnp.shape(u) != (self.num_points,):
            raise ValueError(
                f"`u` has shape {tuple(jnp.shape(u))}, but the library's grid has "
                f"{self.num_points} points; evaluate one field at a time and vmap over snapshots."
            )

    def _evaluate(
        self, u_hat: Complex[Array, " mode"], nonlinear_only: bool = False, project: bool = True
    ) -> list:
        """The term values on the grid (None for linear terms when `nonlinear_only`); with
        `project=False` the nonlinear products are left unprojected (the caller projects
        their linear combination once: projection is linear)."""
        grid = self.grid
        linear_orders = {
            f[0][0] for f, lin in zip(self.factors, self.is_linear, strict=True) if lin
        }
        product_orders = {
            o for f, lin in zip(self.factors, self.is_linear, strict=True) if not lin for o, _ in f
        }
        if nonlinear_only:
            linear_orders = set()
        full = {o: grid.from_spectral(grid.derivative(o) * u_hat) for o in sorted(linear_orders)}
        masked_hat = grid.dealiased(u_hat)
        resolved = {
            o: grid.from_spectral(grid.derivative(o) * masked_hat) for o in sorted(product_orders)
        }
        columns = []
        for factors, linear in zip(self.factors, self.is_linear, strict=True):
            if linear:
                columns.append(None if nonlinear_only else full[factors[0][0]])
                continue
            value = jnp.ones(grid.shape, dtype=u_hat.real.dtype)
            for order, power in factors:
                value = value * resolved[order] ** power
            if self.dealias and factors and project:
                value = grid.from_spectral(grid.dealiased(grid.to_spectral(value)))
            columns.append(value)
        return columns

    def __call__(self, u: Float[Array, " x"]) -> Float[Array, "x term"]:
        """The library evaluated on one field: column j is theta_j(u) on the grid."""
        u = jnp.asarray(u)
        self._check_field(u)
        return jnp.stack(self._evaluate(self.grid.to_spectral(u)), axis=-1).astype(u.dtype)

    def linear_symbol(self, coefficients: Float[Array, " term"]) -> Complex[Array, " mode"]:
        """sum_j xi_j (i k)^{n_j} over the linear terms: their part of a linear operator."""
        total = jnp.zeros(self.num_points // 2 + 1, dtype=jnp.result_type(coefficients, 1j))
        for j, (factors, linear) in enumerate(zip(self.factors, self.is_linear, strict=True)):
            if linear:
                total = total + coefficients[j] * self.grid.derivative(factors[0][0])
        return total

    def nonlinear_spectral(
        self, coefficients: Float[Array, " term"], u_hat: Complex[Array, " mode"]
    ) -> Complex[Array, " mode"]:
        """rfft of sum_j xi_j theta_j(u) over the nonlinear terms, from u's rfft `u_hat`."""
        if all(self.is_linear):
            return jnp.zeros_like(u_hat)
        columns = self._evaluate(u_hat, nonlinear_only=True, project=False)
        total = jnp.zeros(self.grid.shape, dtype=u_hat.real.dtype)
        for j, linear in enumerate(self.is_linear):
            if not linear:
                total = total + coefficients[j] * columns[j]
        # one de-aliasing projection of the sum (constant terms sit in mode 0, kept)
        return self.grid.dealiased(self.grid.to_spectral(total))
