"""Solver heuristics (Pal et al. 2021): the accumulated error estimate against a step-by-step
recomputation, the stiffness estimate against a linear ODE's eigenvalue, the evaluation count
against a counting vector field, and the local (one sampled step) estimator's mean against the
global sum."""

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxsci import integrate, losses
from jaxsci.dynamics import LotkaVolterra

RTOL, ATOL = 1e-4, 1e-6
TS = np.linspace(0.0, 4.0, 5)
Y0 = np.array([1.0, 1.0])


def _lv():
    return LotkaVolterra(1.5, 1.0, 3.0, 1.0)


@pytest.fixture(scope="module")
def solved():
    with jax.enable_x64(True):
        f = _lv().vector_field
        sol = integrate.solve_heuristics(
            f, Y0, TS, rtol=RTOL, atol=ATOL, save_steps=True, max_steps=64
        )
        yield jax.tree.map(np.asarray, sol)


def _steps(sol):
    n = int(sol.num_accepted_steps)
    ends = np.asarray(sol.step_ts[:n])
    starts = np.concatenate([[TS[0]], ends[:-1]])
    ys = np.concatenate([Y0[None], np.asarray(sol.step_ys[: n - 1])])
    return starts, ends, ys


def test_accumulated_error_equals_stepwise_recomputation(solved):
    """R_E from the wrapped solver's state == sum over the accepted steps of E_j |h_j|,
    recomputed by calling diffrax's Tsit5 step by step and scaling its error in NumPy."""
    starts, ends, ys = _steps(solved)
    assert len(starts) >= 10 and int(solved.num_steps) >= len(starts)
    with jax.enable_x64(True):
        term, solver = diffrax.ODETerm(_lv().vector_field), diffrax.Tsit5()

        @jax.jit
        def step(t0, t1, y0):
            state = solver.init(term, t0, t1, y0, None)
            return solver.step(term, t0, t1, y0, None, state, False)[:2]

        total = 0.0
        for t0, t1, y0 in zip(starts, ends, ys, strict=True):
            y1, err = map(np.asarray, step(t0, t1, jnp.asarray(y0)))
            scaled = err / (ATOL + RTOL * np.maximum(np.abs(y0), np.abs(y1)))
            total += np.sqrt(np.mean(scaled**2)) * (t1 - t0)
    np.testing.assert_allclose(solved.heuristics.error, total, rtol=1e-10)


@pytest.mark.slow  # ~3 s of CPU (a vmapped solve compiled): over the fast tier's share
def test_local_estimate_is_unbiased_for_the_global_sum(solved):
    """N E_j |h_j| at a uniformly drawn accepted step j: its Monte-Carlo mean is R_E within
    4 standard errors, and the exact mean over all j is R_E."""
    starts, ends, ys = _steps(solved)
    n = len(starts)
    with jax.enable_x64(True):
        f = _lv().vector_field

        def one_step(a, y, h):
            return integrate.one_step_heuristics(f, a, y, h, rtol=RTOL, atol=ATOL)

        one = jax.jit(jax.vmap(one_step))
        per_step = np.asarray(one(starts, ys, ends - starts).error)
        np.testing.assert_allclose(n * per_step.mean(), solved.heuristics.error, rtol=1e-10)
        loss = losses.LocalRegularisedLoss(TS, rtol=RTOL, atol=ATOL, max_steps=64)
        keys = jax.random.split(jax.random.key(0), 200)
        draws = jax.jit(jax.vmap(lambda k: loss.local_estimate(_lv(), jnp.asarray(Y0), k)[0]))(keys)
        draws = np.asarray(draws.error)
    se = draws.std(ddof=1) / np.sqrt(len(draws))
    assert abs(draws.mean() - solved.heuristics.error) < 4 * se
    assert se > 0  # the draws do vary (a test that could not fail otherwise)


def test_stiffness_estimate_is_the_linear_eigenvalue():
    """For y' = -3 y the stiffness estimate is exactly |lambda| = 3 on every step, so
    R_S = 3 (t1 - t0); the FSAL count matches a counting vector field."""
    calls = []

    def f(t, y, args):
        jax.debug.callback(lambda: calls.append(1))
        return -3.0 * y

    with jax.enable_x64(True):
        sol = integrate.solve_heuristics(f, np.ones(3), [0.0, 2.0], rtol=RTOL, atol=ATOL)
        np.testing.assert_allclose(sol.heuristics.stiffness, 3.0 * 2.0, rtol=1e-9)
    assert int(sol.nfe) == len(calls) == 6 * int(sol.num_steps) + 1  # FSAL: 6 new stages


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="solver"):
        integrate.HeuristicSolver(diffrax.Euler())  # pyright: ignore[reportArgumentType]
    with pytest.raises(ValueError, match="rtol"):
        integrate.HeuristicSolver(diffrax.Tsit5(), rtol=-1.0)
    with pytest.raises(ValueError, match="ts"):
        losses.SolverHeuristicLoss([0.0])
    with pytest.raises(ValueError, match="error_weight"):
        losses.LocalRegularisedLoss([0.0, 1.0], error_weight=-1.0)
    with pytest.raises(ValueError, match="solver"):
        integrate.function_evaluations(diffrax.Kvaerno5(), 3)
    # an implicit (adaptive) solver is refused when the loss is built, not at its first call
    for loss in (losses.SolverHeuristicLoss, losses.LocalRegularisedLoss):
        with pytest.raises(ValueError, match="`solver` must be an adaptive explicit"):
            loss([0.0, 1.0], solver=diffrax.Kvaerno5())
