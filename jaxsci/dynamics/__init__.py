"""Simulators: ODE/SDE/PDE models as equinox modules with differentiable parameters."""

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
from ._sir import SIR as SIR
