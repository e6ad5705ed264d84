"""Model zoo: MLP, Fourier neural operators, U-Nets, DeepONet, time-conditioned networks,
and networks as dynamics models. Equinox modules acting on one example (channels-first
fields); batch with `jax.vmap`."""

from ._base import (
    AbstractNetwork as AbstractNetwork,
    AbstractTimeConditioned as AbstractTimeConditioned,
    count_params as count_params,
)
from ._deeponet import DeepONet as DeepONet
from ._embedding import SinusoidalEmbedding as SinusoidalEmbedding
from ._fno import FNO1d as FNO1d, FNO2d as FNO2d
from ._mlp import MLP as MLP
from ._score import ScoreMLP as ScoreMLP
from ._spectral import SpectralConv1d as SpectralConv1d, SpectralConv2d as SpectralConv2d
from ._stepper import Stepper as Stepper
from ._stochastic import LocalStochastic as LocalStochastic, sample_ensemble as sample_ensemble
from ._unet import (
    ScoreUNet1d as ScoreUNet1d,
    ScoreUNet2d as ScoreUNet2d,
    UNet1d as UNet1d,
    UNet2d as UNet2d,
)
from ._vector_field import (
    HybridSemilinear as HybridSemilinear,
    HybridVectorField as HybridVectorField,
    NeuralVectorField as NeuralVectorField,
)

#: Every network class by name (layers and dynamics wrappers excluded), for configs.
NETWORKS: dict[str, type] = {
    "MLP": MLP,
    "FNO1d": FNO1d,
    "FNO2d": FNO2d,
    "UNet1d": UNet1d,
    "UNet2d": UNet2d,
    "DeepONet": DeepONet,
    "ScoreMLP": ScoreMLP,
    "ScoreUNet1d": ScoreUNet1d,
    "ScoreUNet2d": ScoreUNet2d,
}
