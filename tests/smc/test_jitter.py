"""Jitter rules (`ancestors -> mask of the resampled particles a jitter moves`) against DAPPER's
`regularize` on hand-built ancestor vectors and against the multiplicity of each parent."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxsci import smc

# A sorted vector, as systematic resampling (DAPPER's default) returns: parent 0 drawn three
# times, 3 twice, 2, 5 and 7 once.
SORTED = [0, 0, 0, 2, 3, 3, 5, 7]
# The same kind of draw unsorted (multinomial order): 0 three times, 3 twice, not adjacent.
UNSORTED = [3, 0, 5, 0, 3, 7, 0, 2]


@pytest.mark.parametrize(
    "rule, ancestors, moved",
    [
        # DAPPER 1.7.1, dapper.da_methods.particle.regularize(C12, E, idx, nuj) on 8 distinct
        # particles, rows that changed (recorded with /work/venvs/dapper312):
        # nuj=True -> [0, 1, 2, 4, 5], nuj=False -> all rows.
        (smc.NoUniqueJitter(), SORTED, [0, 1, 2, 4, 5]),
        (smc.JitterAll(), SORTED, list(range(8))),
        # not DAPPER's: the first copy of 0 (row 0) and of 3 (row 4) stay
        (smc.KeepFirstCopyJitter(), SORTED, [1, 2, 5]),
        # Unsorted: every copy of a parent drawn twice or more. DAPPER compares neighbours
        # only (it assumes a sorted vector) and moves no row of this one with nuj=True.
        (smc.NoUniqueJitter(), UNSORTED, [0, 1, 3, 4, 6]),
        (smc.KeepFirstCopyJitter(), UNSORTED, [3, 4, 6]),
        (smc.JitterAll(), UNSORTED, list(range(8))),
    ],
    ids=["nuj-sorted", "all-sorted", "keep_first-sorted", "nuj", "keep_first", "all"],
)
def test_rule_on_hand_built_ancestors(rule, ancestors, moved):
    mask = jax.jit(rule)(jnp.asarray(ancestors, dtype=jnp.int32))
    assert mask.shape == (8,) and mask.dtype == jnp.bool_
    assert np.flatnonzero(np.asarray(mask)).tolist() == moved


@pytest.mark.parametrize("scheme", [smc.systematic, smc.multinomial, smc.residual])
def test_rules_follow_the_multiplicity_of_each_parent(scheme):
    """On draws of every kind: NoUniqueJitter moves exactly the particles whose parent was
    drawn twice or more; KeepFirstCopyJitter moves all of those but one per parent (the first
    in the vector), so it leaves one particle per distinct parent; JitterAll moves all."""
    n = 64
    w = jax.random.dirichlet(jax.random.key(0), 0.3 * jnp.ones(n))
    keys = jax.random.split(jax.random.key(1), 20)
    idx = np.asarray(jax.vmap(lambda k: scheme(k, w, n))(keys))
    nuj = np.asarray(jax.vmap(smc.NoUniqueJitter())(idx))
    first = np.asarray(jax.vmap(smc.KeepFirstCopyJitter())(idx))
    every = np.asarray(jax.vmap(smc.JitterAll())(idx))
    for a, m_nuj, m_first, m_all in zip(idx, nuj, first, every, strict=True):
        counts = np.bincount(a, minlength=n)
        np.testing.assert_array_equal(m_nuj, counts[a] >= 2)
        kept = np.flatnonzero(~m_first)
        assert sorted(a[kept].tolist()) == np.unique(a).tolist()  # one stays per parent
        assert kept.tolist() == [int(np.flatnonzero(a == p)[0]) for p in a[kept]]
        assert m_all.all()
