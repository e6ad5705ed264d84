"""Training data generated on the fly by the simulators (seeded, optionally cached to .npz):
Gaussian random fields, Burgers operator pairs, Kuramoto-Sivashinsky, 2-D Navier-Stokes and
Lorenz-96 trajectories."""

from ._cache import cached as cached
from ._grf import GaussianRandomField as GaussianRandomField
from ._pairs import noisy_input_pairs as noisy_input_pairs, rollout_windows as rollout_windows
from ._simulated import (
    burgers_dataset as burgers_dataset,
    ks_trajectories as ks_trajectories,
    lorenz96_trajectories as lorenz96_trajectories,
    navier_stokes_trajectories as navier_stokes_trajectories,
)
from ._toy import ring as ring, two_moons as two_moons
