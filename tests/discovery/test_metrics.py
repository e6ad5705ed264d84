"""Normalised forecast error and valid time on hand-computed series."""

import numpy as np
import pytest

from jaxsci.discovery import normalised_error, valid_time


def test_normalised_error_by_hand():
    truth = np.array([[3.0, 4.0], [0.0, 0.0]])  # RMS amplitude sqrt(25 / 4) = 2.5
    forecast = np.array([[3.0, 4.0], [1.0, 1.0]])
    np.testing.assert_allclose(normalised_error(forecast, truth), [0.0, 1.0 / 2.5])
    np.testing.assert_allclose(normalised_error(forecast, truth, scale=2.0), [0.0, 0.5])
    with pytest.raises(ValueError, match="shape"):
        normalised_error(forecast[:1], truth)


def test_valid_time_first_crossing_and_censoring():
    times = np.array([0.0, 1.0, 2.0, 3.0])
    errors = np.array([[0.1, 0.4, 0.6, 0.2], [0.1, 0.2, 0.3, 0.4], [0.1, np.nan, 0.1, 0.1]])
    np.testing.assert_allclose(valid_time(errors, times, 0.5), [2.0, 3.0, 1.0])
    assert valid_time(errors[0], times, 0.5) == 2.0
    assert valid_time(errors[0], times, 0.3) == 1.0
    with pytest.raises(ValueError, match="times"):
        valid_time(errors, times[:3])
