r"""The third-order Adams-Bashforth method with a spectral filter (pyqg's scheme), and a
wrapper that applies a spectral filter after the steps of any semilinear solver.

AB3 advances u_t = F(t, u) = L u + N(t, u) (an `AbstractSemilinear` model, in spectral
space) with the tendencies of the last three steps,

    u_{n+1} = u_n + b_0 F_n + b_1 F_{n-1} + b_2 F_{n-2},

b_j = int_{t_n}^{t_n + h} l_j(s) ds for the Lagrange polynomials l_j through t_n, t_{n-1},
t_{n-2} (Hairer, Norsett & Wanner 1993, "Solving Ordinary Differential Equations I",
section III.5), so any step sequence is handled; with a constant step h they are the
familiar (23, -16, 5) h / 12, and AB2's (3, -1) h / 2. Explicit: stable for |h lambda| up
to ~0.72 on the imaginary axis (advection) and 6/11 on the negative real axis.

Start-up (`start`):

* "euler" (default, pyqg's and pyqg-jax's `AB3Stepper`): forward Euler for the first
  step and AB2 for the second. Reproduces pyqg's steps to round-off; the Euler step's
  O(h^2) local error makes the global error O(h^2) (order 2 on a fixed interval).
* "rk4": the two previous tendencies are computed in `init` from a backward RK4
  integration over two steps of the first step's size, so the method is AB3 from the
  first step and third order globally (8 extra evaluations of F once per solve).

With `filter` (an array broadcasting against the spectral state, e.g. pyqg's exponential
filter `TwoLayerQG.spectral_filter()`), the new spectral state is multiplied by it after
every step, as pyqg does (the stored tendencies stay unfiltered). `Filtered` does the same
around any other semilinear solver (ETDRK4, say): the filter is then applied to the
solver's output once per step, exactly as in pyqg's loop, at the cost of one real FFT
pair per step.

The multistep history rides in the solver state, so diffrax's `SaveAt`, `StepTo` grids and
`RecursiveCheckpointAdjoint` work; the method has no error estimate (fixed steps) and
linear dense output (save on step boundaries, as `simulate` does). Integration backwards
in time takes the reversed time as diffrax does (see `_etdrk._semilinear`).
"""

from typing import ClassVar

import diffrax
import equinox as eqx
import jax.numpy as jnp

from .._checks import check_choice, check_finite
from .._custom_types import Array, ArrayLike, Float
from ._etdrk import _semilinear
from ._terms import SemilinearTerm

START = ("euler", "rk4")


def _tendency(dyn, t, u, args):
    """F(t, u) = L u + N(t, u) in spectral space."""
    return dyn.linear_operator() * u + dyn.nonlinear(t, u, args)


def _rk4_step(dyn, t, u, h, args):
    """One classical RK4 step of size `h` (negative: backwards) in spectral space."""
    k1 = _tendency(dyn, t, u, args)
    k2 = _tendency(dyn, t + h / 2, u + (h / 2) * k1, args)
    k3 = _tendency(dyn, t + h / 2, u + (h / 2) * k2, args)
    k4 = _tendency(dyn, t + h, u + h * k3, args)
    return u + (h / 6) * (k1 + 2 * k2 + 2 * k3 + k4)


def ab_weights(level, h, h1, h2):
    """The weights (b_0, b_1, b_2) of F_n, F_{n-1}, F_{n-2} for a step of size h after steps
    h1 = t_n - t_{n-1} and h2 = t_{n-1} - t_{n-2}: Euler at `level` 0, AB2 at 1, AB3 at 2
    (the integrals of the Lagrange polynomials through the nodes 0, -h1, -h1 - h2)."""
    one = jnp.ones_like(h)
    safe1 = jnp.where(level >= 1, h1, one)
    safe2 = jnp.where(level >= 2, h2, one)
    # AB2: nodes 0, -h1
    ab2 = (h + h * h / (2 * safe1), -h * h / (2 * safe1), 0 * h)
    # AB3: nodes 0, -h1, -h1 - h2
    c3, c2 = h**3 / 3, h**2 / 2
    s = safe1 + safe2
    ab3 = (
        (c3 + (2 * safe1 + safe2) * c2 + safe1 * s * h) / (safe1 * s),
        -(c3 + s * c2) / (safe1 * safe2),
        (c3 + safe1 * c2) / (s * safe2),
    )
    euler = (h, 0 * h, 0 * h)
    return tuple(
        jnp.where(level >= 2, c, jnp.where(level == 1, b, a))
        for a, b, c in zip(euler, ab2, ab3, strict=True)
    )


