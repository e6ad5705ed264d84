"""Integration: `simulate` over diffrax, exponential integrators, flows, `rollout`, ensembles,
Lyapunov exponents, trajectories as xarray datasets."""

from ._adams_bashforth import AB3 as AB3, Filtered as Filtered
from ._chunked import (
    ChunkedSimulation as ChunkedSimulation,
    simulate_chunked as simulate_chunked,
)
from ._dataset import trajectory_dataset as trajectory_dataset
from ._ensemble import ensemble as ensemble
from ._etdrk import (
    ETDRK1 as ETDRK1,
    ETDRK2 as ETDRK2,
    ETDRK3 as ETDRK3,
    ETDRK4 as ETDRK4,
    AbstractETDRK as AbstractETDRK,
)
from ._flattened import FlattenedFlow as FlattenedFlow
from ._flow import Flow as Flow
from ._flow_map import FlowMap as FlowMap
from ._heuristics import (
    HeuristicSolution as HeuristicSolution,
    HeuristicSolver as HeuristicSolver,
    StepHeuristics as StepHeuristics,
    function_evaluations as function_evaluations,
    one_step_heuristics as one_step_heuristics,
    solve_heuristics as solve_heuristics,
    step_heuristics as step_heuristics,
)
from ._lyapunov import LyapunovResult as LyapunovResult, lyapunov_exponents as lyapunov_exponents
from ._phi import phi as phi, phi_functions as phi_functions
from ._rk4 import RK4 as RK4
from ._rollout import rollout as rollout
from ._simulate import (
    Trajectory as Trajectory,
    default_solver as default_solver,
    default_step_solver as default_step_solver,
    simulate as simulate,
)
from ._streaming import (
    StreamedEnsemble as StreamedEnsemble,
    streamed_ensemble as streamed_ensemble,
)
from ._terms import SemilinearTerm as SemilinearTerm
