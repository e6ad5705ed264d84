"""Simulators: ODE/SDE/PDE models as equinox modules with differentiable parameters.

`float_parameter` and `check_positive` are the argument checks the built-in models use, for
models of your own: they name the argument and let traced values through, so a model whose
`__init__` / `__check_init__` use them can be built inside `jit`, `vmap` or a log-density.
"""

from .._checks import check_positive as check_positive, float_parameter as float_parameter
from ._allen_cahn import AllenCahn as AllenCahn
from ._base import (
    AbstractDynamics as AbstractDynamics,
    AbstractSDE as AbstractSDE,
    AbstractSemilinear as AbstractSemilinear,
)
from ._burgers import Burgers as Burgers
from ._kuramoto_sivashinsky import KuramotoSivashinsky as KuramotoSivashinsky
from ._lorenz63 import Lorenz63 as Lorenz63
from ._lorenz96 import Lorenz96 as Lorenz96
from ._lorenz96_two_scale import Lorenz96TwoScale as Lorenz96TwoScale
from ._lotka_volterra import LotkaVolterra as LotkaVolterra
from ._navier_stokes import NavierStokes2D as NavierStokes2D
from ._noise import AdditiveNoise as AdditiveNoise
from ._quasi_geostrophic import TwoLayerQG as TwoLayerQG
from ._sir import SIR as SIR
