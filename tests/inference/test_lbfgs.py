"""`minimize_lbfgs` (the L-BFGS behind `map_estimate` and `init='map'`) on Rosenbrock's
function: the minimum (1, 1) from the classic start (-1.2, 1) and others, `max_steps=0` as
an evaluation of value and gradient, and a non-finite start left alone. One compilation: the
starts are vmapped, and `max_steps` and `gtol` are traced."""

import jax
import jax.numpy as jnp
import numpy as np

from jaxsci.inference import LBFGSResult, minimize_lbfgs


def rosenbrock(x):
    """100 (x2 - x1^2)^2 + (1 - x1)^2 (inf where x1 > 10: a region to avoid)."""
    value = 100 * (x[1] - x[0] ** 2) ** 2 + (1 - x[0]) ** 2
    return jnp.where(x[0] > 10, jnp.inf, value)


@jax.jit
def _run(x0, max_steps, gtol):
    return jax.vmap(lambda x: minimize_lbfgs(rosenbrock, x, max_steps=max_steps, gtol=gtol))(x0)


def test_rosenbrock_minimum_evaluation_and_non_finite_start(x64):
    starts = jnp.asarray([[-1.2, 1.0], [2.0, -1.0], [0.0, 3.0], [11.0, 0.0]])
    res = _run(starts, jnp.asarray(500), jnp.asarray(1e-8))
    assert isinstance(res, LBFGSResult) and res.x.dtype == jnp.float64
    ok = slice(0, 3)
    np.testing.assert_allclose(np.asarray(res.x[ok]), 1.0, atol=1e-7)
    assert np.all(np.asarray(res.converged[ok])) and not np.any(np.asarray(res.stalled[ok]))
    # L-BFGS needs a few dozen iterations here (Nocedal & Wright report ~35 for BFGS from
    # the classic start); steepest descent would need thousands
    assert np.all(np.asarray(res.num_steps[ok]) < 100), res.num_steps
    assert np.all(np.asarray(res.num_evals) >= np.asarray(res.num_steps))
    # the start where the objective is inf: evaluated once, left as it is
    assert not np.isfinite(float(res.value[3])) and int(res.num_evals[3]) == 1
    assert not bool(res.converged[3])
    np.testing.assert_array_equal(np.asarray(res.x[3]), [11.0, 0.0])
    # max_steps = 0 (the same compiled program): value and gradient at the starts
    at = _run(starts, jnp.asarray(0), jnp.asarray(1e-8))
    np.testing.assert_array_equal(np.asarray(at.x), np.asarray(starts))
    values, grads = jax.vmap(jax.value_and_grad(rosenbrock))(starts[:3])
    np.testing.assert_allclose(np.asarray(at.value[:3]), np.asarray(values), rtol=1e-14)
    np.testing.assert_allclose(np.asarray(at.grad[:3]), np.asarray(grads), rtol=1e-14)
    assert np.all(np.asarray(at.num_steps) == 0) and np.all(np.asarray(at.num_evals) == 1)
