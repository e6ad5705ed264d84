"""Bayesian inference on simulators: NUTS/HMC through diffrax, diagnostics, MAP and Laplace.

`posterior(model, key=...)` samples a log-density on constrained parameters (`LogDensity`) or a
numpyro model (`NumpyroModel`) with blackjax NUTS/HMC or numpyro NUTS, several chains vmapped
and sharded over devices; `solve_ode` puts a `jaxsci.dynamics` model inside a likelihood with a
failed solve turned into a rejected proposal; `map_estimate` and `laplace` are the fast
baseline and an initialiser, both on one L-BFGS (`minimize_lbfgs`); `rhat`, `ess_bulk`,
`ess_tail`, `mcse_mean`, `mcse_sd` and `summary` are the convergence diagnostics of Vehtari et
al. (2021), `ebfmi` Betancourt's (2016) energy diagnostic, and `PosteriorResult.diagnose()` turns
failed checks into `Advice` on what to change. `last_layer_laplace` and `last_layer_logdensity`
put a Bayesian last layer on a network (exact Gaussian posterior, or NUTS/HMC through
`posterior`), `predictive_samples` turns weight draws into output ensembles.
"""

from ._advice import Advice as Advice
from ._constraints import (
    AbstractConstraint as AbstractConstraint,
    Interval as Interval,
    Positive as Positive,
    Real as Real,
)
from ._diagnostics import (
    ebfmi as ebfmi,
    ess_bulk as ess_bulk,
    ess_tail as ess_tail,
    format_summary as format_summary,
    mcse_mean as mcse_mean,
    mcse_sd as mcse_sd,
    rhat as rhat,
    summary as summary,
)
from ._init import INIT_STRATEGIES as INIT_STRATEGIES
from ._last_layer import (
    LastLayerPosterior as LastLayerPosterior,
    last_layer_laplace as last_layer_laplace,
    last_layer_logdensity as last_layer_logdensity,
    predictive_samples as predictive_samples,
)
from ._lbfgs import LBFGSResult as LBFGSResult, minimize_lbfgs as minimize_lbfgs
from ._optimize import (
    LaplaceResult as LaplaceResult,
    MAPResult as MAPResult,
    laplace as laplace,
    map_estimate as map_estimate,
)
from ._posterior import posterior as posterior
from ._problems import (
    PosteriordbCheck as PosteriordbCheck,
    PosteriorProblem as PosteriorProblem,
    PredictiveCurves as PredictiveCurves,
    hudson_lynx_hare as hudson_lynx_hare,
    lorenz63_posterior as lorenz63_posterior,
    lorenz63_problem as lorenz63_problem,
    lotka_volterra_model as lotka_volterra_model,
    lotka_volterra_problem as lotka_volterra_problem,
    posteriordb_check as posteriordb_check,
    posteriordb_reference as posteriordb_reference,
    thinned_draws as thinned_draws,
    twin_logdensity as twin_logdensity,
    twin_problem as twin_problem,
)
from ._result import PosteriorResult as PosteriorResult
from ._samplers import (
    HMC as HMC,
    NUTS as NUTS,
    SAMPLERS as SAMPLERS,
    AbstractSampler as AbstractSampler,
    NumpyroNUTS as NumpyroNUTS,
    StepInfo as StepInfo,
)
from ._simulator import (
    ODESolution as ODESolution,
    log_likelihood as log_likelihood,
    observe as observe,
    solve_ode as solve_ode,
)
from ._target import (
    AbstractTarget as AbstractTarget,
    LogDensity as LogDensity,
    NumpyroModel as NumpyroModel,
    safe_logdensity as safe_logdensity,
)
