"""The pipeline registry: the top-level `pipeline:` key of a config picks an entry here.

A pipeline is a schema (a dataclass built from `option`/`section`, see `_schema.py`) and a
function `run(config, run_dir) -> metrics` that receives the validated config and writes
its arrays and plots into `run_dir`. The runner writes `config.yaml`, `metrics.json` and
`run.log`. To add a pipeline: write one module with its schema and `run`, and add one entry
to `PIPELINES` below.
"""

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import (
    _allen_cahn_pinn,
    _assimilate,
    _burgers_probconserv,
    _burgers_uq,
    _diffusion,
    _discover,
    _inverse_gmm,
    _ks_pde_refiner,
    _ks_score_da,
    _ks_semilinear_operator,
    _l96_closure,
    _node_regularisation,
    _ns2d_spectral_refiner,
    _posterior,
    _qg_letkf,
    _qg_model_error,
    _simulate,
    _train,
)


@dataclasses.dataclass(frozen=True)
class Pipeline:
    """One experiment kind: its config schema, its run function and a one-line description."""

    name: str
    schema: type
    run: Callable[[Any, Path], dict]
    description: str


PIPELINES: dict[str, Pipeline] = {
    "simulate": Pipeline(
        "simulate", _simulate.SimulateConfig, _simulate.run, _simulate.DESCRIPTION
    ),
    "assimilate": Pipeline(
        "assimilate", _assimilate.AssimilateConfig, _assimilate.run, _assimilate.DESCRIPTION
    ),
    "train": Pipeline("train", _train.TrainConfig, _train.run, _train.DESCRIPTION),
    "discover": Pipeline(
        "discover", _discover.DiscoverConfig, _discover.run, _discover.DESCRIPTION
    ),
    "posterior": Pipeline(
        "posterior", _posterior.PosteriorConfig, _posterior.run, _posterior.DESCRIPTION
    ),
    "gmm_samplers": Pipeline(
        "gmm_samplers",
        _diffusion.GMMSamplersConfig,
        _diffusion.run_gmm_samplers,
        _diffusion.GMM_DESCRIPTION,
    ),
    "train_diffusion": Pipeline(
        "train_diffusion",
        _diffusion.TrainDiffusionConfig,
        _diffusion.run_train_diffusion,
        _diffusion.TRAIN_DESCRIPTION,
    ),
    "allen_cahn_pinn": Pipeline(
        "allen_cahn_pinn",
        _allen_cahn_pinn.AllenCahnPINNConfig,
        _allen_cahn_pinn.run,
        _allen_cahn_pinn.DESCRIPTION,
    ),
    "burgers_uq": Pipeline(
        "burgers_uq", _burgers_uq.BurgersUQConfig, _burgers_uq.run, _burgers_uq.DESCRIPTION
    ),
    "burgers_probconserv": Pipeline(
        "burgers_probconserv",
        _burgers_probconserv.BurgersProbConservConfig,
        _burgers_probconserv.run,
        _burgers_probconserv.DESCRIPTION,
    ),
    "inverse_gmm": Pipeline(
        "inverse_gmm", _inverse_gmm.InverseGMMConfig, _inverse_gmm.run, _inverse_gmm.DESCRIPTION
    ),
    "l96_closure": Pipeline(
        "l96_closure", _l96_closure.L96ClosureConfig, _l96_closure.run, _l96_closure.DESCRIPTION
    ),
    "node_regularisation": Pipeline(
        "node_regularisation",
        _node_regularisation.NodeRegularisationConfig,
        _node_regularisation.run,
        _node_regularisation.DESCRIPTION,
    ),
    "ks_pde_refiner": Pipeline(
        "ks_pde_refiner",
        _ks_pde_refiner.KSPDERefinerConfig,
        _ks_pde_refiner.run,
        _ks_pde_refiner.DESCRIPTION,
    ),
    "ks_score_da": Pipeline(
        "ks_score_da", _ks_score_da.KSScoreDAConfig, _ks_score_da.run, _ks_score_da.DESCRIPTION
    ),
    "ks_semilinear_operator": Pipeline(
        "ks_semilinear_operator",
        _ks_semilinear_operator.KSSemilinearOperatorConfig,
        _ks_semilinear_operator.run,
        _ks_semilinear_operator.DESCRIPTION,
    ),
    "qg_model_error": Pipeline(
        "qg_model_error",
        _qg_model_error.QGModelErrorConfig,
        _qg_model_error.run,
        _qg_model_error.DESCRIPTION,
    ),
    "ns2d_spectral_refiner": Pipeline(
        "ns2d_spectral_refiner",
        _ns2d_spectral_refiner.NS2DSpectralRefinerConfig,
        _ns2d_spectral_refiner.run,
        _ns2d_spectral_refiner.DESCRIPTION,
    ),
    "qg_letkf": Pipeline("qg_letkf", _qg_letkf.QGLetkfConfig, _qg_letkf.run, _qg_letkf.DESCRIPTION),
}
