"""Deep ensembles (`fit_ensemble`): independently initialised members, each trained."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxsci import losses, nn
from jaxsci.train import fit_ensemble, stack_models

X = np.linspace(-1.0, 1.0, 64, dtype=np.float32)[:, None]
Y = np.sin(3.0 * X)


@pytest.mark.slow  # 4-6 s alone on the 2-core VM (fast-tier budget); CI's slow tier runs it
def test_members_differ_and_each_is_trained():
    loss = losses.MSELoss()

    def make(k):
        return nn.MLP(1, 1, 16, 2, key=k)

    ens, histories = fit_ensemble(
        make,
        loss,
        (X, Y),
        num_members=3,
        key=jax.random.key(0),
        optimizer=optax.adam(1e-2),
        batch_size=16,
        num_steps=300,
        progress=False,
    )
    assert len(histories) == 3
    preds = eqx.filter_vmap(lambda m: jax.vmap(m)(jnp.asarray(X)))(ens)
    assert preds.shape == (3, 64, 1)
    var_y = float(np.var(Y))
    for j in range(3):
        mse = float(np.mean((preds[j] - Y) ** 2))
        # trained: below 2% of the target variance (an untrained MLP is near or above it)
        assert mse < 0.02 * var_y, (j, mse)
        untrained = make(jax.random.split(jax.random.split(jax.random.key(0), 3)[j])[0])
        assert mse < 0.1 * float(np.mean((jax.vmap(untrained)(jnp.asarray(X)) - Y) ** 2))
    # members differ (independent initialisations and data orders)
    spread = np.std(np.asarray(preds), axis=0)
    assert spread.mean() > 1e-4
    first = jax.tree.leaves(eqx.filter(ens, eqx.is_inexact_array))[0]
    assert not np.allclose(first[0], first[1])


def test_stack_models_adds_a_leading_member_axis():
    ms = [nn.MLP(2, 1, 4, 1, key=jax.random.key(i)) for i in range(3)]
    st = stack_models(ms)
    for leaf, leaf0 in zip(
        jax.tree.leaves(eqx.filter(st, eqx.is_array)),
        jax.tree.leaves(eqx.filter(ms[0], eqx.is_array)),
        strict=True,
    ):
        assert leaf.shape == (3, *leaf0.shape)
        np.testing.assert_array_equal(leaf[0], leaf0)
