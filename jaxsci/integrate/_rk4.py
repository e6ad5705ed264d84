"""The classic fourth-order Runge-Kutta method as a diffrax solver.

diffrax ships Tsit5, Dopri5, Heun, ... but not Kutta's 1901 RK4, which is the reference
stepper of the data-assimilation literature (DAPPER integrates Lorenz-96 with one RK4 step
per dt = 0.05). Fixed step only, linear dense output: save on step boundaries.
"""

from typing import ClassVar

import diffrax
import jax


class RK4(diffrax.AbstractSolver):
    """Classic RK4: k1 = f(t, y), k2 = f(t + h/2, y + h k1/2), k3 = f(t + h/2, y + h k2/2),
    k4 = f(t + h, y + h k3), y1 = y + h (k1 + 2 k2 + 2 k3 + k4) / 6."""

    term_structure: ClassVar = diffrax.AbstractTerm
    interpolation_cls: ClassVar = diffrax.LocalLinearInterpolation

    def order(self, terms):
        return 4

    def strong_order(self, terms):
        return None

    def init(self, terms, t0, t1, y0, args):
        return None

    def step(self, terms, t0, t1, y0, args, solver_state, made_jump):
        del solver_state, made_jump
        # Go through the term's control and vf_prod (not `h * vf`): diffrax integrates
        # backwards in time by wrapping terms so that the *control* carries the sign, and
        # BacksolveAdjoint's adjoint term defines its own vf_prod.
        control = terms.contr(t0, t1)
        th = t0 + 0.5 * (t1 - t0)
        tmap = jax.tree_util.tree_map

        def increment(t, y):
            return terms.vf_prod(t, y, args, control)

        def axpy(a, x, y):
            return tmap(lambda xi, yi: yi + a * xi, x, y)

        k1 = increment(t0, y0)
        k2 = increment(th, axpy(0.5, k1, y0))
        k3 = increment(th, axpy(0.5, k2, y0))
        k4 = increment(t1, axpy(1.0, k3, y0))
        y1 = tmap(lambda y, a, b, c, d: y + (a + 2 * b + 2 * c + d) / 6, y0, k1, k2, k3, k4)
        return y1, None, dict(y0=y0, y1=y1), None, diffrax.RESULTS.successful

    def func(self, terms, t0, y0, args):
        return terms.vf(t0, y0, args)
