"""Pearson pattern correlation and the high-correlation time on hand-computed cases."""

import numpy as np
import pytest

from jaxsci.metrics import high_correlation_time, pearson_correlation


def test_pearson_correlation_by_hand():
    truth = np.array([1.0, 2.0, 3.0, 4.0])
    # affine images: +1 / -1 (the mean and the scale do not matter)
    np.testing.assert_allclose(pearson_correlation(3.0 * truth + 7.0, truth), 1.0, rtol=1e-6)
    np.testing.assert_allclose(pearson_correlation(-0.5 * truth, truth), -1.0, rtol=1e-6)
    # centred truth (-1.5, -0.5, 0.5, 1.5) against (1, 0, 0, 1) centred (0.5, -0.5, -0.5, 0.5):
    # sum of products 0, so rho = 0; against (0, 0, 1, 1): products sum 2, norms sqrt(5), 1
    np.testing.assert_allclose(pearson_correlation(np.array([1.0, 0, 0, 1]), truth), 0.0, atol=1e-7)
    np.testing.assert_allclose(
        pearson_correlation(np.array([0.0, 0, 1, 1]), truth), 2.0 / np.sqrt(5.0), rtol=1e-6
    )
    # a grid: sin vs cos are orthogonal; the time axis is kept
    x = 2 * np.pi * np.arange(16) / 16
    rho = pearson_correlation(np.stack([np.sin(x), np.cos(x)]), np.stack([np.sin(x), np.sin(x)]))
    np.testing.assert_allclose(rho, [1.0, 0.0], atol=1e-6)
    # a constant field has no correlation
    assert np.isnan(pearson_correlation(np.ones(4), truth))
    with pytest.raises((ValueError, TypeError), match="shape|truth"):
        pearson_correlation(truth[:3], truth)


def _rollout_with(rho):
    """States whose correlation with sin(x) is rho_j exactly: rho sin + sqrt(1 - rho^2) cos."""
    x = 2 * np.pi * np.arange(32) / 32
    rho = np.asarray(rho, dtype=float)
    truth = np.broadcast_to(np.sin(x), rho.shape + (32,))
    fc = rho[..., None] * np.sin(x) + np.sqrt(1 - rho[..., None] ** 2) * np.cos(x)
    return fc, truth


def test_high_correlation_time_by_hand():
    times = np.array([0.5, 1.0, 1.5, 2.0])
    rhos = np.array(
        [
            [0.99, 0.9, 0.7, 0.95],  # first drop at 1.5: 1.0 (the recovery does not count)
            [0.5, 0.99, 0.99, 0.99],  # below at the first step: 0
            [0.99, 0.95, 0.9, 0.85],  # never below: censored at the horizon, 2.0
            [0.9, 0.81, 0.79, 0.9],  # 0.81 is still highly correlated: 1.0
        ]
    )
    fc, truth = _rollout_with(rhos)
    np.testing.assert_allclose(pearson_correlation(fc, truth), rhos, atol=1e-6)
    np.testing.assert_allclose(high_correlation_time(fc, truth, times), [1.0, 0.0, 2.0, 1.0])
    assert high_correlation_time(fc[0], truth[0], times) == 1.0
    # threshold 0.92: rollout 0 is valid for one step, rollout 2 for two
    np.testing.assert_allclose(
        high_correlation_time(fc, truth, times, threshold=0.92), [0.5, 0.0, 1.0, 0.0]
    )
    # a diverged (NaN) state ends it
    fc_nan = fc[2].copy()
    fc_nan[2] = np.nan
    assert high_correlation_time(fc_nan, truth[2], times) == 1.0


def test_high_correlation_time_bad_input():
    fc, truth = _rollout_with(np.array([0.9, 0.9]))
    with pytest.raises(ValueError, match="threshold"):
        high_correlation_time(fc, truth, np.array([1.0, 2.0]), threshold=1.0)
    with pytest.raises(ValueError, match="times"):
        high_correlation_time(fc, truth, np.array([0.0, 1.0]))
    # (a TypeError from jaxtyping when the annotations are checked)
    with pytest.raises((ValueError, TypeError), match="times"):
        high_correlation_time(fc, truth, np.array([1.0, 2.0, 3.0]))