class AB3(diffrax.AbstractSolver):
    """Third-order Adams-Bashforth with an optional spectral filter (pyqg's time stepping).

    See the module docstring for the method, the start-up and the filter.

    Arguments:
        filter: None, or a real array broadcasting against the spectral state (e.g.
            `TwoLayerQG.spectral_filter()`): the spectral state is multiplied by it after
            every step.
        start: "euler" (pyqg's Euler, AB2, AB3 start; global order 2) or "rk4" (history
            from a backward RK4 integration; global order 3).
    """

    filter: Float[Array, "..."] | None
    start: str = eqx.field(static=True)
    term_structure: ClassVar = SemilinearTerm
    interpolation_cls: ClassVar = diffrax.LocalLinearInterpolation

    def __init__(self, filter: Float[ArrayLike, "..."] | None = None, start: str = "euler"):
        self.filter = _check_filter(filter)
        self.start = check_choice("start", start, START)

    def order(self, terms):
        return 3

    def strong_order(self, terms):
        return None

    def init(self, terms, t0, t1, y0, args):
        dyn, direction = _semilinear(terms)
        h = direction * (t1 - t0)
        t = direction * t0
        u0 = dyn.to_spectral(y0)
        zero = jnp.zeros_like(u0)
        if self.start == "euler":
            return jnp.asarray(0, jnp.int32), 0 * h, 0 * h, zero, zero
        u_m1 = _rk4_step(dyn, t, u0, -h, args)
        u_m2 = _rk4_step(dyn, t - h, u_m1, -h, args)
        f_m1 = _tendency(dyn, t - h, u_m1, args)
        f_m2 = _tendency(dyn, t - 2 * h, u_m2, args)
        return jnp.asarray(2, jnp.int32), h, h, f_m1, f_m2

    def step(self, terms, t0, t1, y0, args, solver_state, made_jump):
        del made_jump
        dyn, direction = _semilinear(terms)
        level, h1, h2, f1, f2 = solver_state
        h = direction * (t1 - t0)
        t = direction * t0
        u = dyn.to_spectral(y0)
        f0 = _tendency(dyn, t, u, args)
        b0, b1, b2 = ab_weights(level, h, h1, h2)
        u1 = u + b0 * f0 + b1 * f1 + b2 * f2
        if self.filter is not None:
            u1 = self.filter * u1
        y1 = dyn.from_spectral(u1).astype(y0.dtype)
        state = (jnp.minimum(level + 1, 2).astype(jnp.int32), h, h1, f0, f1)
        return y1, None, dict(y0=y0, y1=y1), state, diffrax.RESULTS.successful

    def func(self, terms, t0, y0, args):
        return terms.vf(t0, y0, args)


class Filtered(diffrax.AbstractSolver):
    """A semilinear solver whose every step is followed by a spectral filter.

    y_{n+1} = from_spectral(filter * to_spectral(step(y_n))): pyqg's post-step filtering
    (`TwoLayerQG.spectral_filter()`) around ETDRK4 or any solver of a `SemilinearTerm`
    (`AB3` takes its filter directly, saving the FFT pair). The wrapped solver's own state
    and steps are otherwise unchanged.

    Arguments:
        solver: a diffrax solver of a `SemilinearTerm` (ETDRK1-4, AB3).
        filter: a real array broadcasting against the spectral state.
    """

    solver: diffrax.AbstractSolver
    filter: Float[Array, "..."]

    def __init__(self, solver: diffrax.AbstractSolver, filter: Float[ArrayLike, "..."]):
        if getattr(solver, "term_structure", None) is not SemilinearTerm:
            raise ValueError(
                "`solver` must be a solver of semilinear models (ETDRK1-4, AB3), got "
                f"{type(solver).__name__}."
            )
        filt = _check_filter(filter)
        assert filt is not None
        self.solver = solver
        self.filter = filt

    @property
    def term_structure(self):
        return self.solver.term_structure

    @property
    def interpolation_cls(self):  # pyright: ignore
        return diffrax.LocalLinearInterpolation

    def order(self, terms):
        return self.solver.order(terms)

    def strong_order(self, terms):
        return None

    def init(self, terms, t0, t1, y0, args):
        return self.solver.init(terms, t0, t1, y0, args)

    def step(self, terms, t0, t1, y0, args, solver_state, made_jump):
        dyn, _ = _semilinear(terms)
        y1, y_error, _, solver_state, result = self.solver.step(
            terms, t0, t1, y0, args, solver_state, made_jump
        )
        y1 = dyn.from_spectral(self.filter * dyn.to_spectral(y1)).astype(y0.dtype)
        return y1, y_error, dict(y0=y0, y1=y1), solver_state, result

    def func(self, terms, t0, y0, args):
        return self.solver.func(terms, t0, y0, args)


def _check_filter(filter) -> Array | None:
    """`filter` as a finite real float array (None passes), else an error naming it."""
    if filter is None:
        return None
    try:
        arr = jnp.asarray(filter)
    except (TypeError, ValueError) as err:
        got = type(filter).__name__
        raise TypeError(f"`filter` must be an array of numbers, got {got}.") from err
    if jnp.issubdtype(arr.dtype, jnp.complexfloating) or not jnp.issubdtype(arr.dtype, jnp.number):
        raise ValueError(f"`filter` must be a real array, got dtype {arr.dtype}.")
    if not jnp.issubdtype(arr.dtype, jnp.floating):
        arr = arr.astype(jnp.result_type(float))
    check_finite("filter", arr)
    return arr
