"""Training: the pure step (`TrainState`, `train_init`, `train_step` with its `TrainInfo`),
`fit` (a minibatch driver over it with validation, EMA, clipping, early stopping and atomic,
verified, bit-for-bit resumable checkpoints that keep the previous one as a fallback and
refuse another optimizer or architecture), `evaluate`, and deep ensembles (`fit_ensemble`,
`stack_models`); `trainable_mask`, the parameters a fine-tuning of part of a model trains."""

from ._checkpoint import load_checkpoint as load_checkpoint, save_checkpoint as save_checkpoint
from ._ensemble import fit_ensemble as fit_ensemble, stack_models as stack_models
from ._fit import evaluate as evaluate, fit as fit
from ._step import (
    TrainInfo as TrainInfo,
    TrainState as TrainState,
    train_init as train_init,
    train_step as train_step,
)
from ._trainable import trainable_mask as trainable_mask
