"""Model zoo: MLP, Fourier neural operators, U-Nets, DeepONet, time-conditioned networks,
networks as dynamics models, and coordinate networks on random Fourier features that
interpolate scattered data onto a periodic grid (`interpolate_scattered`). Equinox modules
acting on one example (channels-first fields); batch with `jax.vmap`."""

from collections.abc import Callable

import equinox as eqx

from ._base import (
    AbstractNetwork as AbstractNetwork,
    AbstractTimeConditioned as AbstractTimeConditioned,
    count_params as count_params,
)
from ._deeponet import DeepONet as DeepONet
from ._embedding import SinusoidalEmbedding as SinusoidalEmbedding
from ._fno import FNO as FNO, FNO1d as FNO1d, FNO2d as FNO2d
from ._fourier_features import (
    FourierFeatureMLP as FourierFeatureMLP,
    RandomFourierFeatures as RandomFourierFeatures,
)
from ._interpolate import (
    InterpolationInfo as InterpolationInfo,
    interpolate_scattered as interpolate_scattered,
)
from ._local import (
    LocalMLP as LocalMLP,
    LocalPolynomial as LocalPolynomial,
    periodic_stencil as periodic_stencil,
)
from ._mlp import MLP as MLP
from ._periodic import (
    EmbeddedNetwork as EmbeddedNetwork,
    HardInitialCondition as HardInitialCondition,
    PeriodicEmbedding as PeriodicEmbedding,
)
from ._refiner import PDERefiner as PDERefiner
from ._score import ScoreMLP as ScoreMLP
from ._semilinear_operator import SemilinearOperator as SemilinearOperator
from ._spectral import (
    SpectralConv as SpectralConv,
    SpectralConv1d as SpectralConv1d,
    SpectralConv2d as SpectralConv2d,
)
from ._stepper import Stepper as Stepper
from ._stochastic import (
    LocalStochastic as LocalStochastic,
    NoiseInjected as NoiseInjected,
    sample_ensemble as sample_ensemble,
)
from ._unet import (
    ScoreUNet as ScoreUNet,
    ScoreUNet1d as ScoreUNet1d,
    ScoreUNet2d as ScoreUNet2d,
    UNet as UNet,
    UNet1d as UNet1d,
    UNet2d as UNet2d,
)
from ._vector_field import (
    HybridSemilinear as HybridSemilinear,
    HybridVectorField as HybridVectorField,
    NeuralVectorField as NeuralVectorField,
)

#: Every network constructor by name (layers and dynamics wrappers excluded), for configs:
#: the classes and the fixed-dimension constructors (`FNO1d` is `FNO` with d = 1, ...).
NETWORKS: dict[str, Callable[..., eqx.Module]] = {
    "MLP": MLP,
    "FourierFeatureMLP": FourierFeatureMLP,
    "FNO": FNO,
    "FNO1d": FNO1d,
    "FNO2d": FNO2d,
    "UNet": UNet,
    "UNet1d": UNet1d,
    "UNet2d": UNet2d,
    "DeepONet": DeepONet,
    "ScoreMLP": ScoreMLP,
    "ScoreUNet": ScoreUNet,
    "ScoreUNet1d": ScoreUNet1d,
    "ScoreUNet2d": ScoreUNet2d,
}
