"""Losses with one interface, `loss(model, batch, *, key) -> (value, aux)`, and the scores
and error norms they are built from (plain functions of arrays)."""

from ._base import AbstractLoss as AbstractLoss, AbstractRegressionLoss as AbstractRegressionLoss
from ._filter import (
    FilterLikelihoodLoss as FilterLikelihoodLoss,
    filter_windows as filter_windows,
    window_starts as window_starts,
)
from ._pinn import (
    PINNLoss as PINNLoss,
    derivative as derivative,
    time_slab_points as time_slab_points,
)
from ._probabilistic import (
    AlmostFairCRPS as AlmostFairCRPS,
    CRPSLoss as CRPSLoss,
    EnergyScoreLoss as EnergyScoreLoss,
    EnsembleScore as EnsembleScore,
    GaussianNLLLoss as GaussianNLLLoss,
)
from ._refiner import PDERefinerLoss as PDERefinerLoss
from ._regression import (
    MSELoss as MSELoss,
    RelativeL2Loss as RelativeL2Loss,
    SobolevLoss as SobolevLoss,
    StochasticRegressionLoss as StochasticRegressionLoss,
)
from ._rollout import RolloutLoss as RolloutLoss
from ._scores import (
    crps_almost_fair as crps_almost_fair,
    crps_ensemble as crps_ensemble,
    crps_fair as crps_fair,
    crps_gaussian as crps_gaussian,
    energy_score as energy_score,
    gaussian_nll as gaussian_nll,
    relative_l2 as relative_l2,
    sobolev_norm as sobolev_norm,
    sobolev_weights as sobolev_weights,
)
from ._solver_heuristics import (
    LocalRegularisedLoss as LocalRegularisedLoss,
    SolverHeuristicLoss as SolverHeuristicLoss,
)
