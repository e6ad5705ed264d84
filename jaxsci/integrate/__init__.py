"""Integration: `simulate` over diffrax, exponential integrators, flows, ensembles, Lyapunov."""

from ._ensemble import ensemble as ensemble
from ._etdrk import (
    ETDRK1 as ETDRK1,
)
from ._etdrk import (
    ETDRK2 as ETDRK2,
)
from ._etdrk import (
    ETDRK3 as ETDRK3,
)
from ._etdrk import (
    ETDRK4 as ETDRK4,
)
from ._etdrk import (
    AbstractETDRK as AbstractETDRK,
)
from ._flow import Flow as Flow
from ._lyapunov import LyapunovResult as LyapunovResult
from ._lyapunov import lyapunov_exponents as lyapunov_exponents
from ._phi import phi as phi
from ._phi import phi_functions as phi_functions
from ._rk4 import RK4 as RK4
from ._simulate import (
    Trajectory as Trajectory,
)
from ._simulate import (
    default_solver as default_solver,
)
from ._simulate import (
    default_step_solver as default_step_solver,
)
from ._simulate import (
    simulate as simulate,
)
from ._terms import SemilinearTerm as SemilinearTerm
