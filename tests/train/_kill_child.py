"""Child process of the kill/resume test: trains 'forever' with frequent checkpoints until the
parent kills it (SIGKILL)."""

import sys

import jax
from _problem import FIT_KWARGS, RUN_KEY, problem  # noqa: I001  (sys.path set by the parent)

from jaxsci.train import fit

if __name__ == "__main__":
    model, loss, data, val, opt = problem()
    fit(
        model,
        loss,
        data,
        optimizer=opt,
        key=jax.random.key(RUN_KEY),
        num_steps=10**7,
        val_data=val,
        checkpoint_dir=sys.argv[1],
        checkpoint_every=3,
        **FIT_KWARGS,
    )
