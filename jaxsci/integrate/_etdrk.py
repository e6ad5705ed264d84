r"""Exponential time differencing Runge-Kutta (ETDRK1-4) as diffrax solvers.

For u_t = L u + N(t, u) with L diagonal in Fourier space, the variation-of-constants
formula is integrated exactly in L and by Runge-Kutta quadrature in N:

* ETDRK1 (exponential Euler): u1 = e^{hL} u0 + h phi_1(hL) N0.
* ETDRK2 (Cox & Matthews 2002, "ETD2RK"): a = ETDRK1 step; u1 = a + h phi_2(hL)(N(a) - N0).
* ETDRK3 (Cox & Matthews 2002, "ETD3RK"): stages at t + h/2 and t + h,
  u1 = e^{hL} u0 + h [(phi1 - 3 phi2 + 4 phi3) N0 + 4 (phi2 - 2 phi3) N(a)
  + (4 phi3 - phi2) N(b)], all phi at hL.
* ETDRK4 (Cox & Matthews 2002, in the form of Kassam & Trefethen 2005):
  a = e^{hL/2} u0 + (h/2) phi_1(hL/2) N0,  b = e^{hL/2} u0 + (h/2) phi_1(hL/2) N(a),
  c = e^{hL/2} a + (h/2) phi_1(hL/2) (2 N(b) - N0),
  u1 = e^{hL} u0 + h [f1 N0 + 2 f2 (N(a) + N(b)) + f3 N(c)] with
  f1 = phi1 - 3 phi2 + 4 phi3, f2 = phi2 - 2 phi3, f3 = 4 phi3 - phi2.

The phi-functions come from `jaxsci.integrate.phi_functions` (Taylor series for |hL| < 1,
the Kassam-Trefethen small-argument problem). The coefficients depend on h; they are
computed once in `init` for the first step and reused while the step size is unchanged
(up to the rounding of the time grid), and recomputed otherwise, so the solvers stay
correct with any step-size sequence. They are fixed-step methods (no error estimate)
with linear dense output: save on step boundaries (`simulate` does).
"""

import abc
from typing import ClassVar

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
from diffrax._term import WrapTerm  # not exported; the wrapper every diffeqsolve term gets

from ._phi import phi_functions
from ._terms import SemilinearTerm


def _semilinear(terms) -> tuple:
    """The model inside diffrax's term wrapper, and the direction of integration.

    `diffrax.diffeqsolve` wraps every term in a `WrapTerm` carrying the direction of
    integration: t1 < t0 is solved in the reversed time s = -t, with direction -1; physical
    time is then direction * s and the physical step is direction * (s1 - s0). (A solver
    called directly gets the bare `SemilinearTerm`, direction 1.)
    """
    if isinstance(terms, WrapTerm) and isinstance(terms.term, SemilinearTerm):
        return terms.term.dynamics, terms.direction
    if isinstance(terms, SemilinearTerm):
        return terms.dynamics, 1
    raise ValueError(f"ETDRK solvers need a SemilinearTerm, got {type(terms).__name__}.")


def _same_step(h, h0, t0, t1):
    eps = jnp.finfo(jnp.result_type(h)).eps
    scale = jnp.maximum(jnp.maximum(jnp.abs(t0), jnp.abs(t1)), jnp.abs(h0))
    return jnp.abs(h - h0) <= 8 * eps * scale


def _third_order_pieces(lin, h) -> tuple:
    """e^{hL/2}, (h/2) phi_1(hL/2), e^{hL}, h phi_1, h (phi_1 - 3 phi_2 + 4 phi_3),
    h (phi_2 - 2 phi_3), h (4 phi_3 - phi_2) (phi at hL): the coefficients ETDRK3 and ETDRK4
    are made of."""
    e2, p1_half = phi_functions(0.5 * h * lin, 1)
    e, p1, p2, p3 = phi_functions(h * lin, 3)
    return (
        e2,
        0.5 * h * p1_half,
        e,
        h * p1,
        h * (p1 - 3 * p2 + 4 * p3),
        h * (p2 - 2 * p3),
        h * (4 * p3 - p2),
    )


