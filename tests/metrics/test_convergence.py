"""`jaxsci.metrics.fit_convergence_order` on synthetic errors with known slopes."""

import math

import numpy as np
import pytest

from jaxsci.metrics import fit_convergence_order


@pytest.mark.parametrize("order", [0.5, 1.0, 2.5, 4.0])
def test_exact_power_law(order):
    steps = [10, 20, 40, 80, 160]
    errors = [3.0 * n**-order for n in steps]
    assert abs(fit_convergence_order(steps, errors) - order) < 1e-12


def test_least_squares_slope_of_noisy_errors():
    """With log-errors p log N + noise, the fit is the ordinary least-squares slope: written
    out here as cov(log N, log e) / var(log N)."""
    rng = np.random.default_rng(1)
    steps = np.array([8, 16, 32, 64, 128, 256])
    log_e = np.log(0.7) - 2.0 * np.log(steps) + 0.05 * rng.normal(size=steps.size)
    ln = np.log(steps)
    slope = np.sum((ln - ln.mean()) * (log_e - log_e.mean())) / np.sum((ln - ln.mean()) ** 2)
    got = fit_convergence_order(steps, np.exp(log_e))
    assert abs(got - (-slope)) < 1e-12
    assert abs(got - 2.0) < 0.1


def test_unusable_points_are_left_out():
    steps = [10, 20, 40, 80]
    errors = [1e-2, float("nan"), 0.0, 1e-2 * 8.0**-3]  # a diverged and an exact run
    assert abs(fit_convergence_order(steps, errors) - 3.0) < 1e-12
    assert math.isnan(fit_convergence_order(steps, [1e-2, math.inf, 0.0, -1.0]))
    assert math.isnan(fit_convergence_order([10, 10], [1e-2, 1e-3]))  # one resolution


def test_bad_input_names_the_argument():
    with pytest.raises(ValueError, match="`steps` and `errors` must be 1-D of the same length"):
        fit_convergence_order([1, 2, 3], [1.0, 0.5])
    with pytest.raises(ValueError, match="`steps` must be finite and positive"):
        fit_convergence_order([0, 2], [1.0, 0.5])
