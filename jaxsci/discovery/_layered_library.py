r"""Candidate-term libraries of layered 2-D potential-vorticity models (two-layer QG).

The model error of a layered quasi-geostrophic model is a missing part of the PV tendency of
each layer, written in that layer's potential vorticity q_l and streamfunction psi_l (Mojgani,
Chattopadhyay & Hassanzadeh 2024, "Interpretable structural model error discovery from
sparse assimilation increments using spectral bias-reduced neural networks: a
quasi-geostrophic turbulence test case", JAMES 16, e2023MS004033, their library eq. 10):

    e_l(q, psi) = sum_j xi_{j,l} theta_j(q_l, psi_l),   l = 1..num_layers.

Terms follow the grammar of `SpectralLibrary` (products "*" of factors, each with an optional
integer power "^p", and "1" for a constant), with the factors of a layered 2-D field:

* `q`, `psi` and their spectral derivatives `q_x`, `psi_y`, `psi_xxy`, ... (the letters give
  the derivative orders in x and y; their order does not matter: `psi_yx` is `psi_xy`);
* `lap(psi)`, `lap(q)` (Laplacian) and `lap2(psi)`, `lap2(q)` (biharmonic, lap lap);
* `J(psi,q)` and the other Jacobians `J(a,b)` of two fields, in flux form
  J(a, b) = d/dy (a_x b) - d/dx (a_y b) = a_x b_y - a_y b_x, the form pyqg's advection uses
  (u q, v q with u = -psi_y, v = psi_x: -div(u q, v q) = -J(psi, q)).

E.g. "lap(psi)" (bottom drag acts on the lower layer's relative vorticity lap psi_2:
dq_2/dt gains -r_ek lap psi_2), "psi_x" (a beta change: -d(beta) psi_x), "J(psi,q)",
"psi*q_x", "q^2". Derivatives are the symbols of the grid (`jaxsci.spectral.PeriodicGrid`):
(i k_x)^a (i k_y)^b with the Nyquist modes of odd orders set to zero, -|k|^2 for the
Laplacian. Products are taken on the grid; with `dealias=True` their factors are formed from
the 2/3-resolved modes and the product projected back on them (Orszag 1971), as in
`SpectralLibrary`; pyqg-style models do not de-alias (an exponential filter removes the
aliased small scales instead), so the default is False.

Each term is a column per layer: `names` are "term[l]" (l = 1 the upper layer), column
(j, l) is theta_j of layer l on layer l's rows and zero on the other layers' (so a drag that
acts only on the lower layer has a coefficient only in "lap(psi)[2]"). A state is the PV
q of shape (num_layers, ny, nx) (pyqg's layout: x along the last axis) and its design block
is (num_layers ny nx, num_layers terms), the rows in `q.ravel()`'s order, the columns
layer-major: everything `jaxsci.discovery`'s regressions and `true_coefficients` take.
"""

import re
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax.numpy as jnp
import numpy as np

from .._checks import check_int
from .._custom_types import Array, ArrayLike, Complex, Float
from ..spectral import PeriodicGrid
from ..spectral._grid import check_even_grid
from ._library import canonical_terms

_FIELDS = ("q", "psi")
_DERIV = re.compile(r"^(q|psi)(?:_([xy]+))?$")
_LAP = re.compile(r"^(lap2?)\((q|psi)\)$")
_JAC = re.compile(r"^J\((q|psi),(q|psi)\)$")

#: The default QG library: the linear operators of psi and q that a two-layer model's
#: dissipation, drag, beta and mean-flow advection are made of, and the advection J(psi, q).
QG_TERMS = (
    "psi",
    "q",
    "psi_x",
    "psi_y",
    "q_x",
    "q_y",
    "lap(psi)",
    "lap2(psi)",
    "lap(q)",
    "J(psi,q)",
)

# a factor: ("d", field, order_x, order_y) | ("lap", field, 1 or 2) | ("J", a, b)
Factor = tuple[Any, ...]


def _factor_name(factor: Factor) -> str:
    kind = factor[0]
    if kind == "d":
        _, field, ox, oy = factor
        letters = "x" * ox + "y" * oy
        return field + ("_" + letters if letters else "")
    if kind == "lap":
        _, field, times = factor
        return f"lap{'' if times == 1 else times}({field})"
    _, a, b = factor
    return f"J({a},{b})"


def _parse_factor(text: str, name: str) -> tuple[Factor, int]:
    base, _, power_text = text.partition("^")
    if _ and not power_text.isdigit():
        raise ValueError(f"library term {name!r}: {text!r} has a bad power.")
    power = int(power_text) if power_text else 1
    if power < 1:
        raise ValueError(f"library term {name!r}: powers must be >= 1, got {power}.")
    if m := _DERIV.match(base):
        letters = m.group(2) or ""
        return ("d", m.group(1), letters.count("x"), letters.count("y")), power
    if m := _LAP.match(base):
        return ("lap", m.group(2), 1 if m.group(1) == "lap" else 2), power
    if m := _JAC.match(base):
        if m.group(1) == m.group(2):
            raise ValueError(f"library term {name!r}: J({m.group(1)},{m.group(1)}) is zero.")
        return ("J", m.group(1), m.group(2)), power
    raise ValueError(
        f"cannot parse the library term {name!r}: expected factors like q, psi, psi_x, q_xy, "
        f"lap(psi), lap2(q) or J(psi,q), each optionally with a power ^p, joined by '*' "
        f"(e.g. 'psi*q_x'), or '1' for a constant; {text!r} is not one."
    )


