"""Normalised forecast error and valid time on hand-computed series."""

import numpy as np
import pytest

from jaxsci import discovery
from jaxsci.metrics import normalised_error, valid_time


def test_normalised_error_by_hand():
    truth = np.array([[3.0, 4.0], [0.0, 0.0]])  # RMS amplitude sqrt(25 / 4) = 2.5
    forecast = np.array([[3.0, 4.0], [1.0, 1.0]])
    np.testing.assert_allclose(normalised_error(forecast, truth), [0.0, 1.0 / 2.5])
    np.testing.assert_allclose(normalised_error(forecast, truth, scale=2.0), [0.0, 0.5])
    # a ValueError naming the shapes (TypeError from jaxtyping when annotations are checked)
    with pytest.raises((ValueError, TypeError), match="shape|truth"):
        normalised_error(forecast[:1], truth)


def test_valid_time_first_crossing_and_censoring():
    times = np.array([0.0, 1.0, 2.0, 3.0])
    errors = np.array([[0.1, 0.4, 0.6, 0.2], [0.1, 0.2, 0.3, 0.4], [0.1, np.nan, 0.1, 0.1]])
    np.testing.assert_allclose(valid_time(errors, times, 0.5), [2.0, 3.0, 1.0])
    assert valid_time(errors[0], times, 0.5) == 2.0
    assert valid_time(errors[0], times, 0.3) == 1.0
    with pytest.raises((ValueError, TypeError), match="times"):
        valid_time(errors, times[:3])
    with pytest.raises(ValueError, match="threshold"):
        valid_time(errors, times, 0.0)


def test_valid_time_last_below_counts_valid_steps():
    # a stepper's rollout error at steps 1..4 (step 0.5), with the exact initial state at 0:
    # valid for as many steps as stay below the threshold
    step = 0.5
    times = step * np.arange(5)
    curves = np.array(
        [[0.0, 0.1, 0.2, 0.7, 0.9], [0.0, 0.9, 0.1, 0.1, 0.1], [0.0, 0.1, 0.1, 0.1, 0.1]]
    )
    np.testing.assert_allclose(valid_time(curves, times, 0.5, last_below=True), [1.0, 0.0, 2.0])
    # the first error already above: the first time
    assert valid_time(np.array([0.9, 0.1]), np.array([0.0, 1.0]), 0.5, last_below=True) == 0.0


def test_discovery_reexports_the_metrics():
    assert discovery.valid_time is valid_time
    assert discovery.normalised_error is normalised_error