class AbstractETDRK(diffrax.AbstractSolver):
    """Shared machinery of the ETDRK solvers: coefficient cache and spectral transforms."""

    term_structure: ClassVar = SemilinearTerm
    interpolation_cls: ClassVar = diffrax.LocalLinearInterpolation
    # True: every step has the size of the first one, so the cached coefficients are used
    # without the per-step check (`simulate` sets it when its step grid is uniform). This
    # removes a `lax.cond` from the step loop, which costs a device-to-host round trip per
    # step on GPUs. Wrong if the steps do vary, hence off by default.
    constant_step: eqx.AbstractVar[bool]

    @abc.abstractmethod
    def coefficients(self, lin, h):
        """The step's coefficient arrays for linear symbol `lin` and step `h`."""

    @abc.abstractmethod
    def spectral_step(self, dyn, t0, h, u, args, coeffs):
        """One step in spectral space."""

    def strong_order(self, terms):
        return None

    def init(self, terms, t0, t1, y0, args):
        dyn, direction = _semilinear(terms)
        h0 = direction * (t1 - t0)
        return h0, self.coefficients(dyn.linear_operator(), h0)

    def step(self, terms, t0, t1, y0, args, solver_state, made_jump):
        del made_jump
        dyn, direction = _semilinear(terms)
        h0, cached = solver_state
        # Physical start time and (signed) step; see `_semilinear`.
        h = direction * (t1 - t0)
        t0 = direction * t0
        t1 = t0 + h
        if self.constant_step:
            coeffs = cached
        else:
            coeffs = jax.lax.cond(
                _same_step(h, h0, t0, t1),
                lambda: cached,
                lambda: self.coefficients(dyn.linear_operator(), h),
            )
        u1 = self.spectral_step(dyn, t0, h, dyn.to_spectral(y0), args, coeffs)
        y1 = dyn.from_spectral(u1).astype(y0.dtype)
        return y1, None, dict(y0=y0, y1=y1), solver_state, diffrax.RESULTS.successful

    def func(self, terms, t0, y0, args):
        return terms.vf(t0, y0, args)


class ETDRK1(AbstractETDRK):
    """Exponential Euler (first order). See the module docstring."""

    constant_step: bool = eqx.field(default=False, static=True)

    def order(self, terms):
        return 1

    def coefficients(self, lin, h):
        e, p1 = phi_functions(h * lin, 1)
        return e, h * p1

    def spectral_step(self, dyn, t0, h, u, args, coeffs):
        e, hp1 = coeffs
        return e * u + hp1 * dyn.nonlinear(t0, u, args)


class ETDRK2(AbstractETDRK):
    """Cox-Matthews ETD2RK (second order). See the module docstring."""

    constant_step: bool = eqx.field(default=False, static=True)

    def order(self, terms):
        return 2

    def coefficients(self, lin, h):
        e, p1, p2 = phi_functions(h * lin, 2)
        return e, h * p1, h * p2

    def spectral_step(self, dyn, t0, h, u, args, coeffs):
        e, hp1, hp2 = coeffs
        n0 = dyn.nonlinear(t0, u, args)
        a = e * u + hp1 * n0
        return a + hp2 * (dyn.nonlinear(t0 + h, a, args) - n0)


class ETDRK3(AbstractETDRK):
    """Cox-Matthews ETD3RK (third order). See the module docstring."""

    constant_step: bool = eqx.field(default=False, static=True)

    def order(self, terms):
        return 3

    def coefficients(self, lin, h):
        e2, q, e, hp1, f1, g, f3 = _third_order_pieces(lin, h)
        return e2, q, e, hp1, f1, 4 * g, f3

    def spectral_step(self, dyn, t0, h, u, args, coeffs):
        e2, q, e, hp1, f1, f2, f3 = coeffs
        n0 = dyn.nonlinear(t0, u, args)
        a = e2 * u + q * n0
        na = dyn.nonlinear(t0 + 0.5 * h, a, args)
        b = e * u + hp1 * (2 * na - n0)
        nb = dyn.nonlinear(t0 + h, b, args)
        return e * u + f1 * n0 + f2 * na + f3 * nb


class ETDRK4(AbstractETDRK):
    """Cox-Matthews ETDRK4 as in Kassam & Trefethen (2005) (fourth order)."""

    constant_step: bool = eqx.field(default=False, static=True)

    def order(self, terms):
        return 4

    def coefficients(self, lin, h):
        e2, q, e, _, f1, g, f3 = _third_order_pieces(lin, h)
        return e2, q, e, f1, 2 * g, f3

    def spectral_step(self, dyn, t0, h, u, args, coeffs):
        e2, q, e, f1, f2, f3 = coeffs
        n0 = dyn.nonlinear(t0, u, args)
        a = e2 * u + q * n0
        na = dyn.nonlinear(t0 + 0.5 * h, a, args)
        b = e2 * u + q * na
        nb = dyn.nonlinear(t0 + 0.5 * h, b, args)
        c = e2 * a + q * (2 * nb - n0)
        nc = dyn.nonlinear(t0 + h, c, args)
        return e * u + f1 * n0 + f2 * (na + nb) + f3 * nc


ETDRK = {1: ETDRK1, 2: ETDRK2, 3: ETDRK3, 4: ETDRK4}