def parse_layer_term(name: str) -> tuple[tuple[Factor, int], ...]:
    """Parse a layered-library term into its factors ((factor, power), ...), sorted; "1" is
    the constant (no factors), repeated factors are merged ("psi*psi" -> psi^2).

    Raises:
        ValueError: naming the term when it does not follow the grammar of the module
            docstring.
    """
    if not isinstance(name, str):
        raise TypeError(f"a library term must be a string, got {name!r} ({type(name).__name__}).")
    text = name.replace(" ", "")
    if text == "1":
        return ()
    powers: dict[Factor, int] = {}
    # split on '*' outside parentheses (J(psi,q) holds a comma, not a '*', so a plain split
    # is enough)
    for part in text.split("*"):
        factor, power = _parse_factor(part, name)
        powers[factor] = powers.get(factor, 0) + power
    return tuple(sorted(powers.items(), key=lambda fp: _factor_name(fp[0])))


def layer_term_name(factors: tuple[tuple[Factor, int], ...]) -> str:
    """The canonical name of parsed factors (the inverse of `parse_layer_term`)."""
    if not factors:
        return "1"
    return "*".join(_factor_name(f) + ("" if p == 1 else f"^{p}") for f, p in factors)


def _is_linear(factors: tuple[tuple[Factor, int], ...]) -> bool:
    """One derivative or Laplacian factor to the power one."""
    return len(factors) == 1 and factors[0][1] == 1 and factors[0][0][0] != "J"


