"""Training pairs from trajectories: rollout windows and noisy-input pairs, by hand."""

import jax
import numpy as np
import pytest

from jaxsci import data


def test_rollout_windows_by_hand():
    # two trajectories of 5 states of shape (1, 2): x[i, t] = 100 i + t
    traj = (100 * np.arange(2)[:, None] + np.arange(5)[None, :]).astype(np.float32)
    traj = np.broadcast_to(traj[:, :, None, None], (2, 5, 1, 2))
    inputs, targets = data.rollout_windows(traj, 2)
    assert inputs.shape == (6, 1, 2) and targets.shape == (6, 2, 1, 2)
    np.testing.assert_array_equal(inputs[:, 0, 0], [0, 1, 2, 100, 101, 102])
    np.testing.assert_array_equal(
        targets[:, :, 0, 0], [[1, 2], [2, 3], [3, 4]] + [[101, 102], [102, 103], [103, 104]]
    )
    with pytest.raises(ValueError, match="`trajectories`"):
        data.rollout_windows(traj[:, :2], 2)
    with pytest.raises(ValueError, match="`num_steps`"):
        data.rollout_windows(traj, 0)


def test_noisy_input_pairs():
    rng = np.random.default_rng(0)
    traj = rng.normal(size=(3, 6, 4)).astype(np.float32)
    key = jax.random.key(1)
    inputs, targets = data.noisy_input_pairs(key, traj, 0.5)
    assert inputs.shape == targets.shape == (3, 5, 4)
    assert inputs.dtype == targets.dtype == np.float32
    np.testing.assert_array_equal(targets, traj[:, 1:])
    z = np.asarray(jax.random.normal(key, (3, 5, 4)))
    np.testing.assert_allclose(inputs, traj[:, :-1] + 0.5 * z, rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match="`noise_std`"):
        data.noisy_input_pairs(key, traj, 0.0)
