"""Training: `fit` (optax minibatch loop with validation, EMA, clipping, early stopping and
atomic, bit-for-bit resumable checkpoints) and `evaluate`."""

from ._checkpoint import load_checkpoint as load_checkpoint, save_checkpoint as save_checkpoint
from ._fit import evaluate as evaluate, fit as fit
