"""Training pairs cut from simulated trajectories: k-step rollout windows and noisy-input
forecast pairs.

Both take trajectories as `(trajectory, time, *state)` arrays (as `ks_trajectories` and
`lorenz96_trajectories` return them) and give NumPy float32 arrays (host memory), ready for
`jaxsci.train.fit`.
"""

import jax
import numpy as np

from .._checks import check_int, check_key, check_positive
from .._custom_types import Float, Key


def _trajectories(x, least_times: int) -> np.ndarray:
    arr = np.asarray(x)
    if arr.ndim < 2 or arr.shape[1] < least_times:
        raise ValueError(
            f"`trajectories` must be (trajectory, time >= {least_times}, *state), got shape "
            f"{arr.shape}."
        )
    return arr


def rollout_windows(
    trajectories: Float[np.ndarray, "traj time *state"], num_steps: int
) -> tuple[Float[np.ndarray, " pair *state"], Float[np.ndarray, " pair step *state"]]:
    """Every window of `num_steps` + 1 consecutive states: an initial state and the next
    `num_steps` states, the data of k-step rollout training (`jaxsci.losses.RolloutLoss`).

    From a trajectory x_0..x_{T-1} the windows start at x_0..x_{T-1-k} (k = `num_steps`); the
    pairs of all trajectories are concatenated, trajectory by trajectory.

    Arguments:
        trajectories: (N, T, *state) with T > num_steps.
        num_steps: k >= 1, the targets per initial state.

    Returns:
        inputs (N (T - k), *state) and targets (N (T - k), k, *state): targets[i, j] is the
        state j + 1 steps after inputs[i].
    """
    k = check_int("num_steps", num_steps)
    traj = _trajectories(trajectories, k + 1)
    n, t, state = traj.shape[0], traj.shape[1], traj.shape[2:]
    windows = t - k
    inputs = traj[:, :windows].reshape(n * windows, *state)
    targets = np.stack([traj[:, j + 1 : j + 1 + windows] for j in range(k)], axis=2)
    return inputs, targets.reshape(n * windows, k, *state)


def noisy_input_pairs(
    key: Key, trajectories: Float[np.ndarray, "traj time *state"], noise_std: float
) -> tuple[Float[np.ndarray, "traj pair *state"], Float[np.ndarray, "traj pair *state"]]:
    """Forecast pairs (x_t + noise, x_{t+1}) of consecutive states, the input observed with
    Gaussian noise: the training data of a forecaster that starts from noisy observations.

    Arguments:
        key: PRNG key of the noise (one standard normal per input entry).
        trajectories: (N, T, *state), T >= 2.
        noise_std: standard deviation of the noise (> 0).

    Returns:
        inputs x_t + noise_std z and targets x_{t+1}, each (N, T - 1, *state), float32.
    """
    key = check_key("key", key)
    check_positive("noise_std", noise_std)
    traj = _trajectories(trajectories, 2)
    z = np.asarray(jax.random.normal(key, traj[:, :-1].shape), dtype=np.float32)
    inputs = (traj[:, :-1] + float(noise_std) * z).astype(np.float32)
    return inputs, traj[:, 1:].astype(np.float32)
