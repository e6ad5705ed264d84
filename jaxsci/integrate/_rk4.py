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
        h = t1 - t0
        th = t0 + 0.5 * h
        tmap = jax.tree_util.tree_map

        def axpy(a, x, y):
            return tmap(lambda xi, yi: yi + a * xi, x, y)

        k1 = terms.vf(t0, y0, args)
        k2 = terms.vf(th, axpy(0.5 * h, k1, y0), args)
        k3 = terms.vf(th, axpy(0.5 * h, k2, y0), args)
        k4 = terms.vf(t1, axpy(h, k3, y0), args)
        y1 = tmap(lambda y, a, b, c, d: y + h / 6 * (a + 2 * b + 2 * c + d), y0, k1, k2, k3, k4)
        return y1, None, dict(y0=y0, y1=y1), None, diffrax.RESULTS.successful

    def func(self, terms, t0, y0, args):
        return terms.vf(t0, y0, args)