class LayeredLibrary(eqx.Module):
    r"""Candidate terms theta_j(q_l, psi_l) of the PV tendency of every layer of a layered
    model on the doubly periodic square [0, length)^2 with `num_points`^2 points.

    `library(q, psi)` evaluates every term on every layer and returns the (num_layers ny nx,
    num_layers terms) block of a design matrix (see the module docstring for the layout);
    `jax.vmap` it over snapshots. Give `streamfunction` (the model's PV inversion, e.g.
    `TwoLayerQG.streamfunction`) to evaluate from q alone: `library(q)`.

    Arguments:
        terms: term names (module docstring), e.g. `QG_TERMS`; stored in canonical form,
            duplicates are an error.
        length: the side of the square domain.
        num_points: grid points per side (even, >= 4).
        num_layers: the layers of the state (2 for the two-layer QG model).
        streamfunction: q (num_layers, n, n) -> psi of the same shape (optional).
        dealias: form products from the 2/3-resolved modes and project them back.
    """

    terms: tuple[str, ...] = eqx.field(static=True)
    factors: tuple[tuple[tuple[Factor, int], ...], ...] = eqx.field(static=True)
    grid: PeriodicGrid
    num_layers: int = eqx.field(static=True)
    streamfunction: Callable | None
    dealias: bool = eqx.field(static=True)

    def __init__(
        self,
        terms=QG_TERMS,
        length: float = 1e6,
        num_points: int = 64,
        *,
        num_layers: int = 2,
        streamfunction: Callable | None = None,
        dealias: bool = False,
    ):
        factors, names = canonical_terms(terms, parse_layer_term, layer_term_name, QG_TERMS)
        n, length = check_even_grid(num_points, length, ndim=2)
        if streamfunction is not None and not callable(streamfunction):
            raise TypeError(
                f"`streamfunction` must be a callable q -> psi (e.g. a model's "
                f"`streamfunction`), got {type(streamfunction).__name__}."
            )
        self.terms = names
        self.factors = factors
        self.grid = PeriodicGrid((n, n), length, dealias=bool(dealias))
        self.num_layers = check_int("num_layers", num_layers, minimum=1)
        self.streamfunction = streamfunction
        self.dealias = bool(dealias)

    @property
    def names(self) -> tuple[str, ...]:
        """Column names "term[l]", layer-major (all terms of layer 1 first)."""
        return tuple(f"{t}[{i + 1}]" for i in range(self.num_layers) for t in self.terms)

    @property
    def num_terms(self) -> int:
        """The number of columns, terms x layers."""
        return len(self.terms) * self.num_layers

    @property
    def state_shape(self) -> tuple[int, ...]:
        """(num_layers, ny, nx): the shape of q and psi."""
        return (self.num_layers, *self.grid.shape)

    @property
    def is_linear(self) -> tuple[bool, ...]:
        """Per column: True for one linear factor (derivatives, lap, lap2) to the power one."""
        return tuple(_is_linear(f) for f in self.factors) * self.num_layers

    def linear_symbol(self, term: str) -> np.ndarray:
        """The Fourier symbol (spectral shape) of a linear term, e.g. -|k|^2 for "lap(psi)",
        applied to the term's field (NumPy constant)."""
        factors = parse_layer_term(term)
        if not _is_linear(factors):
            raise ValueError(f"`term` {term!r} is not linear (one derivative or lap factor).")
        return self._symbol(factors[0][0])

    def _symbol(self, factor: Factor) -> np.ndarray:
        if factor[0] == "d":
            return self.grid.derivative((factor[3], factor[2]))  # axes (y, x)
        return self.grid.laplacian() ** factor[2]

    def _check(self, name, value):
        if jnp.shape(value) != self.state_shape:
            raise ValueError(
                f"`{name}` has shape {tuple(jnp.shape(value))}, but the library's state has "
                f"shape {self.state_shape} (layer, y, x); evaluate one state at a time and "
                "vmap over snapshots."
            )

    def term_fields(
        self, q: Float[ArrayLike, "layer y x"], psi: Float[ArrayLike, "layer y x"] | None = None
    ) -> Float[Array, "layer y x term"]:
        """Every term on every layer's grid, (num_layers, ny, nx, terms)."""
        q = jnp.asarray(q)
        self._check("q", q)
        if psi is None:
            if self.streamfunction is None:
                raise ValueError(
                    "`psi` is needed: the library has no `streamfunction` (PV inversion) to "
                    "compute it from q."
                )
            psi = self.streamfunction(q)
        psi = jnp.asarray(psi, dtype=q.dtype)
        self._check("psi", psi)
        grid = self.grid
        hats = {"q": grid.to_spectral(q), "psi": grid.to_spectral(psi)}
        if self.dealias:
            hats = {k: grid.dealiased(v) for k, v in hats.items()}
        cache: dict = {}

        def value(factor: Factor):
            if factor in cache:
                return cache[factor]
            if factor[0] == "J":
                _, a, b = factor
                ax = grid.from_spectral(grid.derivative((0, 1)) * hats[a])
                ay = grid.from_spectral(grid.derivative((1, 0)) * hats[a])
                b_val = grid.from_spectral(hats[b])
                flux = grid.derivative((1, 0)) * grid.to_spectral(ax * b_val)
                flux = flux - grid.derivative((0, 1)) * grid.to_spectral(ay * b_val)
                out = grid.from_spectral(grid.dealiased(flux) if self.dealias else flux)
            else:
                out = grid.from_spectral(self._symbol(factor) * hats[factor[1]])
            cache[factor] = out
            return out

        columns = []
        for factors in self.factors:
            if not factors:
                columns.append(jnp.ones_like(q))
                continue
            col = None
            for factor, power in factors:
                v = value(factor) ** power
                col = v if col is None else col * v
            assert col is not None
            if self.dealias and not _is_linear(factors):
                col = grid.from_spectral(grid.dealiased(grid.to_spectral(col)))
            columns.append(col)
        return jnp.stack(columns, axis=-1).astype(q.dtype)

    def nonlinear_spectral(
        self, coefficients: Float[Array, " column"], q_hat: Complex[Array, "layer y kx"]
    ) -> Complex[Array, "layer y kx"]:
        r"""The Fourier transform of the correction sum_j xi_{j,l} theta_j(q_l, psi_l) of
        every layer, from the spectral PV `q_hat` (the grid's real FFT over the last two axes;
        psi from the library's `streamfunction`): the tendency `CorrectedModel` adds to a
        layered model's nonlinear part. Every term enters here, the linear ones too: a term
        in psi is not diagonal in q (the inversion couples the layers), so the stiff linear
        operator of the model is left as it is.

        Arguments:
            coefficients: xi in the column order of `names` (layer-major), (num_terms,).
            q_hat: the spectral PV of one state.
        """
        q = self.grid.from_spectral(q_hat)
        theta = self.term_fields(q)  # (layer, y, x, term)
        xi = jnp.reshape(coefficients, (self.num_layers, len(self.terms))).astype(theta.dtype)
        return self.grid.to_spectral(jnp.einsum("lyxj,lj->lyx", theta, xi))

    def __call__(
        self, q: Float[ArrayLike, "layer y x"], psi: Float[ArrayLike, "layer y x"] | None = None
    ) -> Float[Array, "point column"]:
        """The design block of one state: (num_layers ny nx, num_layers terms), rows in
        `q.ravel()` order, column (l, j) = theta_j of layer l on layer l's rows, 0 elsewhere."""
        return self.design(self.term_fields(q, psi))

    def design(self, theta: Float[Array, "layer y x term"]) -> Float[Array, "point column"]:
        """The design block of term fields `theta` (as `term_fields` returns them, possibly
        filtered): (num_layers ny nx, num_layers terms), column (l, j) = theta_j of layer l
        on layer l's rows, 0 elsewhere."""
        layers, ny, nx, terms = theta.shape
        eye = jnp.eye(layers, dtype=theta.dtype)
        design = theta.reshape(layers, ny * nx, 1, terms) * eye[:, None, :, None]
        return design.reshape(layers * ny * nx, layers * terms)
